"""Task use cases. Functions take an open session and never commit: the request or the job owns the
transaction, so "create + reserve + enqueue" and "terminal state + settlement" are each one commit."""

from __future__ import annotations

import math
import secrets
import string
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from reelgate.accounts import ledger
from reelgate.accounts import repository as accounts
from reelgate.accounts.credits import to_credits
from reelgate.accounts.pricing import PricingTable, builtin_table
from reelgate.accounts.service import require_account
from reelgate.config import Settings
from reelgate.db.models import Account, ApiKey, Task
from reelgate.engines.relay.base import upstream_cancellable
from reelgate.errors import ApiError, TaskErrorCode
from reelgate.queue.notify import notify_new_task
from reelgate.storage.links import LinkSigner
from reelgate.tasks import repository
from reelgate.tasks.repository import Fence
from reelgate.tasks.schemas import CreateVideoRequest, TaskError, TaskInfo, TaskObject, Usage
from reelgate.tasks.states import UNFINISHED, CreditsState, TaskStatus
from reelgate.webhooks import outbox

TASK_ID_PREFIX = "task-unified-"
_ID_ALPHABET = string.ascii_lowercase + string.digits
NOT_FOUND_MESSAGE = "Task not found or expired"
# A task takes seconds to finish; asking again sooner than this only spends the caller's rate limit.
CONCURRENCY_RETRY_AFTER_S = 5


def new_task_id(now: float) -> str:
    suffix = "".join(secrets.choice(_ID_ALPHABET) for _ in range(8))
    return f"{TASK_ID_PREFIX}{int(now)}-{suffix}"


@dataclass(frozen=True)
class Route:
    model: str
    engine: str
    estimate_s: float
    # The engine's prompt cap (a relay's upstream limit); a longer prompt is refused at create.
    max_prompt_chars: int | None = None


async def create_task(
    session: AsyncSession,
    settings: Settings,
    *,
    key: ApiKey,
    request: CreateVideoRequest,
    route: Route,
    pricing: PricingTable | None = None,
    max_concurrent: int = 0,
) -> Task:
    """Check the key's concurrency limit, reserve the price and enqueue, in the caller's transaction: all of it
    happens or none of it does."""
    now = time.time()
    if route.max_prompt_chars is not None and len(request.prompt) > route.max_prompt_chars:
        raise ApiError(
            400,
            f"Prompt is {len(request.prompt)} characters; the {route.engine} upstream serving {route.model!r} "
            f"accepts at most {route.max_prompt_chars}",
            param="prompt",
        )
    account: Account = await require_account(session, key.account_id or "")
    table = pricing or builtin_table(settings.price_per_second_credits)
    quote = table.quote(route.model, account.user_group, request.duration)
    if max_concurrent > 0:
        await accounts.lock_key(session, key.id)
        if await accounts.count_unfinished_tasks(session, key.id) >= max_concurrent:
            raise ApiError(
                429,
                f"Too many unfinished tasks: this key may have {max_concurrent} at once",
                fallback_suggestion="wait for a task to finish, or cancel one",
                headers={"Retry-After": str(CONCURRENCY_RETRY_AFTER_S)},
            )
    task_id = new_task_id(now)
    if not await ledger.reserve(session, account.id, task_id, quote.millicredits):
        raise ApiError(
            402,
            f"Insufficient quota: this task costs {to_credits(quote.millicredits)} credits and the account has "
            f"{to_credits(account.balance_millicredits - account.held_millicredits)} available",
            fallback_suggestion="ask the operator for credits (reelgate credits grant) or use duration 5",
        )
    task = Task(
        id=task_id,
        api_key_id=key.id,
        model=route.model,
        engine=route.engine,
        prompt=request.prompt,
        image_urls=list(request.image_urls),
        aspect_ratio=request.aspect_ratio,
        duration_s=request.duration,
        callback_url=request.callback_url,
        seed=secrets.randbelow(2**31),
        status=TaskStatus.PENDING,
        progress=0,
        estimated_time_s=math.ceil(route.estimate_s),
        error_code=None,
        error_message=None,
        attempt=0,
        max_attempts=settings.max_attempts,
        available_at=now,
        lease_owner=None,
        lease_expires_at=None,
        created_at=now,
        updated_at=now,
        started_at=None,
        finished_at=None,
        result_key=None,
        result_info={},
        billing_rule=quote.billing_rule,
        user_group=account.user_group,
        credits_reserved_millicredits=quote.millicredits,
        credits_state="held",
    )
    await repository.insert_task(session, task)
    # Delivered only if this transaction commits: a worker is never woken for a task that does not exist.
    await notify_new_task(session)
    return task


def validate_task_id(task_id: str) -> None:
    if not task_id.startswith(TASK_ID_PREFIX):
        raise ApiError(400, f"Invalid task id: it must start with '{TASK_ID_PREFIX}'", param="task_id")


