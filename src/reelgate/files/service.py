"""Files use cases: upload (base64, multipart stream, from a URL), list, quota, delete, the expiry sweep, and
turning a `file_url` we issued back into the stored object a task reads.

An upload is checked as the video API will check it (JPEG, PNG or WebP by their bytes, the size and pixel
limits, both sides at least 64 px), so a file that no task could ever use is refused now, with the reason.
It is stored through `Storage` under `files/<file_id>.<ext>`, a key no task owns: a task that names it keeps
a `stored:` reference, its worker reads the object from storage (never through the outbound client, so it
works with private networks refused), and no task's purge deletes it. Files expire after
REELGATE_FILE_TTL_S and count against their account's quota until then (or until deleted).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import io
import logging
import secrets
import string
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import BinaryIO
from urllib.parse import parse_qs, unquote, urlsplit

from reelgate.accounts import repository as accounts
from reelgate.accounts.service import Caller
from reelgate.db.models import UploadedFile
from reelgate.egress.errors import EgressError, TooLargeError
from reelgate.egress.urls import validate_image_url_syntax
from reelgate.errors import ApiError
from reelgate.files import repository
from reelgate.files.context import FilesResources
from reelgate.files.schemas import (
    DeletedData,
    FileListData,
    ListedFile,
    QuotaData,
    UploadedFileData,
)
from reelgate.media.images import ImageRejected, decode_data_uri, inspect_image, sniff_format
from reelgate.storage.keys import UPLOADS_PREFIX, upload_key
from reelgate.storage.links import FILES_ROUTE

log = logging.getLogger(__name__)

_ID_ALPHABET = string.ascii_lowercase + string.digits
MIME_TYPES = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp"}
NOT_FOUND_MESSAGE = "File not found or expired"
_PURGE_BATCH = 200


def new_file_id() -> str:
    # Lowercase only: the id is part of a storage key (storage/base.py allows nothing else).
    return "file_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(24))


def iso(unix_s: float) -> str:
    return datetime.fromtimestamp(int(unix_s), UTC).isoformat().replace("+00:00", "Z")


def _base_name(name: str | None) -> str | None:
    """The last path segment of a client's name for the file, at most 255 characters; None if nothing is left."""
    if name is None:
        return None
    cleaned = name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    return cleaned[:255] or None


# --- checks ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckedImage:
    data: bytes
    format: str  # "jpeg" | "png" | "webp"


def check_image(data: bytes, *, param: str, max_bytes: int, max_pixels: int) -> CheckedImage:
    """What the video API will accept, checked before anything is stored; a 400 naming `param` otherwise."""
    if not data:
        raise ApiError(400, f"{param}: the file is empty", param=param)
    if len(data) > max_bytes:
        raise ApiError(
            400, f"{param}: the file is {len(data)} bytes, over the video API's limit of {max_bytes} bytes", param=param
        )
    try:
        inspect_image(data, max_pixels=max_pixels, param=param).close()
    except ImageRejected as rejected:
        raise ApiError(400, f"{rejected}; the video API could never use it", param=param) from None
    return CheckedImage(data=data, format=str(sniff_format(data)))


