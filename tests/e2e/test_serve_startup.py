"""`xfchat serve` as a real process: the startup sequence and every way it refuses."""

from __future__ import annotations

import asyncio
import contextlib
import resource
import shutil
import signal
import socket
import threading
import time
from pathlib import Path

import asyncpg
import httpx
import psutil
import pytest
import websockets

from tests.conftest import Cluster, new_database, remove_database
from tests.realtime.clients import GatewayClient, sse
from tests.support import (
    ServerProcess,
    clean_env,
    fatal_lines,
    free_port,
    random_secret,
    run_cli,
    xfchat,
)
from xfchat.db.migrate import DEFAULT_DIR
from xfchat.db.queries.admin import create_login_role
from xfchat.domain.sealed_secrets import Keyring


def serve_env(database_url: str | None, **extra: str) -> dict[str, str]:
    env = clean_env(
        XFCHAT_SECRET=random_secret(),
        XFCHAT_HOST="127.0.0.1",
        XFCHAT_PORT=str(free_port()),
        XFCHAT_DB_CONNECT_RETRY_DELAY="0.05",
    )
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    env.update(extra)
    return env


def assert_refused(result: object, code: int, *needles: str) -> str:
    rc, stderr = result.returncode, result.stderr  # type: ignore[attr-defined]
    assert rc == code, stderr
    lines = fatal_lines(stderr)
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return str(lines[0])


def test_missing_database_url_is_refused() -> None:
    result = run_cli("serve", env=serve_env(None), cold=True)  # (from an interpreter's start)
    assert_refused(result, 2, "DATABASE_URL is not set", "xfchat dev")


@pytest.mark.parametrize(
    ("secret", "why"),
    [
        (None, "XFCHAT_SECRET is required"),
        ("changeme", "well-known default"),
        ("short-but-random-1234", "at least 32 characters"),
        ("a" * 40, "too repetitive"),
    ],
)
def test_missing_or_weak_secret_is_refused(db_url: str, secret: str | None, why: str) -> None:
    env = serve_env(db_url)
    if secret is None:
        del env["XFCHAT_SECRET"]
    else:
        env["XFCHAT_SECRET"] = secret
    assert_refused(run_cli("serve", env=env), 2, why)


def test_unreachable_database_is_retried_then_refused(db_url: str) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = serve_env(f"postgresql://x:y@127.0.0.1:{port}/db", XFCHAT_DB_CONNECT_ATTEMPTS="3")
    result = run_cli("serve", env=env)
    assert_refused(result, 3, f"x@127.0.0.1:{port}/db is unreachable after 3 attempts")
    for attempt in (1, 2, 3):
        assert f"connect attempt {attempt}/3" in result.stderr
    assert "y@" not in result.stderr  # the password never shows
    assert "in DATABASE_URL right?" in result.stderr, result.stderr
    # (an operator's find: an unreachable XFCHAT_LISTEN_URL was blamed on DATABASE_URL)
    env["XFCHAT_LISTEN_URL"], env["DATABASE_URL"] = env["DATABASE_URL"], db_url
    result = run_cli("serve", env=env)
    assert_refused(result, 3, "are host and port in XFCHAT_LISTEN_URL right?")


async def test_wrong_password_is_refused_at_once(pg_cluster: Cluster, db_url: str) -> None:
    if pg_cluster.server is None:
        pytest.skip("needs the throwaway server, whose pg_hba asks roles for passwords")
    role = f"xf_{random_secret()[:8].lower().replace('-', '_')}"
    conn = await asyncpg.connect(pg_cluster.admin_url)
    try:
        await create_login_role(conn, name=role, password="right-password")
    finally:
        await conn.close()
    url = db_url.replace("postgres@", f"{role}:wrong-password@")
    result = run_cli("serve", env=serve_env(url))
    line = assert_refused(result, 3, "rejected the login", role)
    assert "connect attempt" not in result.stderr  # not retried: waiting cannot fix it
    assert "wrong-password" not in line


def test_missing_database_is_refused(db_url: str) -> None:
    url = db_url.rsplit("/", 1)[0] + "/no_such_database_here"
    assert_refused(run_cli("serve", env=serve_env(url)), 3, "does not exist")


