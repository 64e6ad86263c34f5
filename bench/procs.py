"""`xfchat serve` processes for the benchmarks and scenarios, on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncpg
import httpx
import psutil

from xfchat.db.embedded import EmbeddedPostgres, throwaway
from xfchat.db.migrate import Migrator

START_TIMEOUT_S = 30  # for a server to answer /ready

# Registering the benchmarks' users is not what is measured: the cheapest argon2id the
# server accepts (OWASP's minimum), and limits that bench traffic does not reach.
# /metrics wants a bearer token on the public listener: one made up for each run.
METRICS_TOKEN = secrets.token_urlsafe(24)
METRICS_HEADERS = {"Authorization": f"Bearer {METRICS_TOKEN}"}

BENCH_ENV = {
    "XFCHAT_METRICS_TOKEN": METRICS_TOKEN,
    "XFCHAT_RATE_MESSAGES_USER": "1000000/60",
    "XFCHAT_RATE_API_USER": "1000000/60",
    "XFCHAT_RATE_FRIEND_REQUESTS_USER": "1000000/3600",  # (a group's owner befriends all)
    "XFCHAT_RATE_GROUPS_USER": "1000000/600",  # (and starts the groups: scenarios add and remove)
    "XFCHAT_RATE_JOINS_USER": "1000000/600",  # (chaos kicks and joins again)
    "XFCHAT_RATE_REGISTER_IP": "1000000/3600",
    # (every registration holds a place here while it is in flight: 8 are sent at once)
    "XFCHAT_RATE_REGISTER_TAKEN_IP": "1000000/86400",
    "XFCHAT_RATE_LOGIN_IP": "1000000/300",
    # (every receiver connects from 127.0.0.1, hundreds at once: all waiting to identify)
    "XFCHAT_GATEWAY_UNIDENTIFIED_IP": "100000",
    "XFCHAT_CONNECTIONS_IP": "1000000",  # (and bench.connections holds thousands)
    "XFCHAT_ARGON2_TIME_COST": "2",
    "XFCHAT_ARGON2_MEMORY_KIB": "19456",
    "XFCHAT_DB_POOL_MAX": "20",
    "XFCHAT_LOG_LEVEL": "warning",
    "XFCHAT_WORKERS": "1",  # (a point with workers says so)
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class XFChat:
    """One `xfchat serve` process; its output goes to `log`."""

    def __init__(self, env: dict[str, str], log: Path, command: list[str] | None = None) -> None:
        self.command = command or [sys.executable, "-m", "xfchat", "serve"]
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("XFCHAT_")},
            **BENCH_ENV,
            "XFCHAT_HOST": "127.0.0.1",
            "XFCHAT_PORT": str(self.port),
            **env,
        }
        self.start()

    def start(self) -> None:
        """Start the process; again once it has ended: the same port, settings and log."""
        with open(self.log, "ab") as out:
            self.proc = psutil.Popen(self.command, env=self.env, stdout=out, stderr=out)

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_bytes().decode(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:]) or "(the server's log is empty)"

    async def ready(self) -> XFChat:
        await wait_ready(self.base, self.proc, "xfchat", self.tail)
        return self

    def stop(self) -> None:
        stop_process(self.proc)


def stop_process(proc: psutil.Popen | subprocess.Popen[bytes]) -> None:
    """Terminate `proc` (one this program started), killing it after 10 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except (psutil.TimeoutExpired, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()


async def wait_ready(
    base: str, proc: psutil.Process, name: str, tail: Callable[[], str] = lambda: ""
) -> None:
    """Until `base` answers /ready with 200; exits if `proc` ends or it takes too long."""
    deadline = time.monotonic() + START_TIMEOUT_S
    async with httpx.AsyncClient(timeout=1) as client:
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"{name} exited ({proc.returncode}):\n{tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"{base}/ready")).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise SystemExit(f"{name} not ready in {START_TIMEOUT_S} s:\n{tail()}")
            await asyncio.sleep(0.1)


async def start_servers(
    count: int, env: dict[str, str], logs: Path, command: list[str] | None = None
) -> list[XFChat]:
    """`count` processes with one secret (a token from one works on all), all ready;
    `command` in place of `xfchat serve` (bench/bound.py's patched ones)."""
    env = {"XFCHAT_SECRET": secrets.token_urlsafe(48), **env}
    servers = [XFChat(env, logs / f"serve-{i}.log", command) for i in range(count)]
    try:
        await asyncio.gather(*(s.ready() for s in servers))
    except BaseException:
        for s in servers:
            s.stop()
        raise
    return servers


@contextlib.asynccontextmanager
async def local_servers(
    count: int = 1, prefix: str = "xfbench-", **env: str
) -> AsyncIterator[tuple[list[XFChat], EmbeddedPostgres]]:
    """A durable local PostgreSQL (fsync on, as in production), migrated, and `count`
    ready `xfchat serve` processes on it; all stopped and removed afterwards."""
    pg, root = throwaway(prefix=prefix, durable=True)
    servers: list[XFChat] = []
    try:
        conn = await asyncpg.connect(pg.url)
        await Migrator(conn).run()
        await conn.close()
        local = pg.socket_url_for("postgres")  # (as a server on the database's machine)
        servers = await start_servers(count, {"DATABASE_URL": local, **env}, Path(root))
        yield servers, pg
    finally:
        for server in servers:
            server.stop()
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)
