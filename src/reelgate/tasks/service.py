"""Task use cases: create (with its checks and the Idempotency-Key protocol), query, list, cancel, and the
task object every answer and callback shows.

Functions that take a session never commit: the request or the job owns the transaction, so "create +
reserve + enqueue" and "terminal state + settlement" are each one commit.
"""

from __future__ import annotations

import asyncio
import functools
import io
import math
import random
import secrets
import string
import time
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from reelgate.accounts import idempotency, ledger
from reelgate.accounts import repository as accounts
from reelgate.accounts.credits import to_credits
from reelgate.accounts.pricing import PricingTable, builtin_table
from reelgate.accounts.service import Caller, KeyFields, authorize_model, require_account
from reelgate.config import Settings
from reelgate.db.driver import Batch, Notify, Transaction
from reelgate.db.models import Task
from reelgate.egress.urls import validate_callback_url
from reelgate.engines.base import KnownFrame
from reelgate.engines.registry import Route
from reelgate.engines.relay.base import upstream_cancellable
from reelgate.errors import ApiError, TaskErrorCode
from reelgate.files import service as files
from reelgate.media.images import EmbeddedImage, validate_image_at_create
from reelgate.queue import TASKS_CHANNEL, terminal
from reelgate.queue.states import UNFINISHED, TaskStatus
from reelgate.storage.base import Storage
from reelgate.storage.keys import input_key, input_prefix, stored_key, stored_ref
from reelgate.tasks import repository
from reelgate.tasks.context import TasksResources
from reelgate.tasks.schemas import (
    CreateVideoRequest,
    TaskCreditEntry,
    TaskCredits,
    TaskError,
    TaskInfo,
    TaskList,
    TaskObject,
    Usage,
    VideoQuote,
)
from reelgate.tasks.settlement import task_ended

TASK_ID_PREFIX = "task-unified-"
_ID_ALPHABET = string.ascii_lowercase + string.digits
_ID_SUFFIX_CHARS = 8
NOT_FOUND_MESSAGE = "Task not found or expired"
# A task takes seconds to finish; asking again sooner than this only spends the caller's rate limit.
CONCURRENCY_RETRY_AFTER_S = 5
MAX_PAGE = 100


# A task as an ORM row, or a row of the same columns from a Core or point read (the hot reads): what the task
# object is built from.
TaskLike = Task | Row[Any] | Any


def new_task_id(now: float) -> str:
    # Eight characters of the alphabet from one draw (uniform over all 36**8 suffixes): eight draws were a
    # measurable part of a create.
    number = secrets.randbelow(len(_ID_ALPHABET) ** _ID_SUFFIX_CHARS)
    suffix = []
    for _ in range(_ID_SUFFIX_CHARS):
        number, digit = divmod(number, len(_ID_ALPHABET))
        suffix.append(_ID_ALPHABET[digit])
    return f"{TASK_ID_PREFIX}{int(now)}-{''.join(suffix)}"


def task_id_second(task_id: str) -> int | None:
    """The unix second a task id was drawn at, None for a string that is no task id of ours."""
    second, _, suffix = task_id.removeprefix(TASK_ID_PREFIX).partition("-")
    if not task_id.startswith(TASK_ID_PREFIX) or not second.isdigit() or len(suffix) != _ID_SUFFIX_CHARS:
        return None
    return int(second)


# --- create ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Created:
    """The create's answer, and whether it is the stored answer of an earlier request with the same
    Idempotency-Key (then nothing was created or charged now)."""

    task: dict[str, Any]
    replayed: bool


