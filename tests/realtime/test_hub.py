"""The hub of one process, with its real listener and database: what a listener
reconnect costs."""

from __future__ import annotations

import asyncio
import base64
import threading
import time
import uuid

import asyncpg
import httpx
import orjson
import pytest
from fastapi import FastAPI

from tests import factories
from tests.factories import MakeUser, TestUser, say
from xfchat.db.queries import event_log
from xfchat.realtime import cursor
from xfchat.realtime.feeds import open_user_feed
from xfchat.realtime.hub import Hub
from xfchat.realtime.subscriber import Delivery, Subscriber


async def drain(sub: Subscriber, idle_s: float = 0.2, first_s: float = 0.2) -> list[Delivery]:
    """What the subscriber has (catching up and going live on the way): all that comes
    until `idle_s` of nothing, the first waited for `first_s`."""
    got = []
    wait = first_s
    while (item := await sub.next(idle_s=wait)) is not None:
        got.append(item[0])
        wait = idle_s
    return got


async def next_not_presence(sub: Subscriber) -> tuple[Delivery, str | None] | None:
    """The subscriber's next delivery but the presence of users connecting (ben's own
    comes and goes with his connections), or None after 5 s of nothing."""
    got = await sub.next(idle_s=5)
    while got is not None and got[0].type == "presence.updated":
        got = await sub.next(idle_s=5)
    return got


