"""Retention and deletion, attacked as a hostile member or a careful client developer
would: what the retention job removes, how much one of its statements may do, and what
every read path shows of what was deleted."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import pytest

from tests import factories
from tests.factories import AppWith, MakeUser
from xfchat.db.queries import event_log as log_q
from xfchat.db.queries import messages as messages_q
from xfchat.db.queries import retention as retention_q
from xfchat.domain import admin_messages, messages, messages_purge, retention
from xfchat.domain.events import (
    MESSAGE_DELETED,
    MESSAGE_UPDATED,
    REACTION_ADDED,
    REACTION_REMOVED,
    emit_many,
)
from xfchat.settings import Settings


async def _big_commits(pool: asyncpg.Pool, channel_id: UUID, commits: int, each: int) -> None:
    """`commits` commits of `each` events to one channel's stream, as the writer's send
    batches (up to 256 messages) and bulk deletions (100) make them."""
    for c in range(commits):
        async with pool.acquire() as conn, conn.transaction():
            await emit_many(
                conn,
                [
                    MESSAGE_DELETED.to_channel(
                        channel_id,
                        {
                            "id": str(UUID(int=c * each + i + 1)),
                            "channel_id": str(channel_id),
                            "seq": c * each + i + 1,
                            "deleted_at": "2026-01-01T00:00:00+00:00",
                            "author_id": None,
                            "mentions": [],
                            "mention_roles": [],
                            "mention_everyone": False,
                        },
                    )
                    for i in range(each)
                ],
            )


async def test_one_statement_of_the_event_logs_retention_deletes_a_bounded_number_of_events(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    pool: asyncpg.Pool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The event log's retention deleted 1,000 *commits* a statement, whatever they
    held: a commit is one transaction's events to one stream, 256 messages of a send
    batch, 100 deletions of a bulk delete, so one statement could delete a quarter of a
    million events (a gigabyte of messages) on the request pool's 30 s statement
    timeout. Timed out, it is rolled back and tried again ten minutes later on the same
    oldest commits: the log would never shrink again. Now a statement deletes at most
    10,000 events' worth of commits (always the oldest commit, whatever it holds), and
    a run goes on until nothing old is left."""
    owner = await make_user()
    srv = await factories.community(client, owner)
    await _big_commits(pool, UUID(srv.general), commits=12, each=1000)
    per_statement: list[int] = []
    real = log_q.prune_commits

    async def counted(conn: asyncpg.Connection, **kwargs: Any) -> int:
        before = await conn.fetchval("SELECT count(*) FROM events")
        removed = await real(conn, **kwargs)
        per_statement.append(before - await conn.fetchval("SELECT count(*) FROM events"))
        return removed

    monkeypatch.setattr(log_q, "prune_commits", counted)

    removed = await retention.prune_event_log(pool, retention_days=0)

    assert max(per_statement) <= 10_000, per_statement
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM events") == 0  # a run ends the work
        head = await log_q.get_log_head(conn)
    assert removed >= 12 and head.pruned_g == head.g