async def create(
    resources: TasksResources, caller: Caller, request: CreateVideoRequest, *, idempotency_key: str | None
) -> Created:
    """Route the model, check the images and callback URL, then create, reserve and enqueue in one
    transaction. With an Idempotency-Key, the same key and body give back the first answer."""
    key = caller.key
    usable = authorize_model(key, request.model, resources.registry.model_names())
    route = await _route(resources, request.model, request.duration, allowed=usable)
    if idempotency_key is None:
        return Created(await _checked_create(resources, caller, request, route, idempotency_key=None), False)
    idempotency.validate_key(idempotency_key)
    stored = await idempotency.claim(
        resources.db, key.id, idempotency_key, idempotency.fingerprint(request.model_dump(mode="json"))
    )
    if stored is not None:
        return Created(stored, replayed=True)
    try:
        answer = await _checked_create(resources, caller, request, route, idempotency_key=idempotency_key)
    except BaseException:
        # Nothing was created (the task and the stored answer commit together): free the key for a retry.
        await idempotency.release(resources.db, key.id, idempotency_key)
        raise
    return Created(answer, replayed=False)


async def _route(resources: TasksResources, model: str, duration: int, *, allowed: list[str]) -> Route:
    """The engine for `model`, among those a live worker serves, as this process last read the registry (at
    most a second ago: every create asks). A miss is read again before it is answered, so a worker that
    registered within that second serves at once rather than a 503."""
    try:
        return resources.registry.route(model, duration, allowed=allowed, serving=await resources.serving_engines())
    except ApiError as error:
        if error.status not in (502, 503):
            raise
    return resources.registry.route(
        model, duration, allowed=allowed, serving=await resources.serving_engines(fresh=True)
    )


async def _checked_create(
    resources: TasksResources,
    caller: Caller,
    request: CreateVideoRequest,
    route: Route,
    *,
    idempotency_key: str | None,
) -> dict[str, Any]:
    settings = resources.settings
    embedded: dict[int, EmbeddedImage] = {}
    urls = list(request.image_urls)
    for index, url in enumerate(request.image_urls):
        # A file_url we issued names our own stored object: the worker reads it from storage, so it is never
        # fetched (it works with private networks refused), and a deleted or expired one is refused now.
        upload = await files.resolve_upload(resources, url, param=f"image_urls[{index}]")
        if upload is not None:
            urls[index] = stored_ref(upload)
            continue
        check = functools.partial(
            validate_image_at_create,
            url,
            param=f"image_urls[{index}]",
            max_bytes=settings.max_image_bytes,
            max_pixels=settings.max_image_pixels,
            allow_private=settings.allow_private_networks,
        )
        # Decoding a data: URI is CPU work; keep it off the event loop. A URL's check is a parse of its syntax,
        # far cheaper than the thread hand-off (which was a third of a create's CPU in the profile).
        checked = await asyncio.to_thread(check) if url[:5].lower() == "data:" else check()
        if checked is not None:
            embedded[index] = checked
    if request.callback_url is not None:
        await validate_callback_url(request.callback_url, allow_private=settings.allow_private_networks)
    task_id = new_task_id(time.time())
    # Images sent inline are stored before the row that names them exists, and removed again if the row is
    # never written: the row keeps a reference, not megabytes of base64 that every claim would read.
    refs = await _store_inputs(resources.storage, task_id, urls, embedded)
    try:
        async with resources.db.driver_transaction() as transaction:
            task = await create_task(
                transaction,
                settings,
                key=caller.key,
                user_group=caller.account.user_group,
                request=request,
                route=route,
                pricing=resources.pricing.current(),
                max_concurrent=caller.limits.max_concurrent,
                task_id=task_id,
                image_refs=refs,
            )
            answer = task_object(task, storage=resources.storage, settings=settings).model_dump(
                mode="json", exclude_none=True
            )
            if idempotency_key is not None:
                await idempotency.complete(
                    transaction,
                    caller.key.id,
                    idempotency_key,
                    task_id=task.id,
                    response=answer,
                    ttl_s=settings.idempotency_ttl_s,
                )
    except BaseException:
        await asyncio.shield(_delete_inputs(resources.storage, task_id, refs))
        raise
    return answer


