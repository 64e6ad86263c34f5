"""Connecting to PostgreSQL: the pool, and the fail-fast startup checks."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import re
import ssl
import types
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import asyncpg.pool
import orjson

from xfchat.errors import ServiceUnavailable
from xfchat.settings import DatabaseSettings

log = logging.getLogger("xfchat.db")


class PoolExhausted(ServiceUnavailable):
    """Every connection stayed busy for the whole acquire timeout."""


# What a database that is down, restarting, unreachable or too busy raises.
DATABASE_ERRORS = (
    OSError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    # The protocol lost its footing: PgBouncer passes on a server's FATAL during a
    # shutdown in the middle of an exchange ("cannot switch to state ...").
    asyncpg.InternalClientError,
    TimeoutError,
    PoolExhausted,
)

Log = Callable[[str], None]

# How much longer than the statement timeout the pool waits for any answer (a COMMIT
# included) before it cancels: the server's own timeouts, with their clearer errors,
# come first.
ANSWER_MARGIN_S = 2.0

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.CannotConnectNowError,  # "the database system is starting up"
    asyncpg.TooManyConnectionsError,
    asyncpg.ConnectionDoesNotExistError,
)


class DatabaseStartupError(Exception):
    """The database cannot be used; the message says what is wrong and how to fix it."""


# Query fields of a URL that are passwords (the driver reads `?password=` as the one in
# the user part, and `sslpassword=` opens the client's key).
_PASSWORD_FIELDS = re.compile(r"(?i)((?:^|&)(?:ssl)?password=)[^&]*")


def without_password(url: str) -> str:
    """The URL with its password, if it has one, written as `***`, in the user part or
    in the query (what a banner may print: a local cluster's socket URL has none, and
    stays usable as it is)."""
    parts = urlsplit(url)
    if parts.query:
        parts = parts._replace(query=_PASSWORD_FIELDS.sub(r"\1***", parts.query))
    if parts.password is not None:
        user, host = parts.netloc.rsplit("@", 1)
        parts = parts._replace(netloc=f"{user.split(':', 1)[0]}:***@{host}")
    return parts.geturl()


def describe_target(url: str) -> str:
    """`user@host:port/db`, never the password."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)  # (a Unix socket's directory and port: ?host=&port=)
    user = parts.username or "?"
    host = parts.hostname or query.get("host", ["localhost"])[0]
    port = parts.port or query.get("port", ["5432"])[0]
    db = parts.path.lstrip("/") or user
    return f"{user}@{host}:{port}/{db}"


