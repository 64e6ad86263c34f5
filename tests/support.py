"""Helpers for tests that start real processes (servers, the CLI) on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx

from bench.common import rows_read
from tests.zygote import Forked, fork_server
from xfchat.domain.events import EPHEMERAL_CHANNEL

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"


# Ports the tests hand out: below the kernel's ephemeral range (32768 up by default),
# which bind(0) and every outgoing connection take from, in a band of their own per
# pytest-xdist worker. A port that bind(0) gave, closed and handed to a server could be
# taken meanwhile by the other worker's server, whose /ready then answered for it.
_BAND, _BANDS = 1500, 8
_next_port = [secrets.randbelow(_BAND)]


def free_port() -> int:
    """A port free now, and one no other test process and no earlier call here hands out
    (the band's ports are taken in turn)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    low = 20_000 + (int(worker) % _BANDS if worker.isdigit() else 0) * _BAND
    for _ in range(_BAND):
        port = low + _next_port[0] % _BAND
        _next_port[0] += 1
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {low}-{low + _BAND - 1}")


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


def random_secret() -> str:
    return secrets.token_urlsafe(48)


def clean_env(**overrides: str) -> dict[str, str]:
    """The parent's environment without any XFChat or database settings, plus overrides."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("XFCHAT_", "DATABASE_URL", "TEST_DATABASE_URL", "SERVER_PORT"))
    }
    env["PYTHONUNBUFFERED"] = "1"
    env.update(overrides)
    return env


@contextlib.contextmanager
def one_at_a_time(name: str) -> Iterator[None]:
    """Held by one test process at a time (`uv run pytest` runs two, pytest-xdist's
    workers): two apt-gets would fight over dpkg's lock, two npm installs over one
    node_modules."""
    with open(Path(tempfile.gettempdir()) / f"xfchat-tests-{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def xfchat(*args: str) -> list[str]:
    return [sys.executable, "-m", "xfchat", *args]


def run_cli(
    *args: str,
    env: dict[str, str],
    timeout: float = 60,
    cwd: Path | None = None,
    input: str = "",
    cold: bool = False,
) -> subprocess.CompletedProcess[str]:
    """`python -m xfchat <args>` with `env`, run to its end: forked from the test
    zygote (tests/zygote.py, without the interpreter's start and the imports: 2.4 s of
    CPU a run on a slow day), or `cold`, exec'd as an operator's shell would."""
    if cold:
        return subprocess.run(
            xfchat(*args),
            env=env,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=cwd,
            check=False,
        )
    with tempfile.TemporaryDirectory(prefix="xfchat-cli-") as files:
        err, out, given = (Path(files) / name for name in ("stderr", "stdout", "stdin"))
        given.write_text(input)
        proc = fork_server(list(args), env, err, cwd, out=out, given=given)
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
            raise
        return subprocess.CompletedProcess(
            xfchat(*args), code, out.read_text(errors="replace"), err.read_text(errors="replace")
        )


def reading_nothing(base: str, head: bytes) -> socket.socket:
    """A client of the server at `base` that sent `head` and will read nothing: its
    receive buffer is as small as the kernel allows, so the server's fills at once."""
    host, port = base.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    sock.sendall(head)
    return sock


def fatal_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "FATAL" in line]


