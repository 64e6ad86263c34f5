"""Settings, read from the environment and validated at start.

There is no module-level instance: the command line builds one and passes it in.
`DatabaseSettings` is all that `migrate` and `seed` need; `Settings` adds what the
HTTP server needs (and refuses a missing or weak secret).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal, TypeVar
from urllib.parse import SplitResult, urlsplit

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, SettingsConfigDict
from pydantic_settings import SettingsError as PydanticSettingsError

from xfchat.settings_values import (
    KNOWN_WEAK_SECRETS,
    MIN_TURN_SECRET_LENGTH,
    WHITESPACE_PROBLEM,
    ListenSetting,
    OriginsSetting,
    ProxiesSetting,
    RateLimit,
    RateLimitSetting,
    SecretsSetting,
    StunUrlsSetting,
    TurnUrlsSetting,
    check_secret,
    parse_origins,
)

__all__ = ["DatabaseSettings", "RateLimit", "Settings", "SettingsError", "parse_origins"]


URL_ESCAPES = (
    "a / ? # or @ in its user or password must be percent-encoded (%2F %3F %23 %40);"
    " the value is not repeated here, it may hold the password"
)


def _authority_cut_short(parts: SplitResult) -> bool:
    """Whether the URL's user and password end before its `@`: a `/`, `?` or `#` in a
    password, not percent-encoded, ends the host there, and the rest of the password is
    read as the database's name, a query or a fragment. (The start-up lines print the
    database's name and repeat the driver's complaint about a query field: the password
    in the log. An `@` in a query's value, `?user=name@domain`, is one.)"""
    if "@" in parts.path or "@" in parts.fragment:
        return True
    return any("@" in field.split("=", 1)[0] for field in parts.query.split("&"))


