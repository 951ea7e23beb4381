"""Wire shapes of the files API, with the vendor's field names exactly (docs/evolink-files.md): every answer is
wrapped as `{"success", "code", "msg", "data"}`."""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

# Where the vendor's file client sends its requests (its own base URL, here the same server).
FILES_API_PREFIX = "/api/v1/files"
# Slash-separated names, none starting with a dot (no `..`, no hidden names): a label, but one that could be
# used as a path one day without harm.
UPLOAD_PATH_PATTERN = r"^$|^[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*/?$"
MAX_NAME_CHARS = 255
MAX_PAGE_SIZE = 100

T = TypeVar("T")


class Wrapped(BaseModel, Generic[T]):
    """The vendor's envelope; its client treats a non-2xx status or `success: false` as an error and shows
    `msg`."""

    success: bool = True
    code: int = 200
    msg: str = "success"
    data: T


class Base64Upload(BaseModel):
    # Unknown fields are ignored, like the video API's (vendor clients may send more than they document).
    model_config = ConfigDict(strict=True, extra="ignore")

    base64_data: str = Field(min_length=1, description="Raw base64, or a data: URL (data:image/png;base64,...)")
    upload_path: str | None = Field(
        None, max_length=MAX_NAME_CHARS, pattern=UPLOAD_PATH_PATTERN, description="A subdirectory (a label here)"
    )
    file_name: str | None = Field(None, min_length=1, max_length=MAX_NAME_CHARS, description="A custom file name")


class UrlUpload(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")

    file_url: str = Field(min_length=1, max_length=2048, description="An http(s) URL the server downloads")
    upload_path: str | None = Field(
        None, max_length=MAX_NAME_CHARS, pattern=UPLOAD_PATH_PATTERN, description="A subdirectory (a label here)"
    )
    file_name: str | None = Field(None, min_length=1, max_length=MAX_NAME_CHARS, description="A custom file name")


class UploadedFileData(BaseModel):
    file_id: str
    file_name: str
    original_name: str
    file_size: int = Field(description="Bytes")
    mime_type: str
    upload_path: str
    file_url: str = Field(description="The link to pass in `image_urls` (signed, valid until `expires_at`)")
    download_url: str = Field(description="The same file as a download (Content-Disposition: attachment)")
    upload_time: str = Field(description="ISO 8601")
    expires_at: str = Field(description="ISO 8601")


class ListedFile(BaseModel):
    file_id: str
    file_name: str
    file_size: int
    upload_time: str
    # Beyond the vendor's four fields: what a client needs to use or forget a listed file without uploading again.
    mime_type: str
    file_url: str
    expires_at: str


class FileListData(BaseModel):
    total: int
    files: list[ListedFile]


class QuotaData(BaseModel):
    user_group: str
    used_files: int
    max_files: int
    remain_files: int


class DeletedData(BaseModel):
    file_id: str
    deleted: bool = True
