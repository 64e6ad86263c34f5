"""GET /api/users/@me/state stays bounded whatever others do to grow it."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx
import pytest

from tests import factories
from tests.factories import AppWith, MakeUser, TestUser, community, role
from xfchat.app import create_app
from xfchat.db import pool as pool_module
from xfchat.db.pool import create_pool
from xfchat.db.queries import conversations as conversations_q
from xfchat.db.queries import friends as friends_q
from xfchat.domain import conversations, state
from xfchat.domain.permissions import Permission as P
from xfchat.settings import Settings


async def test_a_state_others_grow_is_cut_short_and_says_so(
    client: httpx.AsyncClient, make_user: MakeUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    ann = await make_user("ann")
    others = [await make_user(f"u{i}") for i in range(5)]
    for other in others[:3]:
        await factories.group(client, other, ann)  # (friends now: a group takes only those)
    for other in others[3:]:
        sent = await client.post(
            "/api/users/@me/friend-requests", headers=other.headers, json={"username": "ann"}
        )
        assert sent.status_code == 201
    for other in others[:2]:
        await community(client, other, ann, name=f"of {other.username}")
    whole = (await client.get("/api/users/@me/state", headers=ann.headers)).json()
    assert len(whole["conversations"]) == 3 and whole["truncated"] == []
    one_conversation = len(httpx.Response(200, json=whole["conversations"][0]).content)
    one_server = len(httpx.Response(200, json=whole["servers"][0]).content)
    monkeypatch.setattr(state, "STATE_CONVERSATION_BYTES", 2 * one_conversation + 10)
    monkeypatch.setattr(state, "STATE_REQUESTS", 1)
    monkeypatch.setattr(state, "STATE_SERVER_BYTES", one_server + 10)
    cut = (await client.get("/api/users/@me/state", headers=ann.headers)).json()
    assert cut["truncated"] == ["conversations", "friend_requests", "servers"]
    assert [s["name"] for s in cut["servers"]] == ["of u0"]  # the first joined
    # The most recently active first, the newest request.
    assert [c["id"] for c in cut["conversations"]] == [c["id"] for c in whole["conversations"][:2]]
    assert [r["user"]["username"] for r in cut["friend_requests"]["incoming"]] == ["u4"]


async def test_a_server_too_big_for_the_budget_is_skipped_and_later_ones_still_come(
    client: httpx.AsyncClient, make_user: MakeUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One server that cannot fit is left out (and `truncated` says so); the servers
    joined after it are not dropped with it."""
    ann, owner = await make_user("ann"), await make_user("owner")
    made = [await community(client, owner, ann, name=f"s{i}") for i in range(3)]
    grown = await client.patch(
        f"/api/servers/{made[1].id}", headers=owner.headers, json={"description": "€" * 1024}
    )
    assert grown.status_code == 200, grown.text
    whole = (await client.get("/api/users/@me/state", headers=ann.headers)).json()
    size = {s["name"]: len(httpx.Response(200, json=s).content) for s in whole["servers"]}
    budget = size["s0"] + size["s2"] + 10
    assert size["s1"] > budget  # it alone cannot fit
    monkeypatch.setattr(state, "STATE_SERVER_BYTES", budget)
    cut = (await client.get("/api/users/@me/state", headers=ann.headers)).json()
    assert [s["name"] for s in cut["servers"]] == ["s0", "s2"]
    assert cut["truncated"] == ["servers"]


