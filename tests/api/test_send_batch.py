"""The send batch: one round trip when it can be decided from the access facts read for
the last one (domain/messages_send_fast.py), the checked path otherwise; either way the
same answers, the same stored messages and events, and nothing written that the
current access forbids."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from tests import factories
from tests.conftest import make_settings
from tests.factories import MakeUser, community, override
from tests.support import METRICS_HEADERS, Statements, logged_pool, until_one_waits_for_a_lock
from xfchat.domain.messages import author_json
from xfchat.domain.messages_batch import SendRequest, SendResult
from xfchat.domain.messages_send import write_batch
from xfchat.domain.permissions import Permission as P
from xfchat.settings import Settings


@pytest.fixture
def settings(db_url: str) -> Settings:
    return make_settings(db_url, rate_messages_user="1000/60")


@pytest.fixture
async def statements(app: FastAPI, db_url: str) -> AsyncIterator[Statements]:
    """Every statement the writer's connections send."""
    async with logged_pool(db_url) as (pool, seen):
        writer = app.state.writer
        own, writer.pool = writer.pool, pool
        try:
            yield seen
        finally:
            writer.pool = own


async def test_a_batch_decided_from_known_facts_costs_one_statement(
    client: httpx.AsyncClient, make_user: MakeUser, app: FastAPI, statements: Statements
) -> None:
    ann, ben, dm = await factories.pair(client, make_user, "group")
    await factories.say(client, ben, dm, "(the connection learns its types)")
    statements.take()
    await factories.say(client, ann, dm, "first: the checked path reads the facts")
    checked = statements.take()
    assert checked[0] == "BEGIN;" and checked[-1] == "COMMIT;" and len(checked) == 4, checked
    writer = app.state.writer
    batches = writer.batches
    sent = await asyncio.gather(
        *(
            factories.send_message(
                client,
                (ann, ben)[i % 2],
                dm,
                f"hello <@{ann.id}> {i}",
                message_id=str(uuid.uuid4()),
            )
            for i in range(6)
        ),
        *(
            factories.send_message(client, ben, dm, f"with a nonce {i}", nonce=f"n{i}")
            for i in range(2)
        ),
    )
    assert [r.status_code for r in sent] == [201] * 8, [r.text for r in sent]
    fast = statements.take()
    assert len(fast) == writer.batches - batches, fast  # one statement per batch
    assert all(s.startswith("SELECT o_status") for s in fast), fast


