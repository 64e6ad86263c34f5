from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import orjson
import pytest

from tests.factories import MakeUser, direct, events_of, lock_waiters, say
from xfchat.db.queries.event_log import NOTIFY_CHANNEL
from xfchat.domain.events import EVENT_TYPES, Event, Stream, emit, emit_many


def an_event(name: str, stream: Stream, data: dict[str, object] | None = None) -> Event:
    """An event of a registered type on any stream, with any body (the log does not
    look inside)."""
    assert name in EVENT_TYPES
    return Event(name, stream, data or {})


class Listener:
    def __init__(self) -> None:
        self.payloads: list[dict[str, object]] = []
        self.arrived = asyncio.Event()

    def __call__(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        self.payloads.append(orjson.loads(payload))
        self.arrived.set()

    async def wait_for(self, count: int, timeout: float = 10) -> None:
        async with asyncio.timeout(timeout):
            while len(self.payloads) < count:
                self.arrived.clear()
                await self.arrived.wait()


@pytest.fixture
async def listener(db_url: str) -> AsyncIterator[Listener]:
    conn = await asyncpg.connect(db_url)
    listen = Listener()
    await conn.add_listener(NOTIFY_CHANNEL, listen)
    yield listen
    await conn.close()


class Rollback(Exception):
    pass


async def fence(pool: asyncpg.Pool, listener: Listener) -> None:
    """Commit one more event and wait until it is heard: notifications come in commit
    order, so whatever was committed before it has been heard by then (a stray one
    would be in `listener.payloads`), with no guessing how long to wait. (It writes from
    a task of its own: the test may hold a connection of the pool.)"""
    stream = Stream.user(uuid.uuid4())

    async def write() -> None:
        async with pool.acquire() as c, c.transaction():
            await emit(c, an_event("user.updated", stream, {"fence": True}))

    await asyncio.create_task(write())
    async with asyncio.timeout(10):
        while not any(p["e"] == str(stream.entity_id) for p in listener.payloads):
            listener.arrived.clear()
            await listener.arrived.wait()
    listener.payloads[:] = [p for p in listener.payloads if p["e"] != str(stream.entity_id)]


async def test_concurrent_writers_get_gap_free_positions_heard_in_commit_order(
    pool: asyncpg.Pool, conn: asyncpg.Connection, listener: Listener
) -> None:
    stream = Stream.channel(uuid.uuid4())
    writers = 40
    rolled_back = {i for i in range(writers) if i % 5 == 2}
    rng = random.Random(7)
    delays = [rng.uniform(0, 0.02) for _ in range(writers)]

    async def write(i: int) -> None:
        async with pool.acquire() as c:
            try:
                async with c.transaction():
                    await asyncio.sleep(delays[i] / 2)
                    await emit(c, an_event("user.updated", stream, {"i": i}))
                    await asyncio.sleep(delays[i])  # hold the stream's counter row a while
                    if i in rolled_back:
                        raise Rollback
            except Rollback:
                pass

    await asyncio.gather(*(write(i) for i in range(writers)))
    committed = writers - len(rolled_back)
    await listener.wait_for(committed)
    await fence(pool, listener)  # a stray notification for a rolled-back write shows now

    positions = [p["p"] for p in listener.payloads]
    assert positions == list(range(1, committed + 1))  # heard in commit order, no gap
    assert [p["g"] for p in listener.payloads] == list(range(1, committed + 1))
    assert {p["n"] for p in listener.payloads} == {1}
    heard = {p["ev"][0][1]["i"] for p in listener.payloads}  # type: ignore[index]
    assert heard == set(range(writers)) - rolled_back
    stored = await conn.fetch(
        "SELECT e.pos, e.data FROM events e JOIN event_streams s ON s.id = e.stream_id "
        "WHERE s.entity_id = $1 ORDER BY e.pos",
        stream.entity_id,
    )
    assert [r["pos"] for r in stored] == list(range(1, committed + 1))
    assert {r["data"]["i"] for r in stored} == heard
    assert {p["k"] for p in listener.payloads} == {"channel"}
    assert {p["e"] for p in listener.payloads} == {str(stream.entity_id)}


async def test_nothing_is_heard_before_commit(pool: asyncpg.Pool, listener: Listener) -> None:
    stream = Stream.user(uuid.uuid4())
    async with pool.acquire() as c:
        tx = c.transaction()
        await tx.start()
        await emit(c, an_event("user.updated", stream, {"x": 1}))
        await fence(pool, listener)
        assert listener.payloads == []
        await tx.commit()
    await listener.wait_for(1)
    # The fence committed first: commit order, not the order the writes began in.
    assert (listener.payloads[0]["g"], listener.payloads[0]["p"]) == (2, 1)
    assert listener.payloads[0]["ev"] == [["user.updated", {"x": 1}]]


async def test_a_rolled_back_write_is_never_heard_and_leaves_no_gap(
    pool: asyncpg.Pool, listener: Listener
) -> None:
    stream = Stream.user(uuid.uuid4())
    async with pool.acquire() as c:
        with pytest.raises(Rollback):
            async with c.transaction():
                await emit(c, an_event("user.updated", stream, {"n": "lost"}))
                raise Rollback
        async with c.transaction():
            await emit(c, an_event("user.updated", stream, {"n": "kept"}))
    await listener.wait_for(1)  # (after the rolled-back one, had it been heard)
    assert [(p["g"], p["p"], p["ev"]) for p in listener.payloads] == [
        (1, 1, [["user.updated", {"n": "kept"}]])
    ]
    async with pool.acquire() as c:
        assert await c.fetchval("SELECT g FROM event_clock") == 1


async def test_streams_do_not_wait_for_each_other(pool: asyncpg.Pool, db_url: str) -> None:
    a, b = Stream.channel(uuid.uuid4()), Stream.channel(uuid.uuid4())
    holder, other = await asyncpg.connect(db_url), await asyncpg.connect(db_url)
    try:
        tx = holder.transaction()
        await tx.start()
        await emit(holder, an_event("message.deleted", a))
        async with asyncio.timeout(2):  # would hang if streams shared one lock
            async with other.transaction():
                await emit(other, an_event("message.deleted", b))
        blocked = asyncio.create_task(_emit_in_tx(other, an_event("message.deleted", a)))
        await lock_waiters(pool)
        assert not blocked.done()  # the same stream does wait for the holder
        await tx.commit()
        await asyncio.wait_for(blocked, 5)
    finally:
        await holder.close()
        await other.close()
    # b committed first, then a's two appends in order: g follows commit order.
    async with pool.acquire() as c:
        rows = await c.fetch(
            "SELECT c.g, s.entity_id, c.first_pos FROM event_commits c "
            "JOIN event_streams s ON s.id = c.stream_id ORDER BY c.g"
        )
    assert [(r["entity_id"], r["first_pos"]) for r in rows] == [
        (b.entity_id, 1),
        (a.entity_id, 1),
        (a.entity_id, 2),
    ]


async def _emit_in_tx(conn: asyncpg.Connection, event: Event) -> None:
    async with conn.transaction():
        await emit(conn, event)


async def test_emit_outside_a_transaction_is_refused(conn: asyncpg.Connection) -> None:
    with pytest.raises(RuntimeError, match="inside the writer's transaction"):
        await emit(conn, an_event("user.updated", Stream.user(uuid.uuid4())))


async def test_large_events_are_announced_without_their_body(
    conn: asyncpg.Connection, listener: Listener
) -> None:
    stream = Stream.channel(uuid.uuid4())
    big = {"text": "x" * 9000}
    async with conn.transaction():
        await emit(conn, an_event("message.created", stream, big))
    await listener.wait_for(1)
    assert "ev" not in listener.payloads[0] and listener.payloads[0]["p"] == 1
    stored = await conn.fetchval(
        "SELECT e.data FROM events e JOIN event_commits c ON c.stream_id = e.stream_id "
        "AND e.pos = c.first_pos WHERE c.g = $1",
        listener.payloads[0]["g"],
    )
    assert stored == big


async def test_emit_many_puts_user_streams_first_and_keeps_order_within_a_stream(
    conn: asyncpg.Connection,
) -> None:
    channel, user = Stream.channel(uuid.uuid4()), Stream.user(uuid.uuid4())
    events = [
        an_event("message.deleted", channel, {"n": 1}),
        an_event("user.updated", user, {"n": 2}),
        an_event("message.deleted", channel, {"n": 3}),
    ]
    async with conn.transaction():
        await emit_many(conn, events)
    rows = await conn.fetch(
        "SELECT c.g, s.kind, e.pos, e.data FROM event_commits c "
        "JOIN event_streams s ON s.id = c.stream_id "
        "JOIN events e ON e.stream_id = c.stream_id AND e.pos BETWEEN c.first_pos AND c.last_pos "
        "ORDER BY c.g, e.pos"
    )
    assert [(r["g"], r["kind"], r["pos"], r["data"]["n"]) for r in rows] == [
        (1, "user", 1, 2),
        (2, "channel", 1, 1),
        (2, "channel", 2, 3),
    ]


async def test_a_batch_to_one_stream_is_one_notification_in_order(
    conn: asyncpg.Connection, listener: Listener
) -> None:
    stream = Stream.channel(uuid.uuid4())
    async with conn.transaction():
        await emit(conn, an_event("message.deleted", stream, {"n": 0}))
        await emit_many(conn, [an_event("message.deleted", stream, {"n": i}) for i in range(1, 6)])
    await listener.wait_for(2)
    first, batch = listener.payloads
    assert (first["g"], first["p"], first["n"]) == (1, 1, 1)
    assert (batch["g"], batch["f"], batch["l"], batch["p"], batch["n"]) == (2, 2, 6, 6, 5)
    assert [d["n"] for _, d in batch["ev"]] == [1, 2, 3, 4, 5]


async def test_a_batch_too_big_for_one_notification_is_spread_over_several_in_order(
    conn: asyncpg.Connection, listener: Listener, pool: asyncpg.Pool
) -> None:
    stream = Stream.channel(uuid.uuid4())
    events = [an_event("message.deleted", stream, {"n": i, "pad": "x" * 500}) for i in range(40)]
    events.insert(20, an_event("message.deleted", stream, {"n": "huge", "pad": "y" * 9000}))
    async with conn.transaction():
        await emit_many(conn, events)
    await listener.wait_for(3)
    await fence(pool, listener)
    positions: list[int] = []
    carried: list[object] = []
    for note in listener.payloads:
        first = note["p"] - note["n"] + 1
        positions += range(first, note["p"] + 1)
        carried += [d["n"] for _, d in note["ev"]] if "ev" in note else ["(read from the log)"]
    assert positions == list(range(1, 42))  # every position once, in order
    assert len(listener.payloads) >= 3
    assert carried == [*range(20), "(read from the log)", *range(20, 40)]
    assert all(len(orjson.dumps(p)) < 8000 for p in listener.payloads)
    assert {p["g"] for p in listener.payloads} == {1}  # one commit, announced in pieces


async def test_a_deletion_and_an_edit_say_whom_the_message_mentioned(
    client: httpx.AsyncClient, conn: asyncpg.Connection, make_user: MakeUser
) -> None:
    # A reader who never loaded the message still tells whether its mention badge
    # changes: message.updated says whom it mentioned before, message.deleted whom it
    # mentioned and who wrote it (all encoded once, the same for every reader).
    ann, ben = await make_user("ann"), await make_user("ben")
    dm = (await direct(client, ann, ben))["id"]
    sent = await say(client, ben, dm, f"hey <@{ann.id}>")
    url = f"/api/channels/{dm}/messages/{sent['id']}"
    edited = await client.patch(url, headers=ben.headers, json={"content": "hey you"})
    assert edited.status_code == 200, edited.text
    assert (await client.delete(url, headers=ben.headers)).status_code == 204
    logged = {t: d for t, d in await events_of(conn, "channel", uuid.UUID(dm))}
    assert logged["message.updated"]["mentions"] == []
    assert logged["message.updated"]["previous_mentions"] == {
        "mentions": [str(ann.id)],
        "mention_roles": [],
        "mention_everyone": False,
    }
    tombstone = (await client.get(url, headers=ann.headers)).json()
    assert logged["message.deleted"] == {
        "id": sent["id"],
        "channel_id": dm,
        "seq": sent["seq"],
        "deleted_at": tombstone["deleted_at"],  # (as history shows it from then on)
        "author_id": str(ben.id),
        "mentions": [],  # (as it was when deleted: the edit took the mention out)
        "mention_roles": [],
        "mention_everyone": False,
    }
