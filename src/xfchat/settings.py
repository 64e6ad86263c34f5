"""Settings, read from the environment and validated at start.

There is no module-level instance: the command line builds one and passes it in.
`DatabaseSettings` is all that `migrate` and `seed` need; `Settings` adds what the
HTTP server needs (and refuses a missing or weak secret).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Secrets that appear in tutorials, .env.example files and our own history.
KNOWN_WEAK_SECRETS = frozenset(
    {
        "changeme",
        "change-me",
        "change_me",
        "secret",
        "secret-key",
        "your-secret-key",
        "your-secret-key-here",
        "supersecret",
        "xfchat",
        "xfchat-secret",
        "development",
        "dev",
        "test",
        "default",
        "password",
        "jwt-secret",
    }
)
MIN_SECRET_LENGTH = 32


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class DatabaseSettings(BaseSettings):
    """What every command that talks to PostgreSQL needs."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    database_url: str | None = Field(default=None, validation_alias=_env("DATABASE_URL"))
    pool_min: int = Field(default=5, ge=0, le=1000, validation_alias=_env("XFCHAT_DB_POOL_MIN"))
    pool_max: int = Field(default=25, ge=1, le=1000, validation_alias=_env("XFCHAT_DB_POOL_MAX"))
    statement_timeout_s: float = Field(
        default=30.0, gt=0, le=3600, validation_alias=_env("XFCHAT_DB_STATEMENT_TIMEOUT")
    )
    connect_attempts: int = Field(
        default=5, ge=1, le=100, validation_alias=_env("XFCHAT_DB_CONNECT_ATTEMPTS")
    )
    connect_retry_delay_s: float = Field(
        default=1.0, ge=0, le=60, validation_alias=_env("XFCHAT_DB_CONNECT_RETRY_DELAY")
    )
    connect_timeout_s: float = Field(
        default=5.0, gt=0, le=120, validation_alias=_env("XFCHAT_DB_CONNECT_TIMEOUT")
    )
    migrations_dir: Path | None = Field(
        default=None, validation_alias=_env("XFCHAT_MIGRATIONS_DIR")
    )

    @field_validator("database_url")
    @classmethod
    def _url_scheme(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("must start with postgresql:// (e.g. postgresql://user:pass@host/db)")
        return value

    def require_database_url(self) -> str:
        if not self.database_url:
            raise SettingsError(
                "DATABASE_URL is not set: export DATABASE_URL=postgresql://user:pass@host:5432/db "
                "(or run `uv run xfchat dev` for a local database)"
            )
        return self.database_url


class Settings(DatabaseSettings):
    """Everything `xfchat serve` needs."""

    host: str = Field(default="0.0.0.0", validation_alias=_env("XFCHAT_HOST"))  # noqa: S104
    port: int = Field(
        default=3000, ge=0, le=65535, validation_alias=_env("XFCHAT_PORT", "SERVER_PORT")
    )
    secret: SecretStr = Field(validation_alias=_env("XFCHAT_SECRET"))
    event_retention_days: float = Field(
        default=7.0, gt=0, le=3650, validation_alias=_env("XFCHAT_EVENT_RETENTION_DAYS")
    )
    max_body_bytes: int = Field(
        default=1_048_576, ge=1024, le=1 << 30, validation_alias=_env("XFCHAT_MAX_BODY_BYTES")
    )
    log_level: str = Field(default="info", validation_alias=_env("XFCHAT_LOG_LEVEL"))
    access_log: bool = Field(default=False, validation_alias=_env("XFCHAT_ACCESS_LOG"))
    shutdown_grace_s: float = Field(
        default=5.0, ge=0, le=600, validation_alias=_env("XFCHAT_SHUTDOWN_GRACE")
    )

    @field_validator("secret")
    @classmethod
    def _strong_secret(cls, value: SecretStr) -> SecretStr:
        raw = value.get_secret_value()
        if raw.strip().lower() in KNOWN_WEAK_SECRETS:
            raise ValueError("is a well-known default; generate your own")
        if len(raw) < MIN_SECRET_LENGTH:
            raise ValueError(f"must be at least {MIN_SECRET_LENGTH} characters")
        if len(set(raw)) < 8:
            raise ValueError("is too repetitive to be a secret")
        return value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        value = value.lower()
        if value not in {"critical", "error", "warning", "info", "debug"}:
            raise ValueError("must be one of critical, error, warning, info, debug")
        return value


class SettingsError(Exception):
    """A setting is missing or invalid; the message says which and how to fix it."""


_ENV_NAMES = {
    name: (
        field.validation_alias.choices[0]
        if isinstance(field.validation_alias, AliasChoices)
        else name
    )
    for name, field in Settings.model_fields.items()
}

SECRET_HINT = "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(48))'"  # noqa: S105


def describe_validation_error(exc: ValidationError) -> str:
    """One line naming the environment variable and what is wrong with it."""
    parts = []
    for err in exc.errors():
        loc = str(err["loc"][0]) if err["loc"] else "?"
        env = _ENV_NAMES.get(loc, loc)
        msg = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "missing":
            msg = "is required"
        hint = f" ({SECRET_HINT})" if env == "XFCHAT_SECRET" else ""
        parts.append(f"{env} {msg}{hint}")
    return "; ".join(parts)


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        raise SettingsError(describe_validation_error(exc)) from None


def load_database_settings() -> DatabaseSettings:
    try:
        return DatabaseSettings()
    except ValidationError as exc:
        raise SettingsError(describe_validation_error(exc)) from None