def _server_settings(
    settings: DatabaseSettings, *, pooled: bool = False, requests: bool = True
) -> dict[str, str]:
    if pooled and settings.pooler == "transaction":
        # A transaction pooler (PgBouncer) refuses startup parameters it does not track,
        # and a session setting would not follow our transactions from one server
        # connection to the next: statement_timeout and plan_cache_mode are set on the
        # server side instead (docs/operations.md, "PgBouncer").
        return {"application_name": "xfchat", "timezone": "UTC"}
    # (the request bound; 0, none, for start-up and command-line work: a migration or
    # the start's sealing of secrets is no request, and on a large database takes longer
    # than any request may)
    bound = str(int(settings.statement_timeout_s * 1000) if requests else 0)
    return {
        "application_name": "xfchat",
        "statement_timeout": bound,
        # PostgreSQL turns statement_timeout off before COMMIT runs the deferred triggers,
        # and the event log's takes the event_clock row lock there (migration 0008): a
        # commit queued behind a lock held elsewhere waited as long as that lock was held.
        # lock_timeout still applies in COMMIT. A statement's own lock waits end at the
        # statement timeout already, so the same value changes nothing for them.
        "lock_timeout": bound,
        "timezone": "UTC",
        # Every statement is prepared once per connection and planned once: PostgreSQL's
        # default re-plans a statement for each execution while it guesses a custom
        # plan is cheaper, and the access seam's (db/queries/access.py) take 1.5-3 ms to
        # plan against well under 1 ms to run. Measured by bench.load: 10 x 100 went
        # from 420-470 to 700-800 msgs/s. Every statement here looks rows up by key, so
        # the generic plan is the plan a custom one would be.
        "plan_cache_mode": "force_generic_plan",
        # No JIT: PostgreSQL compiles a statement whose estimated cost passes
        # jit_above_cost at every execution, and a generic plan's estimate grows with the
        # tables, not with what it reads: the unread counts of a server's channels (a
        # `GET /api/servers/{id}`, a `ready`) ran 10-20 ms and compiled 300 ms more each
        # time, at 300,000 messages.
        "jit": "off",
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


async def connect(
    settings: DatabaseSettings, url: str | None = None, *, requests: bool = True
) -> asyncpg.Connection:
    """A connection of its own to `url`, by default the direct one to the primary
    (XFCHAT_LISTEN_URL, else DATABASE_URL): a session that LISTENs or takes session
    locks must not go through a transaction pooler. With `requests` False it has no
    statement timeout (XFCHAT_DB_STATEMENT_TIMEOUT bounds requests, not start-up work)."""
    conn = await asyncpg.connect(
        url or settings.direct_url(),
        timeout=settings.connect_timeout_s,
        server_settings=_server_settings(settings, requests=requests),
    )
    await init_connection(conn)
    return conn


def _tls_required(url: str) -> bool:
    """Whether the URL (or PGSSLMODE) asks for TLS and nothing less. asyncpg's default,
    `prefer`, also says "rejected SSL upgrade" when the peer answers the TLS request with
    anything but PostgreSQL's yes or no (a proxy or middlebox with no PostgreSQL behind
    it, another service on the port): the database is not there, which is no TLS
    setting's fault and may mend by itself."""
    query = parse_qs(urlsplit(url).query)
    mode = (query.get("sslmode") or [os.environ.get("PGSSLMODE", "")])[0]
    return mode.lower() in ("require", "verify-ca", "verify-full")


def _refuse_at_once(exc: BaseException, url: str, target: str, name: str) -> None:
    if isinstance(exc, FileNotFoundError):
        raise DatabaseStartupError(
            f"a file {name} names for {target} cannot be read ({exc.strerror}): "
            "check sslrootcert=, sslcert= and sslkey="
        ) from None
    if (
        isinstance(exc, ConnectionError)
        and "rejected SSL upgrade" in str(exc)
        and _tls_required(url)
    ):
        raise DatabaseStartupError(
            f"PostgreSQL at {target} does not speak TLS, and {name} asks for it "
            "(sslmode=): turn ssl on in the server, or change sslmode"
        ) from None


async def connect_with_retry(settings: DatabaseSettings, log: Log) -> asyncpg.Connection:
    """Connect for start-up or command-line work (migrations: no statement timeout),
    retrying transient failures a bounded number of times; fail at once with a clear
    message on errors that waiting cannot fix."""
    url = settings.direct_url()
    target = describe_target(url)
    name = "XFCHAT_LISTEN_URL" if settings.listen_url else "DATABASE_URL"  # (the URL's)
    attempts = settings.connect_attempts
    last = ""
    for attempt in range(1, attempts + 1):
        try:
            return await connect(settings, url, requests=False)
        except asyncpg.InvalidPasswordError:
            raise DatabaseStartupError(
                f"PostgreSQL rejected the login of {target} (a wrong password, or no such "
                f"user: it does not say which): check the user and password in {name}"
            ) from None
        except asyncpg.InvalidAuthorizationSpecificationError as exc:
            raise DatabaseStartupError(
                f"PostgreSQL refused {target}: {_first_line(exc)}; check the user in "
                f"{name} and the server's pg_hba.conf"
            ) from None
        except asyncpg.InvalidCatalogNameError:
            raise DatabaseStartupError(
                f"the database in {target} does not exist: create it (createdb) or fix {name}"
            ) from None
        except ssl.SSLCertVerificationError as exc:
            raise DatabaseStartupError(
                f"the TLS certificate of {target} is not trusted ({exc.verify_message}): "
                "check sslrootcert= and the host name in the URL (sslmode=verify-full)"
            ) from None
        except TRANSIENT_ERRORS as exc:
            _refuse_at_once(exc, url, target, name)  # (OSErrors that waiting would not mend)
            last = _first_line(exc) or type(exc).__name__
            log(f"connect attempt {attempt}/{attempts} to {target} failed: {last}")
            if attempt < attempts:
                await asyncio.sleep(settings.connect_retry_delay_s * attempt)
        except (asyncpg.PostgresError, ValueError) as exc:
            raise DatabaseStartupError(f"cannot connect to {target}: {_first_line(exc)}") from None
    raise unreachable(target, name, f"after {attempts} attempts ({last})")


def _no_answer(exc: BaseException) -> bool:
    """Whether a connection failed for want of a database that answers (refused, reset,
    timed out, a name not resolved), rather than one that answered and refused, a
    certificate refused, or this process out of files."""
    if not isinstance(exc, OSError) or isinstance(exc, ssl.SSLError):
        return False
    return exc.errno not in (errno.EMFILE, errno.ENFILE, errno.ENOMEM)


def unreachable(target: str, name: str, detail: str) -> DatabaseStartupError:
    """What `xfchat serve` and every command say of a database that does not answer
    (`name`: the variable holding its URL)."""
    return DatabaseStartupError(
        f"PostgreSQL at {target} is unreachable {detail}: is the server running, and are "
        f"host and port in {name} right?"
    )


async def _keep_session(_conn: asyncpg.Connection) -> None:
    """The pool's reset hook. asyncpg always rolls back a transaction left open; its
    default reset also runs `UNLISTEN *; RESET ALL; ...` on every release, one more round
    trip each time. Pool connections never LISTEN (the hub has its own connection), never
    change session settings and take only transaction-scoped advisory locks, so there is
    nothing else to reset."""


class NestedAcquire(RuntimeError):
    """A task asked for a second connection while holding one: under load every such
    task can end up waiting for the others (a deadlock the timeout would only break)."""


class _Acquire:
    def __init__(self, pool: BoundedPool, timeout: float) -> None:
        self.pool = pool
        self.timeout = timeout
        self.conn: asyncpg.Connection | None = None
        self.task: asyncio.Task[Any] | None = None

    async def __aenter__(self) -> asyncpg.Connection:
        self.task = asyncio.current_task()
        holders = self.pool.holders
        if self.task in holders:
            self.pool.nested += 1
            if self.pool.strict:
                raise NestedAcquire(f"{self.task!r} already holds a connection")
            log.error("a task asked for a second connection while holding one")
        try:
            conn = await asyncpg.pool.Pool.acquire(self.pool, timeout=self.timeout)
        except TimeoutError:
            self.pool.exhausted += 1
            raise PoolExhausted(
                "the database is busy: no connection came free in time; retry",
                code="DATABASE_BUSY",
                retry_after=1,
            ) from None
        holders[self.task] = holders.get(self.task, 0) + 1
        self.conn = conn
        return conn

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        holders = self.pool.holders
        left = holders.get(self.task, 1) - 1
        if left:
            holders[self.task] = left
        else:
            holders.pop(self.task, None)
        assert self.conn is not None
        await asyncpg.pool.Pool.release(self.pool, self.conn)


class BoundedPool(asyncpg.pool.Pool):  # type: ignore[misc]
    """asyncpg's pool, where every acquire has a timeout (exhaustion is a 503
    DATABASE_BUSY with Retry-After, never a hang) and a task that already holds a
    connection may not wait for a second (`strict`: refused; otherwise logged)."""

    def __init__(self, *args: Any, acquire_timeout: float, strict: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.acquire_timeout = acquire_timeout
        self.strict = strict
        self.holders: dict[asyncio.Task[Any] | None, int] = {}
        self.exhausted = 0  # acquires that timed out (for /metrics)
        self.nested = 0  # acquires by a task that held a connection already

    def acquire(self, *, timeout: float | None = None) -> _Acquire:
        return _Acquire(self, self.acquire_timeout if timeout is None else timeout)


async def create_pool(
    settings: DatabaseSettings,
    url: str | None = None,
    *,
    strict: bool = False,
    min_size: int | None = None,
) -> asyncpg.Pool:
    """The pool of DATABASE_URL (or of `url`, the replica's). Through a transaction
    pooler (XFCHAT_DB_POOLER=transaction) no statement is prepared under a name: the
    next transaction may run on another server connection (PgBouncer 1.21+ can track
    named ones with max_prepared_statements; Debian 12 ships 1.18)."""
    pooled = settings.pooler == "transaction"
    lowest = min(settings.pool_min if min_size is None else min_size, settings.pool_max)
    pool = BoundedPool(
        url or settings.require_database_url(),
        min_size=lowest,
        max_size=settings.pool_max,
        max_queries=50_000,
        max_inactive_connection_lifetime=300,
        connect=None,
        setup=None,
        init=init_connection,
        reset=_keep_session,
        loop=None,
        connection_class=asyncpg.Connection,
        record_class=asyncpg.Record,
        timeout=settings.connect_timeout_s,
        # The client's own bound on every statement, COMMIT included: what the server's
        # timeouts do not end (a COMMIT waiting for a synchronous standby, a network that
        # went silent) is cancelled a little after the statement timeout, and the request
        # gets a 503, never a success whose commit is unknown.
        command_timeout=settings.statement_timeout_s + ANSWER_MARGIN_S,
        server_settings=_server_settings(settings, pooled=True),
        statement_cache_size=0 if pooled else 100,
        acquire_timeout=settings.acquire_timeout_s,
        strict=strict,
    )
    target = describe_target(url or settings.require_database_url())
    try:
        await pool
    except (asyncpg.PostgresError, OSError) as exc:
        await pool.close()
        if _no_answer(exc):  # (the pool's settings are not to blame)
            name = "XFCHAT_REPLICA_URL" if url else "DATABASE_URL"
            raise unreachable(target, name, f"({_first_line(exc) or type(exc).__name__})") from None
        # (it answered and refused, too many connections say; or this process could open
        # no more files, or a certificate was refused: said as it is)
        raise DatabaseStartupError(
            f"cannot open the pool's {lowest} connection(s) to {target}:"
            f" {_first_line(exc) or type(exc).__name__}"
            " (XFCHAT_DB_POOL_MIN, the server's max_connections, the pooler's settings)"
        ) from None
    return pool


def pool_stats(pool: asyncpg.Pool) -> dict[str, Any]:
    size = pool.get_size()
    idle = pool.get_idle_size()
    return {
        "size": size,
        "idle": idle,
        "in_use": size - idle,
        "max": pool.get_max_size(),
        "exhausted": getattr(pool, "exhausted", 0),
        "nested": getattr(pool, "nested", 0),
    }


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""
