"""Settings read from the environment (prefix ``TOCSIN_``) and validated at start-up."""

from __future__ import annotations

import contextlib
import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AnyHttpUrl, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# A key shorter than this makes HMAC signatures and link tokens guessable.
MIN_SECRET_KEY_LENGTH = 32
SECRET_KEY_FILE = "secret_key"  # noqa: S105 - a file name, not a secret


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TOCSIN_",
        env_nested_delimiter="__",
        env_ignore_empty=True,
        extra="ignore",
    )

    env: Literal["dev", "test", "prod"] = "dev"
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8080
    database_url: SecretStr | None = Field(
        default=None,
        description="PostgreSQL URL. Unset: an embedded PostgreSQL runs in data_dir.",
    )
    data_dir: Path = Path(".tocsin")
    secret_key: SecretStr | None = Field(
        default=None,
        description="Key for HMAC signatures and encryption. Unset: generated once in data_dir.",
    )
    public_url: AnyHttpUrl = AnyHttpUrl("http://127.0.0.1:8080")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["console", "json"] = "console"

    db_pool_size: Annotated[int, Field(ge=1, le=200)] = 10
    db_max_overflow: Annotated[int, Field(ge=0, le=200)] = 10

    ingest_max_body_bytes: Annotated[int, Field(ge=1024, le=64 * 1024 * 1024)] = 1024 * 1024
    ingest_max_alerts: Annotated[int, Field(ge=1, le=100_000)] = 5000
    ingest_max_labels: Annotated[int, Field(ge=1, le=10_000)] = 128
    ingest_max_label_length: Annotated[int, Field(ge=16, le=1_000_000)] = 8192
    ingest_max_summary_length: Annotated[int, Field(ge=16, le=100_000)] = 1024

    worker_concurrency: Annotated[int, Field(ge=1, le=1000)] = 32
    # A job whose worker stopped sending heartbeats is picked up again after this long.
    worker_heartbeat_timeout_seconds: Annotated[float, Field(gt=0, le=3600)] = 30.0
    delivery_max_attempts: Annotated[int, Field(ge=1, le=50)] = 6
    delivery_timeout_seconds: Annotated[float, Field(gt=0, le=120)] = 10.0
    notifiers: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Options per notifier, e.g. TOCSIN_NOTIFIERS__EMAIL__HOST=smtp.example.com; "
        "see docs/notifiers.md",
    )

    @field_validator("database_url")
    @classmethod
    def _use_asyncpg_driver(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        url = value.get_secret_value()
        for prefix in ("postgres://", "postgresql://", "postgresql+psycopg://"):
            if url.startswith(prefix):
                url = "postgresql+asyncpg://" + url[len(prefix) :]
        if not url.startswith("postgresql+asyncpg://"):
            raise ValueError("must be a PostgreSQL URL such as postgresql://user@host:5432/tocsin")
        return SecretStr(url)

    @model_validator(mode="after")
    def _check_secret_key(self) -> Settings:
        if self.secret_key is None:
            return self
        key = self.secret_key.get_secret_value()
        if len(key) < MIN_SECRET_KEY_LENGTH:
            raise ValueError(
                f"TOCSIN_SECRET_KEY must be at least {MIN_SECRET_KEY_LENGTH} characters; "
                "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(48))'"
            )
        if self.env == "prod" and key.lower().startswith(("changeme", "change-me", "secret")):
            raise ValueError("TOCSIN_SECRET_KEY is a placeholder; set a random value in production")
        return self

    @property
    def public_base_url(self) -> str:
        return str(self.public_url).rstrip("/")

    def signing_key(self) -> bytes:
        """Return the secret key, creating and storing one in data_dir when none is set."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value().encode()
        path = self.data_dir / SECRET_KEY_FILE
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            # Write aside, then link: os.link fails if another process (a worker
            # started beside the server) created the file first, and then we
            # read that one, so every process uses the same key.
            temporary = path.with_name(f"{SECRET_KEY_FILE}.{os.getpid()}.tmp")
            temporary.write_text(secrets.token_urlsafe(48))
            temporary.chmod(0o600)
            with contextlib.suppress(FileExistsError):
                os.link(temporary, path)
            temporary.unlink()
        key = path.read_text().strip()
        self.secret_key = SecretStr(key)
        return key.encode()


@lru_cache
def get_settings() -> Settings:
    return Settings()
