"""The command line: `xfchat serve | dev | migrate run|revert|info|add | seed | check | admin`.

Exit codes: 0 ok, 1 other failure, 2 bad settings, 3 database unusable, 4 migration
failure, 5 cannot bind the port.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import gc
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from types import FrameType
from typing import Any, NoReturn

import asyncpg

from xfchat.db.migrate import MigrationError, Migrator, add
from xfchat.db.pool import DATABASE_ERRORS, DatabaseStartupError, connect_with_retry
from xfchat.settings import (
    Settings,
    SettingsError,
    load_database_settings,
    load_settings,
    unknown_variables,
)
from xfchat.workers import Supervisor, worker_count

EXIT_OTHER, EXIT_SETTINGS, EXIT_DATABASE, EXIT_MIGRATION, EXIT_BIND = 1, 2, 3, 4, 5
GC_YOUNG = 10_000  # (the collector's threshold for its youngest generation; see _tune_collector)


_PREFIX = {"info": "", "warning": "WARNING: ", "critical": "FATAL: "}


def _line(tag: str, line: str, level: str = "info") -> None:
    """`[<tag>] <line>` on stderr, or under XFCHAT_LOG_FORMAT=json (read as it is: this
    says why the settings are refused too) a JSON line as the log's, of the logger
    `xfchat.<tag>`, level info, warning or critical."""
    if os.environ.get("XFCHAT_LOG_FORMAT", "").strip() == "json":
        from xfchat.log_format import json_line, redact

        text = json_line(level, f"xfchat.{tag.lower()}", redact(line))
    else:
        text = f"[{tag}] {_PREFIX[level]}{line}"
    print(text, file=sys.stderr, flush=True)


def say(line: str, tag: str = "STARTUP") -> None:
    _line(tag, line)


def warn(line: str, tag: str = "STARTUP") -> None:
    _line(tag, line, "warning")


def fatal(line: str, code: int, *more: str, tag: str = "STARTUP") -> NoReturn:
    """One `[<tag>] FATAL:` line each (the tag names the command's work: STARTUP for
    serve, dev, seed and check; MIGRATE for `xfchat migrate`), then exit with `code`."""
    for each in (line, *more):
        _line(tag, each, "critical")
    raise SystemExit(code)


def refuse_settings(exc: SettingsError, tag: str = "STARTUP") -> NoReturn:
    """One FATAL line per problem: a failed start shows everything to mend at once."""
    first, *rest = exc.problems or [str(exc)]
    fatal(first, EXIT_SETTINGS, *rest, tag=tag)


def run_async(coro: Coroutine[Any, Any, int]) -> int:
    """Run on uvloop when it is installed (it is, with uvicorn[standard])."""
    try:
        import uvloop

        factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:  # pragma: no cover
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro)


def guarded(main: Callable[[], Awaitable[int]], tag: str = "STARTUP") -> int:
    """Turn the known startup failures into one clear line and an exit code."""

    async def wrapper() -> int:
        try:
            return await main()
        except SettingsError as exc:
            refuse_settings(exc, tag)
        except DatabaseStartupError as exc:
            fatal(str(exc), EXIT_DATABASE, tag=tag)
        except MigrationError as exc:
            fatal(str(exc), EXIT_MIGRATION, tag=tag)
        except asyncpg.PostgresError as exc:  # (a statement of the start's own work)
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            fatal(f"the database refused a statement: {first}", EXIT_DATABASE, tag=tag)

    return run_async(wrapper())


def _as_debug(record: logging.LogRecord) -> bool:
    """Make `record` a DEBUG line; kept only if its logger shows DEBUG lines."""
    record.levelno, record.levelname = logging.DEBUG, "DEBUG"
    return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


class _CutOffStreams(logging.Filter):
    """A live stream abandoned on purpose (a stalled client) makes uvicorn log an error;
    xfchat.stream already logs it as what it is."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "ASGI callable returned without completing response."


class _ClientNoise(logging.Filter):
    """What any client can make uvicorn warn about, once per request (10,480 lines in 5 s
    from one client, counted by no rate limit), is a debug line: the refusals are
    counted in xfchat_http_refused_total instead."""

    NOISE = frozenset({"Invalid HTTP request received.", "Unsupported upgrade request."})

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno <= logging.DEBUG or record.getMessage() not in self.NOISE:
            return True
        return _as_debug(record)