async def test_failing_migration_is_refused_and_rolled_back(
    pg_cluster: Cluster, tmp_path: Path
) -> None:
    name = await new_database(pg_cluster, None)
    try:
        directory = tmp_path / "migrations"
        shutil.copytree(DEFAULT_DIR, directory)
        (directory / "9000_broken.up.sql").write_text(
            "CREATE TABLE half_done (id int);\nALTER TABLE users ADD COLUMN x no_such_type;\n"
        )
        (directory / "9000_broken.down.sql").write_text("DROP TABLE half_done;\n")
        env = serve_env(pg_cluster.url(name), XFCHAT_MIGRATIONS_DIR=str(directory))
        assert_refused(
            run_cli("serve", env=env), 4, "9000_broken failed and was rolled back", "no_such_type"
        )
        conn = await asyncpg.connect(pg_cluster.url(name))
        try:
            assert await conn.fetchval("SELECT to_regclass('half_done')") is None
            assert await conn.fetchval("SELECT max(version) FROM schema_migrations") < 9000
        finally:
            await conn.close()
    finally:
        await remove_database(pg_cluster, name)


async def test_schema_newer_than_the_code_is_refused(db_url: str) -> None:
    conn = await asyncpg.connect(db_url)
    await conn.execute(
        "INSERT INTO schema_migrations (version, name, checksum) VALUES (9999, 'future', 'x')"
    )
    await conn.close()
    assert_refused(
        run_cli("serve", env=serve_env(db_url)), 4, "9999_future", "schema is newer than the code"
    )


async def test_edited_applied_migration_is_refused(db_url: str) -> None:
    conn = await asyncpg.connect(db_url)
    await conn.execute("UPDATE schema_migrations SET checksum = 'edited' WHERE version = 2")
    await conn.close()
    assert_refused(
        run_cli("serve", env=serve_env(db_url)),
        4,
        "0002_servers_and_channels",
        "edited after it was applied",
    )


def test_port_in_use_is_refused(db_url: str) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        env = serve_env(db_url, XFCHAT_PORT=str(busy.getsockname()[1]))
        assert_refused(run_cli("serve", env=env), 5, "cannot bind", "another server")
    # Was: "is another server using the port?" for a host that is not this machine's,
    # and a traceback for a metrics port past 65535.
    elsewhere = serve_env(db_url, XFCHAT_HOST="192.0.2.1")
    assert_refused(run_cli("serve", env=elsewhere), 5, "an address of this machine")
    high = serve_env(db_url, XFCHAT_METRICS_ADDR="127.0.0.1:65535", XFCHAT_WORKERS="2")
    assert_refused(run_cli("serve", env=high), 5, "cannot bind", "XFCHAT_METRICS_ADDR")


async def test_a_two_factor_secret_under_a_key_not_given_is_refused(
    db_url: str, tmp_path: Path
) -> None:
    """Rather than serve and lock its user out: `check` says so too."""
    old = random_secret()
    conn = await asyncpg.connect(db_url)
    try:
        user = await conn.fetchval(
            "INSERT INTO users (username, email, email_key, password_hash)"
            " VALUES ('ann', 'a@x.org', 'a@x.org', 'h')"
            " RETURNING id"
        )
        keys = Keyring([old])
        sealed = keys.seal(user, "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")
        await conn.execute(
            "INSERT INTO user_totp (user_id, secret, confirmed_at) VALUES ($1, $2, now())",
            user,
            sealed,
        )
    finally:
        await conn.close()
    why = f"sealed under key {keys.current}, which is not configured"
    assert_refused(run_cli("serve", env=serve_env(db_url)), 2, "XFCHAT_TOTP_KEYS", why)
    assert_refused(run_cli("check", env=serve_env(db_url)), 2, why)
    # Listing the old key after a new one: checked, then sealed again at the start.
    new = random_secret()
    listed = serve_env(db_url, XFCHAT_TOTP_KEYS=f"{new},{old}")
    checked = run_cli("check", env=listed)
    assert checked.returncode == 0 and "1 to seal again" in checked.stderr, checked.stderr
    server = ServerProcess(xfchat("serve"), listed, tmp_path / "serve.log", forked=True)
    try:
        server.wait_ready(f"http://127.0.0.1:{listed['XFCHAT_PORT']}")
    finally:
        assert server.stop(signal.SIGTERM) == 0, server.output
    current = Keyring([new]).current
    assert f"two-factor secrets: 1 sealed again, under key {current}" in server.output
    conn = await asyncpg.connect(db_url)
    try:
        resealed = await conn.fetchval("SELECT secret FROM user_totp WHERE user_id = $1", user)
    finally:
        await conn.close()
    assert resealed.startswith(f"v1.{current}.")


GRACE_S = 8  # (the streams must not need it: the test fails if the stop takes half)