async def test_a_commit_larger_than_the_bound_is_still_pruned(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    """A single commit of more events than a statement's bound goes whole (a commit is
    never split: the log starts after a commit, or a resume from inside it would skip
    the rest of it), so retention never stops on one."""
    owner = await make_user()
    srv = await factories.community(client, owner)
    await _big_commits(pool, UUID(srv.general), commits=1, each=10_500)
    await retention.prune_event_log(pool, retention_days=0)
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM events") == 0


async def purge_racing(
    pool: asyncpg.Pool,
    monkeypatch: pytest.MonkeyPatch,
    spammer: Any,
    first_round: Callable[[asyncpg.Connection, list[messages_q.AuthoredRow]], Awaitable[None]],
) -> tuple[int, int]:
    """`xfchat admin delete-messages` of the spammer, `first_round` run on its first
    round's connection with what that round read: the spammer's live messages left, and
    how many the purge says it deleted."""
    real = messages_q.list_live_messages_by_author
    rounds = 0

    async def raced(conn: asyncpg.Connection, **kwargs: Any) -> list[messages_q.AuthoredRow]:
        nonlocal rounds
        rounds += 1
        found = await real(conn, **kwargs)
        if rounds == 1:
            await first_round(conn, found)
        return found

    monkeypatch.setattr(messages_q, "list_live_messages_by_author", raced)
    purged = await admin_messages.delete_messages_of(pool, spammer.username, None)
    async with pool.acquire() as conn:
        live = await conn.fetchval(
            "SELECT count(*) FROM messages WHERE author_id = $1 AND deleted_at IS NULL",
            spammer.id,
        )
    return live, purged.messages


async def test_an_admin_purge_goes_on_past_messages_a_moderator_deleted_meanwhile(
    app_with: AppWith, make_user: MakeUser, pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`xfchat admin delete-messages` reads a spammer's live messages 100 at a time and
    ended when a round deleted none of those it had read, as when the server's
    moderators bulk-deleted those same messages meanwhile: it said it was done, and the
    rest of the spam stayed up. A round that takes none is no end when the next finds
    others."""
    client = await app_with(rate_messages_user="1000/60")
    owner, spammer = await make_user("owner"), await make_user("spammer")
    srv = await factories.community(client, owner, spammer)
    for i in range(130):
        await factories.say(client, spammer, srv.general, f"spam {i}")

    async def moderated(conn: asyncpg.Connection, found: list[messages_q.AuthoredRow]) -> None:
        # a moderator's bulk deletion of those, as the purge reads them
        await messages.bulk_delete(conn, owner.actor, UUID(srv.general), [m.id for m in found])

    assert await purge_racing(pool, monkeypatch, spammer, moderated) == (0, 30)


async def test_an_admin_purge_takes_a_send_that_committed_behind_its_walk(
    app_with: AppWith, make_user: MakeUser, pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The purge's walk goes on from the last message it read. A send under way as the
    walk passes its time commits behind it (a message's time is its transaction's
    start): the walk's last pass, from the first, takes it."""
    client = await app_with(rate_messages_user="1000/60")
    owner, spammer = await make_user("owner"), await make_user("spammer")
    srv = await factories.community(client, owner, spammer)
    for i in range(150):
        await factories.say(client, spammer, srv.general, f"spam {i}")
    late = await factories.say(client, spammer, srv.general, "late")

    async def behind(conn: asyncpg.Connection, found: list[messages_q.AuthoredRow]) -> None:
        # the late send's time, earlier than where the walk stands now
        await conn.execute(
            "UPDATE messages SET created_at = now() - interval '1 day' WHERE id = $1",
            UUID(late["id"]),
        )

    assert await purge_racing(pool, monkeypatch, spammer, behind) == (0, 151)


async def test_one_retention_job_that_fails_does_not_stop_the_others(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    pool: asyncpg.Pool,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The hourly run did its jobs one after the other and the first that raised ended
    the run: a statement that times out every time (a deleted account's leftovers read
    on a table grown large, under the request pool's 30 s bound) or a deadlock, and
    every job after it, the audit log's retention last of all, never ran again. Now a
    job's failure is logged and the others run."""
    owner = await make_user()
    srv = await factories.community(client, owner)
    await factories.server_channel(client, srv, owner, "one")
    async with pool.acquire() as conn:
        oldest = await conn.fetchval("SELECT min(id) FROM audit_log")
        await conn.execute(
            "UPDATE audit_log SET created_at = now() - interval '100 days' WHERE id = $1", oldest
        )

    async def times_out(conn: asyncpg.Connection, *, limit: int) -> int:
        raise asyncpg.QueryCanceledError("canceling statement due to statement timeout")

    monkeypatch.setattr(retention_q, "delete_deleted_account_leftovers", times_out)
    kept_90_days = settings.model_copy(update={"audit_retention_days": 90.0})

    removed = await retention.prune_rows(pool, kept_90_days)

    assert "deleted_accounts" not in removed and removed["audit_log"] == 1, removed
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM audit_log WHERE id = $1", oldest) == 0


async def test_retention_runs_of_several_processes_and_deletions_at_once_all_go_through(
    app_with: AppWith, make_user: MakeUser, pool: asyncpg.Pool, settings: Settings
) -> None:
    """Every process of `xfchat serve --workers N` runs the retention at the same
    moments, while moderators delete old messages (whose deletion rewrites those
    messages' events, which the retention deletes): each run and each deletion goes
    through, no deadlock, and each commit is counted once."""
    client = await app_with(rate_messages_user="1000/60")
    owner, ben = await make_user("owner"), await make_user("ben")
    srv = await factories.community(client, owner, ben)
    sent = [await factories.say(client, ben, srv.general, f"old {i}") for i in range(60)]
    async with pool.acquire() as conn:
        commits = await conn.fetchval("SELECT count(*) FROM event_commits")

    async def moderate(ids: list[str]) -> int:
        async with pool.acquire() as conn:
            return len(
                await messages.bulk_delete(
                    conn, owner.actor, UUID(srv.general), [UUID(i) for i in ids]
                )
            )

    outcomes = await asyncio.gather(
        retention.prune_event_log(pool, retention_days=0),
        retention.prune_event_log(pool, retention_days=0),
        moderate([m["id"] for m in sent[:30]]),
        retention.prune_rows(pool, settings),
        retention.prune_rows(pool, settings),
        moderate([m["id"] for m in sent[30:]]),
    )

    assert outcomes[2] + outcomes[5] == 60
    assert outcomes[0] + outcomes[1] >= commits  # (each commit once; later ones too)
    async with pool.acquire() as conn:
        left = await conn.fetchval(
            "SELECT count(*) FROM events e JOIN event_streams s ON s.id = e.stream_id"
            " WHERE s.kind = 'channel' AND e.type = 'message.created'"
            " AND e.data ->> 'content' LIKE 'old %'"
        )
    assert left == 0  # (pruned, or scrubbed by the deletions)


async def _history(conn: asyncpg.Connection, channel: str, author: UUID, n: int) -> None:
    """`n` messages in `channel` (as many sends would leave them), every tenth a reply
    to the one before it."""
    await conn.execute(
        """
        INSERT INTO messages (id, channel_id, seq, author_id, content, created_at)
        SELECT gen_random_uuid(), $1, i, $2, 'm ' || i, now() FROM generate_series(1, $3::int) i
        """,
        UUID(channel),
        author,
        n,
    )
    await conn.execute(
        """
        UPDATE messages m SET reply_to_id = p.id FROM messages p
        WHERE m.channel_id = $1 AND p.channel_id = $1 AND p.seq = m.seq - 1 AND m.seq % 10 = 0
        """,
        UUID(channel),
    )
    await conn.execute("UPDATE channels SET last_seq = $2 WHERE id = $1", UUID(channel), n)


# Records how many messages each statement deleted (a statement trigger's transition
# table holds what one statement deleted, the foreign keys' cascades included).
COUNT_DELETES = [
    "CREATE TABLE deleted_per_statement (n bigint NOT NULL)",
    """CREATE FUNCTION count_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN INSERT INTO deleted_per_statement SELECT count(*) FROM gone; RETURN NULL; END $$""",
    """CREATE TRIGGER messages_count_deleted AFTER DELETE ON messages
       REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION count_deleted()""",
]


async def test_a_channel_a_group_or_a_server_of_many_messages_is_deleted_a_batch_at_a_time(
    app_with: AppWith, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    """Deleting a channel, a server, or a group its last participant leaves deleted all
    their messages in one statement, the channel's (or server's) row taking them by its
    foreign keys: 6.6 s for 100,000 messages (measured on a 2-core box), so past about
    half a million every try outlasted the request pool's 30 s statement timeout and
    got 503, for ever: a busy channel or server could not be deleted, nor could the last
    one in such a group leave it, nor delete their account. Then the messages went 1,000
    a statement, in the deletion's own transaction (which held the server's row as long:
    26 s for 150,000). Now the deletion leaves them, and the purge after it deletes them
    1,000 a transaction (migration 0055)."""
    client = await app_with(rate_messages_user="1000/60")
    owner, ben = await make_user("owner"), await make_user("ben")
    srv = await factories.community(client, owner, ben)
    busy = (await factories.server_channel(client, srv, owner, "busy"))["id"]
    doomed = await factories.community(client, owner, ben, name="doomed")
    group = str((await factories.group(client, owner, ben))["id"])
    async with pool.acquire() as conn:
        for statement in COUNT_DELETES:
            await conn.execute(statement)
        for channel in (busy, doomed.general, group):
            await _history(conn, channel, ben.id, 2_500)

    gone = await client.delete(f"/api/channels/{busy}", headers=owner.headers)
    assert gone.status_code == 204, gone.text
    gone = await client.delete(doomed.url(), headers=owner.headers)
    assert gone.status_code == 204, gone.text
    for who in (ben, owner):  # (the last one out deletes it)
        left = await client.delete(
            f"/api/conversations/{group}/participants/@me", headers=who.headers
        )
        assert left.status_code == 204, left.text

    async def left_over() -> int:
        async with pool.acquire() as conn:
            return int(
                await conn.fetchval(
                    "SELECT count(*) FROM messages WHERE channel_id = ANY($1::uuid[])",
                    [UUID(busy), UUID(doomed.general), UUID(group)],
                )
            )

    assert await left_over() == 3 * 2_500  # (the deletions did not wait for them)
    assert await messages_purge.purge_deleted_channels(pool) == 3 * 2_500
    async with pool.acquire() as conn:
        per_statement = [r["n"] for r in await conn.fetch("SELECT n FROM deleted_per_statement")]
    assert await left_over() == 0
    assert sum(per_statement) >= 3 * 2_500 and max(per_statement) <= 1_000, per_statement


COUNT_UPDATES = [
    "CREATE TABLE events_updated_per_statement (n bigint NOT NULL)",
    """CREATE FUNCTION count_updated() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN INSERT INTO events_updated_per_statement SELECT count(*) FROM changed;
       RETURN NULL; END $$""",
    """CREATE TRIGGER events_count_updated AFTER UPDATE ON events
       REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION count_updated()""",
]


async def test_a_message_toggled_a_great_many_times_is_still_deleted_a_batch_at_a_time(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    """Each reaction added or taken back is an event naming its message (and each edit
    one carrying the whole text), counted only in the API's 600 requests a minute. A
    deletion empties the emoji (and texts) of all of them in one UPDATE each: past about
    a million (a day of one account's toggling, or hours of a few), no deletion of that
    message, by its author, a moderator or `xfchat admin delete-messages`, fits in the
    statement timeout, and it stays up as long as the log keeps the events (7 days by
    default): about 5.5 s per 200,000 such events on a 2-core box. Now they are emptied
    5,000 a statement, each batch after the last one's place (migration 0044's indexes).
    So are the previews of it that a reply carries, edited as often (each edit's event
    carries the preview again: one statement emptied them all, the review of the mend
    found). Here: 12,000 toggles and 12,000 edits of a reply, and a bound of 10,000
    events a statement."""
    owner, ben = await make_user("owner"), await make_user("ben")
    srv = await factories.community(client, owner, ben)
    target = await factories.say(client, ben, srv.general, "abuse")
    reply = (
        await client.post(
            f"/api/channels/{srv.general}/messages",
            headers=owner.headers,
            json={"content": "no", "reply_to_id": target["id"]},
        )
    ).json()
    channel = UUID(srv.general)
    edits = [
        MESSAGE_UPDATED.to_channel(channel, {**reply, "content": f"no {i}"}) for i in range(12_000)
    ]
    toggles = [
        (REACTION_ADDED if i % 2 == 0 else REACTION_REMOVED).to_channel(
            channel,
            {
                "message_id": target["id"],
                "channel_id": srv.general,
                "user_id": str(ben.id),
                "emoji": "x",
            },
        )
        for i in range(12_000)
    ]
    async with pool.acquire() as conn:
        async with conn.transaction():  # (as 12,000 toggles leave them, in one go)
            await emit_many(conn, toggles)
            await emit_many(conn, edits)
        for statement in COUNT_UPDATES:
            await conn.execute(statement)

    gone = await client.delete(
        f"/api/channels/{srv.general}/messages/{target['id']}", headers=ben.headers
    )

    assert gone.status_code == 204, gone.text
    async with pool.acquire() as conn:
        per_statement = [
            r["n"] for r in await conn.fetch("SELECT n FROM events_updated_per_statement")
        ]
        kept = await conn.fetchval(
            "SELECT count(*) FROM events WHERE data ->> 'message_id' = $1 AND data ->> 'emoji' <> ''",
            target["id"],
        )
        previews = await conn.fetchval(
            "SELECT count(*) FROM events WHERE data -> 'reply_to' ->> 'id' = $1"
            " AND data -> 'reply_to' ->> 'content' <> ''",
            target["id"],
        )
    assert max(per_statement) <= 10_000, per_statement
    assert kept == 0 and previews == 0, (kept, previews)
    assert sum(per_statement) >= 24_000  # (every one emptied)


COUNT_READ_STATE_DELETES = [
    "CREATE TABLE read_states_deleted_per_statement (n bigint NOT NULL)",
    """CREATE FUNCTION count_read_states_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN INSERT INTO read_states_deleted_per_statement SELECT count(*) FROM gone;
       RETURN NULL; END $$""",
    """CREATE TRIGGER read_states_count_deleted AFTER DELETE ON read_states
       REFERENCING OLD TABLE AS gone FOR EACH STATEMENT
       EXECUTE FUNCTION count_read_states_deleted()""",
]


async def test_a_channels_read_positions_go_a_batch_at_a_time_with_it(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    pool: asyncpg.Pool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A channel's read positions (a row for each member who read or wrote there: two
    million in a server of 10,000 members and 200 channels) went with its row in one
    statement, as its messages did (the review of the session's mends found them left
    out). Now READ_STATES_BATCH a statement (2 here, for 4 readers)."""
    monkeypatch.setattr(messages_purge, "READ_STATES_BATCH", 2)
    owner, *readers = [await make_user(f"r{i}") for i in range(4)]
    srv = await factories.community(client, owner, *readers)
    for who in (owner, *readers):
        await factories.say(client, who, srv.general, "hello")  # (a read position each)
    async with pool.acquire() as conn:
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM read_states WHERE channel_id = $1", UUID(srv.general)
            )
            == 4
        )
        for statement in COUNT_READ_STATE_DELETES:
            await conn.execute(statement)

    gone = await client.delete(srv.url(), headers=owner.headers)

    assert gone.status_code == 204, gone.text
    async with pool.acquire() as conn:
        per_statement = [
            r["n"] for r in await conn.fetch("SELECT n FROM read_states_deleted_per_statement")
        ]
        left = await conn.fetchval(
            "SELECT count(*) FROM read_states WHERE channel_id = $1", UUID(srv.general)
        )
    assert left == 0 and sum(per_statement) == 4 and max(per_statement) <= 2, per_statement