class _CutByTheStop(logging.Filter):
    """A request task cancelled by the server's stop (a forced one, or a grace that
    ended) is logged by uvicorn as an error with a CancelledError traceback; the stop
    says how many it cut (_cut_short, _GraceEnded). A DEBUG line each."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, asyncio.CancelledError) and record.levelno > logging.DEBUG:
            return _as_debug(record)
        return True


class _GraceEnded(logging.Filter):
    """uvicorn says ERROR when the shutdown's grace (XFCHAT_SHUTDOWN_GRACE) ends with
    tasks left: the documented end of a stop with a stalled client (and a warning of
    XFChat's own says how many streams), not an error to alert on. A WARNING."""

    MESSAGE = "Cancel %s running task(s), timeout graceful shutdown exceeded"

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == self.MESSAGE and record.levelno > logging.WARNING:
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


class _PoolFloorNoise(logging.Filter):
    """While the database is away, asyncpg's pool warns once a try that it could not
    open its minimum of connections, with a traceback of its own internals each time
    (26-34 in three minutes of a chaos run's outages): one line each, with the cause."""

    MESSAGE = "Failed to restore the pool connection floor; retrying"

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        # (the database away, only: anything else keeps its traceback)
        if isinstance(exc, DATABASE_ERRORS) and record.msg == self.MESSAGE:
            record.msg, record.args = f"{self.MESSAGE} ({type(exc).__name__}: %s)", (exc,)
            record.exc_info = record.exc_text = None
        return True


class _WebSocketAccessLines(logging.Filter):
    """uvicorn writes three lines for each WebSocket connection (its upgrade's answer,
    "connection open", "connection closed") on its error logger, not its access log:
    with XFCHAT_ACCESS_LOG off, one client reconnecting in a loop filled the log all the
    same. DEBUG lines then; with the access log on they stay what they are, its
    WebSocket lines. So is the websockets library's line for an upgrade it refused
    ("connection rejected (400 Bad Request)": a malformed handshake, sent by anyone
    without a token, thousands a second, to a route or none)."""

    MESSAGES = frozenset(
        {
            '%s - "WebSocket %s" [accepted]',
            '%s - "WebSocket %s" 403',
            '%s - "WebSocket %s" %d',
            "connection open",
            "connection closed",
            "connection rejected (%d %s)",
        }
    )

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno <= logging.DEBUG or record.msg not in self.MESSAGES:
            return True
        return _as_debug(record)


def configure_logging(level: str, fmt: str = "text", access_log: bool = True) -> None:
    from xfchat.log_format import log_handler

    logging.basicConfig(level=level.upper(), handlers=[log_handler(fmt)])  # (it redacts)
    quiet: tuple[type[logging.Filter], ...] = () if access_log else (_WebSocketAccessLines,)
    filters: dict[str, tuple[type[logging.Filter], ...]] = {
        "uvicorn.error": (_CutOffStreams, _ClientNoise, _GraceEnded, _CutByTheStop, *quiet),
        "asyncpg.pool": (_PoolFloorNoise,),
    }
    for name, kinds in filters.items():
        logger = logging.getLogger(name)
        for kind in kinds:
            if not any(isinstance(f, kind) for f in logger.filters):
                logger.addFilter(kind())


def bind_socket(host: str, port: int, setting: str = "XFCHAT_PORT") -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except (OSError, OverflowError, TypeError) as exc:  # (a port past 65535; a host IDNA refuses)
        sock.close()
        if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
            why = f"is another server using the port? (set {setting})"
        else:  # (not an address of this machine, or not an address at all)
            named = "XFCHAT_HOST and XFCHAT_PORT" if setting == "XFCHAT_PORT" else setting
            why = f"is that an address of this machine, and a port? (set {named})"
        fatal(
            f"cannot bind {host}:{port}: {getattr(exc, 'strerror', None) or exc}; {why}", EXIT_BIND
        )
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def check_bindable(host: str, setting: str) -> None:
    """`xfchat check`: whether `serve` could bind `host` (the name resolved, an address of
    this machine), tried on a free port: a server running on the configured one is no
    problem then."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            address = str(sock.getsockname()[0])
    except (OSError, TypeError) as exc:
        why = getattr(exc, "strerror", None) or str(exc)
        fatal(
            f"{setting} {host!r} cannot be bound ({why}): `xfchat serve` would exit "
            f"{EXIT_BIND}; set it to an address or a name of this machine",
            EXIT_BIND,
        )
    shown = "every interface" if address in ("0.0.0.0", "::") else address  # noqa: S104
    say(f"{setting} {host} can be bound" + ("" if shown == host else f" ({shown})"))


# SIGTERM, SIGINT and SIGHUP (the terminal closed; it killed the process outright) stop
# gracefully (a second SIGINT at once); SIGQUIT at once, as gunicorn's quick shutdown.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


def _server_class() -> type:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn re-raises SIGINT/SIGTERM after its graceful shutdown, which turns a clean
        stop into death by signal; handle them on the loop and return normally instead.

        And before uvicorn's shutdown (which closes a WebSocket with 1012 at once, and
        waits for endless responses until the grace is over, then cancels them with an
        ERROR), the live streams are told to resume (`end_streams`: SSE's `closed`
        event, the gateway's 4013), within the grace; uvicorn gets what is left of it."""

        end_streams: Callable[[float], Awaitable[object]] | None = None
        _ending: asyncio.Task[None] | None = None
        _interrupts = 0  # SIGINTs received

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            self._interrupts += sig == signal.SIGINT
            if sig == signal.SIGQUIT:  # (a worker's parent, on its second SIGINT)
                self.should_exit = self.force_exit = True
            elif self.end_streams is None:
                super().handle_exit(sig, frame)
            elif self._ending is None and not self.should_exit:
                self._ending = asyncio.get_running_loop().create_task(self._end_then_exit())
            elif self._interrupts > 1:  # a second Ctrl-C: uvicorn's stop at once
                self.should_exit = self.force_exit = True
            # (Else stopping already, gracefully. A terminal's Ctrl-C reaches each worker
            # along with the supervisor's SIGTERM, in either order: xfchat/workers.py.)

        async def _end_then_exit(self) -> None:
            assert self.end_streams is not None
            grace = self.config.timeout_graceful_shutdown or 0.0
            started = time.monotonic()
            try:
                await self.end_streams(grace)
            finally:
                left = max(0.0, grace - (time.monotonic() - started))
                self.config.timeout_graceful_shutdown = left  # type: ignore[assignment]
                self.should_exit = True

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            loop = asyncio.get_running_loop()
            for sig in STOP_SIGNALS:
                loop.add_signal_handler(sig, self.handle_exit, sig, None)
            try:
                yield
            finally:
                for sig in STOP_SIGNALS:
                    loop.remove_signal_handler(sig)

    return Server


CUT_SHORT_S = 2.0  # (what a forced stop gives the app's own shutdown)


async def _cut_short(server: Any) -> None:
    """After a forced stop (SIGQUIT, a second SIGINT), which uvicorn ends without waiting
    for the requests or running the app's shutdown: cut the requests still running, then
    run that shutdown (the hub, this process's presence, the usage counts) for at most
    CUT_SHORT_S, before the pool closes. (Left to the loop's close, the requests were
    cancelled after the pool closed, each with an ERROR traceback, and the shutdown never
    ran: presence left to expire, usage counts lost.)"""
    log = logging.getLogger("xfchat.app")
    tasks = [t for t in server.server_state.tasks if not t.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=CUT_SHORT_S)
        log.warning("forced stop: %d request(s) and stream(s) cut off", len(tasks))
    try:
        await asyncio.wait_for(server.lifespan.shutdown(), CUT_SHORT_S)
    except TimeoutError:
        log.warning("forced stop: the app's shutdown took more than %g s; left", CUT_SHORT_S)


async def _end_streams(app: Any, within_s: float) -> None:
    hub = getattr(app.state, "hub", None)  # (none before the lifespan started it)
    if hub is not None and not await hub.end_streams(within_s):
        logging.getLogger("xfchat.app").warning(
            "%d live stream(s) still open at the end of the shutdown grace", len(hub.held)
        )


def _quiet_server_class() -> type:
    """A uvicorn server that leaves the signals to the main one (which stops it)."""
    import uvicorn

    class Quiet(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    return Quiet


def _limits(settings: Settings, app: Any) -> dict[str, Any]:
    """What uvicorn is told of the request limits (api/http_limits.py, api/ws_limits.py);
    refusals are counted in `app`'s metrics."""
    from xfchat.api.http_limits import http_protocol
    from xfchat.api.ws_limits import AFTER_IDENTIFY, ws_protocol
    from xfchat.domain.local_limits import HeldPerAddress
    from xfchat.domain.rate_limits import proxy_test

    return {
        "http": http_protocol(
            settings.max_header_bytes,
            settings.max_headers,
            settings.header_timeout_s,
            app.state.metrics.count_refusal,
            settings.body_timeout_s,
            HeldPerAddress(settings.connections_ip),
            proxy_test(settings.trusted_proxies),
        ),
        "ws": ws_protocol(settings.header_timeout_s),
        "timeout_keep_alive": settings.keep_alive_s,
        "ws_max_size": AFTER_IDENTIFY,
        "ws_per_message_deflate": settings.gateway_compression,
    }


def serve_metrics(
    settings: Settings, app: Any, sock: socket.socket | None
) -> tuple[Any, asyncio.Task[None]] | None:
    """The listener of XFCHAT_METRICS_ADDR (bound to `sock`), if set: /metrics alone."""
    if sock is None:
        return None
    import uvicorn

    from xfchat.api.metrics import metrics_listener

    class LeavesTheLogs(uvicorn.Config):
        # (uvicorn's loggers are the process's: set by the server's own configuration,
        # the access log and the level of XFCHAT_ACCESS_LOG and XFCHAT_LOG_LEVEL; with
        # the access log on, the scrapes are in it too, as every request is)
        def configure_logging(self) -> None:
            pass

    config = LeavesTheLogs(
        metrics_listener(app.state.metrics),
        lifespan="off",
        log_config=None,
        server_header=False,
        proxy_headers=False,
        **_limits(settings, app),
    )
    server = _quiet_server_class()(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name=METRICS_TASK)
    logging.getLogger("uvicorn.error").addFilter(_not_the_metrics_listeners)
    return server, task


METRICS_TASK = "metrics listener"


def _not_the_metrics_listeners(record: logging.LogRecord) -> bool:
    """uvicorn's "Started server process" and "Finished server process" once, the main
    server's: the metrics listener's are the same lines again."""
    try:
        task = asyncio.current_task()
    except RuntimeError:  # (no loop in this thread)
        return True
    return (
        task is None or task.get_name() != METRICS_TASK or "server process" not in str(record.msg)
    )


def bind_metrics(settings: Settings, port_offset: int = 0) -> socket.socket | None:
    """The socket of XFCHAT_METRICS_ADDR, if set (worker i of several: its port + i)."""
    if settings.metrics_addr is None:
        return None
    where = settings.metrics_addr
    port = where.port + port_offset if where.port else 0
    sock = bind_socket(where.host, port, "XFCHAT_METRICS_ADDR")
    say("metrics bound to {}:{}".format(*sock.getsockname()[:2]))
    return sock


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"  # noqa: S104


def bound_address(sock: socket.socket) -> str:
    """Where `sock` listens, as the kernel says: every interface said in words."""
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return shown + (" (every interface)" if host in ("0.0.0.0", "::") else "")  # noqa: S104


def _uvicorn_config(settings: Settings, app: Any) -> Any:  # (a uvicorn.Config)
    import uvicorn

    from xfchat.domain.rate_limits import proxy_networks

    return uvicorn.Config(
        app,
        lifespan="on",
        log_config=None,
        log_level=settings.log_level,
        access_log=settings.access_log,
        # (asyncio.wait_for's timeout: a float works, 0 too; int() made 0.5 "no limit")
        timeout_graceful_shutdown=settings.shutdown_grace_s,  # type: ignore[arg-type]
        server_header=False,
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=proxy_networks(settings.trusted_proxies) or None,
        **_limits(settings, app),
    )


def _tune_collector() -> None:
    """Once serving: everything made at start-up (modules, the app, the pool) lives as
    long as the process, so it is set aside from the cyclic garbage collector, whose full
    passes would otherwise walk it all again (80-130 ms pauses on a 2-core box, the p99
    of every request kind in bench.search). And the young generation is collected every
    GC_YOUNG container allocations instead of every 700: at 700, the objects of requests
    and deliveries still in flight were collected again and again and promoted to the
    older generations, whose passes then walked them too (1.2 s of collection in two
    server-channel points of bench.load). Short-lived objects now die by reference count
    before the first pass; what is garbage in cycles is still found within that many (the
    server's RSS at that point stayed at 305 MiB, against 285-323 before)."""
    gc.freeze()
    gc.set_threshold(GC_YOUNG, 10, 10)


async def serve_http(
    settings: Settings,
    *,
    banner: Callable[[str, str], None] | None = None,
    sock: socket.socket | None = None,
    metrics_sock: socket.socket | None = None,
    ready_fd: int | None = None,
    worker: int = 0,
    settle: Callable[[Settings], Settings] | None = None,
) -> int:
    """Bind (unless given the sockets: a worker of `serve_workers`), build the app, serve
    until a signal; print `ready` (a worker: write its byte to `ready_fd`) once requests
    are served. `settle` gets the settings once the port is known (XFCHAT_PORT=0: the one
    the system chose) and returns those the app is built with."""
    from xfchat.app import create_app
    from xfchat.db.pool import create_pool

    _Server = _server_class()

    if sock is None:
        sock = bind_socket(settings.host, settings.port)
        say("bound to {}:{}".format(*sock.getsockname()[:2]))
        metrics_sock = bind_metrics(settings)
    if settings.port == 0:
        settings = settings.model_copy(update={"port": sock.getsockname()[1]})
    if settle is not None:
        settings = settle(settings)
    pool = await create_pool(settings)
    app = create_app(settings, pool=pool)
    server = _Server(_uvicorn_config(settings, app))
    server.end_streams = lambda within_s: _end_streams(app, within_s)
    metrics = serve_metrics(settings, app, metrics_sock)

    async def announce() -> None:
        while not server.started:
            if server.should_exit:
                return
            await asyncio.sleep(0.02)
        _tune_collector()
        if ready_fd is not None:
            os.write(ready_fd, bytes([worker]))
            return
        say(f"ready: {_url(sock)}")
        if banner is not None:
            banner(_url(sock), bound_address(sock))

    announcer = asyncio.create_task(announce())
    try:
        await server.serve(sockets=[sock])
    finally:
        announcer.cancel()
        if server.force_exit and server.started:
            await _cut_short(server)
        if metrics is not None:
            metrics[0].should_exit = True
            await metrics[1]
        await pool.close()
    return 0 if server.started else EXIT_OTHER


# ------------------------------------------------------------------------ commands


def name_unknown_variables() -> None:
    """A WARNING line for each XFCHAT_ variable set that is no setting (misspelt)."""
    for line in unknown_variables():
        warn(line)


def _serving_settings() -> Settings:
    """`serve`'s and `check`'s settings. Refused, the misspelt variables are named first
    all the same: a misspelt XFCHAT_SECRET is refused as missing, and the line naming
    the misspelling is the one that says why."""
    try:
        return load_settings(require_database=True)
    except SettingsError:
        name_unknown_variables()
        raise


def cmd_serve(args: argparse.Namespace) -> int:
    prepared: list[Settings] = []

    async def main() -> int:
        from xfchat.db.startup import prepare_database
        from xfchat.domain.email_keys import rekey_emails_at_start
        from xfchat.domain.sealed_secrets import seal_at_start
        from xfchat.file_limit import raise_file_limit

        settings = _serving_settings()
        configure_logging(settings.log_level, settings.log_format, settings.access_log)
        say("settings valid")
        name_unknown_variables()
        say(raise_file_limit())
        await prepare_database(settings, say)
        say(await seal_at_start(settings))
        say(await rekey_emails_at_start(settings))
        if worker_count(args.workers if args.workers is not None else settings.workers) == 1:
            return await serve_http(settings)
        prepared.append(settings)  # (the workers are forked once this loop is closed)
        return 0

    code = guarded(main)
    if not prepared:
        return code
    settings = prepared[0]
    return serve_workers(settings, worker_count(args.workers or settings.workers))


def serve_workers(settings: Settings, count: int) -> int:
    """`count` workers on one listening socket (xfchat/workers.py)."""
    sock = bind_socket(settings.host, settings.port)
    host, port = sock.getsockname()[:2]
    say(f"bound to {host}:{port}, {count} workers")
    metrics = [bind_metrics(settings, i) for i in range(count)]

    def serve(index: int, sock: socket.socket, metrics: socket.socket | None, fd: int) -> int:
        from xfchat.domain.passwords import share_cores

        share_cores(count)  # (the machine's password threads, not each worker's)
        return guarded(
            lambda: serve_http(settings, sock=sock, metrics_sock=metrics, ready_fd=fd, worker=index)
        )

    ready = f"ready: {_url(sock)} ({count} workers)"
    listeners = [m for m in metrics if m is not None] or None
    return Supervisor(count, sock, listeners, serve, say, ready).run()


def cmd_dev(_args: argparse.Namespace) -> int:
    from xfchat.dev import run_dev

    return run_dev()


def cmd_migrate(args: argparse.Namespace) -> int:
    if args.action == "add":
        try:
            settings = load_database_settings()
        except SettingsError as exc:
            refuse_settings(exc, "MIGRATE")
        if settings.migrations_dir is None:  # (was: into the installed package's own)
            fatal(
                "`xfchat migrate add` writes where XFCHAT_MIGRATIONS_DIR says: set it "
                "(in a checkout: XFCHAT_MIGRATIONS_DIR=src/xfchat/migrations)",
                EXIT_SETTINGS,
                tag="MIGRATE",
            )
        try:
            up, down = add(args.name, settings.migrations_dir)
        except MigrationError as exc:
            fatal(str(exc), EXIT_MIGRATION, tag="MIGRATE")
        print(f"created {up}\ncreated {down}")
        return 0

    async def main() -> int:
        settings = load_database_settings()
        conn = await connect_with_retry(settings, lambda line: say(line, "MIGRATE"))
        try:
            # (each line as it happens: a deploy's log is not a terminal, and a timeout
            # that kills the command would lose what was buffered)
            migrator = Migrator(conn, settings.migrations_dir, log=lambda m: print(m, flush=True))
            if args.action == "run":
                done = await migrator.run()
                print(f"{len(done)} migration(s) applied")
            elif args.action == "revert":
                done = await migrator.revert(args.count, destroy_data=args.destroy_data)
                print(f"{len(done)} migration(s) reverted")
            else:
                states = await migrator.status()
                print(f"{'version':<8} {'name':<28} {'state':<9} applied at")
                for s in states:
                    when = s.applied_at.isoformat(timespec="seconds") if s.applied_at else "-"
                    print(f"{s.version:04d}     {s.name:<28} {s.status:<9} {when}")
            return 0
        finally:
            await conn.close()

    return guarded(main, "MIGRATE")


def cmd_seed(args: argparse.Namespace) -> int:
    async def main() -> int:
        from xfchat.db.pool import describe_target
        from xfchat.db.queries import users as users_q
        from xfchat.domain.demo import AlreadySeeded, is_seeded, seed_demo

        settings = load_database_settings()
        conn = await connect_with_retry(settings, say)
        try:
            if await Migrator(conn, settings.migrations_dir).pending():
                fatal("the schema is not current: run `xfchat migrate run` first", EXIT_DATABASE)
            users = 0 if await is_seeded(conn) else await users_q.count_users(conn)
            if users and not args.with_accounts:  # (as `xfchat dev` refuses)
                fatal(
                    f"{describe_target(settings.require_database_url())} holds {users} "
                    "account(s) and no demo data: the demo accounts have a published "
                    "password; add --with-accounts to load them anyway",
                    EXIT_DATABASE,
                )
            try:
                summary = await seed_demo(conn)
            except AlreadySeeded as exc:
                fatal(f"{exc}; seeding twice is refused", EXIT_OTHER)
        finally:
            await conn.close()
        print(
            f"demo data loaded: {summary.users} users, {summary.channels} channels, "
            f"{summary.roles} roles, {summary.messages} messages"
        )
        return 0

    return guarded(main)


def cmd_check(_args: argparse.Namespace) -> int:
    async def main() -> int:
        from xfchat.db.pool import create_pool, describe_target
        from xfchat.db.queries.locks import select_one
        from xfchat.db.startup import prepare_database
        from xfchat.domain.email_keys import rekey_emails_at_start
        from xfchat.domain.sealed_secrets import seal_at_start

        settings = _serving_settings()
        say("settings valid")
        name_unknown_variables()
        check_bindable(settings.host, "XFCHAT_HOST")
        if settings.metrics_addr is not None:
            check_bindable(settings.metrics_addr.host, "XFCHAT_METRICS_ADDR")
        await prepare_database(settings, say, apply=False)
        if settings.listen_url:  # (that was the direct URL: DATABASE_URL is the pooler's)
            pool = await create_pool(settings, min_size=1)
            try:
                async with pool.acquire() as conn:
                    await select_one(conn)
            finally:
                await pool.close()
            say(f"the pool's URL answered too ({describe_target(settings.require_database_url())})")
        say(await seal_at_start(settings, write=False))
        say(await rekey_emails_at_start(settings, write=False))
        say("ok")
        return 0

    return guarded(main)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xfchat", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser(
        "serve", help="run the server (production: settings from the environment)"
    )
    serve.add_argument(
        "--workers",
        type=_workers,
        metavar="N",
        help="server processes on one port (1-64; default XFCHAT_WORKERS, else one per core)",
    )
    sub.add_parser("dev", help="run a local PostgreSQL, the demo data and the server")
    seed = sub.add_parser(
        "seed", help="load the demo data into DATABASE_URL (refuses to run twice)"
    )
    seed.add_argument(
        "--with-accounts",
        action="store_true",
        help="load it into a database that already holds accounts (refused without it:"
        " the demo accounts' password is published)",
    )
    sub.add_parser("check", help="validate settings, database and schema without serving")
    migrate = sub.add_parser("migrate", help="database migrations")
    actions = migrate.add_subparsers(dest="action", required=True)
    actions.add_parser("run", help="apply pending migrations")
    revert = actions.add_parser("revert", help="undo the last N applied migrations")
    revert.add_argument("count", nargs="?", type=_positive, default=1)
    revert.add_argument(
        "--destroy-data",
        action="store_true",
        help="revert even migrations whose .down.sql destroys data (refused without it)",
    )
    actions.add_parser("info", help="show applied and pending migrations")
    new = actions.add_parser("add", help="create an empty migration pair")
    new.add_argument("name", type=_migration_name)
    from xfchat.cli_admin import add_parser as add_admin_parser

    add_admin_parser(sub)
    return parser


def _workers(text: str) -> int:
    """1-64 (argparse's choices would list all 64 in a refusal)."""
    value = _positive(text)
    if value > 64:
        raise argparse.ArgumentTypeError(f"{text!r} is more than 64 workers")
    return value


def _migration_name(text: str) -> str:
    """A name, not a path (was: `../../../tmp/x` became 0034_tmp_x, silently)."""
    if "/" in text or "\\" in text or ".." in text:
        raise argparse.ArgumentTypeError(f"{text!r} is a path: a migration takes a name")
    return text


def _positive(text: str) -> int:
    """A count of 1 or more (a negative slice once reverted all but the first N)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a count of 1 or more")
    return value


def cmd_admin(args: argparse.Namespace) -> int:
    from xfchat.cli_admin import cmd_admin as run_admin

    return run_admin(args)


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "serve": cmd_serve,
    "dev": cmd_dev,
    "migrate": cmd_migrate,
    "seed": cmd_seed,
    "check": cmd_check,
    "admin": cmd_admin,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except SettingsError as exc:
        refuse_settings(exc)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # (`xfchat migrate info | head`: the reader had enough)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
