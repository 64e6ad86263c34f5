"""What waits while the hub is behind (reading a commit from the log).

Signals (typing, presence: not stored) wait behind the commits announced before them. A
helper session's attack: the hub handed a signal to the connections it listed *then*,
ahead of commits it had not handed over yet. While a commit announced without its events
(a message over NOTIFY's 8,000 bytes) was read from the log, a kick committed and waited
behind it; a typing signal or a custom status made after the kick still reached the
kicked member's live connection, ahead of the `server.left` that ended their view. And
the cache of live sessions is not used then: a revocation elsewhere may wait among those
commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import httpx
import orjson
import pytest
from fastapi import FastAPI

from tests import factories
from tests.factories import Community, MakeUser, TestUser
from tests.realtime.test_hub import drain
from xfchat.api.deps import live_session_cache
from xfchat.domain.events import EPHEMERAL_CHANNEL
from xfchat.realtime.feeds import open_user_feed
from xfchat.realtime.hub import Hub
from xfchat.realtime.subscriber import Closed


@contextlib.asynccontextmanager
async def behind(
    hub: Hub, client: httpx.AsyncClient, ann: TestUser, srv: Community
) -> AsyncIterator[None]:
    """The hub behind, for the block's length: ann's message in #general is over NOTIFY's
    8,000 bytes, so the hub reads it from the log, and that read waits for the block's
    end (it takes the listener's lock, held here)."""
    await hub._listener_busy.acquire()
    try:
        big = await client.post(
            f"/api/channels/{srv.general}/messages",
            headers=ann.headers,
            json={"content": "\u20ac" * 4000},
        )
        assert big.status_code == 201, big.text
        async with asyncio.timeout(5):
            while not hub._pending:
                await asyncio.sleep(0.01)
        yield
    finally:
        hub._listener_busy.release()


# What cat does once ben is kicked: a request that makes a signal, and the signal's type.
Act = Callable[[httpx.AsyncClient, TestUser, Community], Awaitable[httpx.Response]]


async def _types(client: httpx.AsyncClient, cat: TestUser, srv: Community) -> httpx.Response:
    return await client.post(f"/api/channels/{srv.general}/typing", headers=cat.headers)


async def _chooses_status(
    client: httpx.AsyncClient, cat: TestUser, _srv: Community
) -> httpx.Response:
    return await client.put(
        "/api/users/@me/presence",
        headers=cat.headers,
        json={"status": "dnd", "status_text": "interviewing at a rival"},
    )


@pytest.mark.parametrize(
    ("act", "signal"),
    [(_types, "typing.started"), (_chooses_status, "presence.updated")],
    ids=["typing", "presence"],
)
async def test_a_signal_made_after_a_kick_never_reaches_the_kicked_member(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    pool: asyncpg.Pool,
    act: Act,
    signal: str,
) -> None:
    hub: Hub = app.state.hub
    ann, ben, cat = await make_user("ann"), await make_user("ben"), await make_user("cat")
    srv = await factories.community(client, ann, ben, cat)
    cats, _, _ = await open_user_feed(hub, pool, cat.actor, None)  # (cat online)
    bens, _, _ = await open_user_feed(hub, pool, ben.actor, None)
    anns, _, _ = await open_user_feed(hub, pool, ann.actor, None)
    try:
        for sub in (cats, bens, anns):
            await drain(sub, idle_s=0.5, first_s=0.5)
        assert bens.live and anns.live
        async with behind(hub, client, ann, srv):
            kicked = await client.delete(srv.url(f"/members/{ben.id}"), headers=ann.headers)
            assert kicked.status_code == 204, kicked.text
            async with asyncio.timeout(5):  # the kick's commit is at the hub, held back
                while len(hub._pending) < 2:
                    await asyncio.sleep(0.01)
            done = await act(client, cat, srv)
            assert done.status_code in (200, 204), done.text
            await asyncio.sleep(0.3)  # (its notification has come)
            assert not [d for d in await drain(anns) if d.type == signal]  # (held)
        bens_got = [d.type for d in await drain(bens, idle_s=0.5, first_s=2)]
        assert "server.left" in bens_got
        assert signal not in bens_got, f"ben, kicked, got cat's {signal}: {bens_got}"
        # ann still shares the server with cat: hers comes, after the commits before it.
        anns_got = [d.type for d in await drain(anns, idle_s=0.5, first_s=2)]
        assert signal in anns_got
        assert anns_got.index("message.created") < anns_got.index(signal), anns_got
    finally:
        for sub in (cats, bens, anns):
            sub.close("test")


async def test_the_cache_of_live_sessions_is_skipped_while_the_hub_is_behind(
    app: FastAPI, client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    hub: Hub = app.state.hub
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await factories.community(client, ann, ben)
    assert live_session_cache(app.state) is app.state.sessions
    async with behind(hub, client, ann, srv):
        assert not hub.caught_up
        assert live_session_cache(app.state) is None
        me = await client.get("/api/users/@me", headers=ben.headers)  # (from the database)
        assert me.status_code == 200, me.text
    async with asyncio.timeout(5):
        while not hub.caught_up:
            await asyncio.sleep(0.01)
    assert live_session_cache(app.state) is app.state.sessions


async def test_signals_let_go_after_a_hold_are_paced_for_a_client_that_keeps_up(
    app: FastAPI, client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    """A review's find: the signals held while the hub was behind were handed over all at
    once when it caught up, outside its pacing, and 1,200 of them overflowed the queue of
    a client reading them as fast as they came: cut off as a slow consumer. (Many
    senders' typing, sent as the typing route does; one sender's is rate limited.)"""
    hub: Hub = app.state.hub
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await factories.community(client, ann, ben)
    bens, _, _ = await open_user_feed(hub, pool, ben.actor, None)
    typing: list[int] = []

    async def keep_up() -> None:  # ben's client reads everything as soon as it comes
        with contextlib.suppress(Closed):
            while (item := await bens.next(idle_s=3)) is not None:
                if item[0].type == "typing.started":
                    typing.append(item[0].data["i"])

    reader = asyncio.create_task(keep_up())
    try:
        await asyncio.sleep(0.5)
        assert bens.live
        n = hub.queue_limit + 200
        async with behind(hub, client, ann, srv):
            # (one to a connection of no process here is not held at all)
            elsewhere = orjson.dumps({"to": str(uuid.uuid4()), "m": {"t": "x", "d": {}}})
            await pool.execute("SELECT pg_notify($1, $2)", EPHEMERAL_CHANNEL, elsewhere.decode())
            for first in range(0, n, 60):
                payloads = [
                    orjson.dumps(
                        {
                            "k": "channel",
                            "e": srv.general,
                            "t": "typing.started",
                            "d": {"channel_id": srv.general, "user_id": str(ann.id), "i": i},
                        }
                    ).decode()
                    for i in range(first, first + 60)
                ]
                async with pool.acquire() as conn:
                    await conn.execute(
                        "SELECT count(pg_notify($1::text, p)) FROM unnest($2::text[]) AS t(p)",
                        EPHEMERAL_CHANNEL,
                        payloads,
                    )
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.3)
            assert len(hub._signals) == n  # (all held)
        await asyncio.wait_for(reader, 10)
        assert bens.closed is None, f"closed {bens.closed!r} after {len(typing)} of {n}"
        assert typing == list(range(n))  # (every one, in order)
    finally:
        reader.cancel()
        bens.close("test")
