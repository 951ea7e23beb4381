"""The vendor's file-hosting API, served here (docs/files.md): upload an image (base64, multipart stream, or
from a URL), list, quota and delete, with the vendor's paths, field names and wrapped answers. The `file_url`
of an upload goes straight into a task's `image_urls`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Request, UploadFile

from reelgate.api.auth import CurrentCaller, ResourcesDep
from reelgate.api.responses import wrapped_errors
from reelgate.api.strict import reject_unknown_query
from reelgate.files import service
from reelgate.files.schemas import (
    FILES_API_PREFIX,
    MAX_PAGE_SIZE,
    UPLOAD_PATH_PATTERN,
    Base64Upload,
    DeletedData,
    FileListData,
    QuotaData,
    UploadedFileData,
    UrlUpload,
    Wrapped,
)

router = APIRouter(prefix=FILES_API_PREFIX, tags=["Files"])
UPLOADED = "File uploaded successfully"


@router.post(
    "/upload/base64",
    response_model=Wrapped[UploadedFileData],
    operation_id="uploadFileBase64",
    summary="Upload an image sent as base64 (raw or a data: URL)",
    responses=wrapped_errors(400, 401, 403, 413, 429, 500),
)
async def upload_base64(
    body: Base64Upload, caller: CurrentCaller, resources: ResourcesDep
) -> Wrapped[UploadedFileData]:
    data = await service.upload_base64(
        resources, caller, base64_data=body.base64_data, upload_path=body.upload_path, file_name=body.file_name
    )
    return Wrapped(msg=UPLOADED, data=data)


@router.post(
    "/upload/stream",
    response_model=Wrapped[UploadedFileData],
    operation_id="uploadFileStream",
    summary="Upload an image as multipart/form-data (part `file`)",
    responses=wrapped_errors(400, 401, 403, 413, 429, 500),
)
async def upload_stream(
    caller: CurrentCaller,
    resources: ResourcesDep,
    file: Annotated[UploadFile, File(description="The image: JPEG, PNG or WebP, up to 10 MB")],
    upload_path: Annotated[str | None, Form(alias="uploadPath", max_length=255, pattern=UPLOAD_PATH_PATTERN)] = None,
    file_name: Annotated[str | None, Form(alias="fileName", min_length=1, max_length=255)] = None,
) -> Wrapped[UploadedFileData]:
    data = await service.upload_stream(
        resources, caller, file.file, original_name=file.filename, upload_path=upload_path, file_name=file_name
    )
    return Wrapped(msg=UPLOADED, data=data)


@router.post(
    "/upload/url",
    response_model=Wrapped[UploadedFileData],
    operation_id="uploadFileFromUrl",
    summary="Upload an image the server downloads from an http(s) URL",
    responses=wrapped_errors(400, 401, 403, 429, 500),
)
async def upload_url(body: UrlUpload, caller: CurrentCaller, resources: ResourcesDep) -> Wrapped[UploadedFileData]:
    data = await service.upload_url(
        resources, caller, file_url=body.file_url, upload_path=body.upload_path, file_name=body.file_name
    )
    return Wrapped(msg=UPLOADED, data=data)


@router.get(
    "/list",
    response_model=Wrapped[FileListData],
    operation_id="listFiles",
    summary="The account's unexpired files, newest first",
    responses=wrapped_errors(400, 401, 429, 500),
)
async def list_files(
    request: Request,
    caller: CurrentCaller,
    resources: ResourcesDep,
    page: Annotated[int, Query(ge=1, le=10**6, description="Page number, from 1")] = 1,
    page_size: Annotated[int, Query(alias="pageSize", ge=1, le=MAX_PAGE_SIZE, description="Files per page")] = 20,
) -> Wrapped[FileListData]:
    reject_unknown_query(request, allowed=("page", "pageSize"))
    return Wrapped(data=await service.list_files(resources, caller, page=page, page_size=page_size))


@router.get(
    "/quota",
    response_model=Wrapped[QuotaData],
    operation_id="getFileQuota",
    summary="How many files the account holds and may hold",
    responses=wrapped_errors(401, 429, 500),
)
async def quota(request: Request, caller: CurrentCaller, resources: ResourcesDep) -> Wrapped[QuotaData]:
    reject_unknown_query(request, allowed=())
    return Wrapped(data=await service.quota(resources, caller))


@router.delete(
    "/{file_id}",
    response_model=Wrapped[DeletedData],
    operation_id="deleteFile",
    summary="Delete a file: its links stop working and its quota slot is free",
    responses=wrapped_errors(401, 404, 429, 500),
)
async def delete_file(file_id: str, caller: CurrentCaller, resources: ResourcesDep) -> Wrapped[DeletedData]:
    return Wrapped(msg="File deleted", data=await service.delete_file(resources, caller, file_id))
