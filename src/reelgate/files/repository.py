"""SQL for uploaded files (the `files` table). Callers own the transaction."""

from __future__ import annotations

from sqlalchemy import ColumnElement, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from reelgate.db.models import UploadedFile


async def insert_file(session: AsyncSession, row: UploadedFile) -> None:
    session.add(row)
    await session.flush()


async def get_file(session: AsyncSession, file_id: str) -> UploadedFile | None:
    return await session.get(UploadedFile, file_id, populate_existing=True)


def _active(account_id: str, now: float) -> tuple[ColumnElement[bool], ...]:
    """Counted against the quota and listed: neither deleted nor expired."""
    return (
        UploadedFile.account_id == account_id,
        UploadedFile.deleted_at.is_(None),
        UploadedFile.expires_at > now,
    )


async def count_active(session: AsyncSession, account_id: str, *, now: float) -> int:
    query = select(func.count()).select_from(UploadedFile).where(*_active(account_id, now))
    return int(await session.scalar(query) or 0)


async def list_active(
    session: AsyncSession, account_id: str, *, now: float, offset: int, limit: int
) -> list[UploadedFile]:
    query = (
        select(UploadedFile)
        .where(*_active(account_id, now))
        .order_by(UploadedFile.created_at.desc(), UploadedFile.id.desc())
        .offset(offset)
        .limit(limit)
    )
    return list((await session.scalars(query)).all())


async def mark_deleted(session: AsyncSession, file_id: str, *, now: float) -> bool:
    result = await session.execute(
        update(UploadedFile).where(UploadedFile.id == file_id, UploadedFile.deleted_at.is_(None)).values(deleted_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def due_for_purge(session: AsyncSession, *, now: float, limit: int) -> list[tuple[str, str]]:
    """(id, storage key) of files deleted or expired whose object may still be stored."""
    rows = await session.execute(
        select(UploadedFile.id, UploadedFile.storage_key)
        .where(
            UploadedFile.purged.is_(False),
            (UploadedFile.deleted_at.is_not(None)) | (UploadedFile.expires_at <= now),
        )
        .order_by(UploadedFile.expires_at)
        .limit(limit)
    )
    return [(file_id, key) for file_id, key in rows.all()]


async def mark_purged(session: AsyncSession, file_id: str) -> None:
    await session.execute(update(UploadedFile).where(UploadedFile.id == file_id).values(purged=True))


async def forget_expired(session: AsyncSession, *, now: float) -> int:
    """Rows of purged files past their expiry: a link to one is refused by its own expiry now, so the row has
    nothing left to explain."""
    result = await session.execute(
        delete(UploadedFile).where(UploadedFile.purged.is_(True), UploadedFile.expires_at <= now)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
