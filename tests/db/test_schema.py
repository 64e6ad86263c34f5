from __future__ import annotations

import uuid

import asyncpg
import pytest

from xfchat.db.queries import channels as channels_q
from xfchat.db.queries import event_log as event_log_q
from xfchat.db.queries import friends as friends_q
from xfchat.db.queries import messages as messages_q
from xfchat.db.queries import roles as roles_q
from xfchat.db.queries import servers as servers_q
from xfchat.db.queries import users as users_q


async def make_user(conn: asyncpg.Connection, name: str) -> users_q.UserRow:
    return await users_q.insert_user(
        conn,
        username=name,
        email=f"{name}@example.com",
        email_key=f"{name}@example.com",
        password_hash="x",
    )


async def test_friend_request_to_yourself_violates_the_check(conn: asyncpg.Connection) -> None:
    alice = await make_user(conn, "alice")
    with pytest.raises(asyncpg.CheckViolationError, match="friend_requests_different_users"):
        await friends_q.insert_friend_request(conn, from_user_id=alice.id, to_user_id=alice.id)


async def test_only_one_pending_request_per_pair_either_way(conn: asyncpg.Connection) -> None:
    alice, bob = await make_user(conn, "alice"), await make_user(conn, "bob")
    await friends_q.insert_friend_request(conn, from_user_id=alice.id, to_user_id=bob.id)
    with pytest.raises(asyncpg.UniqueViolationError):
        await friends_q.insert_friend_request(conn, from_user_id=bob.id, to_user_id=alice.id)


@pytest.mark.parametrize("other", ["ALICE", "Alice", "aLiCe"])
async def test_username_is_unique_case_insensitively(conn: asyncpg.Connection, other: str) -> None:
    await make_user(conn, "alice")
    with pytest.raises(asyncpg.UniqueViolationError, match="users_username_lower_key"):
        await users_q.insert_user(
            conn,
            username=other,
            email="other@example.com",
            email_key="other@example.com",
            password_hash="x",
        )


async def test_email_key_is_unique(conn: asyncpg.Connection) -> None:
    await make_user(conn, "alice")
    with pytest.raises(asyncpg.UniqueViolationError, match="users_email_key"):
        await users_q.insert_user(
            conn,
            username="alice2",
            email="ALICE@Example.com",
            email_key="alice@example.com",
            password_hash="x",
        )


@pytest.mark.parametrize("bad", ["a", "x" * 33, "has space", "semi;colon", "émile"])
async def test_username_format_is_checked(conn: asyncpg.Connection, bad: str) -> None:
    with pytest.raises(asyncpg.CheckViolationError, match="users_username_format"):
        await users_q.insert_user(
            conn, username=bad, email="a@example.com", email_key="a@example.com", password_hash="x"
        )


async def test_deleting_a_server_removes_its_channels_and_their_messages(
    conn: asyncpg.Connection,
) -> None:
    owner = await make_user(conn, "owner")
    server = await servers_q.insert_server(conn, name="S", owner_id=owner.id)
    await servers_q.insert_server_member(conn, server_id=server.id, user_id=owner.id)
    role = await roles_q.insert_role(conn, server_id=server.id, name="r", permissions=1, position=1)
    await roles_q.insert_member_role(conn, server_id=server.id, user_id=owner.id, role_id=role.id)
    channel = await channels_q.insert_channel(
        conn, server_id=server.id, kind="text", name="general"
    )
    message = await messages_q.insert_message(
        conn, message_id=uuid.uuid4(), channel_id=channel.id, author_id=owner.id, content="hi"
    )
    await messages_q.insert_reaction(conn, message_id=message.id, user_id=owner.id, emoji="👍")

    assert await servers_q.delete_server(conn, server_id=server.id)
    # Its messages wait in their channel's place in the purge's queue (migration 0055).
    assert await messages_q.claim_channel_purge(conn) == channel.id
    while await messages_q.delete_newest_messages(conn, channel_id=channel.id, limit=1000):
        pass

    for table, column, value in [
        ("channels", "id", channel.id),
        ("messages", "id", message.id),
        ("reactions", "message_id", message.id),
        ("roles", "id", role.id),
        ("server_members", "server_id", server.id),
        ("member_roles", "server_id", server.id),
    ]:
        count = await conn.fetchval(f"SELECT count(*) FROM {table} WHERE {column} = $1", value)  # noqa: S608
        assert count == 0, table
    assert await users_q.get_user(conn, user_id=owner.id) is not None


