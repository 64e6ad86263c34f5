from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from tests.openapi_check import check_responses
from tests.support import Servers


@pytest.fixture
def server(servers: Servers) -> str:
    return servers.start()[1]


@pytest.fixture
def secret(servers: Servers) -> str:
    """The secret the test's server processes sign with (resume tokens are bound to it)."""
    return servers.secret


@pytest.fixture
async def http() -> AsyncIterator[Callable[[str], httpx.AsyncClient]]:
    clients: list[httpx.AsyncClient] = []

    def make(base: str) -> httpx.AsyncClient:
        client = check_responses(httpx.AsyncClient(base_url=base, timeout=10))
        clients.append(client)
        return client

    yield make
    for c in clients:
        await c.aclose()
