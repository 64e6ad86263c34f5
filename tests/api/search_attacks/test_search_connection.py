"""Attack 6: a search leaves its pooled connection as it found it, whether it ends well,
runs past its budget inside a read of the window (index-only settings in force), or
runs out of budget between reads: no setting, transaction or read-only mode leaks to
the next request on that connection."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx
import pytest

from tests import factories
from tests.api.search_attacks.conftest import search
from tests.conftest import make_settings
from tests.factories import MakeUser
from xfchat.domain import search as search_domain
from xfchat.settings import Settings

SHOWN = (
    "enable_indexscan",
    "enable_seqscan",
    "statement_timeout",
    "plan_cache_mode",
    "max_parallel_workers_per_gather",
    "transaction_isolation",
    "transaction_read_only",
)


@pytest.fixture
def settings(db_url: str) -> Settings:
    """One connection in the pool: every request gets the one the search used."""
    return make_settings(
        db_url,
        pool_min=1,
        pool_max=1,
        search_budget_ms=400,
        rate_messages_user="100000/60",
        rate_search_user="100000/60",
    )


async def state(pool: asyncpg.Pool) -> dict[str, Any]:
    async with pool.acquire() as conn:
        shown = {name: await conn.fetchval(f"SHOW {name}") for name in SHOWN}
        shown["in transaction"] = conn.is_in_transaction()
        return shown


async def test_a_search_leaves_its_connection_as_it_found_it(
    client: httpx.AsyncClient,
    raw: httpx.AsyncClient,
    make_user: MakeUser,
    pool: asyncpg.Pool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ann, ben, dm = await factories.pair(client, make_user)
    for i in range(30):
        await factories.say(client, ann, dm, f"kiwi {i}")
    before = await state(pool)
    seen: dict[str, Any] = {}

    ok = await search(raw, ben, q="kiwi")
    assert ok.status_code == 200
    seen["after a good search"] = await state(pool)

    # past the budget inside a read of the window (enable_indexscan off at that moment)
    window = search_domain.q.search_window

    async def slow(conn: asyncpg.Connection, **kwargs: Any) -> Any:
        await conn.execute("SELECT pg_sleep(5)")
        return await window(conn, **kwargs)

    monkeypatch.setattr(search_domain.q, "search_window", slow)
    timed_out = await search(raw, ben, q="kiwi")
    assert timed_out.status_code == 422 and timed_out.json()["code"] == "SEARCH_TIMEOUT", (
        timed_out.text
    )
    seen["after a timeout in a read"] = await state(pool)
    monkeypatch.setattr(search_domain.q, "search_window", window)

    # out of budget between reads (Python's own check, after an index-only read)
    real = search_domain.monotonic
    read = {"done": False}

    async def then_late(conn: asyncpg.Connection, **kwargs: Any) -> Any:
        got = await window(conn, **kwargs)
        read["done"] = True
        return got

    def clock() -> float:
        return real() + (10.0 if read["done"] else 0.0)

    monkeypatch.setattr(search_domain.q, "search_window", then_late)
    monkeypatch.setattr(search_domain, "monotonic", clock)
    spent = await search(raw, ben, q="kiwi")
    assert spent.status_code == 422, spent.text
    monkeypatch.setattr(search_domain, "monotonic", real)
    monkeypatch.setattr(search_domain.q, "search_window", window)
    seen["after the budget ran out between reads"] = await state(pool)

    assert {k: v for k, v in seen.items() if v != before} == {}
    # and the connection still writes and searches
    await factories.say(client, ann, dm, "kiwi after")
    assert (await search(raw, ben, q="after")).json()["total"] == 1
