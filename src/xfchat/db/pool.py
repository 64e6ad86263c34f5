"""Connecting to PostgreSQL: the pool, and the fail-fast startup checks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import orjson

from xfchat.settings import DatabaseSettings

# What a database that is down, restarting or unreachable raises.
DATABASE_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)

Log = Callable[[str], None]

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.CannotConnectNowError,  # "the database system is starting up"
    asyncpg.TooManyConnectionsError,
    asyncpg.ConnectionDoesNotExistError,
)


class DatabaseStartupError(Exception):
    """The database cannot be used; the message says what is wrong and how to fix it."""


def describe_target(url: str) -> str:
    """`user@host:port/db`, never the password."""
    parts = urlsplit(url)
    user = parts.username or "?"
    host = parts.hostname or "localhost"
    port = parts.port or 5432
    db = parts.path.lstrip("/") or user
    return f"{user}@{host}:{port}/{db}"


def _server_settings(settings: DatabaseSettings) -> dict[str, str]:
    return {
        "application_name": "xfchat",
        "statement_timeout": str(int(settings.statement_timeout_s * 1000)),
        "timezone": "UTC",
    }


async def init_connection(conn: asyncpg.Connection) -> None:
    """Every connection decodes json/jsonb with orjson."""
    for typename in ("json", "jsonb"):
        await conn.set_type_codec(
            typename,
            schema="pg_catalog",
            encoder=lambda v: orjson.dumps(v).decode(),
            decoder=orjson.loads,
            format="text",
        )


async def connect(settings: DatabaseSettings, url: str | None = None) -> asyncpg.Connection:
    conn = await asyncpg.connect(
        url or settings.require_database_url(),
        timeout=settings.connect_timeout_s,
        server_settings=_server_settings(settings),
    )
    await init_connection(conn)
    return conn


async def connect_with_retry(settings: DatabaseSettings, log: Log) -> asyncpg.Connection:
    """Connect, retrying transient failures a bounded number of times; fail at once with
    a clear message on errors that waiting cannot fix."""
    url = settings.require_database_url()
    target = describe_target(url)
    attempts = settings.connect_attempts
    last = ""
    for attempt in range(1, attempts + 1):
        try:
            return await connect(settings, url)
        except asyncpg.InvalidPasswordError:
            raise DatabaseStartupError(
                f"PostgreSQL rejected the password for {target}: check the user and password "
                "in DATABASE_URL"
            ) from None
        except asyncpg.InvalidAuthorizationSpecificationError as exc:
            raise DatabaseStartupError(
                f"PostgreSQL refused {target}: {_first_line(exc)}; check the user in "
                "DATABASE_URL and the server's pg_hba.conf"
            ) from None
        except asyncpg.InvalidCatalogNameError:
            raise DatabaseStartupError(
                f"the database in {target} does not exist: create it (createdb) or fix DATABASE_URL"
            ) from None
        except TRANSIENT_ERRORS as exc:
            last = _first_line(exc) or type(exc).__name__
            log(f"connect attempt {attempt}/{attempts} to {target} failed: {last}")
            if attempt < attempts:
                await asyncio.sleep(settings.connect_retry_delay_s * attempt)
        except (asyncpg.PostgresError, ValueError) as exc:
            raise DatabaseStartupError(f"cannot connect to {target}: {_first_line(exc)}") from None
    raise DatabaseStartupError(
        f"PostgreSQL at {target} is unreachable after {attempts} attempts ({last}): is the "
        "server running, and are host and port in DATABASE_URL right?"
    )


async def _keep_session(_conn: asyncpg.Connection) -> None:
    """The pool's reset hook. asyncpg always rolls back a transaction left open; its
    default reset also runs `UNLISTEN *; RESET ALL; ...` on every release, one more round
    trip each time. Pool connections never LISTEN (the hub has its own connection), never
    change session settings and take only transaction-scoped advisory locks, so there is
    nothing else to reset."""


async def create_pool(settings: DatabaseSettings, url: str | None = None) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        url or settings.require_database_url(),
        min_size=min(settings.pool_min, settings.pool_max),
        max_size=settings.pool_max,
        timeout=settings.connect_timeout_s,
        max_inactive_connection_lifetime=300,
        server_settings=_server_settings(settings),
        init=init_connection,
        reset=_keep_session,
    )
    assert pool is not None
    return pool


def pool_stats(pool: asyncpg.Pool) -> dict[str, Any]:
    size = pool.get_size()
    idle = pool.get_idle_size()
    return {"size": size, "idle": idle, "in_use": size - idle, "max": pool.get_max_size()}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""
