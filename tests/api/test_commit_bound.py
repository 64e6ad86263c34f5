"""Every COMMIT is bounded. PostgreSQL turns statement_timeout off before COMMIT runs
the deferred trigger that takes the event_clock row lock (migration 0008): with that
row locked elsewhere (an operator's lock, a commit stuck on a synchronous standby) a
write's COMMIT waited as long as the lock was held, holding its pooled connection and
its rows. The lock timeout ends such a wait, and the pool's own bound on every answer
ends what no server timeout does."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from tests import factories
from tests.conftest import make_settings
from tests.factories import MakeUser
from xfchat.db.pool import ANSWER_MARGIN_S
from xfchat.settings import Settings

TIMEOUT_S = 1.0


@pytest.fixture
def settings(db_url: str) -> Settings:
    return make_settings(db_url, statement_timeout_s=TIMEOUT_S)


@pytest.fixture
async def holder(db_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A second session, as an operator's."""
    conn = await asyncpg.connect(db_url)
    try:
        yield conn
    finally:
        await conn.close()


async def test_a_write_whose_commit_waits_for_the_event_clock_is_503_within_the_timeout(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    pool: asyncpg.Pool,
    holder: asyncpg.Connection,
) -> None:
    """Was: the PATCH and the send hung as long as the lock was held (the pool's
    connections with them), and the send's batch kept its author's rows locked."""
    ann, _ben, dm = await factories.pair(client, make_user)
    await holder.execute("BEGIN")
    clock = await holder.fetchval("SELECT g FROM event_clock FOR UPDATE")  # held for good
    message_id = str(uuid.uuid4())
    async with asyncio.timeout(10):  # (the lock is held for good: a hang fails here)
        patched, sent = await asyncio.gather(
            client.patch("/api/users/@me", headers=ann.headers, json={"display_name": "Late"}),
            factories.send_message(client, ann, dm, "late", message_id=message_id),
        )
    for response in (patched, sent):
        assert response.status_code == 503, response.text
        # (the server's lock timeout, 1 s, and not the pool's cancel a little later)
        assert response.json()["code"] == "DATABASE_TIMEOUT", response.text
        assert response.headers["Retry-After"] == "1"

    # Nothing half-done: no session still waits, no event, no message, no name.
    waiting = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
    assert await holder.fetchval(waiting) == 0
    me = await client.get("/api/users/@me", headers=ann.headers)
    assert me.json()["display_name"] != "Late"
    history = await client.get(f"/api/channels/{dm}/messages", headers=ann.headers)
    assert history.status_code == 200 and history.json() == []
    await holder.execute("ROLLBACK")
    assert await holder.fetchval("SELECT g FROM event_clock") == clock

    # Once the lock is gone the same requests succeed (the send's retry is idempotent).
    again = await client.patch("/api/users/@me", headers=ann.headers, json={"display_name": "On"})
    assert again.status_code == 200, again.text
    await factories.say(client, ann, dm, "late", message_id=message_id)


async def test_a_commit_no_server_timeout_ends_is_cancelled_by_the_pool(
    pool: asyncpg.Pool,
) -> None:
    """A COMMIT that stalls with no lock to time out (as one waiting for a synchronous
    standby does: a deferred trigger that sleeps stands in for it) is cancelled by the
    pool's answer bound: a TimeoutError (503 DATABASE_UNAVAILABLE), never a success."""
    async with pool.acquire() as conn:
        await conn.execute(
            """
            CREATE TABLE stall (x int);
            CREATE FUNCTION stall() RETURNS trigger LANGUAGE plpgsql
                AS $$ BEGIN PERFORM pg_sleep(60); RETURN NULL; END $$;
            CREATE CONSTRAINT TRIGGER stall AFTER INSERT ON stall
                DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION stall();
            """
        )
        started = time.monotonic()
        async with asyncio.timeout(10):  # (a hang fails here, not as the TimeoutError below)
            with pytest.raises(TimeoutError):
                async with conn.transaction():
                    await conn.execute("INSERT INTO stall VALUES (1)")
        assert time.monotonic() - started >= TIMEOUT_S + ANSWER_MARGIN_S
    async with pool.acquire() as conn:  # the cancel reached the server: rolled back
        assert await conn.fetchval("SELECT count(*) FROM stall") == 0
        assert not conn.is_in_transaction()