MISSING_DATABASE_URL = (
    "DATABASE_URL is not set: export DATABASE_URL=postgresql://user:pass@host:5432/db "
    "(or run `uv run xfchat dev` for a local database)"
)


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class DatabaseSettings(BaseSettings):
    """What every command that talks to PostgreSQL needs."""

    # An empty variable is an unset one: its default (was: XFCHAT_MIGRATIONS_DIR="" read
    # the current directory, XFCHAT_PORT="" refused, each its own way).
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True, env_ignore_empty=True)

    database_url: str | None = Field(default=None, validation_alias=_env("DATABASE_URL"))
    pool_min: int = Field(default=5, ge=0, le=1000, validation_alias=_env("XFCHAT_DB_POOL_MIN"))
    pool_max: int = Field(default=25, ge=1, le=1000, validation_alias=_env("XFCHAT_DB_POOL_MAX"))
    statement_timeout_s: float = Field(  # (PostgreSQL takes whole ms; 0 would be none)
        default=30.0, ge=0.001, le=3600, validation_alias=_env("XFCHAT_DB_STATEMENT_TIMEOUT")
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
    acquire_timeout_s: float = Field(
        default=3.0, gt=0, le=120, validation_alias=_env("XFCHAT_DB_ACQUIRE_TIMEOUT")
    )
    migrations_dir: Path | None = Field(
        default=None, validation_alias=_env("XFCHAT_MIGRATIONS_DIR")
    )
    # Past one machine (docs/operations.md): a transaction pooler in DATABASE_URL, the
    # direct connection for LISTEN and migrations, a streaming standby for some reads.
    pooler: Literal["none", "transaction"] = Field(
        default="none", validation_alias=_env("XFCHAT_DB_POOLER")
    )
    listen_url: str | None = Field(
        default=None, validate_default=True, validation_alias=_env("XFCHAT_LISTEN_URL")
    )
    replica_url: str | None = Field(default=None, validation_alias=_env("XFCHAT_REPLICA_URL"))
    replica_wait_s: float = Field(
        default=0.5, ge=0, le=30, validation_alias=_env("XFCHAT_REPLICA_WAIT")
    )

    @field_validator("pool_max")
    @classmethod
    def _pool_max(cls, value: int, info: ValidationInfo) -> int:
        low = info.data.get("pool_min")
        if low is not None and value < low:  # (the pool took the smaller, saying nothing)
            raise ValueError(f"must be at least XFCHAT_DB_POOL_MIN ({low})")
        return value

    @field_validator("database_url", "listen_url", "replica_url")
    @classmethod
    def _url_scheme(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None or value == "":
            if info.field_name == "listen_url" and info.data.get("pooler") == "transaction":
                raise ValueError(
                    "is required with XFCHAT_DB_POOLER=transaction: a direct connection to "
                    "the primary (LISTEN does not work through a transaction pooler)"
                )
            return None
        if not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("must start with postgresql:// (e.g. postgresql://user:pass@host/db)")
        if "," in value.split("://", 1)[1].rsplit("@", 1)[-1].split("/")[0]:
            # (h1:5432,h2:5433: libpq's form for several hosts; the refusal below would
            # blame the password's encoding, and without ports a host "h1,h2" passed)
            raise ValueError(
                "names several hosts, which XFChat does not take: name one (a DNS"
                " name or a proxy in front of them, or the primary)"
            )
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 (reading it is the check: a port that is not a number)
        except ValueError:  # (an unclosed [IPv6] too)
            # (Not the parser's words: they quote the port, which is the start of the
            # password when that holds a `/`, `?` or `#`.)
            raise ValueError(f"cannot be read as a URL (its host or port): {URL_ESCAPES}") from None
        if _authority_cut_short(parts):
            raise ValueError(f"has an @ past its host: {URL_ESCAPES}")
        if parts.netloc.count("@") > 1:
            # (Python's parser takes the last @ as the host's start, asyncpg the first: the
            # password's rest was the host it resolved, in a DNS query, and logged)
            raise ValueError(f"has an @ in its user or password: {URL_ESCAPES}")
        return value

    @field_validator("migrations_dir", mode="before")
    @classmethod
    def _migrations_dir(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None  # (was: Path(""), the current directory)
        if value is not None and not Path(str(value)).is_dir():
            raise ValueError(f"{str(value)!r} is not a directory")
        return value

    def require_database_url(self) -> str:
        if not self.database_url:
            raise SettingsError(MISSING_DATABASE_URL)
        return self.database_url

    def direct_url(self) -> str:
        """The URL of a session of our own on the primary (LISTEN, session locks)."""
        return self.listen_url or self.require_database_url()


class Settings(DatabaseSettings):
    """Everything `xfchat serve` needs."""

    host: str = Field(default="0.0.0.0", validation_alias=_env("XFCHAT_HOST"))  # noqa: S104
    port: int = Field(
        default=3000, ge=0, le=65535, validation_alias=_env("XFCHAT_PORT", "SERVER_PORT")
    )
    secret: SecretStr = Field(validation_alias=_env("XFCHAT_SECRET"))
    # Seal two-factor secrets at rest (domain/sealed_secrets.py): the first seals, all
    # open. Empty: XFCHAT_SECRET seals them.
    totp_keys: SecretsSetting = Field(
        default_factory=list, validation_alias=_env("XFCHAT_TOTP_KEYS")
    )
    event_retention_days: float = Field(  # (an hour at least: a client away resumes)
        default=7.0, ge=0.0417, le=3650, validation_alias=_env("XFCHAT_EVENT_RETENTION_DAYS")
    )
    # A server's audit log: entries older than this are deleted (0: kept for ever).
    audit_retention_days: float = Field(
        default=0.0, ge=0, le=36500, validation_alias=_env("XFCHAT_AUDIT_RETENTION_DAYS")
    )
    cors_origins: OriginsSetting = Field(
        default_factory=list, validation_alias=_env("XFCHAT_CORS_ORIGINS")
    )
    max_body_bytes: int = Field(
        default=1_048_576, ge=1024, le=1 << 30, validation_alias=_env("XFCHAT_MAX_BODY_BYTES")
    )
    log_level: str = Field(default="info", validation_alias=_env("XFCHAT_LOG_LEVEL"))
    log_format: Literal["text", "json"] = Field(
        default="text", validation_alias=_env("XFCHAT_LOG_FORMAT")
    )
    access_log: bool = Field(default=False, validation_alias=_env("XFCHAT_ACCESS_LOG"))
    shutdown_grace_s: float = Field(
        default=5.0, ge=0, le=600, validation_alias=_env("XFCHAT_SHUTDOWN_GRACE")
    )
    # Server processes of `xfchat serve` (0: one per core); `--workers` overrides it.
    workers: int = Field(default=0, ge=0, le=64, validation_alias=_env("XFCHAT_WORKERS"))
    # Nobody's X-Forwarded-For is believed unless configured: the client IP (rate
    # limits, sessions) is the peer's address.
    trusted_proxies: ProxiesSetting = Field(
        default_factory=list, validation_alias=_env("XFCHAT_TRUSTED_PROXIES")
    )
    # /metrics is not on the public listener: on its own address, or with a bearer token.
    metrics_addr: ListenSetting = Field(default=None, validation_alias=_env("XFCHAT_METRICS_ADDR"))
    metrics_token: SecretStr | None = Field(
        default=None, validation_alias=_env("XFCHAT_METRICS_TOKEN")
    )

    # The request head (line and headers): how large, how many headers, how long it may
    # take to arrive (slow clients are cut); the largest WebSocket frame after IDENTIFY.
    max_header_bytes: int = Field(
        default=16_384, ge=1024, le=1 << 20, validation_alias=_env("XFCHAT_MAX_HEADER_BYTES")
    )
    max_headers: int = Field(
        default=100, ge=10, le=1000, validation_alias=_env("XFCHAT_MAX_HEADERS")
    )
    header_timeout_s: float = Field(
        default=10.0, ge=0.5, le=300, validation_alias=_env("XFCHAT_HEADER_TIMEOUT")
    )
    # How long a connection may wait idle between requests: longer than a reverse
    # proxy's or a load balancer's own idle timeout (nginx's upstream 60 s), so the proxy
    # closes first and never sends a request down a connection XFChat is closing (it
    # would answer 502: a POST is not retried). uvicorn's 5 s lost that race.
    keep_alive_s: float = Field(
        default=75.0, ge=1, le=3600, validation_alias=_env("XFCHAT_KEEP_ALIVE")
    )
    # The most a request body may take, however fast it comes (a send with files holds
    # its spooled files meanwhile).
    body_timeout_s: float = Field(
        default=300.0, ge=1, le=3600, validation_alias=_env("XFCHAT_BODY_TIMEOUT")
    )

    # Accounts and tokens
    access_token_ttl_s: int = Field(
        default=900, ge=60, le=3600, validation_alias=_env("XFCHAT_ACCESS_TOKEN_TTL")
    )
    refresh_token_ttl_days: float = Field(  # (an hour at least: an access token's longest)
        default=30, ge=0.0417, le=365, validation_alias=_env("XFCHAT_REFRESH_TOKEN_TTL_DAYS")
    )
    refresh_reuse_window_s: float = Field(
        default=10, ge=0, le=60, validation_alias=_env("XFCHAT_REFRESH_REUSE_WINDOW")
    )
    argon2_time_cost: int = Field(
        default=3, ge=2, le=20, validation_alias=_env("XFCHAT_ARGON2_TIME_COST")
    )
    argon2_memory_kib: int = Field(
        default=65536, ge=19456, le=4_194_304, validation_alias=_env("XFCHAT_ARGON2_MEMORY_KIB")
    )

    # Rate limits ("N/S": N requests per S seconds), shared by all processes on the database
    rate_register_ip: RateLimitSetting = Field(
        default=RateLimit(10, 3600), validation_alias=_env("XFCHAT_RATE_REGISTER_IP")
    )
    rate_login_ip: RateLimitSetting = Field(
        default=RateLimit(20, 300), validation_alias=_env("XFCHAT_RATE_LOGIN_IP")
    )
    rate_login_account_ip: RateLimitSetting = Field(
        default=RateLimit(10, 900), validation_alias=_env("XFCHAT_RATE_LOGIN_ACCOUNT_IP")
    )
    rate_login_account: RateLimitSetting = Field(
        default=RateLimit(30, 3600), validation_alias=_env("XFCHAT_RATE_LOGIN_ACCOUNT")
    )
    rate_register_taken_ip: RateLimitSetting = Field(
        default=RateLimit(3, 86_400), validation_alias=_env("XFCHAT_RATE_REGISTER_TAKEN_IP")
    )
    # Password confirmations of a signed-in user: per session (so a stolen token spends
    # its own budget, not its owner's), and per account from every session together, a
    # backstop on the argon2 work (each session is made with the password anyway).
    rate_password_user: RateLimitSetting = Field(
        default=RateLimit(5, 900), validation_alias=_env("XFCHAT_RATE_PASSWORD_USER")
    )
    rate_password_account: RateLimitSetting = Field(
        default=RateLimit(20, 900), validation_alias=_env("XFCHAT_RATE_PASSWORD_ACCOUNT")
    )
    rate_two_factor_account: RateLimitSetting = Field(
        default=RateLimit(10, 900), validation_alias=_env("XFCHAT_RATE_TWO_FACTOR_ACCOUNT")
    )
    # The codes a signed-in user tries, per account from every session together (each
    # session's own count is rate_two_factor_account's): a backstop, as for the password.
    rate_two_factor_signed_in_account: RateLimitSetting = Field(
        default=RateLimit(40, 900),
        validation_alias=_env("XFCHAT_RATE_TWO_FACTOR_SIGNED_IN_ACCOUNT"),
    )
    rate_refresh_ip: RateLimitSetting = Field(
        default=RateLimit(60, 60), validation_alias=_env("XFCHAT_RATE_REFRESH_IP")
    )
    rate_api_user: RateLimitSetting = Field(
        default=RateLimit(600, 60), validation_alias=_env("XFCHAT_RATE_API_USER")
    )
    rate_messages_user: RateLimitSetting = Field(
        default=RateLimit(10, 10), validation_alias=_env("XFCHAT_RATE_MESSAGES_USER")
    )
    # Webhook executions (README, "Webhooks"): per webhook (Discord's 30 a minute),
    # counted with the message; per client address, counted first, wrong tokens too.
    rate_webhook: RateLimitSetting = Field(
        default=RateLimit(30, 60), validation_alias=_env("XFCHAT_RATE_WEBHOOK")
    )
    rate_webhook_ip: RateLimitSetting = Field(
        default=RateLimit(60, 60), validation_alias=_env("XFCHAT_RATE_WEBHOOK_IP")
    )
    # Typing signals per user and channel: each goes to everyone who sees the channel,
    # and one lasts 10 s (the browser client sends one every 8 s at most while typing).
    rate_typing_user: RateLimitSetting = Field(
        default=RateLimit(5, 10), validation_alias=_env("XFCHAT_RATE_TYPING_USER")
    )
    rate_uploads_user: RateLimitSetting = Field(
        default=RateLimit(10, 600), validation_alias=_env("XFCHAT_RATE_UPLOADS_USER")
    )

    # Uploads (avatars): the largest image file accepted, whatever XFCHAT_MAX_BODY_BYTES says
    avatar_max_bytes: int = Field(
        default=8 << 20, ge=1 << 16, le=25 << 20, validation_alias=_env("XFCHAT_AVATAR_MAX_BYTES")
    )

    # Attachments: the largest file, and the most bytes a user's files (attachments,
    # avatars, icons) may take in all; a message carries at most 10 files.
    attachment_max_bytes: int = Field(
        default=8 << 20,
        ge=1 << 10,
        le=25 << 20,
        validation_alias=_env("XFCHAT_ATTACHMENT_MAX_BYTES"),
    )
    # Sends with files a process takes at once, everyone's together (each spools up to
    # ten files while its body arrives); one more is 503 FILES_BUSY.
    file_sends: int = Field(default=16, ge=1, le=1024, validation_alias=_env("XFCHAT_FILE_SENDS"))
    upload_quota_bytes: int = Field(
        default=1 << 30, ge=1 << 20, validation_alias=_env("XFCHAT_UPLOAD_QUOTA_BYTES")
    )
    rate_attachments_user: RateLimitSetting = Field(
        default=RateLimit(30, 60), validation_alias=_env("XFCHAT_RATE_ATTACHMENTS_USER")
    )

    # Friend requests sent per user (each one notifies its target).
    rate_friend_requests_user: RateLimitSetting = Field(
        default=RateLimit(20, 3600), validation_alias=_env("XFCHAT_RATE_FRIEND_REQUESTS_USER")
    )

    # Invites made per user: each is an entry in its server's audit log, which is kept
    # (XFCHAT_AUDIT_RETENTION_DAYS 0), and any member may make them (CREATE_INVITE).
    rate_invites_user: RateLimitSetting = Field(
        default=RateLimit(30, 600), validation_alias=_env("XFCHAT_RATE_INVITES_USER")
    )

    # Message edits per user: each one writes the whole text (up to 4,000 characters) to
    # the event log, kept XFCHAT_EVENT_RETENTION_DAYS, and to the edit history.
    rate_edits_user: RateLimitSetting = Field(
        default=RateLimit(60, 60), validation_alias=_env("XFCHAT_RATE_EDITS_USER")
    )

    # Reactions added or taken back per user: each one is an event to everyone who sees
    # the channel, and the API's own limit let a few accounts toggle reactions ten times
    # a second, every viewer's page redrawing for each.
    rate_reactions_user: RateLimitSetting = Field(
        default=RateLimit(60, 60), validation_alias=_env("XFCHAT_RATE_REACTIONS_USER")
    )

    # Pins and unpins per user: each is an event to everyone who sees the channel, a pin a
    # system message too, and in a conversation any participant may pin.
    rate_pins_user: RateLimitSetting = Field(
        default=RateLimit(60, 600), validation_alias=_env("XFCHAT_RATE_PINS_USER")
    )

    # Group changes per user (starting a group, renaming one, adding someone): each one
    # writes the group with its participants' profiles (up to 25 of about 2.4 KB) to the
    # event log, a start once for each participant, so the API's own limit let one
    # account with 24 friends write some 35 MB a minute into it.
    rate_groups_user: RateLimitSetting = Field(
        default=RateLimit(10, 600), validation_alias=_env("XFCHAT_RATE_GROUPS_USER")
    )
    # Joining a server by invite: each tells every member of it (a `member.joined` to
    # thousands, and leaving a `member.left`) and writes the server as the newcomer sees
    # it (channels, roles, overrides, read and voice states) to the event log, so the
    # API's own limit let one account join and leave a big server 300 times a minute.
    rate_joins_user: RateLimitSetting = Field(
        default=RateLimit(20, 600), validation_alias=_env("XFCHAT_RATE_JOINS_USER")
    )
    # Changing one's own nickname in a server: each tells every member of it (a
    # `member.updated` to thousands) and writes an audit entry, so it is counted.
    rate_nickname_user: RateLimitSetting = Field(
        default=RateLimit(10, 600), validation_alias=_env("XFCHAT_RATE_NICKNAME_USER")
    )

    # Profile and presence changes per user: each one writes an event to every
    # conversation and server the user is in (up to about 1,200 rows).
    rate_profile_user: RateLimitSetting = Field(
        default=RateLimit(10, 600), validation_alias=_env("XFCHAT_RATE_PROFILE_USER")
    )
    rate_presence_user: RateLimitSetting = Field(
        default=RateLimit(5, 60), validation_alias=_env("XFCHAT_RATE_PRESENCE_USER")
    )
    # GET /api/users/@me/state: the read of a connection's `ready`, everything the user
    # sees (seconds for an account in many servers of many channels).
    rate_state_user: RateLimitSetting = Field(
        default=RateLimit(30, 60), validation_alias=_env("XFCHAT_RATE_STATE_USER")
    )

    # Search: searches per user, how long one may run, and how many run at once per
    # process (the others wait, within the same time budget).
    rate_search_user: RateLimitSetting = Field(
        default=RateLimit(30, 60), validation_alias=_env("XFCHAT_RATE_SEARCH_USER")
    )
    search_budget_ms: int = Field(
        default=3000, ge=100, le=60_000, validation_alias=_env("XFCHAT_SEARCH_BUDGET_MS")
    )
    search_concurrency: int = Field(
        default=4, ge=1, le=64, validation_alias=_env("XFCHAT_SEARCH_CONCURRENCY")
    )

    # Real-time delivery
    send_queue: int = Field(
        default=10_000, ge=1, le=1_000_000, validation_alias=_env("XFCHAT_SEND_QUEUE")
    )
    send_timeout_s: float = Field(  # (1e-9 refused every send; 0.1 s is one write's time)
        default=10.0, ge=0.1, le=300, validation_alias=_env("XFCHAT_SEND_TIMEOUT")
    )
    realtime_connections_user: int = Field(
        default=20, ge=1, le=10_000, validation_alias=_env("XFCHAT_REALTIME_CONNECTIONS_USER")
    )
    # Channels and servers a user's live connections on one process follow together
    # (each holds 150-400 bytes a connection); a user's first connection is always let in.
    realtime_follows_user: int = Field(
        default=200_000,
        ge=1_000,
        le=100_000_000,
        validation_alias=_env("XFCHAT_REALTIME_FOLLOWS_USER"),
    )
    rate_realtime_user: RateLimitSetting = Field(
        default=RateLimit(60, 60), validation_alias=_env("XFCHAT_RATE_REALTIME_USER")
    )
    # Counted in each process's memory (domain/local_limits.py), not in the database.
    rate_anonymous_ip: RateLimitSetting = Field(
        default=RateLimit(1200, 60), validation_alias=_env("XFCHAT_RATE_ANONYMOUS_IP")
    )
    realtime_queue: int = Field(
        default=1000, ge=10, le=1_000_000, validation_alias=_env("XFCHAT_REALTIME_QUEUE")
    )
    sse_keepalive_s: float = Field(  # (1e-9 sent 880 KB/s to each idle stream)
        default=15.0, ge=1, le=300, validation_alias=_env("XFCHAT_SSE_KEEPALIVE")
    )
    # permessage-deflate on the gateway: off by default (as Discord's gateway), since
    # it compresses every frame once per connection (bench/README.md, "Sixth round").
    gateway_compression: bool = Field(
        default=False, validation_alias=_env("XFCHAT_GATEWAY_COMPRESSION")
    )
    gateway_heartbeat_s: float = Field(
        default=30.0, ge=1, le=300, validation_alias=_env("XFCHAT_GATEWAY_HEARTBEAT")
    )
    # Connections open at once, per client address and process (a trusted proxy's own
    # address is not limited: its connections are its clients'). Each holds a file
    # descriptor and about 12 KB, however long its client keeps it open.
    connections_ip: int = Field(
        default=1000, ge=1, le=1_000_000, validation_alias=_env("XFCHAT_CONNECTIONS_IP")
    )
    # Gateway connections not yet identified, per client address and process (each holds
    # a file descriptor until IDENTIFY or RESUME, or the head's timeout).
    gateway_unidentified_ip: int = Field(
        default=50, ge=1, le=100_000, validation_alias=_env("XFCHAT_GATEWAY_UNIDENTIFIED_IP")
    )
    # Presence: each process shows it is alive every interval; one unseen for the
    # timeout is dead and its users go offline (within timeout + interval).
    presence_interval_s: float = Field(
        default=10.0, ge=0.2, le=300, validation_alias=_env("XFCHAT_PRESENCE_INTERVAL")
    )
    presence_timeout_s: float = Field(
        default=30.0, ge=0.5, le=3600, validation_alias=_env("XFCHAT_PRESENCE_TIMEOUT")
    )
    usage_flush_interval_s: float = Field(  # (1e-9 kept a core busy on an idle server)
        default=5.0, ge=0.1, le=3600, validation_alias=_env("XFCHAT_USAGE_FLUSH_INTERVAL")
    )

    # Voice: the ICE servers WebRTC clients are given (media never passes through XFChat).
    stun_urls: StunUrlsSetting = Field(
        default_factory=list, validation_alias=_env("XFCHAT_STUN_URLS")
    )
    turn_urls: TurnUrlsSetting = Field(
        default_factory=list, validation_alias=_env("XFCHAT_TURN_URLS")
    )
    # coturn's `static-auth-secret` (its REST API scheme): needed with TURN URLs.
    turn_secret: SecretStr | None = Field(
        default=None, validate_default=True, validation_alias=_env("XFCHAT_TURN_SECRET")
    )
    turn_ttl_s: int = Field(
        default=86_400, ge=60, le=7 * 86_400, validation_alias=_env("XFCHAT_TURN_TTL")
    )
    # Clients gather only TURN-relayed candidates: peers never learn each other's IPs.
    voice_relay_only: bool = Field(
        default=False, validate_default=True, validation_alias=_env("XFCHAT_VOICE_RELAY_ONLY")
    )

    @field_validator("host", mode="before")
    @classmethod
    def _host(cls, value: object) -> object:
        # Empty is the default (was: "", which binds every interface, while `xfchat dev`
        # said 127.0.0.1); an address with spaces around it is no address.
        if isinstance(value, str) and not value.strip():
            return cls.model_fields["host"].default
        if isinstance(value, str) and value != value.strip():
            raise ValueError(f"{value!r} has spaces around it: write the address alone")
        return value

    @field_validator("secret")
    @classmethod
    def _strong_secret(cls, value: SecretStr) -> SecretStr:
        check_secret(value)
        return value

    @field_validator("metrics_token")
    @classmethod
    def _metrics_token(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        check_secret(value)
        _not_the_secret(value.get_secret_value(), info, "whatever scrapes /metrics")
        return value

    @field_validator("turn_secret")
    @classmethod
    def _turn_secret(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        raw = value.get_secret_value() if value is not None else ""
        if not raw:
            if info.data.get("turn_urls"):
                raise ValueError("is required with XFCHAT_TURN_URLS (coturn's static-auth-secret)")
            return None
        if raw != raw.strip():
            raise ValueError(WHITESPACE_PROBLEM)
        if raw.strip().lower() in KNOWN_WEAK_SECRETS or len(raw) < MIN_TURN_SECRET_LENGTH:
            raise ValueError(
                f"must be at least {MIN_TURN_SECRET_LENGTH} characters, not a well-known default"
            )
        _not_the_secret(raw, info, "the TURN server (and whoever reads its configuration)")
        return value

    @field_validator("voice_relay_only")
    @classmethod
    def _relay_only(cls, value: bool, info: ValidationInfo) -> bool:
        if value and not info.data.get("turn_urls"):
            raise ValueError("needs XFCHAT_TURN_URLS (a relay for every call)")
        return value

    # A field validator, not a model one: it is then reported along with every other
    # problem (a model validator runs only once all fields are valid).
    @field_validator("presence_timeout_s")
    @classmethod
    def _presence_timeout(cls, value: float, info: ValidationInfo) -> float:
        interval = info.data.get("presence_interval_s")
        if interval is not None and value < 2 * interval:
            raise ValueError("must be at least twice XFCHAT_PRESENCE_INTERVAL")
        return value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        value = value.lower()
        if value not in {"critical", "error", "warning", "info", "debug"}:
            raise ValueError("must be one of critical, error, warning, info, debug")
        return value


def _not_the_secret(value: str, info: ValidationInfo, holder: str) -> None:
    """A credential handed to another party must not be XFCHAT_SECRET: that party would
    then hold the key that signs every session's tokens."""
    secret = info.data.get("secret")
    if secret is not None and value == secret.get_secret_value():
        raise ValueError(
            f"must not be XFCHAT_SECRET: {holder} would hold the key that signs every"
            " session's tokens; generate another"
        )


class SettingsError(Exception):
    """Settings are missing or invalid: `problems` says which, each how to fix it (all of
    them at once, so that one failed start shows everything to mend)."""

    def __init__(self, *problems: str) -> None:
        super().__init__("; ".join(problems))
        self.problems = list(problems)


_ENV_NAMES = {
    name: (
        field.validation_alias.choices[0]
        if isinstance(field.validation_alias, AliasChoices)
        else name
    )
    for name, field in Settings.model_fields.items()
}

SECRET_HINT = "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(48))'"  # noqa: S105


# The variables read outside Settings: `xfchat dev`'s data directory, and how it finds
# and runs its PostgreSQL (xfchat/db/embedded.py).
OTHER_VARIABLES = frozenset(
    {"XFCHAT_DATA_DIR", "XFCHAT_PG_BINDIR", "XFCHAT_PG_OS_USER", "XFCHAT_PG_SOURCE"}
)
KNOWN_VARIABLES = OTHER_VARIABLES | {
    choice
    for field in Settings.model_fields.values()
    if isinstance(field.validation_alias, AliasChoices)
    for choice in field.validation_alias.choices
    if isinstance(choice, str)
}


def unknown_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """A line for each XFCHAT_ variable set that XFChat does not read, with the known
    name nearest to it: a misspelt setting is otherwise silently its default."""
    names = os.environ if environ is None else environ
    lines = []
    for name in sorted(n for n in names if n.startswith("XFCHAT_") and n not in KNOWN_VARIABLES):
        near = difflib.get_close_matches(name, KNOWN_VARIABLES, n=1, cutoff=0.8)
        lines.append(
            f"{name} is no setting of XFChat's and is ignored"
            + (f" (did you mean {near[0]}?)" if near else "")
        )
    return lines


def describe_validation_error(exc: ValidationError) -> str:
    """One line naming each environment variable and what is wrong with it."""
    return "; ".join(validation_problems(exc))


# pydantic's own wording ("Input should be a valid integer, unable to parse string as an
# integer") said in the operator's terms, with the value given (these kinds of value are
# numbers, switches and choices: never a secret). Others keep pydantic's message.
_PLAIN = {
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "bool_parsing": "must be true or false (or 1/0, yes/no, on/off)",
    "greater_than_equal": "must be at least {ge}",
    "greater_than": "must be more than {gt}",
    "less_than_equal": "must be at most {le}",
    "less_than": "must be less than {lt}",
    "literal_error": "must be {expected}",
}


def _problem(err: ErrorDetails) -> str:
    if err["type"] == "missing":
        return "is required"
    plain = _PLAIN.get(err["type"])
    if plain is None:
        return str(err["msg"]).removeprefix("Value error, ")
    given = str(err.get("input", ""))
    given = given if len(given) <= 40 else given[:40] + "..."
    # (a float bound as 0.1, not 0.1000...; a whole one as it is: 1073741824, not 1.07374e+09)
    bounds = {
        name: f"{value:g}" if isinstance(value, float) else value
        for name, value in err.get("ctx", {}).items()
    }
    return plain.format(**bounds) + f", not {given!r}"


def validation_problems(exc: ValidationError) -> list[str]:
    """Each problem: the environment variable and what is wrong with it."""
    parts = []
    for err in exc.errors():
        loc = str(err["loc"][0]) if err["loc"] else "?"
        env = _ENV_NAMES.get(loc, loc)
        hint = f" ({SECRET_HINT})" if env == "XFCHAT_SECRET" else ""
        parts.append(f"{env} {_problem(err)}{hint}")
    return parts


S = TypeVar("S", bound=DatabaseSettings)


def _load(cls: type[S], *, require_database: bool = False) -> S:
    """Settings from the environment; raises SettingsError naming every problem."""
    problems: list[str] = []
    loaded: S | None = None
    try:
        loaded = cls()
    except ValidationError as exc:
        problems = validation_problems(exc)
    except PydanticSettingsError as exc:
        problems = [str(exc)]
    named = any(p.startswith("DATABASE_URL ") for p in problems)
    if require_database and not named and not (loaded and loaded.database_url):
        if loaded is not None or not os.environ.get("DATABASE_URL"):
            problems.append(MISSING_DATABASE_URL)
    if problems:
        raise SettingsError(*problems)
    assert loaded is not None
    return loaded


def load_settings(*, require_database: bool = False) -> Settings:
    """With `require_database`, a missing DATABASE_URL is one more problem reported."""
    return _load(Settings, require_database=require_database)


def load_database_settings() -> DatabaseSettings:
    return _load(DatabaseSettings)
