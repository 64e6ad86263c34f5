"""Amplification, attacked by an account that wants the server to do far more work, or
send far more, than its requests cost: typing in a channel everyone watches, presence
changes of an account in many channels, lists that read what they do not show, and the
routes that take many ids at once. Measured by what reaches PostgreSQL: statements sent
(tests/support.py's logged_pool), rows fetched, notifications sent."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
from fastapi import FastAPI

from tests.factories import AppWith, MakeUser, community, direct, pair, say
from tests.realtime.clients import sse, sse_stream, wait_subscribers
from tests.realtime.test_connection_limits import braid_stream, gateway_refusal
from tests.support import Servers, listening, logged_pool
from xfchat.domain.events import SIGNAL_CHANNELS
from xfchat.realtime.presence import PresenceTracker

CHANNELS = 1_600  # a server member's channels: 4 servers of 400 (each may hold 500)


async def _channels(conn: asyncpg.Connection, server_id: str, count: int) -> None:
    """`count` more text channels in a server (as its owner could make them, 500 at most;
    written at once: the requests would take minutes)."""
    await conn.execute(
        "INSERT INTO channels (server_id, kind, name, position)"
        " SELECT $1, 'text', 'c' || i, i FROM generate_series(1, $2::int) AS i",
        uuid.UUID(server_id),
        count,
    )


async def test_typing_is_limited_per_user_and_channel(
    client: httpx.AsyncClient, make_user: MakeUser, db_url: str
) -> None:
    """Broke: a typing signal (to everyone who sees the channel) counted only in the API's
    600 a minute, so one account told a channel's every viewer it was typing ten times a
    second (20 requests, 20 notifications), where one in 8 s says it all (the browser
    client sends no more). Now `typing` per user and channel, 5 in 10 s
    (XFCHAT_RATE_TYPING_USER): the 6th is 429 and notifies nobody; another channel has
    its own allowance."""
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await community(client, ann, ben)
    dm = str((await direct(client, ann, ben))["id"])
    async with listening(db_url) as heard:
        answers = [
            await client.post(f"/api/channels/{srv.general}/typing", headers=ann.headers)
            for _ in range(20)
        ]
        await heard.settled()
        typing = [h for h in heard if '"typing.started"' in h]
    assert [a.status_code for a in answers] == [204] * 5 + [429] * 15
    refused = answers[5]
    assert refused.json()["code"] == "RATE_LIMITED", refused.text
    assert refused.json()["bucket"] == "typing"
    assert refused.headers["X-RateLimit-Bucket"] == "typing"
    assert 0 < float(refused.headers["Retry-After"]) <= 10
    assert len(typing) == 5, len(typing)
    # the allowance is the channel's: ann may still type in her conversation
    elsewhere = await client.post(f"/api/channels/{dm}/typing", headers=ann.headers)
    assert elsewhere.status_code == 204, elsewhere.text


async def _presence_change(
    app: FastAPI, client: httpx.AsyncClient, db_url: str, who: Any, text: str
) -> tuple[list[str], list[str]]:
    """The statements and the notifications of one custom-status change of `who`."""
    async with logged_pool(db_url, size=2) as (pool, seen), listening(db_url) as heard:
        own, app.state.pool = app.state.pool, pool
        try:
            changed = await client.put(
                "/api/users/@me/presence", headers=who.headers, json={"status_text": text}
            )
            assert changed.status_code == 200, changed.text
        finally:
            app.state.pool = own
        await heard.settled()
        return seen.take(), [h for h in heard if '"presence.updated"' in h]


async def test_a_presence_change_is_one_statement_of_notifications_however_many_channels(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    db_url: str,
    conn: asyncpg.Connection,
) -> None:
    """Broke: a presence change (a custom status; every connection and disconnection
    too) sent one NOTIFY statement for each 150 channels its user sees, one round trip
    each: 12 statements of notifications at 1,600 channels, 668 for an account in 200
    servers of 500 channels, in a transaction holding the user's presence lock. Now one
    statement sends them all (how many notifications is unchanged: 150 channel ids each,
    under PostgreSQL's 8000 bytes)."""
    ann, ben = await make_user("ann"), await make_user("ben")
    servers = [await community(client, ann, ben, name=f"s{i}") for i in range(4)]
    tracker: PresenceTracker = app.state.presence
    tracker.connected(ann.id)  # (her presence shows: a change of it is told)
    assert await tracker.settled(10)
    figures = []
    for step, text in enumerate(("few", "many")):
        if step:
            for srv in servers:
                await _channels(conn, srv.id, CHANNELS // len(servers))
        sent, notes = await _presence_change(app, client, db_url, ann, text)
        notifies = [s for s in sent if "pg_notify" in s]
        figures.append((len(sent), len(notifies), len(notes)))
    (few_sent, few_notifies, _), (many_sent, many_notifies, many_notes) = figures
    assert many_notes >= 1 + CHANNELS // SIGNAL_CHANNELS, figures  # (each one heard)
    assert many_notifies == few_notifies == 1, figures
    assert many_sent == few_sent, figures


class _Rows:
    """Rows the app's statements fetched (asyncpg's fetch), counted as they come."""

    def __init__(self) -> None:
        self.fetched = 0

    def connection_class(self) -> type[asyncpg.Connection]:
        rows = self

        class Counting(asyncpg.Connection):  # type: ignore[misc]
            async def fetch(self, query: str, *args: Any, **kwargs: Any) -> list[Any]:
                got: list[Any] = await super().fetch(query, *args, **kwargs)
                rows.fetched += len(got)
                return got

        return Counting


@contextlib.asynccontextmanager
async def _counting_pool(app: FastAPI, db_url: str) -> AsyncIterator[_Rows]:
    """The app's pool, for the block, replaced by one whose fetched rows are counted."""
    from xfchat.db.pool import init_connection

    rows = _Rows()
    pool = await asyncpg.create_pool(
        db_url,
        min_size=1,
        max_size=2,
        init=init_connection,
        connection_class=rows.connection_class(),
    )
    own, app.state.pool = app.state.pool, pool
    try:
        yield rows
    finally:
        app.state.pool = own
        await pool.close()


async def test_listing_conversations_reads_no_server_channel(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    db_url: str,
    conn: asyncpg.Connection,
) -> None:
    """Broke: `GET /api/conversations` (any signed-in user, 600 a minute) found the
    user's conversations among every channel they may see: the access facts of every
    channel of every server they are in were read and judged to keep a few
    conversations (1,600 rows more at 1,600 channels; 100,000 for an account in 200
    servers of 500). So did every profile change (to find whom to tell) and an account's
    deletion. Now they read the user's conversations alone."""
    ann, ben = await make_user("ann"), await make_user("ben")
    dm = str((await direct(client, ann, ben))["id"])
    await say(client, ann, dm, "hi")
    servers = [await community(client, ann, ben, name=f"s{i}") for i in range(4)]
    fetched = []
    for step in range(2):
        if step:
            for srv in servers:
                await _channels(conn, srv.id, CHANNELS // len(servers))
        async with _counting_pool(app, db_url) as rows:
            listed = await client.get("/api/conversations", headers=ann.headers)
            assert listed.status_code == 200, listed.text
            assert [c["id"] for c in listed.json()] == [dm]
        fetched.append(rows.fetched)
    assert fetched[1] == fetched[0], fetched
    assert fetched[0] < 20, fetched


async def test_what_a_users_connections_follow_together_is_bounded(
    servers: Servers, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    """Broke: each live connection follows every channel its user may see, a few hundred
    bytes each (an account in 200 servers of 500 channels: 42 MB for its first
    connection, 15 MB for each more, 600 MB for the 20 one user may hold), and only the
    number of connections was bounded. Now what a user's connections on a process follow
    together is (XFCHAT_REALTIME_FOLLOWS_USER): one past it is 429 TOO_MANY_CONNECTIONS
    (the gateway: 4014), the first always opens, a small one (a Braid subscription, one
    channel) still fits, and closing one makes room."""
    _, base = servers.start(XFCHAT_REALTIME_FOLLOWS_USER="1000")
    ann, ben = await make_user("ann"), await make_user("ben")
    async with httpx.AsyncClient(base_url=base) as api:
        srv = await community(api, ann, ben)
        await _channels(conn, srv.id, 600)  # ann and ben each follow 603 streams
        first = await sse(base, ann.access_token)
        try:
            refused = await api.get("/api/events", headers=ann.headers)
            assert refused.status_code == 429, refused.text
            assert refused.json()["code"] == "TOO_MANY_CONNECTIONS"
            assert await gateway_refusal(base, ann.access_token) == 4014
            async with braid_stream(base, ann.access_token, srv.general) as braid:
                assert braid.status_code == 209  # (603 + 2: within the 1,000)
            async with sse_stream(base, ben.access_token):  # (the budget is each user's)
                pass
        finally:
            await first.close()
        await wait_subscribers(base, 0, at_most=0)
        async with sse_stream(base, ann.access_token) as again:
            assert again.status == 200


async def test_a_streams_head_counts_what_its_get_would_follow(
    servers: Servers, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    """Broke: a HEAD to a stream (which opens nothing) was refused only by the cap on
    connections, not by the budget of what a user's connections follow, which its GET
    applies: HEAD said 200 (209) where GET said 429. Here ann's one connection follows
    999 streams of the 1,000: another feed (999 more) and a Braid subscription (its
    channel and her own stream, 2) are each past it, HEAD and GET alike; ben, with no
    connection, is let in."""
    _, base = servers.start(XFCHAT_REALTIME_FOLLOWS_USER="1000")
    ann, ben = await make_user("ann"), await make_user("ben")
    async with httpx.AsyncClient(base_url=base) as api:
        srv = await community(api, ann, ben)
        await _channels(conn, srv.id, 996)  # (and #general, the server, her own: 999)
        braid = {"Subscribe": "true"}
        async with sse_stream(base, ann.access_token):
            for url, extra in (
                ("/api/events", {}),
                (f"/api/channels/{srv.general}/messages", braid),
            ):
                head = await api.head(url, headers={**ann.headers, **extra})
                get = await api.get(url, headers={**ann.headers, **extra})
                assert head.status_code == get.status_code == 429, (url, head.headers)
                assert get.json()["code"] == "TOO_MANY_CONNECTIONS"
            assert (await api.head("/api/events", headers=ben.headers)).status_code == 200
            head = await api.head(
                f"/api/channels/{srv.general}/messages", headers={**ben.headers, **braid}
            )
            assert head.status_code == 209


async def test_a_servers_audience_is_not_copied_into_each_channel(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    """Broke (memory): a change of who may see what in a server (a role's permissions,
    an override, a role given) read who sees each channel before and after it as a set
    of members per channel, viewers and readers apart: a few hundred bytes a member and
    channel, 259 MB of the process's memory for one role edit in a server of 2,000
    members and 400 channels (measured with tracemalloc; its owner may send 600 a
    minute). Now channels whose audience is made of the same parts share one set (165
    MB there: what is left is the events themselves, one per member naming each
    channel, as README's known limit says)."""
    from xfchat.domain.access import server_audience

    ann, ben, cid = [await make_user(n) for n in ("ann", "ben", "cid")]
    srv = await community(client, ann, ben, cid)
    await _channels(conn, srv.id, 100)
    channels = [
        r["id"]
        for r in await conn.fetch("SELECT id FROM channels WHERE server_id = $1", uuid.UUID(srv.id))
    ]
    audience = await server_audience(conn, uuid.UUID(srv.id), channels)
    assert all(audience.viewers[c] == {ann.id, ben.id, cid.id} for c in channels)
    assert all(audience.readers[c] == {ann.id, ben.id, cid.id} for c in channels)
    held = {id(s) for s in [*audience.viewers.values(), *audience.readers.values()]}
    assert len(held) == 1, len(held)
    # a member override in one channel decides that channel apart, and only it
    hidden = channels[0]
    await conn.execute(
        "INSERT INTO channel_permission_overrides (channel_id, user_id, allow, deny)"
        " VALUES ($1, $2, 0, 1)",
        hidden,
        cid.id,
    )
    audience = await server_audience(conn, uuid.UUID(srv.id), channels)
    assert audience.viewers[hidden] == {ann.id, ben.id}
    assert all(audience.viewers[c] == {ann.id, ben.id, cid.id} for c in channels[1:])
    assert len({id(audience.viewers[c]) for c in channels}) == 2


async def test_the_state_route_is_counted_apart(app_with: AppWith, make_user: MakeUser) -> None:
    """Broke: `GET /api/users/@me/state` reads what a connection's `ready` reads,
    everything its user sees (7.6 s of work and a 4 MB answer for an account in 40
    servers of 500 channels, measured here), counted only in the API's 600 a minute,
    where the connections that read it count in 60 (`realtime.connect`). Now it counts
    in `state` (XFCHAT_RATE_STATE_USER, 30 a minute): past it, 429 before anything is
    read."""
    client = await app_with(rate_state_user="2/60")
    ann = await make_user("ann")
    answers = [await client.get("/api/users/@me/state", headers=ann.headers) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429], [a.text for a in answers]
    refused = answers[2].json()
    assert refused["code"] == "RATE_LIMITED" and refused["bucket"] == "state", refused
    # (the other routes are not held back by it)
    assert (await client.get("/api/users/@me", headers=ann.headers)).status_code == 200


async def test_reactions_and_pins_are_counted_per_user(
    app_with: AppWith, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    """Each reaction added or taken back, each pin and unpin, is an event to everyone who
    sees the channel; counted only in the API's 600 a minute, a few accounts toggling
    them kept every viewer's page redrawing (the client attack found it). Now in
    `reactions` (XFCHAT_RATE_REACTIONS_USER, 60 a minute) and `pins`
    (XFCHAT_RATE_PINS_USER, 60 in 10 minutes) per user; 3 here: past it, 429 and
    nothing written."""
    client = await app_with(rate_reactions_user="3/60", rate_pins_user="3/600")
    ann, ben, dm = await pair(client, make_user, "group")
    said = await say(client, ben, dm, "react to me")
    url = f"/api/channels/{dm}/messages/{said['id']}/reactions/👍/@me"
    toggles = [
        await (client.put if n % 2 == 0 else client.delete)(url, headers=ann.headers)
        for n in range(5)
    ]
    assert [a.status_code for a in toggles] == [204, 204, 204, 429, 429]
    assert toggles[3].json()["bucket"] == "reactions"
    pin = f"/api/channels/{dm}/pins/{said['id']}"
    pins = [
        await (client.put if n % 2 == 0 else client.delete)(pin, headers=ann.headers)
        for n in range(5)
    ]
    assert [a.status_code for a in pins] == [204, 204, 204, 429, 429]
    assert pins[3].json()["bucket"] == "pins" and "Retry-After" in pins[3].headers
    assert (await client.put(url, headers=ben.headers)).status_code == 204  # (per user)
    async with pool.acquire() as conn:
        told = await conn.fetch(
            "SELECT type FROM events WHERE type LIKE 'reaction.%' OR type LIKE 'message.%pinned'"
        )
    assert len(told) == 3 + 1 + 3, [r["type"] for r in told]