def is_expired(task: Task, settings: Settings, now: float) -> bool:
    return task.finished_at is not None and now - task.finished_at > settings.result_ttl_s


async def get_visible_task(session: AsyncSession, settings: Settings, key: ApiKey, task_id: str) -> Task:
    """The key's own, unexpired task; anything else is the same 404 (never reveal another key's task)."""
    validate_task_id(task_id)
    task = await repository.get_task(session, task_id)
    if task is None or task.api_key_id != key.id or is_expired(task, settings, time.time()):
        raise ApiError(404, NOT_FOUND_MESSAGE, param="task_id")
    return task


async def cancel_task(session: AsyncSession, settings: Settings, key: ApiKey, task_id: str) -> Task:
    task = await get_visible_task(session, settings, key, task_id)
    if task.status not in UNFINISHED:
        raise ApiError(400, f"Task is already {task.status} and can no longer be cancelled", param="task_id")
    if not can_cancel(task):
        raise ApiError(
            400,
            f"Task can no longer be cancelled: {task.upstream_provider} is already generating it",
            param="task_id",
        )
    cancelled = await fail_task(
        session,
        task,
        code=TaskErrorCode.REQUEST_CANCELLED,
        message="Task cancelled by request",
        from_statuses=UNFINISHED,
        # can_cancel was judged on what we read; a submit that left since must not be cancelled under it.
        as_seen=True,
    )
    if cancelled is None:
        # A worker finished it, or sent it upstream, between our read and our write.
        raise ApiError(400, "Task finished or was sent upstream before it could be cancelled", param="task_id")
    return cancelled


async def fail_task(
    session: AsyncSession,
    task: Task,
    *,
    code: TaskErrorCode,
    message: str,
    from_statuses: tuple[TaskStatus, ...],
    fence: Fence | None = None,
    as_seen: bool = False,
) -> Task | None:
    """End a task as failed and refund its hold, in one transaction; None if another writer won.
    `as_seen`: only while its upstream state is still the one `task` shows (see repository.mark_failed)."""
    now = time.time()
    won = await repository.mark_failed(
        session,
        task.id,
        code=code,
        message=message,
        now=now,
        from_statuses=from_statuses,
        fence=fence,
        as_seen=task if as_seen else None,
    )
    if won is not None:
        await _task_ended(session, won, now)
    return won


async def complete_task(
    session: AsyncSession, task_id: str, *, fence: Fence, result_key: str, result_info: dict[str, Any]
) -> Task | None:
    """End a task as completed and capture its hold, in one transaction; None if the lease was lost."""
    now = time.time()
    won = await repository.mark_completed(
        session, task_id, fence=fence, result_key=result_key, result_info=result_info, now=now
    )
    if won is not None:
        await _task_ended(session, won, now)
    return won


async def _task_ended(session: AsyncSession, task: Task, now: float) -> None:
    """Every terminal transition that wins comes through here, before its transaction commits: the ledger's
    settlement (capture for completed, release otherwise) and the callback are in the database if and only if
    the outcome is. The ledger's unique settlement key makes a second settlement roll the transaction back."""
    captured = task.credits_state == CreditsState.CAPTURED
    await ledger.settle(session, task.id, ledger.EntryKind.CAPTURE if captured else ledger.EntryKind.RELEASE)
    if task.callback_url is not None:
        await outbox.enqueue_task_callback(session, task, now=now)


def can_cancel(task: Task) -> bool:
    """While cancel can really stop the work: unfinished and, for a relay task, while its upstream can still
    drop it (engines/relay/base.py upstream_cancellable)."""
    return task.status in UNFINISHED and upstream_cancellable(task.upstream_provider, task.upstream_state)


def task_object(task: Task, *, links: LinkSigner, settings: Settings) -> TaskObject:
    info = task.result_info or {}
    results: list[str] = []
    if task.status == TaskStatus.COMPLETED and task.result_key and task.finished_at is not None:
        results.append(links.url_for(task.result_key, expires_at=int(task.finished_at + settings.result_ttl_s)))
    error = None
    if task.status == TaskStatus.FAILED:
        error = TaskError(code=task.error_code or TaskErrorCode.UNKNOWN_ERROR, message=task.error_message or "")
    return TaskObject(
        created=int(task.created_at),
        id=task.id,
        model=task.model,
        progress=task.progress,
        status=task.status,
        task_info=TaskInfo(
            can_cancel=can_cancel(task),
            estimated_time=task.estimated_time_s if task.status in UNFINISHED else 0,
            video_duration=task.duration_s,
            engine=task.engine,
            method=info.get("method"),
            aspect_ratio=task.aspect_ratio,
            resolution=f"{info['width']}x{info['height']}" if "width" in info else None,
            seed=task.seed,
        ),
        usage=Usage(
            billing_rule=task.billing_rule,
            credits_reserved=to_credits(task.credits_reserved_millicredits),
            user_group=task.user_group,
        ),
        results=results,
        error=error,
    )
