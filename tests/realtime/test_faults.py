"""Faults with real processes: a server killed mid-burst, PostgreSQL stopped under load
and started again, one client that stops reading, TLS to PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import math
import shutil
import signal
import uuid
from pathlib import Path

import asyncpg
import httpx

from bench.outage import outage_under_load
from tests import factories
from tests.conftest import make_settings
from tests.factories import MakeUser, TestUser
from tests.realtime.clients import sse_stream
from tests.support import METRICS_HEADERS, Servers, reading_nothing
from xfchat.db.embedded import throwaway
from xfchat.db.migrate import Migrator
from xfchat.db.pool import create_pool


async def test_sigkill_mid_burst_loses_no_acknowledged_message(
    servers: Servers, make_user: MakeUser, db_url: str
) -> None:
    proc, a = servers.start()
    async with httpx.AsyncClient(base_url=a, timeout=10) as api:
        ann, ben, dm = await factories.pair(api, make_user)
    async with sse_stream(a, ben.access_token) as before:
        resume_from = before.ready.id

    acked: list[str] = []

    async def sender(k: int) -> None:
        async with httpx.AsyncClient(base_url=a, timeout=5) as api:
            for i in range(1000):
                mid = str(uuid.uuid4())
                try:
                    r = await factories.send_message(api, ann, dm, f"{k}-{i}", message_id=mid)
                except httpx.HTTPError:
                    return  # the server died under this request: not acknowledged
                # Until the kill every send is new and allowed: anything else (a 500, a
                # 429) is a failure, not a send to skip.
                assert r.status_code == 201, r.text
                acked.append(mid)

    senders = [asyncio.create_task(sender(k)) for k in range(8)]
    try:
        async with asyncio.timeout(60):  # fail, rather than hang, if acks stop coming
            while len(acked) < 150:
                for task in senders:
                    if task.done():
                        task.result()  # a sender that failed fails the test here
                await asyncio.sleep(0.01)
    except BaseException:
        for task in senders:
            task.cancel()
        await asyncio.gather(*senders, return_exceptions=True)
        raise
    proc.proc.send_signal(signal.SIGKILL)
    await asyncio.gather(*senders)

    conn = await asyncpg.connect(db_url)
    stored = {
        str(r["id"]): r["seq"]
        for r in await conn.fetch(
            "SELECT id, seq FROM messages WHERE channel_id = $1", uuid.UUID(dm)
        )
    }
    await conn.close()
    assert set(acked) <= set(stored)  # every acknowledged send is durable
    assert sorted(stored.values()) == list(range(1, len(stored) + 1))

    _, b = servers.start()  # another process resumes the subscriber
    async with sse_stream(b, ben.access_token, last_event_id=resume_from) as resumed:
        got = await resumed.collect("message.created", len(stored), timeout=30)
        assert [e.data["seq"] for e in got] == list(range(1, len(stored) + 1))  # no gap, no repeat
        assert {e.data["id"] for e in got} == set(stored)
        with contextlib.suppress(TimeoutError):
            extra = await resumed.next("message.created", timeout=1)
            raise AssertionError(f"a duplicate arrived: {extra}")


async def test_postgres_stopped_under_load_loses_nothing_and_recovers(tmp_path: Path) -> None:
    """PostgreSQL stopped for 2 s under 6 senders on two processes, started again: sends
    in flight get 503 (never 500, never a hang), every acknowledged send is stored in
    gap-free order and reaches the open streams (which stay open), /ready says 503
    while the database is down, and everything works again without restarting XFChat.
    `bench.outage` runs the same for 10 s under more load."""
    pg, root = throwaway()
    try:
        url = pg.url
        conn = await asyncpg.connect(url)
        await Migrator(conn).run()
        await conn.close()
        settings = make_settings(url)
        pool = await create_pool(settings)
        ann = await factories.user(pool, settings, "ann")
        ben = await factories.user(pool, settings, "ben")
        await pool.close()
        servers = Servers(url, settings.secret.get_secret_value(), tmp_path)
        try:
            bases = [servers.start()[1], servers.start()[1]]
            async with httpx.AsyncClient(base_url=bases[0], timeout=10) as api:
                dm = (await factories.direct(api, ann, ben))["id"]
            port = pg.port
            outcome = await outage_under_load(
                bases,
                [ben.access_token, ann.access_token],
                dm,
                database_url=url,
                stop_db=pg.stop,
                start_db=lambda: pg.start(port=port),
                down_s=2,
                senders=6,
                warm_s=0.5,
                settle_s=0.5,
            )
        finally:
            servers.stop_all()
    finally:
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)
    report = outcome.report()
    assert set(outcome.statuses) <= {"201", "503"}, report  # no 500, no cut connection
    assert outcome.statuses["503"] > 0, report  # the outage did hit sends in flight
    assert outcome.lost == set() and outcome.gap_free, report
    assert outcome.undelivered == 0 and outcome.reconnects == 0, report
    assert outcome.ready_statuses.keys() == {503}, report
    assert not math.isnan(outcome.ready_again_s), report  # ready again (bounded wait)


async def _send(api: httpx.AsyncClient, who: TestUser, dm: str, content: str) -> str:
    """PUT with a fixed id, retried while the server reports the database unavailable:
    retrying is safe because the id makes the send idempotent."""
    mid = str(uuid.uuid4())
    for _ in range(50):
        r = await factories.send_message(api, who, dm, content, message_id=mid)
        if r.status_code in (200, 201):
            return mid
        assert r.status_code == 503, r.text
        await asyncio.sleep(0.2)
    raise AssertionError("the send never went through")


async def test_a_stalled_client_does_not_hold_up_the_others(
    servers: Servers, make_user: MakeUser
) -> None:
    """A client that stops reading fills the socket buffers (the kernel alone takes up to
    4 MB on loopback here), then its bounded queue; it is cut off as a slow consumer while
    the healthy client gets everything, in order."""
    _, base = servers.start(XFCHAT_REALTIME_QUEUE="20")
    ann, ben, cid = await make_user("ann"), await make_user("ben"), await make_user("cid")
    async with httpx.AsyncClient(base_url=base, timeout=10) as api:
        group = (await factories.group(api, ann, ben, cid))["id"]
        count, text = 1400, "x" * 3990  # about 6 MB that the stalled reader never reads
        async with sse_stream(base, cid.access_token) as healthy:
            stalled = reading_nothing(
                base,
                f"GET /api/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                f"{ben.access_token}\r\n\r\n".encode(),
            )

            async def sender(k: int) -> None:
                for i in range(k, count, 8):
                    await _send(api, ann, group, f"{i:05d}{text}")

            await asyncio.gather(*(sender(k) for k in range(8)))
            got = await healthy.collect("message.created", count, timeout=120)
            assert [e.data["seq"] for e in got] == list(range(1, count + 1))
        metrics = (await api.get("/metrics", headers=METRICS_HEADERS)).text
        assert 'xfchat_realtime_subscriptions_ended_total{reason="slow_consumer"} 1.0' in metrics
        stalled.settimeout(30)
        received = 0
        # Drain what was buffered: then the server has hung up (recv returns b""), or,
        # where collecting took long (a busy box), the kernel has given up on a client
        # that took nothing for that long (TCP_USER_TIMEOUT, api/http_limits.py) and
        # reset it: either way the stalled client is let go.
        with contextlib.suppress(ConnectionResetError):
            while chunk := stalled.recv(1 << 20):
                received += len(chunk)
        stalled.close()
        assert received < count * len(text)


async def test_a_forced_stop_cuts_the_streams_and_still_shuts_the_app_down(
    servers: Servers, make_user: MakeUser, db_url: str
) -> None:
    """Was: SIGQUIT (or a second SIGINT) closed the pool under the open streams, then
    the loop's close cancelled them and the lifespan, each with an ERROR traceback, and
    the app's shutdown never ran: the process's presence was left to expire."""
    proc, base = servers.start(XFCHAT_SHUTDOWN_GRACE="5")
    async with httpx.AsyncClient(base_url=base, timeout=10) as api:
        ann, _ben, _dm = await factories.pair(api, make_user)
    async with sse_stream(base, ann.access_token):
        conn = await asyncpg.connect(db_url)
        try:
            assert await conn.fetchval("SELECT count(*) FROM presence_processes") == 1
            proc.proc.send_signal(signal.SIGQUIT)
            assert await asyncio.to_thread(proc.proc.wait, 10) == 0
            assert await conn.fetchval("SELECT count(*) FROM presence_processes") == 0
        finally:
            await conn.close()
    out = proc.output
    assert "forced stop: 1 request(s) and stream(s) cut off" in out, out
    assert "Application shutdown complete" in out, out
    assert "Traceback" not in out and " ERROR " not in out, out