async def _braid_to_its_end(base: str, token: str, opened: asyncio.Event) -> int:
    """A Braid subscription to a new server's first channel, read to its end (an
    incomplete response raises); how many bytes it brought."""
    auth = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, timeout=httpx.Timeout(5, read=None)) as client:
        made = await client.post("/api/servers", json={"name": "S"}, headers=auth)
        channel = made.json()["channels"][0]["id"]
        url = f"/api/channels/{channel}/messages"
        async with client.stream("GET", url, headers={**auth, "Subscribe": "true"}) as response:
            assert response.status_code == 209
            opened.set()
            return sum([len(chunk) async for chunk in response.aiter_bytes()])


async def _stop_with_streams_open(server: ServerProcess, base: str) -> tuple[int, float]:
    """SIGTERM to `server` with an SSE stream, a gateway connection and a Braid
    subscription open: they are told to resume (SSE's `closed` event, the gateway's
    4013, the Braid response ended whole). The exit code and how long the stop took."""
    async with httpx.AsyncClient(base_url=base) as client:
        made = await client.post(
            "/api/auth/register",
            json={"username": "ann", "email": "a@x.org", "password": "a long pass phrase"},
        )
    token = made.json()["access_token"]
    stream = await sse(base, token)
    gateway = await GatewayClient.connect(base, token)
    # A gateway connection that has its HELLO and has not identified yet is told to
    # resume too (was: uvicorn's 1012, a code the README does not give).
    waiting = await websockets.connect(base.replace("http", "ws", 1) + "/api/gateway")
    assert '"op":10' in str(await waiting.recv())
    opened = asyncio.Event()
    braid = asyncio.create_task(_braid_to_its_end(base, token, opened))
    try:
        await gateway.next("ready")
        await asyncio.wait_for(opened.wait(), 10)
        started = time.monotonic()
        rc = await asyncio.to_thread(server.stop, signal.SIGTERM, GRACE_S * 2)
        took = time.monotonic() - started
        closed = await stream.next("closed", timeout=1)
        with pytest.raises(EOFError):  # (after the events of the Braid's new server)
            while True:
                await gateway.next(timeout=1)
        assert await asyncio.wait_for(braid, 1) > 0
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(waiting.recv(), 1)
    finally:
        braid.cancel()
        await stream.close()
        await gateway.ws.close()
        await waiting.close()
    assert closed.data["reason"] == "shutdown" and closed.data["resume"], closed
    assert (gateway.ws.close_code, gateway.ws.close_reason) == (
        4013,
        "server shutting down or its database unavailable: resume",
    )
    assert waiting.close_code == 4013, (waiting.close_code, waiting.close_reason)
    return rc, took


@pytest.mark.parametrize("workers", ["1", "2"])
async def test_serve_starts_in_order_serves_and_stops_on_sigterm(
    db_url: str, tmp_path: Path, workers: str
) -> None:
    """And on SIGTERM tells its live streams to resume, then stops well within the
    grace, with no error in its log (was: they were cut when the grace ended, the
    gateway with 1012, and uvicorn logged an ERROR and two tracebacks)."""
    env = serve_env(db_url, XFCHAT_WORKERS=workers, XFCHAT_SHUTDOWN_GRACE=str(GRACE_S))
    env["XFCHAT_SHUTDOWN_GRCE"] = "60"  # (misspelt: said, and ignored)
    port = env["XFCHAT_PORT"]
    server = ServerProcess(xfchat("serve"), env, tmp_path / "serve.log")
    try:
        server.wait_ready(f"http://127.0.0.1:{port}")
        server.wait_for_line(r"\[STARTUP\] ready: ")
        rc, took = await _stop_with_streams_open(server, f"http://127.0.0.1:{port}")
    finally:
        server.kill()
    assert rc == 0 and took < GRACE_S / 2, (rc, took, server.output)
    assert "Traceback" not in server.output and " ERROR " not in server.output, server.output
    steps = [
        "settings valid",
        "WARNING: XFCHAT_SHUTDOWN_GRCE is no setting of XFChat's and is ignored (did you"
        " mean XFCHAT_SHUTDOWN_GRACE?)",
        "open files: at most",
        "connecting to PostgreSQL",
        "answered SELECT 1",
        "migrations applied (0 new",
        "tables verified: 0 users",
        "two-factor secrets: 0 sealed again",
        "email keys: 0 made exact",
        f"bound to 127.0.0.1:{port}",
        f"ready: http://127.0.0.1:{port}",
    ]
    startup = [line for line in server.output.splitlines() if line.startswith("[STARTUP]")]
    positions = [next(i for i, line in enumerate(startup) if step in line) for step in steps]
    assert positions == sorted(positions), startup


