"""Gateway settings: environment (and ``.env``) with the existing deployment's variable names."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = ["GatewaySettings", "ConfigError", "load_settings"]

REQUIRED = ("API_KEY", "AVITO_CLIENT_ID", "AVITO_CLIENT_SECRET")
_SECRET_RE = re.compile(r"[A-Za-z0-9_-]{8,128}")


class ConfigError(ValueError):
    """The gateway cannot start with this configuration; the message names the variable."""


class GatewaySettings(BaseSettings):
    """Names are the customer's deployment's (``AVITO_CLIENT_ID``, ``API_KEY``, ...), so it drops in."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True,
                                      case_sensitive=False)

    avito_client_id: str = ""
    avito_client_secret: str = ""
    avito_user_id: int | None = None
    avito_api_base_url: str = "https://api.avito.ru"
    n8n_webhook_url: str | None = None
    api_key: str = ""

    server_host: str = "127.0.0.1"
    server_port: int = Field(8765, ge=0, le=65535)

    rate_limit_requests: int = Field(100, ge=1)
    rate_limit_window: float = Field(60, gt=0)
    max_connections: int = Field(20, ge=1)
    connection_timeout: float = Field(30, gt=0)
    max_retries: int = Field(3, ge=0, le=10)
    retry_min_wait: float = Field(1.0, ge=0)
    retry_max_wait: float = Field(10.0, ge=0)
    retry_after_max: float = Field(60.0, ge=0, description="longest Avito Retry-After the gateway will wait")

    webhook_secret: str | None = None
    public_webhook_url: str | None = None
    data_dir: Path = Path("gateway-data")
    token_refresh_margin: float = Field(300, ge=60)

    image_url_allowed_hosts: Annotated[tuple[str, ...], NoDecode] = ()
    image_url_max_bytes: int = Field(24 * 1024 * 1024, ge=1)
    max_body_bytes: int = Field(1024 * 1024, ge=1024)  # JSON bodies; image uploads may use IMAGE_URL_MAX_BYTES
    bulk_concurrency: int = Field(5, ge=1, le=50)
    bulk_max_items: int = Field(500, ge=1)

    n8n_timeout: float = Field(10.0, gt=0)
    # with the 600 s cap, about three days of n8n refusing (as long as delivered items are kept) before a dead letter
    outbox_max_attempts: int = Field(450, ge=1)
    outbox_retry_min: float = Field(5.0, ge=0)
    outbox_retry_max: float = Field(600.0, ge=0)
    outbox_poll_interval: float = Field(0.5, gt=0)
    outbox_concurrency: int = Field(8, ge=1, le=256, description="chats forwarded to n8n at once (order kept per chat)")
    enrich_timeout: float = Field(2.0, gt=0, description="budget for the chat read that fills in the customer's name")

    health_outbox_max_age: float = Field(900, gt=0, description="oldest pending item older than this: degraded")
    health_forward_failures: int = Field(10, ge=1, description="this many failed forwards in a row: degraded")
    storage_min_free_bytes: int = Field(64 * 1024 * 1024, ge=0, description="less free disk than this: unhealthy")

    retention_seconds: float = Field(3 * 24 * 3600, gt=0, description="delivered items and raw bodies kept this long")
    retention_sweep_interval: float = Field(600, gt=0)
    rejected_keep: int = Field(10_000, ge=1, description="refused webhooks kept on record (newest)")
    database_url: str | None = Field(None, description="postgresql://...: the store for several replicas; unset: "
                                                         "a SQLite file in DATA_DIR (one process)")
    database_timeout: float = Field(5.0, ge=0.1, le=300, description="longest wait for PostgreSQL: statement and lock "
                                    "timeouts on the server, and the gateway gives up on a call after this (+1 s)")
    accounts_file: Path | None = Field(None, description="more Avito accounts (YAML or JSON), see avito_gateway.accounts")
    replica_id: str | None = Field(None, max_length=100, description="names this process's outbox claims; "
                                                                      "default: host, pid and a random suffix")
    outbox_lease_seconds: float = Field(60.0, ge=1, description="a claimed outbox item returns to the others after this")
    idempotency_lease_seconds: float = Field(120.0, ge=1, description="a send under way on another replica is waited "
                                                                       "for this long before this one takes it over")
    webhook_plain_path: Literal["auto", "allow", "deny"] = Field(
        "auto", description="POST /webhook/avito without the secret: auto = until the gateway subscribed itself")

    @field_validator("image_url_allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(h.strip() for h in value.split(",") if h.strip())
        return value

    def check(self) -> GatewaySettings:
        if self.accounts_file is None or self.avito_client_id.strip():  # the environment's account: all three
            for name in REQUIRED:
                if not getattr(self, name.lower()).strip():
                    raise ConfigError(f"{name} is not set: the gateway needs it to start")
        if self.database_url is not None and not self.database_url.startswith(("postgresql://", "postgres://")):
            raise ConfigError("DATABASE_URL must be a postgresql:// URL (unset: a SQLite file in DATA_DIR)")
        if self.api_key != self.api_key.strip():
            raise ConfigError("API_KEY has surrounding spaces: HTTP strips them from headers, so no caller could match it")
        if self.webhook_secret is not None and not _SECRET_RE.fullmatch(self.webhook_secret):
            raise ConfigError("WEBHOOK_SECRET must be 8 to 128 characters of A-Z a-z 0-9 _ -")
        return self

    def check_data_dir(self) -> GatewaySettings:
        """DATA_DIR must be a directory the gateway can create and write; checked before it listens."""
        try:
            self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # it will hold customer messages
            probe = self.data_dir / ".write-test"
            probe.write_bytes(b"ok")
            probe.unlink()
        except OSError as exc:
            raise ConfigError(f"DATA_DIR {str(self.data_dir)!r} is not a writable directory: {exc.strerror or exc}") from None
        return self


def load_settings(**overrides: object) -> GatewaySettings:
    """Settings from the environment and ``.env``; ``overrides`` win. Raises :class:`ConfigError`."""
    try:
        settings = GatewaySettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]).upper() if first["loc"] else "?"
        raise ConfigError(f"{name}: {first['msg']}") from None
    return settings.check()