class ServerProcess:
    """`xfchat serve` (or `dev`) as a child process, its output in a log file."""

    def __init__(
        self,
        args: list[str],
        env: dict[str, str],
        log_path: Path,
        cwd: Path | None = None,
        user: int | None = None,
        forked: bool = False,
    ) -> None:
        """`forked`: `args` (`xfchat(...)`) forked from the test zygote (tests/zygote.py),
        without the imports' 3 s of CPU."""
        self.log_path = log_path
        self._log = open(log_path, "wb")
        if forked:
            assert args[:3] == xfchat() and user is None, args
            self.proc: subprocess.Popen[bytes] | Forked = fork_server(args[3:], env, log_path, cwd)
            return
        extra: dict[str, object] = {}
        if user is not None:
            extra = {"user": user, "group": user, "extra_groups": []}
        self.proc = subprocess.Popen(
            args,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,
            **extra,
        )  # type: ignore[call-overload]

    @property
    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_for_line(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.output)
            if match:
                return match
            if self.proc.poll() is not None:
                raise AssertionError(f"process exited ({self.proc.returncode}):\n{self.output}")
            time.sleep(0.05)
        raise AssertionError(f"no line matching {pattern!r} in {timeout} s:\n{self.output}")

    def wait_ready(self, base_url: str, timeout: float = 30) -> float:
        started = time.monotonic()
        deadline = started + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"process exited ({self.proc.returncode}):\n{self.output}")
            try:
                if httpx.get(f"{base_url}/ready", timeout=2).status_code == 200:
                    return time.monotonic() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"not ready in {timeout} s:\n{self.output}")

    def stop(self, sig: int = signal.SIGINT, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return int(self.proc.returncode)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


# The bearer token of /metrics on the test servers (XFCHAT_METRICS_TOKEN), made per run.
METRICS_TOKEN = secrets.token_urlsafe(48)
METRICS_HEADERS = {"Authorization": f"Bearer {METRICS_TOKEN}"}

# What every `Servers` process runs with: cheap argon2, limits that a burst of test
# traffic does not reach, a quick shutdown. A test's own env overrides any of them.
SERVE_ENV = {
    "XFCHAT_ARGON2_TIME_COST": "2",
    "XFCHAT_ARGON2_MEMORY_KIB": "19456",
    "XFCHAT_RATE_MESSAGES_USER": "100000/60",
    "XFCHAT_RATE_TYPING_USER": "100000/60",
    "XFCHAT_RATE_STATE_USER": "100000/60",
    "XFCHAT_RATE_EDITS_USER": "100000/60",
    "XFCHAT_RATE_REACTIONS_USER": "100000/60",
    "XFCHAT_RATE_PINS_USER": "100000/60",
    "XFCHAT_RATE_GROUPS_USER": "100000/60",
    "XFCHAT_RATE_JOINS_USER": "100000/60",
    "XFCHAT_RATE_API_USER": "100000/60",
    "XFCHAT_RATE_FRIEND_REQUESTS_USER": "100000/3600",
    "XFCHAT_DB_POOL_MIN": "1",
    "XFCHAT_DB_POOL_MAX": "10",
    "XFCHAT_SHUTDOWN_GRACE": "1",
    "XFCHAT_WORKERS": "1",  # (one process each: tests that want more ask)
    "XFCHAT_METRICS_TOKEN": METRICS_TOKEN,
}


class Servers:
    """Start `xfchat serve` processes on one database with the test's secret; stop_all()
    stops every one started, including one that never became ready."""

    def __init__(self, database_url: str, secret: str, tmp_path: Path) -> None:
        self.database_url = database_url
        self.secret = secret
        self.tmp_path = tmp_path
        self.procs: list[ServerProcess] = []
        self.bases: list[str] = []

    def start(self, port: int | None = None, **env: str) -> tuple[ServerProcess, str]:
        """Start one more process (on `port`, or a free one); wait until it is ready."""
        port = port or free_port()
        full = clean_env(
            DATABASE_URL=self.database_url,
            XFCHAT_SECRET=self.secret,
            XFCHAT_HOST="127.0.0.1",
            XFCHAT_PORT=str(port),
            **SERVE_ENV,
        )
        full.update(env)
        log = self.tmp_path / f"serve-{len(self.procs)}.log"
        proc = ServerProcess(xfchat("serve"), full, log, forked=True)
        self.procs.append(proc)  # before waiting: a process that fails to start is stopped too
        base = f"http://127.0.0.1:{port}"
        self.bases.append(base)
        proc.wait_ready(base)
        return proc, base

    def nested_acquires(self) -> dict[str, float]:
        """Per live process, how often a task asked the pool for a second connection
        while holding one (a bug whatever the test was about: it should be 0)."""
        found = {}
        for proc, base in zip(self.procs, self.bases, strict=False):
            if proc.proc.poll() is not None:
                continue
            try:
                text = httpx.get(f"{base}/metrics", headers=METRICS_HEADERS, timeout=2).text
            except httpx.HTTPError:
                continue
            for line in text.splitlines():
                if line.startswith("xfchat_db_pool_nested_total "):
                    found[base] = float(line.split()[1])
        return found

    def stop_all(self) -> None:
        nested = {base: n for base, n in self.nested_acquires().items() if n}
        errors: list[BaseException] = []
        for proc in self.procs:
            try:
                proc.stop()
            except Exception as exc:  # stop the others all the same
                errors.append(exc)
        if errors:
            raise errors[0]
        assert not nested, f"nested pool acquires in a server process: {nested}"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still "exists"; look at its state.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return False


async def until_one_waits_for_a_lock(
    conn: asyncpg.Connection, pending: asyncio.Future[Any], timeout: float = 10
) -> None:
    """Return once some session waits for a lock (the request under test has reached the
    one a test holds), or `pending` is done (it did not wait: the test says what that
    means), polling pg_locks rather than sleeping a guess."""
    deadline = time.monotonic() + timeout
    while not pending.done() and time.monotonic() < deadline:
        if await conn.fetchval("SELECT count(*) FROM pg_locks WHERE NOT granted"):
            return
        await asyncio.sleep(0.01)


class Statements:
    """Every statement sent on a pool's connections (asyncpg's query logger)."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def log(self, record: Any) -> None:
        self.sent.append(" ".join(record.query.split())[:80])

    def take(self) -> list[str]:
        sent, self.sent = self.sent, []
        return sent


@contextlib.asynccontextmanager
async def logged_pool(db_url: str, size: int = 1) -> AsyncIterator[tuple[asyncpg.Pool, Statements]]:
    """A pool of the test's database set up as the app's (no reset statement between
    uses), whose statements are recorded: put it in place of one of the app's."""
    from xfchat.db.pool import init_connection

    seen = Statements()

    async def init(conn: asyncpg.Connection) -> None:
        await init_connection(conn)
        conn.add_query_logger(seen.log)

    async def keep(conn: asyncpg.Connection) -> None:
        pass

    pool = await asyncpg.create_pool(db_url, min_size=1, max_size=size, init=init, reset=keep)
    try:
        yield pool, seen
    finally:
        await pool.close()


async def pairs_plan(
    conn: asyncpg.Connection,
    reader: Any,
    channel: Any,
    timeout: float | None = None,
    roles: tuple[Any, ...] = (),
) -> Any:
    """The plan (EXPLAIN ANALYZE, JSON) of the unread counts of one (reader, channel) pair
    (db/queries/messages.py, list_unreads_of_pairs; the reader holding `roles`, history
    readable), planned as the pool plans it: generic, once per connection."""
    from xfchat.db.queries import messages as messages_q

    await conn.execute("SET plan_cache_mode = force_generic_plan")
    await conn.execute(
        "PREPARE unreads(uuid[], uuid[], timestamptz[], int[], text[]) AS "
        + messages_q._LIST_UNREADS_OF_PAIRS
    )
    held = ",".join(str(r) for r in roles)
    return await explain_reads(
        conn,
        "EXECUTE unreads("
        f"'{{{reader}}}', '{{{channel}}}', '{{NULL}}', '{{1}}', ARRAY['{{{held}}}'])",
        timeout,
    )


async def conversations_plan(
    conn: asyncpg.Connection, reader: Any, channel: Any, timeout: float | None = None
) -> Any:
    """The plan of one conversation's row in the reader's list (its counts and last
    message: db/queries/conversations.py, _LIST_SELECT), generic as the pool plans it."""
    from xfchat.db.queries import conversations as conversations_q

    await conn.execute("SET plan_cache_mode = force_generic_plan")
    await conn.execute(
        "PREPARE convs(uuid, uuid[]) AS "
        + conversations_q._LIST_SELECT
        + " WHERE c.id = ANY($2::uuid[]) AND c.server_id IS NULL"
    )
    return await explain_reads(conn, f"EXECUTE convs('{reader}', '{{{channel}}}')", timeout)


def plan_nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
    """A plan's node (EXPLAIN, JSON) and every node under it."""
    return [node, *(n for child in node.get("Plans", []) for n in plan_nodes(child))]


async def explain_reads(conn: asyncpg.Connection, statement: str, timeout: float | None) -> Any:
    """The plan (EXPLAIN ANALYZE, JSON) of `statement`, with "Rows Read": the rows it read
    from `messages` and `message_mentions` (rows_read)."""
    raw, read = await rows_read(
        conn,
        lambda: conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {statement}", timeout=timeout),
    )
    plan = (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]
    plan["Rows Read"] = read
    return plan


async def pair_counts(conn: asyncpg.Connection, reader: Any, channel: Any) -> tuple[int, int]:
    """(unread, mention_count) of one reader in one channel, as a `ready` counts them."""
    from uuid import UUID

    from xfchat.db.queries import messages as messages_q

    (row,) = await messages_q.list_unreads_of_pairs(
        conn,
        user_ids=[reader],
        channel_ids=[UUID(str(channel))],
        since=[None],
        role_sets=[[]],
        role_set=[0],
    )
    return row.unread, row.mention_count


def rows_walked(plan: Any) -> int:
    """The rows a plan of pairs_plan or conversations_plan read from `messages` and
    `message_mentions`, those it kept and those its filters removed (explain_reads)."""
    return int(plan["Rows Read"])


class Heard(list[str]):
    """The payloads of the ephemeral notifications (typing, presence) sent meanwhile."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        super().__init__()
        self.conn = conn
        self.marks: dict[str, asyncio.Event] = {}

    async def settled(self) -> None:
        """Once every notification committed before this call has been heard: a mark
        sent now on a channel of the test's own is queued after them (PostgreSQL
        delivers a listener its channels' notifications in commit order), so they are
        in once it is (where waiting for 0.3 s without one was a guess)."""
        mark = str(uuid.uuid4())
        self.marks[mark] = asyncio.Event()
        await self.conn.execute("SELECT pg_notify($1, $2)", TEST_MARKS, mark)
        async with asyncio.timeout(30):
            await self.marks[mark].wait()


TEST_MARKS = "xfchat_test_marks"


@contextlib.asynccontextmanager
async def listening(db_url: str) -> AsyncIterator[Heard]:
    """The ephemeral notifications (typing, presence) sent while it is open."""
    conn = await asyncpg.connect(db_url)
    heard = Heard(conn)
    await conn.add_listener(EPHEMERAL_CHANNEL, lambda *args: heard.append(args[3]))
    await conn.add_listener(TEST_MARKS, lambda *args: heard.marks[args[3]].set())
    try:
        yield heard
    finally:
        await conn.close()