async def test_the_state_fetches_no_more_requests_than_it_shows(
    client: httpx.AsyncClient, make_user: MakeUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Was: every pending request was read (50,000: 618 MiB at the peak), then all but
    100 of each way dropped. Now each way is read with a LIMIT of one more than shown."""
    fetched: list[int] = []
    original = friends_q.list_pending_requests

    async def counted(*args: Any, **kwargs: Any) -> Any:
        rows = await original(*args, **kwargs)
        fetched.append(len(rows))
        return rows

    monkeypatch.setattr(friends_q, "list_pending_requests", counted)
    monkeypatch.setattr(state, "STATE_REQUESTS", 2)
    ann = await make_user("ann")
    for i in range(6):
        await make_user(f"u{i}")
        sent = await client.post(
            "/api/users/@me/friend-requests",
            headers=(await make_user(f"s{i}")).headers,
            json={"username": "ann"},
        )
        assert sent.status_code == 201
    got = (await client.get("/api/users/@me/state", headers=ann.headers)).json()
    assert [r["user"]["username"] for r in got["friend_requests"]["incoming"]] == ["s5", "s4"]
    assert got["truncated"] == ["friend_requests"]
    assert fetched and max(fetched) <= 3


async def test_the_state_reads_conversations_only_as_far_as_its_budget(
    client: httpx.AsyncClient, make_user: MakeUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Was: every conversation was read and built (1,000 large groups: ~100 MiB a
    request), then cut to 1 MiB. Now they are read a chunk at a time, most recently
    active first, and the reading stops where the budget does."""
    ann, ben = await make_user("ann"), await make_user("ben")
    made = [(await factories.group(client, ben, ann, name=f"g{i}"))["id"] for i in range(6)]
    for conversation in made:  # g5 the most recently active
        await factories.say(client, ben, conversation, "hi")
    whole = (await client.get("/api/users/@me/state", headers=ann.headers)).json()
    assert [c["id"] for c in whole["conversations"]] == made[::-1]
    one = max(len(httpx.Response(200, json=c).content) for c in whole["conversations"])
    read: list[int] = []
    original = conversations_q.list_conversations

    async def counted(*args: Any, **kwargs: Any) -> Any:
        rows = await original(*args, **kwargs)
        read.append(len(rows))
        return rows

    monkeypatch.setattr(conversations_q, "list_conversations", counted)
    monkeypatch.setattr(conversations, "STATE_CHUNK", 2, raising=False)
    monkeypatch.setattr(conversations, "STATE_CHUNK_MAX", 2, raising=False)
    monkeypatch.setattr(state, "STATE_CONVERSATION_BYTES", 2 * one + 10)
    cut = (await client.get("/api/users/@me/state", headers=ann.headers)).json()
    assert [c["id"] for c in cut["conversations"]] == made[::-1][:2]
    assert cut["truncated"] == ["conversations"]
    assert sum(read) <= 4  # two chunks of two, not all six


async def test_mention_count_is_capped_like_unread(app_with: AppWith, make_user: MakeUser) -> None:
    client = await app_with(rate_messages_user="1000/10", rate_api_user="1000/10")
    ann, ben = await make_user("ann"), await make_user("ben")
    dm = (await factories.direct(client, ann, ben))["id"]
    for i in range(105):
        await factories.say(client, ben, dm, f"<@{ann.id}> {i}")
    (mine,) = (await client.get("/api/conversations", headers=ann.headers)).json()
    assert mine["unread"] == 100 and mine["mention_count"] == 100


async def test_servers_in_state_cost_the_same_statements_for_one_or_many(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    statements: list[str] = []
    original = pool_module.init_connection

    async def init(conn: asyncpg.Connection) -> None:
        await original(conn)
        conn.add_query_logger(lambda q: statements.append(q.query))

    monkeypatch.setattr(pool_module, "init_connection", init)
    counted = await create_pool(settings)  # every connection it opens logs its statements
    application = create_app(settings, pool=counted)
    ann, ben = await make_user("ann"), await make_user("ben")
    async with (
        application.router.lifespan_context(application),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=application), base_url="http://test"
        ) as counting,
    ):

        async def cost() -> int:
            """The fewest statements of three reads: the pool's connections also carry
            the app's background work (a flush now and then), which logs statements of
            its own into a read's count."""
            counts = []
            for _ in range(3):
                statements.clear()
                got = await counting.get("/api/users/@me/state", headers=ann.headers)
                assert got.status_code == 200
                counts.append(len(statements))
            return min(counts)

        await community(client, ben, ann, name="first")
        await cost()  # (the first request of a process prepares its statements)
        one = await cost()
        for i in range(5):
            await community(client, ben, ann, name=f"more{i}")
        many = (await counting.get("/api/users/@me/state", headers=ann.headers)).json()
        assert len(many["servers"]) == 6
        assert await cost() == one > 5
    await counted.close()


async def test_server_channels_in_state_carry_unread_and_mention_counts(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    ann, ben, cid = [await make_user(n) for n in ("ann", "ben", "cid")]
    srv = await community(client, ann, ben, cid)
    crew = await role(client, srv, ann, "crew", 0, cid)
    await client.patch(srv.url(f"/roles/{crew}"), headers=ann.headers, json={"mentionable": True})
    secret = await client.post(
        srv.url("/channels"), headers=ann.headers, json={"name": "secret", "kind": "text"}
    )
    assert secret.status_code == 201
    hidden = secret.json()["id"]
    denied = await client.put(
        f"/api/channels/{hidden}/overrides/member/{cid.id}",
        headers=ann.headers,
        json={"deny": str(int(P.VIEW_CHANNEL))},
    )
    assert denied.status_code == 200
    await factories.say(client, ann, hidden, f"<@{cid.id}> you cannot see this")
    await factories.say(client, ben, srv.general, "hello")
    await factories.say(client, cid, srv.general, "I read it all")  # marks cid's read
    await factories.say(client, ben, srv.general, "nothing for cid")
    await factories.say(client, ben, srv.general, f"<@&{crew}> crew, assemble")
    await factories.say(client, ann, srv.general, "@everyone listen")
    await factories.say(client, ben, srv.general, f"<@{cid.id}> and one more")

    async def reads(who: TestUser) -> dict[str, dict[str, object]]:
        state = (await client.get("/api/users/@me/state", headers=who.headers)).json()
        (server,) = state["servers"]
        return {r["channel_id"]: r for r in server["read_states"]}

    mine = await reads(cid)
    assert list(mine) == [srv.general]  # the hidden channel is not even listed
    # A role of cid's, @everyone and cid by name: three of the four unread.
    assert mine[srv.general]["unread"] == 4 and mine[srv.general]["mention_count"] == 3
    theirs = await reads(ben)  # ben's own last message marked #general read for him
    assert theirs[srv.general]["unread"] == 0 and theirs[srv.general]["mention_count"] == 0
    assert theirs[hidden]["unread"] == 1 and theirs[hidden]["mention_count"] == 0
