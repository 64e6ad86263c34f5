from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator

import asyncpg
import orjson
import pytest

from xfchat.realtime.events import NOTIFY_CHANNEL, Event, Stream, emit, emit_many


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
                    await emit(c, Event("test.written", stream, {"i": i}))
                    await asyncio.sleep(delays[i])  # hold the stream's counter row a while
                    if i in rolled_back:
                        raise Rollback
            except Rollback:
                pass

    await asyncio.gather(*(write(i) for i in range(writers)))
    committed = writers - len(rolled_back)
    await listener.wait_for(committed)
    await asyncio.sleep(0.2)  # would catch a stray notification for a rolled-back write

    positions = [p["p"] for p in listener.payloads]
    assert positions == list(range(1, committed + 1))  # heard in commit order, no gap
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
        await emit(c, Event("user.updated", stream, {"x": 1}))
        await asyncio.sleep(0.3)
        assert listener.payloads == []
        await tx.commit()
    await listener.wait_for(1)
    assert listener.payloads[0]["p"] == 1
    assert listener.payloads[0]["ev"] == [["user.updated", {"x": 1}]]


async def test_a_rolled_back_write_is_never_heard_and_leaves_no_gap(
    pool: asyncpg.Pool, listener: Listener
) -> None:
    stream = Stream.server(uuid.uuid4())
    async with pool.acquire() as c:
        with pytest.raises(Rollback):
            async with c.transaction():
                await emit(c, Event("server.updated", stream, {"n": "lost"}))
                raise Rollback
        async with c.transaction():
            await emit(c, Event("server.updated", stream, {"n": "kept"}))
    await listener.wait_for(1)
    await asyncio.sleep(0.2)
    assert [(p["p"], p["ev"]) for p in listener.payloads] == [
        (1, [["server.updated", {"n": "kept"}]])
    ]


async def test_streams_do_not_wait_for_each_other(pool: asyncpg.Pool) -> None:
    a, b = Stream.channel(uuid.uuid4()), Stream.channel(uuid.uuid4())
    async with pool.acquire() as holder, pool.acquire() as other:
        tx = holder.transaction()
        await tx.start()
        await emit(holder, Event("test.held", a))
        async with asyncio.timeout(2):  # would hang if streams shared one lock
            async with other.transaction():
                await emit(other, Event("test.free", b))
        blocked = asyncio.create_task(_emit_in_tx(other, Event("test.waits", a)))
        await asyncio.sleep(0.2)
        assert not blocked.done()  # the same stream does wait for the holder
        await tx.commit()
        position = await asyncio.wait_for(blocked, 5)
        assert position.pos == 2


async def _emit_in_tx(conn: asyncpg.Connection, event: Event):  # type: ignore[no-untyped-def]
    async with conn.transaction():
        return await emit(conn, event)


async def test_emit_outside_a_transaction_is_refused(conn: asyncpg.Connection) -> None:
    with pytest.raises(RuntimeError, match="inside the writer's transaction"):
        await emit(conn, Event("test.loose", Stream.user(uuid.uuid4())))


async def test_large_events_are_announced_without_their_body(
    conn: asyncpg.Connection, listener: Listener
) -> None:
    stream = Stream.channel(uuid.uuid4())
    big = {"text": "x" * 9000}
    async with conn.transaction():
        position = await emit(conn, Event("message.created", stream, big))
    await listener.wait_for(1)
    assert "ev" not in listener.payloads[0] and listener.payloads[0]["p"] == position.pos
    stored = await conn.fetchval(
        "SELECT data FROM events WHERE stream_id = $1 AND pos = $2",
        position.stream_id,
        position.pos,
    )
    assert stored == big


async def test_emit_many_keeps_order_within_a_stream_and_maps_positions(
    conn: asyncpg.Connection,
) -> None:
    a, b = sorted([Stream.user(uuid.uuid4()), Stream.user(uuid.uuid4())])
    events = [
        Event("test.one", b, {"n": 1}),
        Event("test.two", a, {"n": 2}),
        Event("test.three", b, {"n": 3}),
    ]
    async with conn.transaction():
        positions = await emit_many(conn, events)
    for event, position in zip(events, positions, strict=True):
        data = await conn.fetchval(
            "SELECT data FROM events WHERE stream_id = $1 AND pos = $2",
            position.stream_id,
            position.pos,
        )
        assert data == event.data
    assert [p.pos for p in positions] == [1, 1, 2]


async def test_a_batch_to_one_stream_is_one_notification_in_order(
    conn: asyncpg.Connection, listener: Listener
) -> None:
    stream = Stream.channel(uuid.uuid4())
    async with conn.transaction():
        await emit(conn, Event("test.first", stream, {"n": 0}))
        await emit_many(conn, [Event("test.many", stream, {"n": i}) for i in range(1, 6)])
    await listener.wait_for(2)
    first, batch = listener.payloads
    assert (first["p"], first["n"]) == (1, 1)
    assert (batch["p"], batch["n"]) == (6, 5)
    assert [d["n"] for _, d in batch["ev"]] == [1, 2, 3, 4, 5]


async def test_a_batch_too_big_for_one_notification_is_spread_over_several_in_order(
    conn: asyncpg.Connection, listener: Listener
) -> None:
    stream = Stream.channel(uuid.uuid4())
    events = [Event("test.big", stream, {"n": i, "pad": "x" * 500}) for i in range(40)]
    events.insert(20, Event("test.huge", stream, {"n": "huge", "pad": "y" * 9000}))
    async with conn.transaction():
        await emit_many(conn, events)
    await listener.wait_for(3)
    await asyncio.sleep(0.3)
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
