"""Past one machine on PostgreSQL's own tools: XFChat through PgBouncer in transaction
mode (LISTEN direct), with a streaming standby for searches and older history."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from bench.outage import outage_under_load
from bench.pgcluster import Cluster, ensure_pgbouncer
from tests import factories
from tests.conftest import make_settings
from tests.factories import TestUser
from tests.realtime.clients import sse_stream
from tests.support import METRICS_HEADERS, Servers, one_at_a_time
from xfchat.db.migrate import Migrator
from xfchat.db.pool import create_pool


def _ensure_pgbouncer() -> str | None:
    with one_at_a_time("apt"):
        return ensure_pgbouncer()


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    binary = await asyncio.to_thread(_ensure_pgbouncer)
    if binary is None:  # (not root, or not Debian: nothing to install it with)
        pytest.skip("pgbouncer is not installed and cannot be installed here (apt-get)")
    # Three server connections for XFChat's ten: each transaction may land on another.
    made = await asyncio.to_thread(Cluster.start, durable=False, bouncer=binary, pool_size=3)
    try:
        conn = await asyncpg.connect(made.primary.url)
        await Migrator(conn).run()
        await conn.close()
        yield made
    finally:
        await asyncio.to_thread(made.close)


def replica_reads(metrics: str) -> dict[str, float]:
    return {
        m.group(1): float(m.group(2))
        for m in re.finditer(r'xfchat_replica_reads_total\{outcome="(\w+)"\} (\S+)', metrics)
    }


async def search(api: httpx.AsyncClient, who: TestUser, word: str) -> list[str]:
    r = await api.get("/api/search", params={"q": word}, headers=who.headers)
    assert r.status_code == 200, r.text
    return [hit["message"]["content"] for hit in r.json()["results"]]


async def test_through_pgbouncer_with_a_replica(cluster: Cluster, tmp_path: Path) -> None:
    assert cluster.bouncer is not None and cluster.standby is not None
    primary = cluster.primary.url
    settings = make_settings(primary)
    pool = await create_pool(settings)
    ann = await factories.user(pool, settings, "ann")
    ben = await factories.user(pool, settings, "ben")
    await factories.befriend(ann, ben)  # (a group takes its owner's friends)
    await pool.close()
    servers = Servers(
        cluster.bouncer.url_for("postgres"), settings.secret.get_secret_value(), tmp_path
    )
    try:
        _, base = servers.start(
            XFCHAT_DB_POOLER="transaction",
            XFCHAT_LISTEN_URL=primary,
            XFCHAT_REPLICA_URL=cluster.standby.url,
            XFCHAT_REPLICA_WAIT="1",
        )
        async with httpx.AsyncClient(base_url=base, timeout=10) as api:
            dm = (await factories.direct(api, ann, ben))["id"]
            async with sse_stream(base, ben.access_token) as stream:
                # Concurrent sends share three server connections: no named statement
                # may be expected on the next transaction's connection.
                sends = await asyncio.gather(
                    *(
                        factories.send_message(
                            api, ann, dm, f"w{k} {i}", message_id=str(uuid.uuid4())
                        )
                        for k in range(8)
                        for i in range(5)
                    )
                )
                assert {r.status_code for r in sends} == {201}, [r.text for r in sends]
                got = await stream.collect("message.created", 40)  # LISTEN went direct
                assert sorted(e.data["seq"] for e in got) == list(range(1, 41))

            # Read-your-writes: each search right after the send finds it.
            for word in ("amber", "basalt", "cobalt"):
                assert (await factories.send_message(api, ann, dm, word)).status_code == 201
                assert await search(api, ann, word) == [word]
            older = await api.get(f"/api/channels/{dm}/messages?before=10", headers=ben.headers)
            assert [m["seq"] for m in older.json()][:2] == [9, 8]
            reads = replica_reads((await api.get("/metrics", headers=METRICS_HEADERS)).text)
            assert reads.get("replica", 0) >= 4, reads

            # The standby stops replaying: a read waits up to 1 s, then the primary
            # answers, with the write the standby has not seen.
            standby = await asyncpg.connect(cluster.standby.url)
            try:
                await standby.execute("SELECT pg_wal_replay_pause()")
                assert (await factories.send_message(api, ann, dm, "dolomite")).status_code == 201
                assert await search(api, ann, "dolomite") == ["dolomite"]
                reads = replica_reads((await api.get("/metrics", headers=METRICS_HEADERS)).text)
                assert reads.get("primary_lagging") == 1, reads
            finally:
                await standby.execute("SELECT pg_wal_replay_resume()")
                await standby.close()

            # The standby down: reads go to the primary.
            await asyncio.to_thread(cluster.standby.stop)
            try:
                assert await search(api, ann, "cobalt") == ["cobalt"]
                reads = replica_reads((await api.get("/metrics", headers=METRICS_HEADERS)).text)
                assert reads.get("primary_unreachable", 0) >= 1, reads
            finally:
                await asyncio.to_thread(cluster.standby.start)

        # The primary stopped under load behind PgBouncer: 503s, never a 500; nothing
        # acknowledged lost. (PgBouncer may pass the server's FATAL on in the middle of
        # an exchange, which asyncpg reports as an InternalClientError: bench.cluster
        # met it; this short run seldom does.)
        async with httpx.AsyncClient(base_url=base, timeout=10) as api:
            made = await api.post(
                "/api/conversations",
                headers=ann.headers,
                json={"kind": "group", "name": "crew", "participant_ids": [str(ben.id)]},
            )
            fresh = made.json()["id"]
        port = cluster.primary.port
        outcome = await outage_under_load(
            [base],
            [ben.access_token, ann.access_token],
            fresh,
            database_url=primary,
            stop_db=cluster.primary.stop,
            start_db=lambda: cluster.primary.start(port=port),
            down_s=1.5,
            senders=8,
            warm_s=0.5,
            settle_s=0.5,
        )
        report = outcome.report()
        assert set(outcome.statuses) <= {"201", "503"}, report
        assert outcome.lost == set() and outcome.gap_free and not outcome.undelivered, report
    finally:
        servers.stop_all()