def decode_base64(value: str, *, max_bytes: int, param: str) -> bytes:
    """Raw base64 or a data: URL, refused before decoding when it cannot fit the limit."""
    try:
        if value[:5].lower() == "data:":
            return decode_data_uri(value, max_bytes=max_bytes, param=param)
        # Clients wrap long base64 lines; whitespace carries no data.
        payload = "".join(value.split())
        if len(payload) > 4 * -(-max_bytes // 3):
            raise ImageRejected(f"is larger than the limit of {max_bytes} bytes", param=param)
        try:
            return base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise ImageRejected("is not valid base64", param=param) from None
    except ImageRejected as rejected:
        raise ApiError(400, str(rejected), param=param) from None


def read_limited(source: BinaryIO, max_bytes: int, *, param: str) -> bytes:
    """At most `max_bytes` of a multipart part; one byte more is enough to know it is too large."""
    data = source.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ApiError(400, f"{param}: the file is larger than the video API's limit of {max_bytes} bytes", param=param)
    return data


# --- uploads -----------------------------------------------------------------------------------------------


def _view(resources: FilesResources, row: UploadedFile) -> UploadedFileData:
    file_url = file_link(resources, row)
    return UploadedFileData(
        file_id=row.id,
        file_name=row.file_name,
        original_name=row.original_name,
        file_size=row.size_bytes,
        mime_type=row.mime_type,
        upload_path=row.upload_path,
        file_url=file_url,
        download_url=f"{file_url}&download=1",
        upload_time=iso(row.created_at),
        expires_at=iso(row.expires_at),
    )


def file_link(resources: FilesResources, row: UploadedFile) -> str:
    """Signed by our own link signer, whatever the storage: `resolve_upload` must recognise it in a create."""
    return resources.links.url_for(row.storage_key, expires_at=int(row.expires_at))


def max_files(resources: FilesResources, user_group: str) -> int:
    terms = resources.pricing.current().group(user_group)
    return terms.max_files if terms.max_files is not None else resources.settings.default_max_files


async def store_upload(
    resources: FilesResources,
    caller: Caller,
    image: CheckedImage,
    *,
    original_name: str | None,
    file_name: str | None,
    upload_path: str | None,
) -> UploadedFileData:
    """Store the checked image, then record it within the account's quota; the object is deleted again if the
    row is never written (over quota, or a failed transaction)."""
    settings = resources.settings
    file_id = new_file_id()
    key = upload_key(file_id, image.format)
    generated = f"{file_id}.{image.format}"
    original = _base_name(original_name) or generated
    await asyncio.to_thread(resources.storage.put_stream, key, io.BytesIO(image.data))
    try:
        async with resources.db.transaction() as session:
            now = time.time()
            # Serialises the account's uploads (a row lock on PostgreSQL; SQLite's writes are serial), so two
            # uploads at 99 of 100 cannot both fit.
            account = await accounts.get_account(session, caller.account.id, for_update=True)
            group = account.user_group if account is not None else caller.account.user_group
            limit = max_files(resources, group)
            used = await repository.count_active(session, caller.account.id, now=now)
            if used >= limit:
                raise ApiError(
                    403,
                    f"File quota reached: this account holds {used} of its {limit} files",
                    fallback_suggestion="delete a file (DELETE /api/v1/files/{file_id}) or wait for one to expire",
                )
            row = UploadedFile(
                id=file_id,
                account_id=caller.account.id,
                api_key_id=caller.key.id,
                storage_key=key,
                file_name=_base_name(file_name) or original,
                original_name=original,
                upload_path=(upload_path or "").strip("/"),
                mime_type=MIME_TYPES[image.format],
                size_bytes=len(image.data),
                created_at=now,
                expires_at=now + settings.file_ttl_s,
                deleted_at=None,
                purged=False,
            )
            await repository.insert_file(session, row)
    except BaseException:
        await asyncio.shield(asyncio.to_thread(resources.storage.delete, key))
        raise
    log.info("file uploaded", extra={"file_id": file_id, "bytes": len(image.data)})
    return _view(resources, row)


async def upload_base64(
    resources: FilesResources, caller: Caller, *, base64_data: str, upload_path: str | None, file_name: str | None
) -> UploadedFileData:
    settings = resources.settings
    data = decode_base64(base64_data, max_bytes=settings.max_image_bytes, param="base64_data")
    image = await asyncio.to_thread(
        check_image, data, param="base64_data", max_bytes=settings.max_image_bytes, max_pixels=settings.max_image_pixels
    )
    return await store_upload(
        resources, caller, image, original_name=file_name, file_name=file_name, upload_path=upload_path
    )


async def upload_stream(
    resources: FilesResources,
    caller: Caller,
    source: BinaryIO,
    *,
    original_name: str | None,
    upload_path: str | None,
    file_name: str | None,
) -> UploadedFileData:
    settings = resources.settings
    data = await asyncio.to_thread(read_limited, source, settings.max_image_bytes, param="file")
    image = await asyncio.to_thread(
        check_image, data, param="file", max_bytes=settings.max_image_bytes, max_pixels=settings.max_image_pixels
    )
    return await store_upload(
        resources, caller, image, original_name=original_name, file_name=file_name, upload_path=upload_path
    )


async def upload_url(
    resources: FilesResources, caller: Caller, *, file_url: str, upload_path: str | None, file_name: str | None
) -> UploadedFileData:
    """Download through the one SSRF-safe outbound client (private addresses refused unless allowed)."""
    settings = resources.settings
    param = "file_url"
    try:
        if validate_image_url_syntax(file_url, param=param, allow_private=settings.allow_private_networks) == "data":
            raise ApiError(400, f"{param}: must be an http(s) URL; send data: URLs to /upload/base64", param=param)
        fetched = await resources.egress.fetch_bytes(
            file_url, max_bytes=settings.max_image_bytes, timeout_s=settings.image_fetch_timeout_s
        )
    except TooLargeError:
        limit = settings.max_image_bytes
        raise ApiError(
            400, f"{param}: the file is larger than the video API's limit of {limit} bytes", param=param
        ) from None
    except EgressError as exc:
        raise ApiError(400, f"{param}: could not be downloaded: {exc.message}", param=param) from None
    image = await asyncio.to_thread(
        check_image,
        fetched.data,
        param=param,
        max_bytes=settings.max_image_bytes,
        max_pixels=settings.max_image_pixels,
    )
    name = unquote(urlsplit(file_url).path.rsplit("/", 1)[-1]) or None
    return await store_upload(
        resources, caller, image, original_name=name, file_name=file_name, upload_path=upload_path
    )


# --- list, quota, delete -------------------------------------------------------------------------------------


async def list_files(resources: FilesResources, caller: Caller, *, page: int, page_size: int) -> FileListData:
    now = time.time()
    async with resources.db.read() as session:
        total = await repository.count_active(session, caller.account.id, now=now)
        rows = await repository.list_active(
            session, caller.account.id, now=now, offset=(page - 1) * page_size, limit=page_size
        )
    return FileListData(
        total=total,
        files=[
            ListedFile(
                file_id=row.id,
                file_name=row.file_name,
                file_size=row.size_bytes,
                upload_time=iso(row.created_at),
                mime_type=row.mime_type,
                file_url=file_link(resources, row),
                expires_at=iso(row.expires_at),
            )
            for row in rows
        ],
    )


async def quota(resources: FilesResources, caller: Caller) -> QuotaData:
    async with resources.db.read() as session:
        used = await repository.count_active(session, caller.account.id, now=time.time())
    limit = max_files(resources, caller.account.user_group)
    return QuotaData(
        user_group=caller.account.user_group, used_files=used, max_files=limit, remain_files=max(0, limit - used)
    )


async def delete_file(resources: FilesResources, caller: Caller, file_id: str) -> DeletedData:
    """Any key of the owning account may delete; for anyone else the file does not exist (same 404)."""
    async with resources.db.transaction() as session:
        now = time.time()
        row = await repository.get_file(session, file_id)
        if row is None or row.account_id != caller.account.id or row.deleted_at is not None or row.expires_at <= now:
            raise ApiError(404, NOT_FOUND_MESSAGE, param="file_id")
        await repository.mark_deleted(session, file_id, now=now)
    # After the commit: storage is not part of the transaction (the sweep deletes what a crash here leaves).
    await asyncio.to_thread(resources.storage.delete, row.storage_key)
    async with resources.db.transaction() as session:
        await repository.mark_purged(session, file_id)
    return DeletedData(file_id=file_id)


async def sweep_expired_files(resources: FilesResources, *, now: float | None = None) -> int:
    """Delete the objects of expired (or deleted) files and forget rows past their expiry; returns how many
    objects were deleted."""
    moment = now if now is not None else time.time()
    purged = 0
    while True:
        async with resources.db.read() as session:
            due = await repository.due_for_purge(session, now=moment, limit=_PURGE_BATCH)
        for file_id, key in due:
            await asyncio.to_thread(resources.storage.delete, key)
            async with resources.db.transaction() as session:
                await repository.mark_purged(session, file_id)
        purged += len(due)
        if len(due) < _PURGE_BATCH:
            break
    async with resources.db.transaction() as session:
        await repository.forget_expired(session, now=moment)
    if purged:
        log.info("expired or deleted files purged from storage", extra={"count": purged})
    return purged


# --- a file_url in a create ----------------------------------------------------------------------------------


def _upload_prefix(resources: FilesResources) -> str:
    return f"{resources.links.base_url}{FILES_ROUTE}/{UPLOADS_PREFIX}"


def is_upload_link(resources: FilesResources, url: str) -> bool:
    return url.startswith(_upload_prefix(resources))


async def resolve_upload(resources: FilesResources, url: str, *, param: str) -> str | None:
    """The storage key of an uploaded file that `url` (a `file_url` we issued) names; None for any other URL.
    A link of ours that cannot be used (tampered, expired, the file deleted) is a 400 naming `param` and why."""
    if not is_upload_link(resources, url):
        return None
    parts = urlsplit(url)
    base_path = urlsplit(resources.links.base_url).path.rstrip("/")
    key = unquote(parts.path[len(base_path + FILES_ROUTE) + 1 :])
    query = parse_qs(parts.query)
    try:
        expires_at = int(query["expires"][0])
        signature = query["signature"][0]
    except (KeyError, IndexError, ValueError):
        raise ApiError(
            400, f"{param}: not a valid file_url (its expires or signature is missing); upload again", param=param
        ) from None
    expected = resources.links.signature(key, expires_at)
    if not hmac.compare_digest(expected.encode(), signature.encode(errors="replace")):
        raise ApiError(400, f"{param}: the file_url's signature does not match; pass it unchanged", param=param)
    file_id = key[len(UPLOADS_PREFIX) :].rsplit(".", 1)[0]
    now = time.time()
    async with resources.db.read() as session:
        row = await repository.get_file(session, file_id)
    if row is not None and row.deleted_at is not None:
        raise ApiError(400, f"{param}: the uploaded file {file_id} was deleted; upload it again", param=param)
    if row is None or row.expires_at <= now or expires_at <= now:
        raise ApiError(
            400, f"{param}: the uploaded file {file_id} expired at {iso(expires_at)}; upload it again", param=param
        )
    return row.storage_key