def test_serve_raises_its_open_file_limit_to_the_hard_limit(db_url: str, tmp_path: Path) -> None:
    """main: a server started with the usual soft limit (1,024) ran out of file
    descriptors at about a thousand connections, however high the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = min(512, soft)
    assert low < hard, "the test needs a hard limit above 512"
    env = serve_env(db_url, XFCHAT_WORKERS="2")
    port = env["XFCHAT_PORT"]
    resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))
    try:  # (the server inherits the lower limit)
        server = ServerProcess(xfchat("serve"), env, tmp_path / "serve.log")
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    try:
        server.wait_ready(f"http://127.0.0.1:{port}")
        parent = psutil.Process(server.proc.pid)
        for proc in (parent, *parent.children()):  # the workers too
            assert proc.rlimit(psutil.RLIMIT_NOFILE) == (hard, hard), proc
    finally:
        server.stop(signal.SIGTERM)
    assert f"open files: at most {hard} (raised from {low}" in server.output, server.output


def test_every_settings_problem_is_reported_at_once() -> None:
    env = serve_env(
        None,
        XFCHAT_SECRET="changeme",
        XFCHAT_PORT="http",
        XFCHAT_PRESENCE_TIMEOUT="1",
        XFCHAT_METRICS_ADDR="everywhere",
    )
    result = run_cli("serve", env=env)
    assert result.returncode == 2, result.stderr
    lines = fatal_lines(result.stderr)
    for needle in (
        "DATABASE_URL is not set",
        "XFCHAT_SECRET is a well-known default",
        "XFCHAT_PORT",
        "XFCHAT_PRESENCE_TIMEOUT must be at least twice",
        "XFCHAT_METRICS_ADDR must look like",
    ):
        assert sum(needle in line for line in lines) == 1, (needle, lines)
    assert len(lines) == 5 and "Traceback" not in result.stderr


@pytest.mark.parametrize("grace", ["0", "0.5"])
def test_a_grace_under_a_second_still_ends_the_shutdown(
    db_url: str, tmp_path: Path, grace: str
) -> None:
    """Was: int(grace) or None made 0 and 0.5 "no limit": a stream left open held the
    shutdown for ever."""
    env = serve_env(db_url, XFCHAT_WORKERS="1", XFCHAT_SHUTDOWN_GRACE=grace)
    base = f"http://127.0.0.1:{env['XFCHAT_PORT']}"
    server = ServerProcess(xfchat("serve"), env, tmp_path / "serve.log", forked=True)
    try:
        server.wait_ready(base)
        made = httpx.post(
            f"{base}/api/auth/register",
            json={"username": "ann", "email": "a@x.org", "password": "a long pass phrase"},
        )
        token = made.json()["access_token"]
        with httpx.stream(
            "GET", f"{base}/api/events", headers={"Authorization": f"Bearer {token}"}
        ) as stream:
            assert stream.status_code == 200
            started = time.monotonic()
            rc = server.stop(signal.SIGTERM, timeout=15)
            took = time.monotonic() - started
    finally:
        server.kill()
    assert rc == 0 and took < 10, (rc, took, server.output)


def test_no_migrations_and_a_pool_too_big_are_one_line_each(
    db_url: str, empty_db_url: str, tmp_path: Path
) -> None:
    """Was: tracebacks (a missing users table after "0 new; schema at none", and
    TooManyConnectionsError from the pool)."""
    empty = tmp_path / "none"
    empty.mkdir()
    result = run_cli("serve", env=serve_env(empty_db_url, XFCHAT_MIGRATIONS_DIR=str(empty)))
    assert_refused(result, 3, "no migrations in")
    greedy = serve_env(
        db_url, XFCHAT_DB_POOL_MIN="400", XFCHAT_DB_POOL_MAX="400", XFCHAT_WORKERS="1"
    )
    assert_refused(run_cli("serve", env=greedy), 3, "cannot open the pool's 400 connection(s)")
    # With workers, the worker says why and its code is the server's.
    result = run_cli("serve", env={**greedy, "XFCHAT_WORKERS": "2"})
    assert result.returncode == 3 and "Traceback" not in result.stderr, result.stderr
    assert "cannot open the pool's 400 connection(s)" in result.stderr, result.stderr


def test_tls_asked_of_a_plain_server_or_a_missing_ca_is_said_at_once(db_url: str) -> None:
    """Was: both retried five times, then "unreachable ... is the server running"."""
    join = "&" if "?" in db_url else "?"
    for query, said in (
        ("sslmode=require", "does not speak TLS"),
        ("sslmode=verify-full&sslrootcert=/nonexistent/ca.pem", "cannot be read"),
    ):
        env = serve_env(db_url + join + query, XFCHAT_DB_CONNECT_RETRY_DELAY="2")
        result = run_cli("check", env=env)
        assert_refused(result, 3, said)
        assert "connect attempt" not in result.stderr, result.stderr


def test_a_peer_that_answers_no_postgresql_is_retried_not_blamed_on_tls() -> None:
    """Was: with no sslmode (asyncpg's default, prefer), a peer that answers the TLS
    request with anything but PostgreSQL's yes or no and closes (a proxy or middlebox
    whose PostgreSQL is not there) was refused at once as "does not speak TLS, and
    DATABASE_URL asks for it", which it does not."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        port = listener.getsockname()[1]
        stop = threading.Event()

        def close_each() -> None:
            while not stop.is_set():
                with contextlib.suppress(OSError):
                    peer, _ = listener.accept()
                    peer.recv(100)
                    peer.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
                    peer.close()

        threading.Thread(target=close_each, daemon=True).start()
        env = serve_env(f"postgresql://x@127.0.0.1:{port}/db", XFCHAT_DB_CONNECT_ATTEMPTS="2")
        result = run_cli("check", env=env)
        stop.set()
    assert_refused(result, 3, "unreachable after 2 attempts")
    assert "connect attempt 2/2" in result.stderr and "TLS" not in result.stderr, result.stderr