async def _store_inputs(
    storage: Storage, task_id: str, urls: list[str], embedded: dict[int, EmbeddedImage]
) -> list[str]:
    refs = list(urls)
    try:
        for index, image in embedded.items():
            key = input_key(task_id, index, image.format)
            await asyncio.to_thread(storage.put_stream, key, io.BytesIO(image.data))
            refs[index] = stored_ref(key)
    except BaseException:
        await asyncio.shield(_delete_inputs(storage, task_id, refs))
        raise
    return refs


async def _delete_inputs(storage: Storage, task_id: str, refs: list[str]) -> None:
    own = input_prefix(task_id)
    for ref in refs:
        key = stored_key(ref)
        if key is not None and key.startswith(own):
            await asyncio.to_thread(storage.delete, key)


# What one create writes, in one transaction: the task, its workers' wake-up (delivered only if the
# transaction commits, so a worker is never woken for a task that does not exist) and the reserve. One round
# trip on PostgreSQL (db/driver.py `Batch`). The reserve is last: its UPDATE of the account's row is what the
# account's other creates wait for until this transaction commits.
_CREATE = Batch(repository.INSERT_TASK, Notify(TASKS_CHANNEL), *ledger.RESERVE_MEMBERS)
# With the key's limit of unfinished tasks: the count first (it sees the database as it was before the batch).
_CREATE_COUNTED = Batch(repository.COUNT_UNFINISHED, *_CREATE.members)


async def create_task(
    transaction: Transaction,
    settings: Settings,
    *,
    key: KeyFields,
    user_group: str,
    request: CreateVideoRequest,
    route: Route,
    pricing: PricingTable | None = None,
    max_concurrent: int = 0,
    task_id: str | None = None,
    image_refs: list[str] | None = None,
) -> TaskLike:
    """Check the key's concurrency limit, reserve the price and enqueue, in the caller's transaction (a driver
    transaction, db/driver.py: the hot write of the service): all of it happens or none of it does.
    `user_group`: the key's account's (it prices the task; an account's group is set when it is made and never
    changes, so the caller's copy from the key cache is exact). `image_refs`: the images as the row keeps them
    (URLs, or `stored:` references to inputs already stored under `task_id`); default the request's own."""
    now = time.time()
    if route.max_prompt_chars is not None and len(request.prompt) > route.max_prompt_chars:
        raise ApiError(
            400,
            f"Prompt is {len(request.prompt)} characters; the {route.engine} upstream serving {route.model!r} "
            f"accepts at most {route.max_prompt_chars}",
            param="prompt",
        )
    account_id = key.account_id or ""
    table = pricing or builtin_table(settings.price_per_second_credits)
    quote = table.quote(route.model, user_group, request.duration)
    if max_concurrent > 0:
        # Before the batch: its count then sees every create of the key that committed before this one.
        await accounts.lock_key(transaction, key.id)
    task_id = task_id or new_task_id(now)
    # Plain values, not an ORM object: its instrumented constructor cost a create a tenth of its CPU, for a
    # row that is inserted by one statement and then only read.
    task = SimpleNamespace(
        id=task_id,
        api_key_id=key.id,
        model=route.model,
        engine=route.engine,
        prompt=request.prompt,
        image_urls=list(image_refs if image_refs is not None else request.image_urls),
        aspect_ratio=request.aspect_ratio,
        duration_s=request.duration,
        callback_url=request.callback_url,
        # A rendering parameter, not a secret: the process's PRNG (a system-random draw is a syscall each).
        seed=random.getrandbits(31),
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
        user_group=user_group,
        credits_reserved_millicredits=quote.millicredits,
        credits_state="held",
        # Set here, not left to column defaults: the row is inserted from these attributes as they are.
        poster_key=None,
        upstream_provider=None,
        upstream_task_id=None,
        upstream_state=None,
        upstream_submitted_at=None,
        purged=False,
    )
    values = vars(task)
    written = [repository.insert_params(values), {}, *ledger.reserve_params(account_id, task_id, quote.millicredits)]
    if max_concurrent > 0:
        unfinished, *results = await transaction.run_batch(_CREATE_COUNTED, [repository.count_params(key.id), *written])
        if unfinished >= max_concurrent:
            raise ApiError(
                429,
                f"Too many unfinished tasks: this key may have {max_concurrent} at once",
                fallback_suggestion="wait for a task to finish, or cancel one",
                headers={"Retry-After": str(CONCURRENCY_RETRY_AFTER_S)},
            )
    else:
        results = await transaction.run_batch(_CREATE, written)
    if not results[-1]:  # the reserve's UPDATE changed no row: the account cannot spend the price
        available = await accounts.available_millicredits(transaction, account_id)
        # A shorter video is only a way out for a request that asked for a longer one.
        shorter = " or use duration 5" if request.duration > 5 else ""
        raise ApiError(
            402,
            f"Insufficient quota: this task costs {to_credits(quote.millicredits)} credits and the account has "
            f"{to_credits(available)} available",
            fallback_suggestion=f"ask the operator for credits (reelgate credits grant){shorter}",
        )
    return task


