"""Attack 12: one account cannot take every search slot of a process. A user's searches
run one at a time (the next waits for their turn, within the budget, then 429
SEARCH_BUSY), so everyone else's run beside them."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import pytest

from tests import factories
from tests.api.search_attacks.conftest import search
from tests.conftest import make_settings
from tests.factories import MakeUser
from xfchat.domain import search as search_domain
from xfchat.domain.accounts import Actor
from xfchat.settings import Settings


@pytest.fixture
def settings(db_url: str) -> Settings:
    return make_settings(
        db_url, search_concurrency=2, search_budget_ms=300, rate_search_user="100000/60"
    )


async def test_a_user_runs_one_search_at_a_time_and_others_run_beside_it(
    client: httpx.AsyncClient,
    raw: httpx.AsyncClient,
    make_user: MakeUser,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ann, ben, dm = await factories.pair(client, make_user)
    await factories.say(client, ann, dm, "kiwi")
    real = search_domain.search_messages
    inside: list[UUID] = []
    entered, gate = asyncio.Event(), asyncio.Event()

    async def held(conn: asyncpg.Connection, actor: Actor, **kwargs: Any) -> Any:
        inside.append(actor.user_id)
        entered.set()
        if actor.user_id == ann.id:  # (a slow search of hers)
            await gate.wait()
        return await real(conn, actor, **kwargs)

    monkeypatch.setattr(search_domain, "search_messages", held)
    first = asyncio.create_task(search(raw, ann, q="kiwi"))
    try:
        await asyncio.wait_for(entered.wait(), 10)
        second = asyncio.create_task(search(raw, ann, q="kiwi"))
        # Was: her second took the other slot, and Ben waited out the budget (429).
        bens = await search(raw, ben, q="kiwi")
        assert bens.status_code == 200, bens.text
        done, _ = await asyncio.wait({second}, timeout=10)
        assert inside.count(ann.id) == 1  # her second never ran beside her first
        assert second in done
        busy = second.result()
        assert busy.status_code == 429 and busy.json()["code"] == "SEARCH_BUSY", busy.text
    finally:
        gate.set()
    assert (await first).status_code == 200
    # and her turn is free again
    assert (await search(raw, ann, q="kiwi")).json()["total"] == 1
