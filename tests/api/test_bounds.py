"""Bounded under stress: a full send queue and an exhausted pool answer 503 with
Retry-After at once, and the server recovers as soon as the pressure goes."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import orjson
import pytest

from tests import factories
from tests.conftest import make_settings
from tests.factories import AppWith, MakeUser
from tests.support import METRICS_HEADERS
from xfchat.app import create_app
from xfchat.db.pool import NestedAcquire, create_pool
from xfchat.db.queries import event_log
from xfchat.domain.messages import author_json
from xfchat.domain.messages_batch import SendRequest
from xfchat.realtime.feeds import open_user_feed
from xfchat.settings import Settings


@contextlib.asynccontextmanager
async def channel_locked(pool: asyncpg.Pool, channel_id: str) -> AsyncIterator[None]:
    """Hold the channel's row FOR UPDATE (as a change of who may see it does), in a task
    of its own: send batches wait for it."""
    locked, release = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT 1 FROM channels WHERE id = $1 FOR UPDATE", channel_id)
            locked.set()
            await release.wait()

    task = asyncio.create_task(hold())
    try:
        await asyncio.wait_for(locked.wait(), 10)
        yield
    finally:
        release.set()
        await task


@contextlib.asynccontextmanager
async def holding(pool: asyncpg.Pool, n: int) -> AsyncIterator[None]:
    """n connections of the pool held by n other tasks until the block ends."""
    release = asyncio.Event()
    held = 0

    async def hold() -> None:
        nonlocal held
        async with pool.acquire():
            held += 1
            await release.wait()

    tasks = [asyncio.create_task(hold()) for _ in range(n)]
    try:
        while held < n:
            await asyncio.sleep(0.01)
        yield
    finally:
        release.set()
        await asyncio.gather(*tasks)


async def test_a_full_send_queue_answers_503_and_recovers_at_once(
    app_with: AppWith, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    client = await app_with(send_queue=3, rate_messages_user="1000/60")
    ann, ben, dm = await factories.pair(client, make_user)
    url = f"/api/channels/{dm}/messages"
    async with channel_locked(pool, dm):
        held = [
            asyncio.create_task(client.post(url, headers=ann.headers, json={"content": f"m{i}"}))
            for i in range(3)
        ]
        async with asyncio.timeout(10):  # all three accepted; a batch waits for the lock
            while (
                "xfchat_sends_pending 3.0"
                not in (await client.get("/metrics", headers=METRICS_HEADERS)).text
            ):
                await asyncio.sleep(0.01)
        await factories.lock_waiters(pool)
        assert not any(t.done() for t in held)
        full = await asyncio.wait_for(
            client.post(url, headers=ann.headers, json={"content": "one too many"}), 5
        )
        assert full.status_code == 503 and full.json()["code"] == "SEND_QUEUE_FULL"
        assert full.headers["retry-after"] == "1"
    answers = await asyncio.wait_for(asyncio.gather(*held), 10)
    assert [a.status_code for a in answers] == [201, 201, 201]
    after = await client.post(url, headers=ann.headers, json={"content": "room again"})
    assert after.status_code == 201 and after.json()["seq"] == 4
    assert "one too many" not in {
        m["content"] for m in (await client.get(url, headers=ben.headers)).json()
    }


async def test_a_send_that_cannot_be_written_in_time_gets_503_and_nothing_is_stored(
    app_with: AppWith, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    client = await app_with(send_timeout_s=0.5, rate_messages_user="1000/60")
    ann, _, dm = await factories.pair(client, make_user)
    url = f"/api/channels/{dm}/messages/{uuid.uuid4()}"
    async with channel_locked(pool, dm):
        late = await asyncio.wait_for(
            client.put(url, headers=ann.headers, json={"content": "x"}), 5
        )
        assert late.status_code == 503 and late.json()["code"] == "SEND_TIMEOUT"
        assert late.headers["retry-after"] == "1"
    # Its batch had begun: it may have been stored; sending it again tells which, once.
    again = await client.put(url, headers=ann.headers, json={"content": "x"})
    assert again.status_code in (200, 201)
    history = (await client.get(f"/api/channels/{dm}/messages", headers=ann.headers)).json()
    assert [m["content"] for m in history] == ["x"]


@contextlib.asynccontextmanager
async def small_pool_app(
    db_url: str, settings: Settings
) -> AsyncIterator[tuple[Any, httpx.AsyncClient, asyncpg.Pool]]:
    """The app on a pool of two connections that gives up waiting after 0.3 s."""
    settings = make_settings(
        db_url,
        secret=settings.secret.get_secret_value(),
        pool_min=0,
        pool_max=2,
        acquire_timeout_s=0.3,
    )
    small = await create_pool(settings, strict=True)
    try:
        app = create_app(settings, pool=small)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://test"
            ) as client,
        ):
            yield app, client, small
    finally:
        await small.close()


async def test_an_exhausted_pool_answers_503_and_recovers_at_once(
    db_url: str, make_user: MakeUser, settings: Settings
) -> None:
    async with small_pool_app(db_url, settings) as (_app, client, small):
        ann = await make_user("ann")
        async with holding(small, 2):
            busy = await asyncio.wait_for(client.get("/api/users/@me", headers=ann.headers), 5)
            assert busy.status_code == 503 and busy.json()["code"] == "DATABASE_BUSY"
            assert busy.headers["retry-after"] == "1"
            ready = await asyncio.wait_for(client.get("/ready"), 5)
            assert ready.status_code == 503 and ready.json()["code"] == "NOT_READY"
        assert (await client.get("/api/users/@me", headers=ann.headers)).status_code == 200
        metrics = (await client.get("/metrics", headers=METRICS_HEADERS)).text
        assert "xfchat_db_pool_exhausted_total 2.0" in metrics


async def test_delivery_outlives_an_exhausted_pool(
    db_url: str, make_user: MakeUser, settings: Settings, conn: asyncpg.Connection
) -> None:
    # An event too big for its notification must be read from the log; while no
    # connection comes free, the hub keeps trying instead of giving up on delivery.
    async with small_pool_app(db_url, settings) as (app, client, small):
        _, ben, dm = await factories.pair(client, make_user)
        sub, _, _ = await open_user_feed(app.state.hub, small, ben.actor, None)
        try:
            while await sub.next(idle_s=0.2) is not None:
                pass  # caught up, live
            big = "€" * 3000  # 9,000 bytes: announced without its body
            async with holding(small, 2):
                await event_log.insert_events(
                    conn,
                    kind="channel",
                    entity_id=uuid.UUID(dm),
                    types=["message.created"],
                    datas=[orjson.dumps({"id": "big", "content": big}).decode()],
                )
                async with asyncio.timeout(10):  # the hub's read refused, and tried again
                    while small.exhausted < 2:
                        await asyncio.sleep(0.01)
            item = await sub.next(idle_s=5)
            assert item is not None, "nothing delivered after the pool came free"
            assert item[0].data["id"] == "big" and item[0].data["content"] == big
        finally:
            sub.close("test")


async def test_asking_for_a_second_connection_while_holding_one_is_refused(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire():
        with pytest.raises(NestedAcquire):
            async with pool.acquire():
                pass
    async with pool.acquire():
        pass  # one at a time is fine


async def test_shutdown_writes_the_sends_in_flight_and_refuses_new_ones(
    app: Any, client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    ann, ben, dm = await factories.pair(client, make_user)
    url = f"/api/channels/{dm}/messages"
    writer = app.state.writer
    async with channel_locked(pool, dm):
        in_flight = asyncio.create_task(
            client.post(url, headers=ann.headers, json={"content": "in flight"})
        )
        await factories.lock_waiters(pool)
        stopping = asyncio.create_task(writer.stop(drain_s=10))
        async with asyncio.timeout(5):
            while writer.accepting:
                await asyncio.sleep(0.01)
        refused = await client.post(url, headers=ann.headers, json={"content": "too late"})
        assert refused.status_code == 503 and refused.json()["code"] == "SHUTTING_DOWN"
        assert refused.headers["retry-after"] == "1"
        assert not in_flight.done()
    assert (await asyncio.wait_for(in_flight, 10)).status_code == 201
    await asyncio.wait_for(stopping, 10)
    history = (await client.get(url, headers=ben.headers)).json()
    assert [m["content"] for m in history] == ["in flight"]


async def test_shutdown_writes_a_batch_in_flight_whose_sends_were_answered_timed_out(
    app: Any, client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    """A send whose batch is writing when its deadline passes is answered 503 (it may be
    stored); the batch is still in flight, and shutdown gives it its drain time as any
    (was: the send answered, nothing counted as pending, and shutdown cancelled the
    batch at once: the retry the answer asks for found nothing stored)."""
    ann, ben, dm = await factories.pair(client, make_user)
    url = f"/api/channels/{dm}/messages/{uuid.uuid4()}"
    writer = app.state.writer
    writer.deadline_s = 0.5
    async with channel_locked(pool, dm):
        late = await asyncio.wait_for(
            client.put(url, headers=ann.headers, json={"content": "in flight"}), 5
        )
        assert late.status_code == 503 and late.json()["code"] == "SEND_TIMEOUT"
        stopping = asyncio.create_task(writer.stop(drain_s=30))
        await asyncio.wait({stopping}, timeout=1)  # (a batch in flight keeps it waiting)
    await asyncio.wait_for(stopping, 10)
    history = (await client.get(f"/api/channels/{dm}/messages", headers=ben.headers)).json()
    assert [m["content"] for m in history] == ["in flight"]


async def test_a_send_whose_sender_is_cancelled_stops_counting_as_pending(
    app: Any, client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    """A send whose sender is cancelled (its request's task) while it waits for a batch:
    was never answered once its deadline passed (the deadline's timer went with the
    sender, and the writer drops a send whose deadline passed without answering it),
    so it counted as pending for ever, and every stop waited its whole drain time."""
    ann, _, dm = await factories.pair(client, make_user)
    writer = app.state.writer
    author = author_json(ann.id, ann.username, None, None, False)
    assert author is not None

    def send(content: str) -> Any:
        request = SendRequest(ann.actor, author, UUID(dm), uuid.uuid4(), content, False)
        return asyncio.create_task(writer.send(request))

    async with channel_locked(pool, dm):
        writing = send("its batch waits for the lock")
        await factories.lock_waiters(pool)
        writer.deadline_s = 0.3
        queued = send("queued behind it")
        await asyncio.sleep(0)  # (queued)
        assert writer.pending == 2
        queued.cancel()
        await asyncio.sleep(0.6)  # (past the queued one's deadline, its batch not begun)
    assert (await asyncio.wait_for(writing, 10)).created
    async with asyncio.timeout(5):  # (the writer has dropped the queued one by now)
        while writer._channels:
            await asyncio.sleep(0.01)
    assert writer.pending == 0