# --- quote ---------------------------------------------------------------------------------------------


async def quote(
    resources: TasksResources, caller: Caller, *, model: str, aspect_ratio: str, duration: int
) -> VideoQuote:
    """What a create with these choices would reserve for the caller, routed and priced exactly as `create`
    routes and prices it (the same 403, 404, 502 and 503), and the frame its engine renders."""
    if duration not in (5, 10):
        raise ApiError(400, "Invalid duration: it must be 5 or 10", param="duration")
    usable = authorize_model(caller.key, model, resources.registry.model_names())
    route = await _route(resources, model, duration, allowed=usable)
    priced = resources.pricing.current().quote(route.model, caller.account.user_group, duration)
    # The money is read now (the key cache holds none), as a create reads it.
    async with resources.db.read() as session:
        account = await require_account(session, caller.account.id)
    available = account.balance_millicredits - account.held_millicredits
    engine = resources.registry.engines.get(route.engine)
    width, height = engine.frame_size(aspect_ratio) if isinstance(engine, KnownFrame) else (None, None)
    return VideoQuote(
        model=route.model,
        engine=route.engine,
        aspect_ratio=aspect_ratio,
        duration=duration,
        billing_rule=priced.billing_rule,
        credits=to_credits(priced.millicredits),
        available=to_credits(available),
        affordable=available >= priced.millicredits,
        user_group=account.user_group,
        width=width,
        height=height,
        estimated_time=math.ceil(route.estimate_s),
    )


# --- query, list, cancel ---------------------------------------------------------------------------------


def validate_task_id(task_id: str) -> None:
    if not task_id.startswith(TASK_ID_PREFIX):
        raise ApiError(400, f"Invalid task id: it must start with '{TASK_ID_PREFIX}'", param="task_id")


def is_expired(task: TaskLike, settings: Settings, now: float) -> bool:
    return task.finished_at is not None and now - task.finished_at > settings.result_ttl_s


async def get_visible_task(session: AsyncSession, settings: Settings, key: KeyFields, task_id: str) -> Task:
    """The key's own, unexpired task; anything else is the same 404 (never reveal another key's task)."""
    validate_task_id(task_id)
    task = await repository.get_task(session, task_id)
    if task is None or task.api_key_id != key.id or is_expired(task, settings, time.time()):
        raise ApiError(404, NOT_FOUND_MESSAGE, param="task_id")
    return task


async def visible_task_row(resources: TasksResources, key: KeyFields, task_id: str) -> Any:
    """`get_visible_task` in one database round trip (a single statement, no transaction around it)."""
    validate_task_id(task_id)
    row = await repository.task_row(resources.db, task_id)
    if row is None or row.api_key_id != key.id or is_expired(row, resources.settings, time.time()):
        raise ApiError(404, NOT_FOUND_MESSAGE, param="task_id")
    return row


async def get_task(resources: TasksResources, key: KeyFields, task_id: str) -> TaskObject:
    task = await visible_task_row(resources, key, task_id)
    return task_object(task, storage=resources.storage, settings=resources.settings)