async def test_the_fast_path_stores_and_announces_what_the_checked_path_would(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    ann, ben, cat = await make_user("ann"), await make_user("ben"), await make_user("cat")
    srv = await community(client, ann, ben, cat)
    await factories.say(client, ann, srv.general, "warm")  # (the checked path)
    await factories.say(client, ben, srv.general, "warm too")
    texts = [f"hi <@{ben.id}> and <@{cat.id}>", "@everyone look", "plain", "x" * 3000]
    for text in texts:
        for who in (ann, ben):
            made = await factories.say(client, who, srv.general, text)
            shown = await client.get(
                f"/api/channels/{srv.general}/messages/{made['id']}", headers=ann.headers
            )
            assert shown.json() == made
    logged = [d for t, d in await factories.events_of(conn, "channel", uuid.UUID(srv.general))]
    history = await client.get(
        f"/api/channels/{srv.general}/messages", params={"limit": 100}, headers=ann.headers
    )
    by_id = {m["id"]: m for m in history.json()}
    created = [d for d in logged if d.get("content") is not None and d["id"] in by_id]
    assert len(created) == 2 + 2 * len(texts)
    for data in created:
        assert data == by_id[data["id"]], data  # the event is the message as stored
    everyone = [d for d in created if d["content"] == "@everyone look"]
    assert [d["mention_everyone"] for d in everyone] == [True, False]  # the owner may


async def test_a_change_of_access_is_never_missed(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    """Facts remembered from an earlier batch are checked in the write: a removed
    participant, a denied permission, a timeout lifted in the table alone."""
    ann, ben, cat = await make_user("ann"), await make_user("ben"), await make_user("cat")
    group = str((await factories.group(client, ann, ben, cat))["id"])
    for who in (ann, ben, cat):
        await factories.say(client, who, group, "warm")
    left = await client.delete(f"/api/conversations/{group}/participants/@me", headers=cat.headers)
    assert left.status_code == 204
    gone = await factories.send_message(client, cat, group, "am I still here?")
    assert gone.status_code == 404, gone.text
    srv = await community(client, ann, ben)
    await factories.say(client, ben, srv.general, "warm")
    made = await override(client, ann, srv.general, "member", ben.id, deny=int(P.SEND_MESSAGES))
    assert made.status_code in (200, 204), made.text
    denied = await factories.send_message(client, ben, srv.general, "may I?")
    assert denied.status_code == 403, denied.text
    # a timeout that ends changes no version: the facts the write reads tell it
    made = await override(client, ann, srv.general, "member", ben.id)
    await factories.say(client, ben, srv.general, "again")
    await conn.execute(
        "UPDATE server_members SET timed_out_until = now() + interval '1 hour' "
        "WHERE server_id = $1 AND user_id = $2",
        uuid.UUID(srv.id),
        ben.id,
    )
    muted = await factories.send_message(client, ben, srv.general, "muted?")
    assert muted.status_code == 403 and muted.json()["code"] == "TIMED_OUT", muted.text
    await conn.execute(
        "UPDATE server_members SET timed_out_until = now() - interval '1 second' "
        "WHERE server_id = $1 AND user_id = $2",
        uuid.UUID(srv.id),
        ben.id,
    )
    await factories.say(client, ben, srv.general, "free again")


async def test_repeats_and_limits_get_the_checked_paths_answers(
    client: httpx.AsyncClient, make_user: MakeUser, app_with: factories.AppWith
) -> None:
    ann, ben, dm = await factories.pair(client, make_user, "group")
    mid = str(uuid.uuid4())
    await factories.say(client, ann, dm, "warm")
    first = await factories.send_message(client, ann, dm, "once", message_id=mid)
    again = await factories.send_message(client, ann, dm, "once", message_id=mid)
    other = await factories.send_message(client, ann, dm, "twice?", message_id=mid)
    assert (first.status_code, again.status_code, other.status_code) == (201, 200, 409)
    assert again.json() == first.json()
    nonce = await factories.send_message(client, ann, dm, "n", nonce="k1")
    nonce_again = await factories.send_message(client, ann, dm, "n", nonce="k1")
    assert (nonce.status_code, nonce_again.status_code) == (201, 200)
    fresh = str((await factories.group(client, ann, ben))["id"])
    limited = await app_with(rate_messages_user="3/60")  # (its own writer: nothing known)
    codes = []
    for i in range(5):
        sent = await limited.post(
            f"/api/channels/{fresh}/messages", headers=ann.headers, json={"content": f"{i}"}
        )
        codes.append(sent.status_code)
    assert codes == [201, 201, 201, 429, 429], codes


async def test_a_channels_sends_are_numbered_in_the_order_they_reached_the_writer(
    client: httpx.AsyncClient, make_user: MakeUser, app: FastAPI, conn: asyncpg.Connection
) -> None:
    """One batch of a channel at a time, each the sends that waited meanwhile, oldest
    first: so sequence numbers follow arrival, and a burst goes in a few batches."""
    ann, ben, dm = await factories.pair(client, make_user, "group")
    await factories.say(client, ben, dm, "warm")
    writer = app.state.writer
    arrived: list[str] = []
    send = writer.send

    async def recorded(req: Any) -> Any:
        arrived.append(str(req.message_id))
        return await send(req)

    writer.send = recorded
    batches = writer.batches
    try:
        sent = await asyncio.gather(
            *(
                factories.send_message(
                    client, (ann, ben)[i % 2], dm, f"burst {i}", message_id=str(uuid.uuid4())
                )
                for i in range(40)
            )
        )
    finally:
        del writer.send
    assert [r.status_code for r in sent] == [201] * 40, [r.text for r in sent]
    stored = await conn.fetch(
        "SELECT id::text FROM messages WHERE channel_id = $1 AND content LIKE 'burst %'"
        " ORDER BY seq",
        uuid.UUID(dm),
    )
    assert [r["id"] for r in stored] == arrived
    assert writer.batches - batches < 40  # (the sends that waited went together)


async def test_the_lean_send_route_answers_as_the_documented_one(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    """PUT .../messages/{id} is served by a plain route for ids written 8-4-4-4-12; any
    other spelling reaches the documented route, which answers as it always did."""
    ann, _, dm = await factories.pair(client, make_user, "group")
    url = f"/api/channels/{dm}/messages/"
    upper = str(uuid.uuid4()).upper()
    made = await client.put(url + upper, json={"content": "upper"}, headers=ann.headers)
    assert made.status_code == 201 and made.json()["id"] == upper.lower(), made.text
    squeezed = str(uuid.uuid4()).replace("-", "", 2)  # (Starlette's uuid would take it)
    refused = await client.put(url + squeezed, json={"content": "x"}, headers=ann.headers)
    assert refused.status_code == 400, refused.text
    assert refused.json()["code"] == "VALIDATION_ERROR"
    bad_body = await client.put(url + str(uuid.uuid4()), json={"content": 5}, headers=ann.headers)
    assert bad_body.status_code == 400 and bad_body.json()["code"] == "VALIDATION_ERROR"
    anonymous = await client.put(url + str(uuid.uuid4()), json={"content": "x"})
    assert anonymous.status_code == 401 and anonymous.json()["code"] == "MISSING_TOKEN"
    assert await conn.fetchval("SELECT count(*) FROM messages WHERE content = 'x'") == 0


async def test_a_batch_locks_its_reply_targets_in_id_order(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool, settings: Settings
) -> None:
    """Was: a batch share-locked its reply targets in a set's order, and a bulk deletion
    locks them in id order: a deadlock (the deletion answered 503). Here the deletion is
    held open on its own connection, having locked the lower id; the batch then starts,
    and the deletion asks for the higher id."""
    ann = await make_user("ann")
    srv = await community(client, ann)
    channel = UUID(str(srv.general))
    while True:  # two targets that a set lists higher id first (as the old code locked)
        lo, hi = sorted([uuid.uuid4(), uuid.uuid4()])
        if list({lo, hi}) == [hi, lo]:
            break
    for target in (lo, hi):
        made = await client.put(
            f"/api/channels/{channel}/messages/{target}", headers=ann.headers, json={"content": "t"}
        )
        assert made.status_code == 201
    author = author_json(ann.id, ann.username, None, None, False)
    assert author is not None
    reqs = [
        SendRequest(ann.actor, author, channel, uuid.uuid4(), f"re {t}", False, reply_to_id=t)
        for t in (hi, lo)
    ]
    deleting = await asyncpg.connect(settings.database_url)
    try:
        async with pool.acquire() as conn:
            held = deleting.transaction()
            await held.start()
            await deleting.execute("SELECT 1 FROM messages WHERE id = $1 FOR UPDATE", lo)
            tx = conn.transaction()
            await tx.start()
            batch = asyncio.ensure_future(write_batch(conn, channel, reqs))
            await until_one_waits_for_a_lock(deleting, batch)
            # (was: DeadlockDetectedError, here or in the batch)
            await deleting.execute("SELECT 1 FROM messages WHERE id = $1 FOR UPDATE", hi)
            await held.commit()
            outcomes = await batch
            await tx.commit()
    finally:
        await deleting.close()
    assert all(isinstance(o, SendResult) for o in outcomes), outcomes


async def test_metrics_say_how_long_the_batches_took(
    client: httpx.AsyncClient, make_user: MakeUser, app: FastAPI
) -> None:
    """xfchat_send_batch_seconds_total: the writer's time from a batch's statement sent to
    its answer read, what a busy channel's cycle is made of (bench.load prints it)."""

    def writing() -> float:
        return app.state.writer.writing_s  # type: ignore[no-any-return]

    async def exported() -> float:
        text = (await client.get("/metrics", headers=METRICS_HEADERS)).text
        (value,) = re.findall(r"^xfchat_send_batch_seconds_total ([0-9.e+-]+)$", text, re.M)
        return float(value)

    ann, ben, dm = await factories.pair(client, make_user, "group")
    before = writing()
    assert await exported() == before
    await factories.say(client, ann, dm, "one")
    await factories.say(client, ben, dm, "two")
    after = writing()
    assert after > before and app.state.writer.batches >= 2
    assert await exported() == after