async def ben_following_a_dm(
    app: FastAPI, client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> tuple[Hub, TestUser, TestUser, str, Subscriber]:
    """The process's hub; ann and ben, their direct conversation's id, and ben's feed on
    the hub, opened and drained of what it starts with (the caller closes it)."""
    hub: Hub = app.state.hub
    ann, ben = await make_user("ann"), await make_user("ben")
    dm = (await factories.direct(client, ann, ben))["id"]
    sub, _, _ = await open_user_feed(hub, pool, ben.actor, None)
    try:
        await drain(sub)
    except BaseException:
        sub.close("test")
        raise
    return hub, ann, ben, dm, sub


async def listener_down(hub: Hub, pool: asyncpg.Pool) -> None:
    """The hub's LISTEN connection cut (it reconnects by itself, reading what it missed)."""
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_terminate_backend($1)", hub.listener_pid)
    async with asyncio.timeout(10):
        while hub.listening.is_set():
            await asyncio.sleep(0.01)


async def test_a_listener_reconnect_with_200_subscribers_reads_the_gap_once(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    pool: asyncpg.Pool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hub: Hub = app.state.hub
    ann = await make_user("ann")
    people = [await make_user(f"u{i}") for i in range(20)]
    groups = [
        (await factories.group(client, ann, people[2 * k], people[2 * k + 1]))["id"]
        for k in range(10)
    ]
    subs = [
        (await open_user_feed(hub, pool, who.actor, None))[0] for who in people for _ in range(10)
    ]
    try:
        await asyncio.gather(*(drain(s) for s in subs))
        assert all(s.live for s in subs) and len(subs) == 200
        fills, replays = hub.fill_reads, hub.replay_reads

        # The listener comes back (a real connection) once every message is committed:
        # its own back-off is 0.1 s, less than ten sends take on a busy box (was: it
        # came back before the first, and there was no gap to read).
        sent_all = asyncio.Event()
        connect = hub._connect

        async def after_the_sends() -> asyncpg.Connection:
            await sent_all.wait()
            return await connect()

        monkeypatch.setattr(hub, "_connect", after_the_sends)
        await listener_down(hub, pool)
        sent = [await say(client, ann, g, f"while the listener was down {g}") for g in groups]
        sent_all.set()
        async with asyncio.timeout(10):
            await hub.listening.wait()

        got = await asyncio.gather(*(drain(s, idle_s=1.0, first_s=10) for s in subs))
        for i, deliveries in enumerate(got):
            k = i // 10 // 2  # the group of this subscriber's user
            assert [(d.type, d.data["id"]) for d in deliveries] == [
                ("message.created", sent[k]["id"])
            ]
        assert hub.fill_reads - fills == 1  # one read of the missed commits, for all 200
        assert hub.replay_reads == replays  # and none of their own
    finally:
        for s in subs:
            s.close("test")


async def commit_message(
    conn: asyncpg.Connection, channel: str, mid: str, content: str = ""
) -> None:
    """A commit of one message.created event (its id `mid`) in `channel`."""
    data = orjson.dumps({"id": mid, "content": content}).decode()
    await event_log.insert_events(
        conn, kind="channel", entity_id=uuid.UUID(channel), types=["message.created"], datas=[data]
    )


async def read_ids(sub: Subscriber, count: int) -> list[str]:
    """The ids of the next `count` messages the subscriber gets (Closed if it is cut off)."""
    got: list[str] = []
    async with asyncio.timeout(20):
        while len(got) < count:
            item = await next_not_presence(sub)
            assert item is not None
            got.append(item[0].data["id"])
    return got


async def reader_of_a_small_queue(
    app: FastAPI, client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> tuple[Hub, str, Subscriber]:
    """Ben's live feed with a queue of 8 events, and his direct conversation with Ann."""
    hub: Hub = app.state.hub
    ann, ben = await make_user("ann"), await make_user("ben")
    dm = (await factories.direct(client, ann, ben))["id"]
    hub.queue_limit = 8
    sub, _, _ = await open_user_feed(hub, pool, ben.actor, None)
    await drain(sub)
    return hub, dm, sub


async def test_commits_read_after_a_listener_reconnect_do_not_overflow_a_reader_that_keeps_up(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    pool: asyncpg.Pool,
    conn: asyncpg.Connection,
) -> None:
    """The missed commits come from the log a page at a time; a page handed over at once
    overflowed the queue of a connection that reads everything as it comes (it was cut
    off as a slow consumer, and so was every other one on the process)."""
    hub, dm, sub = await reader_of_a_small_queue(app, client, make_user, pool)
    try:
        assert sub.live
        await listener_down(hub, pool)
        sent = [f"m{i}" for i in range(40)]
        # (reading from the start: on a busy box the listener is back before the last
        # commits, and what it hands over meanwhile is for a reader that keeps up)
        reading = asyncio.create_task(read_ids(sub, len(sent)))
        for mid in sent:  # forty commits, of one event each
            await commit_message(conn, dm, mid)
        assert await reading == sent
    finally:
        sub.close("test")


def commit_elsewhere_while_blocked(db_url: str, streams: int) -> None:
    """One commit of an event on each of `streams` streams nobody here follows, made from
    another thread while this event loop waits: their notifications reach the listener
    together and are handled in one turn of the loop."""

    async def commit() -> None:
        other = await asyncpg.connect(db_url)
        try:
            async with other.transaction():
                await event_log.insert_events_many(
                    other,
                    kinds=["channel"] * streams,
                    entity_ids=[uuid.uuid4() for _ in range(streams)],
                    types=["x.other"] * streams,
                    datas=['{"n": 1}'] * streams,
                )
        finally:
            await other.close()

    done = threading.Thread(target=lambda: asyncio.run(commit()))
    done.start()
    done.join()
    time.sleep(0.2)  # (their notifications reach the listener's socket)


async def test_notifications_while_a_backlog_is_handed_over_share_its_pace(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    pool: asyncpg.Pool,
    conn: asyncpg.Connection,
    db_url: str,
) -> None:
    """Commits held behind a gap are handed over a quarter of a queue a turn of the event
    loop; ten notifications of other streams handled in one turn each handed over another
    quarter of that backlog (and cut off the reader that keeps up, found by an outside
    review): the turn's share is one, whichever path hands commits over."""
    hub, dm, sub = await reader_of_a_small_queue(app, client, make_user, pool)
    try:
        await hub._listener_busy.acquire()  # the read of the gap waits: commits pile up
        sent = ["big"] + [f"m{i}" for i in range(60)]
        await commit_message(conn, dm, "big", "x" * 20_000)  # (too large to notify: a gap)
        for mid in sent[1:]:
            await commit_message(conn, dm, mid)
        async with asyncio.timeout(5):
            while len(hub._pending) < len(sent):
                await asyncio.sleep(0.01)
        first = min(hub._pending)
        hub._listener_busy.release()
        reader = asyncio.create_task(read_ids(sub, len(sent)))
        async with asyncio.timeout(5):
            while hub.last_g < first + 2:  # the backlog is being handed over
                await asyncio.sleep(0)
        commit_elsewhere_while_blocked(db_url, 10)
        assert await reader == sent
    finally:
        sub.close("test")


async def test_a_resume_inside_the_newest_commit_delivers_the_rest_of_it(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    pool: asyncpg.Pool,
    conn: asyncpg.Connection,
) -> None:
    # A commit of several events (a batch of sends, an owner leaving) that is still the
    # newest in the log: a token from its first event must resume with the others.
    hub, _, ben, dm, sub = await ben_following_a_dm(app, client, make_user, pool)
    try:
        await event_log.insert_events(
            conn,
            kind="channel",
            entity_id=uuid.UUID(dm),
            types=["message.created"] * 3,
            datas=[orjson.dumps({"id": f"m{i}"}).decode() for i in range(3)],
        )
        first = await next_not_presence(sub)
        assert first is not None and first[0].data == {"id": "m0"} and first[1] is not None
        token = first[1]
    finally:
        sub.close("test")
    resumed, refused, _ = await open_user_feed(hub, pool, ben.actor, token)
    try:
        assert refused is None
        # (ben's own presence, announced as his connections come and go, may be there too)
        got = [
            d.data["id"] for d in await drain(resumed, first_s=10) if d.type == "message.created"
        ]
        assert got == ["m1", "m2"]
    finally:
        resumed.close("test")


async def test_a_resume_after_much_of_others_walks_the_users_own_streams(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    pool: asyncpg.Pool,
    conn: asyncpg.Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A resume after 10,100 commits of streams not the user's: its access changes and
    its replay are read by walking the user's own streams (db/queries/event_log.py), not
    the log (the log's walk is made to fail here), and deliver exactly what followed
    the token in the user's conversation."""
    hub, ann, ben, dm, sub = await ben_following_a_dm(app, client, make_user, pool)
    try:
        await say(client, ann, dm, "before")
        first = await next_not_presence(sub)
        assert first is not None and first[1] is not None
        token = first[1]
    finally:
        sub.close("test")
    await conn.execute(
        """
        DO $$
        BEGIN
            FOR i IN 1 .. 10100 LOOP
                INSERT INTO event_streams (kind, entity_id, last_pos)
                VALUES ('channel', gen_random_uuid(), 1);
                INSERT INTO events (stream_id, pos, type, data)
                VALUES (currval('event_streams_id_seq'), 1, 'message.created', '{}');
                COMMIT;
            END LOOP;
        END
        $$
        """
    )
    for text in ("after 1", "after 2"):
        await say(client, ann, dm, text)
    monkeypatch.setattr(event_log, "_FEED_BY_LOG", "SELECT 1 / 0")
    resumed, refused, _ = await open_user_feed(hub, pool, ben.actor, token)
    try:
        assert refused is None
        got = [
            d.data["content"]
            for d in await drain(resumed, first_s=10)
            if d.type == "message.created"
        ]
        assert got == ["after 1", "after 2"]
    finally:
        resumed.close("test")


async def test_delivery_does_not_wait_for_a_request_pool_held_to_its_last_connection(
    app: FastAPI, client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool, db_url: str
) -> None:
    """An event too large for its notification is read from the log. It was read on a
    connection of the request pool: with every one held by slow requests (edits waiting
    on a locked row), no subscriber of the process got anything until one came free.
    It is read on the LISTEN connection."""
    _, _, _, dm, sub = await ben_following_a_dm(app, client, make_user, pool)
    other = await asyncpg.connect(db_url)
    held = []
    try:
        while pool.get_size() < pool.get_max_size() or pool.get_idle_size() > 0:
            held.append(await asyncpg.pool.Pool.acquire(pool, timeout=5))
        big = "x" * 20_000  # (a notification carries at most 8,000 bytes)
        async with other.transaction():
            await event_log.insert_events(
                other,
                kind="channel",
                entity_id=uuid.UUID(dm),
                types=["message.created"],
                datas=[orjson.dumps({"id": "big", "content": big}).decode()],
            )
        got = await next_not_presence(sub)
        assert got is not None and got[0].data == {"id": "big", "content": big}
    finally:
        for c in held:
            await asyncpg.pool.Pool.release(pool, c)
        await other.close()
        sub.close("test")


async def test_a_token_of_a_history_a_restored_backup_lost_is_refused(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    pool: asyncpg.Pool,
    conn: asyncpg.Connection,
) -> None:
    """After a restore the database numbers its next commits as the lost ones were: a
    token from the lost tail resumed "inside" other events and silently skipped them.
    A token carries the second it was handed out; a commit at its place made later is
    not the one it named: the resume is refused (unknown), and the client reloads."""
    hub, ann, ben, dm, sub = await ben_following_a_dm(app, client, make_user, pool)
    try:
        said = await say(client, ann, dm, "in the history that will be lost")
        got = await next_not_presence(sub)
        assert got is not None and got[0].data["id"] == said["id"] and got[1] is not None
        token, place = got[1], got[0].position
    finally:
        sub.close("test")
    kept, refused, _ = await open_user_feed(hub, pool, ben.actor, token)
    kept.close("test")
    assert refused is None  # (the same history: it resumes)
    # The restored database's commit at that number, made after the token was handed out:
    await conn.execute(
        "UPDATE event_commits SET created_at = now() + interval '5 minutes' WHERE g = $1",
        place.g,
    )
    lost, refused, start = await open_user_feed(hub, pool, ben.actor, token)
    lost.close("test")
    assert refused is not None and refused.reason == "unknown" and start.state is not None
    # A token from before tokens carried the second (`2.`) is read as it was.
    tag = hub.codec.tag(ben.id)
    raw = bytearray()
    for number in (place.g, place.pos):
        cursor._varint(number, raw)
    legacy = "2." + base64.urlsafe_b64encode(bytes(raw) + tag).decode().rstrip("=")
    assert hub.codec.read(legacy, tag) == (place, None)
    again, refused, _ = await open_user_feed(hub, pool, ben.actor, legacy)
    again.close("test")
    assert refused is None


async def test_a_connection_ends_with_its_session_expired_or_deleted(
    app: FastAPI, client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    """A helper session's find: a stream outlived its session, which only a revocation
    (told by an event) ended: a client that refreshed no token for the refresh token's
    lifetime kept its gateway connection, and the voice state it held named a session
    the retention job then deleted. The hub looks at the live connections' sessions
    every SESSIONS_CHECK_S: an expired or deleted one ends them (`session_revoked`, the
    gateway's 4012: log in again); a live one is left alone."""
    hub: Hub = app.state.hub
    ann, ben, cid = await make_user("ann"), await make_user("ben"), await make_user("cid")
    subs = [(await open_user_feed(hub, pool, who.actor, None))[0] for who in (ann, ben, cid)]
    try:
        assert await hub.close_ended_sessions() == 0
        async with pool.acquire() as conn:
            await conn.execute(
                "UPDATE sessions SET expires_at = now() - interval '1 second' WHERE id = $1",
                ben.actor.session_id,
            )
            await conn.execute("DELETE FROM sessions WHERE id = $1", cid.actor.session_id)
        assert await hub.close_ended_sessions() == 2
        assert [s.closed for s in subs] == [None, "session_revoked", "session_revoked"]
    finally:
        for sub in subs:
            sub.close("test")