async def test_a_server_owner_cannot_be_deleted_while_owning(conn: asyncpg.Connection) -> None:
    owner = await make_user(conn, "owner")
    await servers_q.insert_server(conn, name="S", owner_id=owner.id)
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await conn.execute("DELETE FROM users WHERE id = $1", owner.id)


async def test_a_member_cannot_get_another_servers_role(conn: asyncpg.Connection) -> None:
    owner = await make_user(conn, "owner")
    s1 = await servers_q.insert_server(conn, name="S1", owner_id=owner.id)
    s2 = await servers_q.insert_server(conn, name="S2", owner_id=owner.id)
    await servers_q.insert_server_member(conn, server_id=s1.id, user_id=owner.id)
    foreign = await roles_q.insert_role(conn, server_id=s2.id, name="r", permissions=0, position=1)
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await roles_q.insert_member_role(
            conn, server_id=s1.id, user_id=owner.id, role_id=foreign.id
        )


async def test_one_direct_conversation_per_pair(conn: asyncpg.Connection) -> None:
    a, b = await make_user(conn, "alice"), await make_user(conn, "bob")
    await channels_q.insert_channel(conn, kind="direct", dm_pair=(a.id, b.id))
    with pytest.raises(asyncpg.UniqueViolationError, match="channels_direct_pair_key"):
        await channels_q.insert_channel(conn, kind="direct", dm_pair=(b.id, a.id))


async def test_conversations_have_no_server_and_server_channels_need_one(
    conn: asyncpg.Connection,
) -> None:
    owner = await make_user(conn, "owner")
    server = await servers_q.insert_server(conn, name="S", owner_id=owner.id)
    with pytest.raises(asyncpg.CheckViolationError, match="channels_server_iff_not_conversation"):
        await channels_q.insert_channel(conn, kind="text", name="orphan")
    with pytest.raises(asyncpg.CheckViolationError, match="channels_server_iff_not_conversation"):
        await channels_q.insert_channel(conn, kind="group", server_id=server.id, name="g")


async def test_override_targets_exactly_one_and_allow_deny_are_disjoint(
    conn: asyncpg.Connection,
) -> None:
    owner = await make_user(conn, "owner")
    server = await servers_q.insert_server(conn, name="S", owner_id=owner.id)
    channel = await channels_q.insert_channel(conn, server_id=server.id, kind="text", name="c")
    sql = (
        "INSERT INTO channel_permission_overrides (channel_id, role_id, user_id, allow, deny) "
        "VALUES ($1, $2, $3, $4, $5)"
    )
    with pytest.raises(asyncpg.CheckViolationError, match="overrides_role_xor_user"):
        await conn.execute(sql, channel.id, None, None, 1, 0)
    with pytest.raises(asyncpg.CheckViolationError, match="overrides_allow_deny_disjoint"):
        await conn.execute(sql, channel.id, None, owner.id, 3, 1)
    await conn.execute(sql, channel.id, None, owner.id, 1, 2)
    with pytest.raises(asyncpg.UniqueViolationError):
        await conn.execute(sql, channel.id, None, owner.id, 4, 0)


async def test_message_sequence_numbers_are_gap_free_per_channel(conn: asyncpg.Connection) -> None:
    owner = await make_user(conn, "owner")
    server = await servers_q.insert_server(conn, name="S", owner_id=owner.id)
    c1 = await channels_q.insert_channel(conn, server_id=server.id, kind="text", name="one")
    c2 = await channels_q.insert_channel(conn, server_id=server.id, kind="text", name="two")
    seqs: dict[uuid.UUID, list[int]] = {c1.id: [], c2.id: []}
    for i in range(6):
        channel = c1 if i % 3 else c2
        if i == 4:  # a rolled-back insert must not leave a hole
            tx = conn.transaction()
            await tx.start()
            await messages_q.insert_message(
                conn,
                message_id=uuid.uuid4(),
                channel_id=channel.id,
                author_id=owner.id,
                content="gone",
            )
            await tx.rollback()
        msg = await messages_q.insert_message(
            conn, message_id=uuid.uuid4(), channel_id=channel.id, author_id=owner.id, content=str(i)
        )
        seqs[channel.id].append(msg.seq)
    assert seqs[c1.id] == [1, 2, 3, 4]
    assert seqs[c2.id] == [1, 2]


