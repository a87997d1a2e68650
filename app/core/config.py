"""Settings read from the environment (prefix ``TOCSIN_``) and validated at start-up."""

from __future__ import annotations

import contextlib
import os
import secrets
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AnyHttpUrl, BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# A key shorter than this makes HMAC signatures and link tokens guessable.
MIN_SECRET_KEY_LENGTH = 32
SECRET_KEY_FILE = "secret_key"  # noqa: S105 - a file name, not a secret


class ActionSettings(BaseModel):
    """Settings of the ways responders act outside the API: signed links, Slack, SMS."""

    link_ttl: timedelta = Field(
        default=timedelta(hours=24),
        ge=timedelta(minutes=5),
        le=timedelta(days=30),
        description="How long an action link works, e.g. PT24H or 86400 (seconds).",
    )
    # Key id (1-255) -> secret. Key id 0 is always the key derived from TOCSIN_SECRET_KEY.
    link_keys: dict[Annotated[int, Field(ge=1, le=255)], SecretStr] = Field(default_factory=dict)
    link_signing_key_id: Annotated[int, Field(ge=0, le=255)] | None = Field(
        default=None,
        description="The key id that signs new links. Unset: the highest id in link_keys, else 0.",
    )
    link_revoked_key_ids: list[Annotated[int, Field(ge=0, le=255)]] = Field(
        default_factory=list,
        description="Key ids whose links stop working at once.",
    )
    slack_signing_secret: SecretStr | None = None
    # Where Slack's response_url points; tests point it at a local server.
    slack_response_url_prefix: str = "https://hooks.slack.com/"
    twilio_auth_token: SecretStr | None = None

    @field_validator("link_ttl", mode="before")
    @classmethod
    def _seconds_as_number(cls, value: Any) -> Any:
        # Environment variables are text, and Pydantic reads a number of seconds only
        # when it is a number, so "86400" would be refused as a malformed duration.
        if isinstance(value, str) and value.strip().isdigit():
            return int(value.strip())
        return value

    @model_validator(mode="after")
    def _check_link_keys(self) -> ActionSettings:
        for key_id, secret in self.link_keys.items():
            if len(secret.get_secret_value()) < MIN_SECRET_KEY_LENGTH:
                raise ValueError(
                    f"link key {key_id} must be at least {MIN_SECRET_KEY_LENGTH} characters"
                )
        signer = self.signing_key_id
        if signer != 0 and signer not in self.link_keys:
            raise ValueError(f"link_signing_key_id {signer} is not a key id in link_keys")
        if signer in self.link_revoked_key_ids:
            raise ValueError(
                f"link key {signer} signs new links but is listed in link_revoked_key_ids; "
                "add a newer key to link_keys or set link_signing_key_id"
            )
        return self

    @property
    def signing_key_id(self) -> int:
        if self.link_signing_key_id is not None:
            return self.link_signing_key_id
        return max(self.link_keys, default=0)


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
    public_url: AnyHttpUrl | None = Field(
        default=None,
        description="Base URL that responders and senders reach Tocsin at. "
        "Unset: http://<host>:<port>, with 127.0.0.1 for a host that means every interface.",
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["console", "json"] = "console"

    # Connections kept open per process. Overflow connections close when returned, and
    # under steady load that churn (connect, type introspection, statements prepared
    # again) cut the job worker from 62 to 40 first pages/s when it drained 1,000
    # incidents on a 2-core machine, so there is no overflow by default.
    db_pool_size: Annotated[int, Field(ge=1, le=200)] = 20
    db_max_overflow: Annotated[int, Field(ge=0, le=200)] = 0

    ingest_max_body_bytes: Annotated[int, Field(ge=1024, le=64 * 1024 * 1024)] = 1024 * 1024
    ingest_max_alerts: Annotated[int, Field(ge=1, le=100_000)] = 5000
    ingest_max_labels: Annotated[int, Field(ge=1, le=10_000)] = 128
    ingest_max_label_length: Annotated[int, Field(ge=16, le=1_000_000)] = 8192
    ingest_max_summary_length: Annotated[int, Field(ge=16, le=100_000)] = 1024

    worker_concurrency: Annotated[int, Field(ge=1, le=1000)] = 32
    # A job whose worker stopped sending heartbeats is picked up again after this long.
    worker_heartbeat_timeout_seconds: Annotated[float, Field(gt=0, le=3600)] = 30.0
    # /readyz returns 503 once this process's worker has been down for longer than this.
    worker_down_grace_seconds: Annotated[float, Field(ge=0, le=3600)] = 15.0
    # With the backoff in app/notify/delivery.py, 14 attempts span 2,010 s (33.5 minutes)
    # before jitter, so a page outlasts a receiver outage of about half an hour.
    delivery_max_attempts: Annotated[int, Field(ge=1, le=50)] = 14
    delivery_timeout_seconds: Annotated[float, Field(gt=0, le=120)] = 10.0
    notifiers: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Options per notifier, e.g. TOCSIN_NOTIFIERS__EMAIL__HOST=smtp.example.com; "
        "see docs/notifiers.md",
    )

    actions: ActionSettings = Field(default_factory=ActionSettings)

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
        if self.public_url is not None:
            return str(self.public_url).rstrip("/")
        return f"http://{_url_host(self.host)}:{self.port}"

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


# Listening on every interface includes the loopback one, which is the best default guess.
_EVERY_INTERFACE = frozenset({"", "0.0.0.0", "::"})  # noqa: S104 - compared, not bound


def _url_host(host: str) -> str:
    if host in _EVERY_INTERFACE:
        return "127.0.0.1"
    if ":" in host:
        return f"[{host}]"
    return host


@lru_cache
def get_settings() -> Settings:
    return Settings()