def test_check_tries_the_pools_url_too(db_url: str) -> None:
    """Was: with XFCHAT_LISTEN_URL (a transaction pooler in front), `xfchat check`
    connected only there and said ok, though DATABASE_URL, the pool's, did not work."""
    direct = serve_env(db_url, XFCHAT_LISTEN_URL=db_url)
    checked = run_cli("check", env=direct)
    assert checked.returncode == 0, checked.stderr
    assert "[STARTUP] XFCHAT_HOST 127.0.0.1 can be bound\n" in checked.stderr, checked.stderr
    user, rest = db_url.split("://", 1)[1].split("@", 1)
    broken = {**direct, "DATABASE_URL": f"postgresql://{user}@{rest.split('/')[0]}/nosuchdb"}
    assert_refused(run_cli("check", env=broken), 3, "cannot open the pool's")


@pytest.mark.parametrize("host", ["maybe", ":9100", "10/0"])
def test_check_refuses_a_host_serve_could_not_bind(host: str) -> None:
    """Was: `xfchat check` said ok, then `xfchat serve` exited 5, cannot bind. (Refused
    before the database is asked: none is needed here.)"""
    env = serve_env("postgresql://nobody@127.0.0.1:1/none", XFCHAT_HOST=host)
    assert_refused(run_cli("check", env=env), 5, f"XFCHAT_HOST {host!r} cannot be bound")


@pytest.mark.parametrize("command", ["serve", "check"])
def test_a_misspelt_variable_is_named_when_the_start_is_refused_too(
    db_url: str, command: str
) -> None:
    """Was: the line naming an XFCHAT_ variable that is no setting came only once the
    settings were valid, so a misspelt XFCHAT_SECRET was refused as missing without it
    (the one case where it says why); and `xfchat check`, the settings' check before a
    deploy, never said it."""
    env = serve_env(db_url, XFCHAT_SHUTDOWN_GRCE="60")
    env["XFCHAT_SECERT"] = env.pop("XFCHAT_SECRET")
    result = run_cli(command, env=env)
    assert_refused(result, 2, "XFCHAT_SECRET is required")
    assert (
        "[STARTUP] WARNING: XFCHAT_SECERT is no setting of XFChat's and is ignored"
        " (did you mean XFCHAT_SECRET?)\n"
    ) in result.stderr, result.stderr
    assert "did you mean XFCHAT_SHUTDOWN_GRACE?" in result.stderr, result.stderr
    env["XFCHAT_SECRET"] = env.pop("XFCHAT_SECERT")  # (valid settings: `check` says it too)
    if command == "check":
        checked = run_cli("check", env=env)
        assert checked.returncode == 0, checked.stderr
        assert "did you mean XFCHAT_SHUTDOWN_GRACE?" in checked.stderr, checked.stderr