async def test_message_content_limit_is_enforced_by_the_schema(conn: asyncpg.Connection) -> None:
    owner = await make_user(conn, "owner")
    dm_peer = await make_user(conn, "peer")
    dm = await channels_q.insert_channel(conn, kind="direct", dm_pair=(owner.id, dm_peer.id))
    with pytest.raises(asyncpg.CheckViolationError, match="messages_content_length"):
        await messages_q.insert_message(
            conn, message_id=uuid.uuid4(), channel_id=dm.id, author_id=owner.id, content="x" * 4001
        )


async def test_full_text_search_index_answers(conn: asyncpg.Connection) -> None:
    owner = await make_user(conn, "owner")
    peer = await make_user(conn, "peer")
    dm = await channels_q.insert_channel(conn, kind="direct", dm_pair=(owner.id, peer.id))
    for text in ["who is up for a game tonight?", "lunch tomorrow", "games are fun"]:
        await messages_q.insert_message(
            conn, message_id=uuid.uuid4(), channel_id=dm.id, author_id=owner.id, content=text
        )
    found = await conn.fetch(
        "SELECT content FROM messages WHERE search @@ to_tsquery('english', 'game & tonight')"
    )
    assert [r["content"] for r in found] == ["who is up for a game tonight?"]


async def test_user_search_by_display_name_is_served_by_its_index(
    conn: asyncpg.Connection,
) -> None:
    """The query's fold of display_name is the very expression migration 0032 indexes
    (the plan of the prepared statement, generic, as the pool plans them)."""
    captured: list[str] = []

    class Capture:
        async def fetch(self, sql: str, *args: object) -> list[object]:
            captured.append(sql)
            return []

    await users_q.search_users(Capture(), user_id=uuid.uuid4(), folded="emile", limit=10)  # type: ignore[arg-type]
    await conn.execute("SET enable_seqscan = off")
    await conn.execute("SET plan_cache_mode = force_generic_plan")
    await conn.execute(f"PREPARE search_users AS {captured[0]}")
    plan = await conn.fetch(
        "EXPLAIN EXECUTE search_users('00000000-0000-0000-0000-000000000000', 'e', 'f', 10,"
        " 'e', 'e')"
    )
    assert "users_display_name_fold_idx" in "\n".join(r[0] for r in plan)


async def test_a_deletions_scrub_of_its_events_is_served_by_indexes(
    conn: asyncpg.Connection,
) -> None:
    """Deleting a message empties it in the event log: its own events, the previews of it
    in replies and its reactions' emoji. Each statement finds its events by an index of
    what they name (migration 0037 for the reactions'), never by reading every event of
    the channel in the log (a week of a busy channel's, on every deletion): planned as
    the pool plans them, generic. (A batch at a time, in stream order, by the indexes
    of migration 0044.)"""
    await conn.execute("SET enable_seqscan = off")
    await conn.execute("SET plan_cache_mode = force_generic_plan")
    for n, (sql, extra, index) in enumerate(
        [
            (event_log_q.SCRUB_OWN, ", jsonb", "events_message_pos_idx"),
            (event_log_q.SCRUB_PREVIEWS, "", "events_reply_to_pos_idx"),
            (event_log_q.SCRUB_REACTIONS, "", "events_reaction_pos_idx"),
        ]
    ):
        # (a batch of some messages' events in their stream, each after its place)
        await conn.execute(f"PREPARE scrub_{n}(bigint, text[], bigint[], int{extra}) AS {sql}")
        given = "1, '{x,y}', '{0,0}', 2500" + (", '{}'" if extra else "")
        plan = "\n".join(r[0] for r in await conn.fetch(f"EXPLAIN EXECUTE scrub_{n}({given})"))
        assert index in plan, plan