async def task_credits(resources: TasksResources, key: KeyFields, task_id: str) -> TaskCredits:
    """The task's ledger entries (its reserve, then its capture or release), with the same 404s as the task."""
    async with resources.db.read() as session:
        task = await get_visible_task(session, resources.settings, key, task_id)
        entries = await ledger.task_entries(session, task.id)
    return TaskCredits(
        task_id=task.id,
        state=task.credits_state,
        data=[
            TaskCreditEntry(kind=row.kind, credits=to_credits(row.amount_millicredits), created=row.created_at)
            for row in entries
        ],
    )


async def list_tasks(resources: TasksResources, key: KeyFields, *, limit: int, after: str | None) -> TaskList:
    """One page of the key's tasks, newest first; `after` is the `next_cursor` of the previous page."""
    settings = resources.settings
    cursor = None
    if after is not None:
        cursor = await repository.task_row(resources.db, after)
        if cursor is None or cursor.api_key_id != key.id:
            raise ApiError(400, "Invalid cursor: pass the next_cursor of a previous page", param="after")
    rows = await repository.list_tasks(
        resources.db, key.id, limit=limit + 1, after=cursor, not_finished_before=time.time() - settings.result_ttl_s
    )
    page = rows[:limit]
    return TaskList(
        data=[task_object(task, storage=resources.storage, settings=settings) for task in page],
        has_more=len(rows) > limit,
        next_cursor=page[-1].id if len(rows) > limit else None,
    )


async def cancel_task(resources: TasksResources, key: KeyFields, task_id: str) -> TaskObject:
    async with resources.db.transaction() as session:
        task = await get_visible_task(session, resources.settings, key, task_id)
        if task.status not in UNFINISHED:
            raise ApiError(400, f"Task is already {task.status} and can no longer be cancelled", param="task_id")
        if not can_cancel(task):
            raise ApiError(
                400,
                f"Task can no longer be cancelled: {task.upstream_provider} is already generating it",
                param="task_id",
            )
        cancelled = await terminal.fail(
            session,
            task_ended,
            task.id,
            code=TaskErrorCode.REQUEST_CANCELLED,
            message="Task cancelled by request",
            from_statuses=UNFINISHED,
            # can_cancel was judged on what we read; a submit that left since must not be cancelled under it.
            as_seen=task,
        )
        if cancelled is None:
            # A worker finished it, or sent it upstream, between our read and our write.
            raise ApiError(400, "Task finished or was sent upstream before it could be cancelled", param="task_id")
    await terminal.discard_losing_videos(resources.storage, cancelled)
    return task_object(cancelled, storage=resources.storage, settings=resources.settings)


# --- the task object -------------------------------------------------------------------------------------


def can_cancel(task: TaskLike) -> bool:
    """While cancel can really stop the work: unfinished and, for a relay task, while its upstream can still
    drop it (engines/relay/base.py upstream_cancellable)."""
    return task.status in UNFINISHED and upstream_cancellable(task.upstream_provider, task.upstream_state)


def task_object(task: TaskLike, *, storage: Storage, settings: Settings) -> TaskObject:
    info = task.result_info or {}
    results: list[str] = []
    poster_url = None
    if task.status == TaskStatus.COMPLETED and task.result_key and task.finished_at is not None:
        expires_at = int(task.finished_at + settings.result_ttl_s)
        results.append(storage.link(task.result_key, expires_at=expires_at))
        if task.poster_key:
            poster_url = storage.link(task.poster_key, expires_at=expires_at)
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
            poster_url=poster_url,
            expires_at=int(task.finished_at + settings.result_ttl_s) if task.finished_at is not None else None,
            prompt=task.prompt,
        ),
        usage=Usage(
            billing_rule=task.billing_rule,
            credits_reserved=to_credits(task.credits_reserved_millicredits),
            user_group=task.user_group,
        ),
        results=results,
        error=error,
    )
