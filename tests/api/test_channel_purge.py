"""A deleted channel's messages are purged after its deletion (migration 0055,
domain/messages_purge.py): the deletion leaves them without a channel, no route shows
them from its commit, and the purge deletes them a batch at a time."""

from __future__ import annotations

import asyncio
from uuid import UUID

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from tests import factories
from tests.api.test_attachments import part, post_files
from tests.factories import MakeUser
from tests.support import METRICS_HEADERS
from xfchat.domain import messages_purge


async def _left(pool: asyncpg.Pool, *channel_ids: str) -> tuple[int, int, int]:
    """The messages and attachments the channels still hold, and how many of them wait
    in the purge queue."""
    ids = [UUID(c) for c in channel_ids]
    async with pool.acquire() as conn:
        return (
            await conn.fetchval(
                "SELECT count(*) FROM messages WHERE channel_id = ANY($1::uuid[])", ids
            ),
            await conn.fetchval(
                "SELECT count(*) FROM attachments WHERE channel_id = ANY($1::uuid[])", ids
            ),
            await conn.fetchval(
                "SELECT count(*) FROM channel_purges WHERE channel_id = ANY($1::uuid[])", ids
            ),
        )


async def test_a_deleted_channels_messages_are_unreachable_at_once_and_purged_after(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    pool: asyncpg.Pool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The deletion leaves the messages (it no longer takes as long as they are many),
    and from its commit no route shows them: not the history, not a message by id, not
    a file, not the search, not a mentions page from one of them; a send there is 404.
    The purge then deletes them, PURGE_BATCH a transaction (2 here), newest first, and
    the channel's place in the queue with the last batch; another channel keeps its own."""
    monkeypatch.setattr(messages_purge, "PURGE_BATCH", 2)
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await factories.community(client, ann, ben)
    made = await client.post(
        srv.url("/channels"), headers=ann.headers, json={"name": "other", "kind": "text"}
    )
    assert made.status_code == 201, made.text
    other = made.json()["id"]
    first = await factories.say(client, ann, srv.general, "kiwi one")
    mention = await factories.say(client, ann, srv.general, f"kiwi <@{ben.id}>")
    await factories.say(client, ben, srv.general, "kiwi reply", reply_to_id=first["id"])
    sent = await post_files(client, ann, srv.general, [part("kiwi.txt", b"kiwi file")])
    assert sent.status_code == 201, sent.text
    file_url = sent.json()["attachments"][0]["url"]
    kept = await factories.say(client, ann, other, "kiwi elsewhere")
    assert (await client.get(file_url, headers=ben.headers)).status_code == 200

    gone = await client.delete(f"/api/channels/{srv.general}", headers=ann.headers)

    assert gone.status_code == 204, gone.text
    assert await _left(pool, srv.general) == (4, 1, 1)  # left to the purge
    history = await client.get(f"/api/channels/{srv.general}/messages", headers=ben.headers)
    by_id = await client.get(
        f"/api/channels/{srv.general}/messages/{first['id']}", headers=ben.headers
    )
    a_file = await client.get(file_url, headers=ben.headers)
    send = await factories.send_message(client, ben, srv.general, "kiwi late")
    assert [r.status_code for r in (history, by_id, a_file, send)] == [404] * 4
    found = await client.get("/api/search", params={"q": "kiwi"}, headers=ben.headers)
    assert found.status_code == 200, found.text
    assert [r["message"]["id"] for r in found.json()["results"]] == [kept["id"]]
    page = await client.get(
        "/api/users/@me/mentions", params={"before": mention["id"]}, headers=ben.headers
    )
    assert page.status_code == 400 and page.json()["code"] == "INVALID_CURSOR", page.text

    purged = await messages_purge.purge_deleted_channels(pool)

    assert purged == 4
    assert await _left(pool, srv.general) == (0, 0, 0)
    assert await _left(pool, other) == (1, 0, 0)
    again = await client.get(f"/api/channels/{other}/messages", headers=ben.headers)
    assert [m["id"] for m in again.json()] == [kept["id"]]


async def test_a_servers_deletion_queues_each_channel_that_held_a_message(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    """A server's deletion cascades to its channels, and each that ever held a message
    is queued (an empty one is not); a group its last participant leaves is queued too.
    Two purges at once share the work (a channel another is purging is skipped): every
    message is purged once, and none is left."""
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await factories.community(client, ann, ben)
    channels = [srv.general]
    for name in ("two", "empty"):
        made = await client.post(
            srv.url("/channels"), headers=ann.headers, json={"name": name, "kind": "text"}
        )
        assert made.status_code == 201, made.text
        channels.append(made.json()["id"])
    for channel in channels[:2]:
        for i in range(3):
            await factories.say(client, ben, channel, f"hello {i}")
    group = str((await factories.group(client, ann, ben))["id"])
    await factories.say(client, ann, group, "bye")

    gone = await client.delete(srv.url(), headers=ann.headers)
    for who in (ben, ann):
        left = await client.delete(
            f"/api/conversations/{group}/participants/@me", headers=who.headers
        )
        assert left.status_code == 204, left.text

    assert gone.status_code == 204, gone.text
    assert await _left(pool, *channels, group) == (7, 0, 3)
    counts = await asyncio.gather(*(messages_purge.purge_deleted_channels(pool) for _ in range(2)))
    assert sum(counts) == 7, counts
    assert await _left(pool, *channels, group) == (0, 0, 0)


async def test_the_purges_of_a_process_are_counted_in_its_metrics(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool, app: FastAPI
) -> None:
    """xfchat_purged_messages_total counts what the process's purge job deleted (the job
    is held off in tests: it is run here as the app runs it)."""
    ann = await make_user("ann")
    srv = await factories.community(client, ann)
    for i in range(3):
        await factories.say(client, ann, srv.general, f"m{i}")
    gone = await client.delete(srv.url(), headers=ann.headers)
    assert gone.status_code == 204, gone.text

    assert await messages_purge.purge_deleted_channels(pool, app.state.purged) == 3

    text = (await client.get("/metrics", headers=METRICS_HEADERS)).text
    assert "xfchat_purged_messages_total 3.0" in text, text
    assert "xfchat_purge_failures_total 0.0" in text, text


async def test_the_read_positions_of_many_channels_go_a_batch_at_a_time_and_no_others(
    make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    """purge_channels deletes the read positions of all its channels a batch a statement
    (an account's deletion may end many groups at once): past a batch, and none of
    another channel's. (A helper session's attack on 7b2b764.)"""
    users = [await make_user(f"u{i}") for i in range(30)]
    async with pool.acquire() as conn:
        made = await conn.fetch(
            "INSERT INTO channels (kind, name, owner_id)"
            " SELECT 'group', 'g' || i, $1::uuid FROM generate_series(1, 800) i RETURNING id",
            users[0].id,
        )
        channels = [r["id"] for r in made]
        await conn.execute(
            "INSERT INTO read_states (user_id, channel_id, last_read_seq)"
            " SELECT u, c, 1 FROM unnest($1::uuid[]) u, unnest($2::uuid[]) c",
            [u.id for u in users],
            channels,
        )
        doomed, kept = channels[::2], channels[1::2]  # 12,000 positions each
        async with conn.transaction():
            await messages_purge.purge_channels(conn, doomed)
        counted = [
            await conn.fetchval(
                "SELECT count(*) FROM read_states WHERE channel_id = ANY($1::uuid[])", ids
            )
            for ids in (doomed, kept)
        ]
    assert counted == [0, 30 * len(kept)]
    assert messages_purge.READ_STATES_BATCH < 30 * len(doomed)
