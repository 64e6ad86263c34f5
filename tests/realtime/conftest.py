from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from tests.support import ServerProcess, clean_env, free_port, xfchat
from xfchat.settings import Settings

SERVE_ENV = {
    "XFCHAT_ARGON2_TIME_COST": "2",
    "XFCHAT_ARGON2_MEMORY_KIB": "19456",
    "XFCHAT_RATE_MESSAGES_USER": "100000/60",
    "XFCHAT_RATE_API_USER": "100000/60",
    "XFCHAT_DB_POOL_MIN": "1",
    "XFCHAT_DB_POOL_MAX": "10",
    "XFCHAT_SHUTDOWN_GRACE": "1",
}


class Servers:
    """Start `xfchat serve` processes on one database with the test's secret."""

    def __init__(self, database_url: str, secret: str, tmp_path: Path) -> None:
        self.database_url = database_url
        self.secret = secret
        self.tmp_path = tmp_path
        self.procs: list[ServerProcess] = []

    def start(self, **env: str) -> tuple[ServerProcess, str]:
        port = free_port()
        full = clean_env(
            DATABASE_URL=self.database_url,
            XFCHAT_SECRET=self.secret,
            XFCHAT_HOST="127.0.0.1",
            XFCHAT_PORT=str(port),
            **SERVE_ENV,
        )
        full.update(env)
        proc = ServerProcess(xfchat("serve"), full, self.tmp_path / f"serve-{len(self.procs)}.log")
        self.procs.append(proc)
        base = f"http://127.0.0.1:{port}"
        proc.wait_ready(base)
        return proc, base

    def stop_all(self) -> None:
        for proc in self.procs:
            proc.stop()


@pytest.fixture
def servers(db_url: str, settings: Settings, tmp_path: Path) -> Iterator[Servers]:
    s = Servers(db_url, settings.secret.get_secret_value(), tmp_path)
    yield s
    s.stop_all()


@pytest.fixture
def server(servers: Servers) -> str:
    return servers.start()[1]


@pytest.fixture
async def http() -> AsyncIterator[Callable[[str], object]]:
    import httpx

    clients: list[httpx.AsyncClient] = []

    def make(base: str) -> httpx.AsyncClient:
        client = httpx.AsyncClient(base_url=base, timeout=10)
        clients.append(client)
        return client

    yield make
    for c in clients:
        await c.aclose()
