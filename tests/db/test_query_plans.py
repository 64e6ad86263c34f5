"""Statements an ordinary member (or a moderator) runs on every request, planned as the
pool plans them (generic, once per connection): each reads rows by the keys it is
given, never a table's or a server's rows by a filter. (At 10,000 members and 300,000
messages each of these read thousands to hundreds of thousands of rows a request.)"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from tests.support import plan_nodes, rows_read
from xfchat.db.queries import access as access_q
from xfchat.db.queries import bans as bans_q
from xfchat.db.queries import friends as friends_q
from xfchat.db.queries import messages as messages_q
from xfchat.db.queries import retention as retention_q
from xfchat.db.queries import roles as roles_q
from xfchat.db.queries import search as search_q
from xfchat.db.queries import servers as servers_q
from xfchat.db.queries import users as users_q
from xfchat.db.queries.conversations import UNREAD_CAP

NIL = "00000000-0000-0000-0000-000000000000"


async def sent(
    conn: asyncpg.Connection, call: Callable[[asyncpg.Connection], Awaitable[object]]
) -> str:
    """The statement `call` sends, run on the database."""
    statements: list[str] = []

    def log(query: Any) -> None:
        statements.append(query.query)

    conn.add_query_logger(log)
    try:
        await call(conn)
        await asyncio.sleep(0)  # (asyncpg calls a logger soon after, not at once)
    finally:
        conn.remove_query_logger(log)
    (sql,) = statements
    return sql


async def generic_plan(conn: asyncpg.Connection, sql: str, types: str, given: str) -> Any:
    """The generic plan of `sql` (its parameters of `types`), executed with `given`."""
    await conn.execute("SET enable_seqscan = off")
    await conn.execute("SET plan_cache_mode = force_generic_plan")
    name = f"p{uuid.uuid4().hex}"
    await conn.execute(f"PREPARE {name}({types}) AS {sql}")
    raw = await conn.fetchval(f"EXPLAIN (FORMAT JSON) EXECUTE {name}({given})")
    return (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]


def cond(scan: dict[str, Any]) -> str:
    """What an index read of `scan` is bounded by (a bitmap's heap scan rechecks it)."""
    return str(scan.get("Index Cond") or scan.get("Recheck Cond") or "")


def scans(plan: Any, relation: str) -> list[dict[str, Any]]:
    return [n for n in plan_nodes(plan) if n.get("Relation Name") == relation]


async def channels_with_one_long(
    conn: asyncpg.Connection, channels: int, messages: int, long: int
) -> uuid.UUID:
    """`channels` conversations of `messages` messages but one of `long` (its id), the
    channels' messages interleaved in the table as a server's are written, analyzed."""
    await conn.execute(
        "INSERT INTO channels (kind, name) SELECT 'group', 'g' || i FROM generate_series(1, $1) i",
        channels,
    )
    await conn.execute(
        """
        INSERT INTO messages (id, channel_id, seq, content)
            SELECT gen_random_uuid(), c.id, i, 'hello' FROM channels c,
                   generate_series(1, CASE WHEN c.name = 'g1' THEN $1::int ELSE $2::int END) i
            ORDER BY random()
        """,
        long,
        messages,
    )
    await conn.execute(
        "UPDATE channels SET last_seq = CASE WHEN name = 'g1' THEN $1::int ELSE $2::int END",
        long,
        messages,
    )
    await conn.execute("ANALYZE channels; ANALYZE messages")
    return await conn.fetchval("SELECT id FROM channels WHERE name = 'g1'")  # type: ignore[no-any-return]


async def newcomers_unread_count_reads(conn: asyncpg.Connection, channel: uuid.UUID) -> int:
    """The rows a newcomer's unread count of `channel` reads (it counts UNREAD_CAP)."""
    (row,), read = await rows_read(
        conn,
        lambda: messages_q.list_unreads(
            conn, user_id=uuid.uuid4(), role_ids=[], channel_ids=[channel]
        ),
    )
    assert row.unread == UNREAD_CAP
    return read


async def test_the_pool_never_compiles_statements(conn: asyncpg.Connection) -> None:
    # A generic plan's estimated cost grows with the tables: past jit_above_cost every
    # execution was compiled again (300 ms for the unread counts of a server's channels).
    assert await conn.fetchval("SHOW jit") == "off"


async def test_access_facts_find_memberships_and_roles_by_their_keys(
    conn: asyncpg.Connection,
) -> None:
    """The facts of every channel a user might see (a `ready`, a search, the mentions):
    their membership of each channel's server and their roles there by the whole key,
    never the server's members (or a role's holders) by server (or role) alone,
    filtered for the user."""
    for sql, types, given in [
        (access_q._FACTS_OF_CANDIDATES, "uuid", f"'{NIL}'"),
        (access_q._FACTS_IN_CHANNELS, "uuid[], uuid", f"'{{{NIL}}}', '{NIL}'"),
        (access_q._CHANNEL_AND_FACTS, "uuid, uuid", f"'{NIL}', '{NIL}'"),
    ]:
        plan = await generic_plan(conn, sql, types, given)
        for relation in ("server_members", "member_roles"):
            found = scans(plan, relation)
            assert found, relation
            for scan in found:
                assert "user_id" in cond(scan), (relation, scan)


async def a_user_in_servers_and_groups(
    conn: asyncpg.Connection, *, servers: int, crowded: bool
) -> uuid.UUID:
    """20,000 users; `servers` servers of u2's with five text channels each, u1 in the
    first 20 of them, u2 in all; 3,000 groups of one, u1 in 200 of them besides (so 300
    channels u1 might see); and, if `crowded`, each server with a role overriding each
    channel and everyone else a member of one. Analyzed; u1's id."""
    await conn.execute(
        """
        INSERT INTO users (username, email, email_key, password_hash)
            SELECT 'u' || i, 'u' || i || '@x.org', 'u' || i || '@x.org', 'h'
            FROM generate_series(1, 20000) i
        """
    )
    await conn.execute(
        "INSERT INTO servers (name, owner_id) SELECT 's' || i,"
        " (SELECT id FROM users WHERE username = 'u2') FROM generate_series(1, $1) i",
        servers,
    )
    await conn.execute(
        """
        INSERT INTO channels (kind, name, server_id)
            SELECT 'text', 'c' || i, s.id FROM servers s, generate_series(1, 5) i;
        INSERT INTO server_members (server_id, user_id)
            SELECT s.id, u.id FROM servers s, users u
            WHERE u.username = 'u2' OR (u.username = 'u1' AND substr(s.name, 2)::int <= 20);
        INSERT INTO channels (kind, name) SELECT 'group', 'g' || i FROM generate_series(1, 3000) i;
        INSERT INTO conversation_participants (channel_id, user_id)
            SELECT c.id, u.id FROM channels c
            JOIN users u ON u.username = 'u' || (1 + substr(c.name, 2)::int % 5000)
            WHERE c.kind = 'group';
        INSERT INTO conversation_participants (channel_id, user_id)
            SELECT c.id, (SELECT id FROM users WHERE username = 'u1') FROM channels c
            WHERE c.kind = 'group' AND substr(c.name, 2)::int <= 200
            ON CONFLICT DO NOTHING;
        """
    )
    if crowded:
        await conn.execute(
            """
            INSERT INTO roles (server_id, name, is_default)
                SELECT id, '@everyone', true FROM servers;
            INSERT INTO roles (server_id, name, position) SELECT id, 'mod', 1 FROM servers;
            INSERT INTO channel_permission_overrides (channel_id, role_id, allow, deny)
                SELECT c.id, r.id, 1, 0 FROM channels c JOIN roles r ON r.server_id = c.server_id;
            INSERT INTO server_members (server_id, user_id)
                SELECT s.id, u.id FROM servers s, users u
                WHERE u.username NOT IN ('u1', 'u2')
                  AND substr(u.username, 2)::int % 300 = substr(s.name, 2)::int - 1
            """
        )
    await conn.execute("ANALYZE")
    return await conn.fetchval("SELECT id FROM users WHERE username = 'u1'")  # type: ignore[no-any-return]


async def test_a_users_facts_read_a_few_rows_each_however_many_channels_they_are_in(
    conn: asyncpg.Connection,
) -> None:
    """The facts of every channel a user might see (a `ready`) and of their
    conversations: each fact's rows looked up by their keys. The user's participation in
    each conversation was found among all of theirs (the user's index, which the generic
    plan took), and so was their membership of a conversation's server (none, looked up
    as `server_id = NULL`): 47,620 rows here for 300 facts, 300,000 for a user at the
    caps (200 servers, 1,000 conversations). (The account's own deletion, read the same
    way as an EXISTS, could be planned as a hashed subplan, every user read at each
    `ready`: a scalar subquery cannot.)"""
    u1 = await a_user_in_servers_and_groups(conn, servers=300, crowded=True)
    every = (
        "users",
        "servers",
        "server_members",
        "conversation_participants",
        "channels",
        "roles",
        "member_roles",
        "channel_permission_overrides",
        "blocks",
        "friendships",
    )
    for call, many in (
        (lambda: access_q.list_candidate_facts(conn, user_id=u1), 300),
        (lambda: access_q.list_conversation_facts(conn, user_id=u1), 200),
    ):
        facts, read = await rows_read(conn, call, tables=every)
        assert len(facts) == many
        assert read <= 10 * many, (many, read)


async def test_a_users_facts_never_read_every_user(conn: asyncpg.Connection) -> None:
    """Whether the user's account is deleted, and whether they take part in a
    conversation, asked per fact as EXISTS correlated by one equality, were planned as
    hashed subplans: every user of the instance (or every conversation's participants)
    read to build the hash, at every `ready` (3,400 rows here for 300 facts; 23,400 with
    the users' hash as well, as in the scale audit). As scalar subqueries they are one
    lookup by key a fact."""
    u1 = await a_user_in_servers_and_groups(conn, servers=20, crowded=False)
    facts, read = await rows_read(
        conn,
        lambda: access_q.list_candidate_facts(conn, user_id=u1),
        tables=("users", "conversation_participants"),
    )
    assert len(facts) == 300
    assert read <= 3 * 300, read


async def test_a_purge_of_an_authors_messages_reads_each_once(conn: asyncpg.Connection) -> None:
    """`xfchat admin delete-messages` reads an author's live messages 100 a round: from
    the first, each round read every message the rounds before had deleted again
    (300,000 messages purged: about a billion index entries, the scale audit's
    estimate). From where the walk stands, a round reads what is ahead of it."""
    await conn.execute(
        """
        INSERT INTO users (username, email, email_key, password_hash)
            VALUES ('spammer', 's@x.org', 's@x.org', 'h');
        INSERT INTO channels (kind, name) VALUES ('group', 'g');
        INSERT INTO messages (id, channel_id, seq, author_id, content, created_at)
            SELECT gen_random_uuid(), (SELECT id FROM channels), i, (SELECT id FROM users),
                   'spam', now() - make_interval(secs => 3000 - i)
            FROM generate_series(1, 3000) i;
        UPDATE messages SET deleted_at = now(), content = '' WHERE seq <= 2500;
        ANALYZE messages;
        """
    )
    spammer = await conn.fetchval("SELECT id FROM users")
    last = await conn.fetchrow("SELECT created_at, id FROM messages WHERE seq = 2500")
    found, read = await rows_read(
        conn,
        lambda: messages_q.list_live_messages_by_author(
            conn, author_id=spammer, since=None, after=(last[0], last[1]), limit=100
        ),
    )
    seqs = await conn.fetch("SELECT seq FROM messages WHERE id = ANY($1)", [m.id for m in found])
    assert sorted(r["seq"] for r in seqs) == list(range(2501, 2601))
    assert read <= 300, read


async def test_a_page_of_friend_requests_reads_about_its_size(conn: asyncpg.Connection) -> None:
    """The pending requests page (and `ready`'s) walks the incoming requests newest
    first to its limit, the sender's block tested on each, however many wait. (The scale
    audit's 15,050 rows for a page of 50 came from 15,000 requests written in one
    statement, all of one time: the walk's order by time then id sorts a time's requests
    together, and no two requests made through the API share their transaction.)"""
    await conn.execute(
        """
        INSERT INTO users (username, email, email_key, password_hash)
            SELECT 'u' || i, 'u' || i || '@x.org', 'u' || i || '@x.org', 'h'
            FROM generate_series(1, 15000) i;
        INSERT INTO friend_requests (from_user_id, to_user_id, created_at)
            SELECT u.id, (SELECT id FROM users WHERE username = 'u1'),
                   now() - make_interval(secs => substr(u.username, 2)::int)
            FROM users u WHERE u.username <> 'u1';
        INSERT INTO blocks (blocker_id, blocked_id)
            SELECT (SELECT id FROM users WHERE username = 'u1'), u.id FROM users u
            WHERE substr(u.username, 2)::int BETWEEN 2 AND 11;
        ANALYZE;
        """
    )
    u1 = await conn.fetchval("SELECT id FROM users WHERE username = 'u1'")
    for direction in ("incoming", "both"):
        page, read = await rows_read(
            conn,
            lambda d=direction: friends_q.list_pending_requests(
                conn, user_id=u1, direction=d, limit=50
            ),
            tables=("friend_requests", "blocks", "users"),
        )
        assert len(page) == 50
        assert read <= 300, (direction, read)


async def test_an_accounts_requests_are_found_by_its_id_not_among_all(
    conn: asyncpg.Connection,
) -> None:
    """An account's deletion finds everyone it had a friend request with, and the hourly
    sweep finds the deleted accounts and their requests: each read every request there is
    (`from OR to`, no index for answered ones: 215,000 rows, 67 ms, in the scale audit),
    and the sweep every account, to find the deleted ones (40,008 rows an hour; by the
    deleted ones' index, each table's rows of theirs by its key)."""
    await conn.execute(
        """
        INSERT INTO users (username, email, email_key, password_hash)
            SELECT 'u' || i, 'u' || i || '@x.org', 'u' || i || '@x.org', 'h'
            FROM generate_series(1, 5000) i;
        -- answered requests among everyone, and the two of u1
        INSERT INTO friend_requests (from_user_id, to_user_id, status, responded_at)
            SELECT a.id, b.id, 'declined', now() FROM users a
            JOIN users b ON substr(b.username, 2)::int = substr(a.username, 2)::int % 5000 + 1
            WHERE a.username <> 'u1' AND b.username <> 'u1';
        INSERT INTO friend_requests (from_user_id, to_user_id)
            SELECT (SELECT id FROM users WHERE username = 'u1'), id FROM users
            WHERE username IN ('u7', 'u8');
        -- everyone's read positions in two channels and usage of two days
        INSERT INTO channels (kind, name) VALUES ('group', 'a'), ('group', 'b');
        INSERT INTO read_states (user_id, channel_id) SELECT u.id, c.id FROM users u, channels c;
        INSERT INTO usage_tracking (user_id, day)
            SELECT u.id, current_date - d FROM users u, generate_series(0, 1) d;
        UPDATE users SET deleted_at = now() WHERE username IN ('u9', 'u10');
        ANALYZE;
        """
    )
    u1 = await conn.fetchval("SELECT id FROM users WHERE username = 'u1'")
    found, read = await rows_read(
        conn, lambda: friends_q.list_counterparts(conn, user_id=u1), tables=("friend_requests",)
    )
    assert len(found) == 2
    assert read <= 10, read
    async with conn.transaction():
        removed, read = await rows_read(
            conn,
            lambda: retention_q.delete_deleted_account_leftovers(conn, limit=1000),
            tables=("users", "friend_requests", "read_states", "usage_tracking"),
        )
        # (u8 to u9, u9 to u10, u10 to u11; two read positions and two days each)
        assert removed == 3 + 4 + 4
        assert read <= 50, read


async def test_ones_own_read_state_is_read_by_its_key(conn: asyncpg.Connection) -> None:
    # (a server channel's read receipts show the reader's own alone: it was found among
    # all of the channel's, read and sorted)
    sql = await sent(
        conn,
        lambda c: messages_q.list_read_states(
            c, channel_id=uuid.uuid4(), limit=1, user_id=uuid.uuid4()
        ),
    )
    plan = await generic_plan(conn, sql, "uuid, uuid, int", f"'{NIL}', '{NIL}', 1")
    (scan,) = scans(plan, "read_states")
    assert scan.get("Index Name") == "read_states_pkey", scan
    assert "user_id" in cond(scan) and "channel_id" in cond(scan), scan


async def test_a_page_of_bans_starts_at_its_key(conn: asyncpg.Connection) -> None:
    sql = await sent(
        conn, lambda c: bans_q.list_bans(c, server_id=uuid.uuid4(), after=uuid.uuid4(), limit=100)
    )
    plan = await generic_plan(conn, sql, "uuid, uuid, int", f"'{NIL}', '{NIL}', 100")
    (scan,) = scans(plan, "bans")
    assert "user_id >" in cond(scan), scan


async def test_a_users_roles_are_found_by_their_memberships(conn: asyncpg.Connection) -> None:
    # (no index of member_roles starts with user_id: alone, it was a read of them all)
    sql = await sent(conn, lambda c: roles_q.list_user_role_ids(c, user_id=uuid.uuid4()))
    plan = await generic_plan(conn, sql, "uuid", f"'{NIL}'")
    (scan,) = scans(plan, "member_roles")
    assert "server_id" in cond(scan) and "user_id" in cond(scan), scan


async def test_user_search_walks_only_the_names_with_the_prefix(conn: asyncpg.Connection) -> None:
    """Each of its index reads is a range of the prefix, in the index's own order: in
    the collation's, the usernames were walked from the first, every one tested (all of
    them for a prefix nobody has). (The usernames' are two, around those of deleted
    accounts.)"""
    sql = await sent(
        conn, lambda c: users_q.search_users(c, user_id=uuid.uuid4(), folded="zz", limit=25)
    )
    plan = await generic_plan(
        conn, sql, "uuid, text, text, int, text, text", f"'{NIL}', 'zz', 'zz~', 25, 'zz', 'zz'"
    )
    # (each range read straight into its LIMIT, no sort of every match between them)
    ranges = [
        child
        for node in plan_nodes(plan)
        if node["Node Type"] == "Limit"
        for child in node.get("Plans", [])
        if child.get("Index Name") in ("users_username_prefix_idx", "users_display_name_fold_idx")
    ]
    assert len(ranges) == 3, plan
    assert all("~>=~" in cond(s) for s in ranges), ranges


async def test_a_from_nickname_reads_the_members_of_that_nickname_not_the_server(
    conn: asyncpg.Connection,
) -> None:
    """`from:bob` in a server looks its members up by their folded nickname (migration
    0061): read among all of the server's members, each nickname folded, it was 5,000
    rows here for one name, at every search with a from: in a large server."""
    await conn.execute(
        """
        INSERT INTO users (username, email, email_key, password_hash)
            SELECT 'u' || i, 'u' || i || '@x.org', 'u' || i || '@x.org', 'h'
            FROM generate_series(1, 5000) i;
        INSERT INTO servers (name, owner_id)
            SELECT s, (SELECT id FROM users WHERE username = 'u1') FROM unnest('{s1,s2}'::text[]) s;
        INSERT INTO server_members (server_id, user_id, nickname)
            SELECT s.id, u.id, CASE substr(u.username, 2)::int
                                 WHEN 7 THEN 'Bob' WHEN 8 THEN 'BÖB' ELSE 'n' || u.username END
            FROM servers s, users u;
        ANALYZE users; ANALYZE servers; ANALYZE server_members;
        """
    )
    s1 = await conn.fetchval("SELECT id FROM servers WHERE name = 's1'")
    found, read = await rows_read(
        conn,
        lambda: servers_q.list_member_ids_by_nickname(
            conn, server_id=s1, names=["bob", "nobody", "nu42"], limit=101
        ),
        tables=("server_members",),
    )
    users = {
        r["id"]: r["username"]
        for r in await conn.fetch(
            "SELECT id, username FROM users WHERE username IN ('u7', 'u8', 'u42')"
        )
    }
    assert {k: sorted(users[u] for u in v) for k, v in found.items()} == {
        "bob": ["u7", "u8"],
        "nu42": ["u42"],
    }
    assert read <= 10, read


async def test_rows_read_counts_the_rows_a_parallel_plan_reads(conn: asyncpg.Connection) -> None:
    """The transaction's statistics hold only this backend's reads: a scan that
    parallel workers ran was counted 0 rows, however many it read, and a walk test could
    pass while the whole history was read (here forced: a larger table than the tests'
    takes a parallel plan by itself)."""
    await conn.execute(
        """
        INSERT INTO channels (kind, name) VALUES ('group', 'g');
        INSERT INTO messages (id, channel_id, seq, content)
            SELECT gen_random_uuid(), c.id, i, 'hello' FROM channels c, generate_series(1, 2000) i;
        ANALYZE messages;
        """
    )
    async with conn.transaction():
        await conn.execute(
            "SET LOCAL parallel_setup_cost = 0; SET LOCAL parallel_tuple_cost = 0;"
            " SET LOCAL min_parallel_table_scan_size = 0; SET LOCAL parallel_leader_participation = off"
        )
        # (fetch: a fetch of one row, fetchval's, is never run in parallel; EXPLAIN
        # ANALYZE's statement, explain_reads', is)
        (seen,), read = await rows_read(
            conn, lambda: conn.fetch("SELECT count(*) FROM messages WHERE content <> 'hi'")
        )
    assert seen[0] == 2000
    assert read >= 2000, read


async def test_an_unread_count_reads_no_more_than_its_cap(conn: asyncpg.Connection) -> None:
    """A reader far behind in a long channel (a newcomer: read position 0) has its unread
    count walked in order, the first UNREAD_CAP live messages after the read position,
    however many there are. Planned generically from the average channel's messages (a
    few, here as where most channels are conversations), it read every one of them by a
    bitmap and sorted them: 150,000 rows of one channel, 1.1 s a `ready`, for a
    newcomer in a server with a long-lived channel."""
    long = await channels_with_one_long(conn, 300, 20, 5000)
    assert await newcomers_unread_count_reads(conn, long) <= 2 * UNREAD_CAP


async def test_an_unread_count_after_a_mass_deletion_reads_no_more_than_its_cap(
    conn: asyncpg.Connection,
) -> None:
    """A channel of 50,000 messages, all but the newest 400 deleted, then a VACUUM and
    no ANALYZE (as autovacuum may leave it for a while): the planner, its statistics
    older than the deletion, took the channel's (channel_id, seq) key over the live
    messages' near-empty index, and walked every deleted message again: 49,600 rows
    for each count of a reader behind there, until the next ANALYZE. The live index
    covers the walk (migration 0052), which makes it the cheaper read."""
    long = await channels_with_one_long(conn, 50, 200, 50_000)
    await conn.execute(
        "UPDATE messages SET deleted_at = now(), content = '' WHERE channel_id = $1 AND seq <= 49600",
        long,
    )
    await conn.execute("VACUUM messages")
    assert await newcomers_unread_count_reads(conn, long) <= 2 * UNREAD_CAP


async def test_a_search_for_files_or_reactions_alone_reads_those_in_scope_not_the_history(
    conn: asyncpg.Connection,
) -> None:
    """`has:file`, `has:image` or `has:reaction` with no words: the candidates are the
    messages with an attachment (a reaction) in the channels searched, looked up by key.
    Walked newest first and each tested for a file, the whole history was read when the
    channels searched had none (every message of the table here: the walk is by time
    across all channels; 0.4-1.8 s on a server's, up to the search's 2 s budget), and so
    it was with the files as a subquery whenever other channels held many (a helper's
    attack: 230,000 rows for a search of 3,000 channels). Reactions were walked so until
    their counts carried their channel (migration 0051)."""
    await conn.execute(
        """
        INSERT INTO channels (kind, name) SELECT 'group', 'g' || i FROM generate_series(1, 4000) i;
        INSERT INTO messages (id, channel_id, seq, content)
            SELECT gen_random_uuid(), c.id, i, 'hello ' || i
            FROM channels c, generate_series(1, 6) i ORDER BY random();
        INSERT INTO files (size_bytes, sha256) VALUES (1, decode(repeat('ab', 32), 'hex'));
        INSERT INTO users (username, email, email_key, password_hash)
            VALUES ('ann', 'a@x.org', 'a@x.org', 'h');
        -- (files and reactions in the first half of the channels only, two a message)
        CREATE TEMP TABLE busy AS
            SELECT m.id, m.channel_id FROM messages m JOIN channels c ON c.id = m.channel_id
            WHERE substr(c.name, 2)::int <= 2000;
        INSERT INTO attachments (id, message_id, channel_id, position, file_id, filename,
                                 content_type, size_bytes)
            SELECT gen_random_uuid(), b.id, b.channel_id, p, (SELECT id FROM files), 'f',
                   'image/png', 1
            FROM busy b, generate_series(0, 1) p;
        INSERT INTO reactions (message_id, emoji, user_id)
            SELECT b.id, e, (SELECT id FROM users) FROM busy b, unnest(ARRAY['a', 'b']) e;
        ANALYZE channels;
        ANALYZE messages;
        ANALYZE attachments;
        ANALYZE reactions;
        ANALYZE reaction_counts;
        """
    )
    bare = [
        r["id"]
        for r in await conn.fetch("SELECT id FROM channels WHERE substr(name, 2)::int > 2000")
    ]

    async def search(channels: list[uuid.UUID], filters: search_q.Filters) -> list[search_q.Hit]:
        await search_q.set_time_budget(conn, milliseconds=20_000)
        return await search_q.search_window(
            conn,
            channel_ids=channels,
            index_query=None,
            checks=[],
            filters=filters,
            upto=None,
            limit=50,
            rank_query=None,
        )

    every = ("messages", "attachments", "reactions", "reaction_counts")
    for filters in (
        search_q.Filters(has_file=True),
        search_q.Filters(has_image=True),
        search_q.Filters(has_reaction=True),
        search_q.Filters(has_file=True, has_reaction=True),
    ):
        hits, read = await rows_read(conn, lambda f=filters: search(bare[:50], f), tables=every)
        assert hits == []
        assert read <= 100, (filters, read)
        # Half the channels: the files (reactions) of so many may be read by a scan of
        # theirs (the planner's choice, 24,000 rows here), never the history.
        hits, read = await rows_read(conn, lambda f=filters: search(bare, f), tables=("messages",))
        assert hits == []
        assert read <= 100, (filters, read)
    # Many rows but few messages (50 with twenty emoji and ten files each: 1,000 and 500
    # rows): still read first, the messages counted, not the rows.
    for statement in (
        """
        INSERT INTO messages (id, channel_id, seq, content)
            SELECT gen_random_uuid(), $1, 6 + i, 'full ' || i FROM generate_series(1, 44) i
        """,
        """
        INSERT INTO reactions (message_id, emoji, user_id)
            SELECT m.id, 'e' || e, (SELECT id FROM users)
            FROM messages m, generate_series(1, 20) e WHERE m.channel_id = $1
        """,
        """
        INSERT INTO attachments (id, message_id, channel_id, position, file_id, filename,
                                 content_type, size_bytes)
            SELECT gen_random_uuid(), m.id, m.channel_id, p, (SELECT id FROM files), 'f',
                   'image/png', 1
            FROM messages m, generate_series(0, 9) p WHERE m.channel_id = $1
        """,
    ):
        await conn.execute(statement, bare[0])
    for filters in (search_q.Filters(has_reaction=True), search_q.Filters(has_file=True)):
        hits, read = await rows_read(conn, lambda f=filters: search(bare, f), tables=("messages",))
        assert len(hits) == 50
        assert read <= 200, (filters, read)
    # Where there are some, they are found, newest first.
    (some,) = await conn.fetch(
        "SELECT b.channel_id, array_agg(m.id ORDER BY m.seq DESC) AS ids"
        " FROM busy b JOIN messages m ON m.id = b.id GROUP BY b.channel_id LIMIT 1"
    )
    await conn.execute("UPDATE messages SET created_at = now() + seq * interval '1 s'")
    for filters in (search_q.Filters(has_reaction=True), search_q.Filters(has_file=True)):
        hits = await search([some["channel_id"], *bare[1:51]], filters)
        assert [h.id for h in hits] == some["ids"], filters


async def _recent(
    conn: asyncpg.Connection, spammer: uuid.UUID, here: uuid.UUID, **kw: int
) -> tuple[list[Any], int]:
    """What a ban's deletion finds of the spammer's messages in `here`, and the rows it
    read."""
    return await rows_read(
        conn,
        lambda: messages_q.list_recent_messages_by_author(
            conn, server_id=here, author_id=spammer, **kw
        ),
    )


async def _spammer_in_two_servers(conn: asyncpg.Connection) -> tuple[uuid.UUID, uuid.UUID]:
    """A user who owns two servers, 'here' and 'there', of a text channel each: the
    user's id and here's."""
    await conn.execute(
        """
        INSERT INTO users (username, email, email_key, password_hash)
            VALUES ('spammer', 's@x.org', 's@x.org', 'h');
        INSERT INTO servers (name, owner_id) SELECT n, (SELECT id FROM users)
            FROM unnest(ARRAY['here', 'there']) n;
        INSERT INTO channels (server_id, kind, name) SELECT id, 'text', name FROM servers;
        """
    )
    spammer = await conn.fetchval("SELECT id FROM users")
    here = await conn.fetchval("SELECT id FROM servers WHERE name = 'here'")
    return spammer, here


async def test_a_bans_deletion_reads_the_window_of_the_authors_messages_not_all(
    conn: asyncpg.Connection,
) -> None:
    """A ban's `delete_message_seconds` reads the author's messages from now back by
    messages_author_idx, up to its limit: not the 3,000 they wrote before the window,
    nor those of another server."""
    spammer, here = await _spammer_in_two_servers(conn)
    await conn.execute(
        """
        INSERT INTO messages (id, channel_id, seq, author_id, content, created_at)
            SELECT gen_random_uuid(), c.id, i, (SELECT id FROM users), 'spam',
                   now() - make_interval(secs => (3000 - i) * 10 + 5)
            FROM channels c, generate_series(1, 3000) i;
        ANALYZE messages; ANALYZE channels;
        """
    )
    found, read = await _recent(conn, spammer, here, within_s=550, limit=1000, scanned=10_000)
    assert len(found) == 55  # (sent 5 to 545 seconds ago: 2946 to 3000; 5 s either side)
    assert read <= 600, read
    capped, read = await _recent(conn, spammer, here, within_s=604800, limit=50, scanned=500)
    assert len(capped) == 50 and read <= 600, read


async def test_a_bans_deletion_reads_a_bounded_number_of_the_authors_messages(
    conn: asyncpg.Connection,
) -> None:
    """However much the author wrote elsewhere in the window (600 sends a minute for
    days, deleted ones too), a ban's deletion reads at most `scanned` of their messages:
    their newest, wherever they are; those of its server behind them are not found."""
    spammer, here = await _spammer_in_two_servers(conn)
    await conn.execute(
        """
        INSERT INTO messages (id, channel_id, seq, author_id, content, created_at, deleted_at)
            SELECT gen_random_uuid(), c.id, i, (SELECT id FROM users),
                   CASE WHEN c.name = 'there' AND i % 2 = 0 THEN '' ELSE 'spam' END,
                   now() - make_interval(secs => CASE c.name WHEN 'here' THEN 9000 ELSE 0 END
                                                 + 6000 - i),
                   CASE WHEN c.name = 'there' AND i % 2 = 0 THEN now() END
            FROM channels c, generate_series(1, 6000) i;
        ANALYZE messages; ANALYZE channels;
        """
    )
    found, read = await _recent(conn, spammer, here, within_s=604800, limit=100, scanned=1_000)
    assert found == [] and read <= 1_100, read
    found, read = await _recent(conn, spammer, here, within_s=604800, limit=100, scanned=7_000)
    assert len(found) == 100 and read <= 7_300, read


async def test_a_usernames_look_is_found_by_its_index(conn: asyncpg.Connection) -> None:
    # (the query's fold must be the index's expression, written alike, or every
    # registration and rename reads the whole users table)
    sql = await sent(conn, lambda c: users_q.username_look_taken(c, look="rnallory"))
    plan = await generic_plan(conn, sql, "text, uuid", f"'rnallory', '{NIL}'")
    (scan,) = scans(plan, "users")
    assert scan.get("Index Name") == "users_username_look_idx", scan
