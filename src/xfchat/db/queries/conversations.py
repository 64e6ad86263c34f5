"""Conversations: channels without a server, and the people in them."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

import asyncpg

from xfchat.db.queries import many, one
from xfchat.db.queries.channels import CHANNEL_COLUMNS, CHANNEL_COLUMNS_OF_C, ChannelRow


@dataclass(frozen=True)
class ConversationListRow:
    channel: ChannelRow
    participant_ids: list[UUID]
    last_read_seq: int
    unread: int  # others' live messages after last_read_seq, counted up to UNREAD_CAP
    mention_count: int  # ... of them, those that mention the user
    last_message_id: UUID | None


async def insert_group(conn: asyncpg.Connection, *, name: str | None, owner_id: UUID) -> ChannelRow:
    record = await conn.fetchrow(
        f"""
        INSERT INTO channels (kind, name, owner_id) VALUES ('group', $1, $2)
        RETURNING {CHANNEL_COLUMNS}
        """,
        name,
        owner_id,
    )
    return one(ChannelRow, record)


async def list_participant_ids(conn: asyncpg.Connection, *, channel_id: UUID) -> list[UUID]:
    records = await conn.fetch(
        "SELECT user_id FROM conversation_participants WHERE channel_id = $1 ORDER BY joined_at, user_id",
        channel_id,
    )
    return [r["user_id"] for r in records]


async def list_conversation_peers(conn: asyncpg.Connection, *, user_id: UUID) -> list[UUID]:
    """Everyone the user shares a group conversation with (at most
    MAX_CONVERSATIONS_PER_USER of MAX_PARTICIPANTS each), once each. A direct
    conversation alone makes nobody a peer: anyone may open one with anyone."""
    records = await conn.fetch(
        """
        SELECT DISTINCT p2.user_id FROM conversation_participants p1
        JOIN channels c ON c.id = p1.channel_id AND c.kind = 'group'
        JOIN conversation_participants p2 ON p2.channel_id = p1.channel_id
        WHERE p1.user_id = $1 AND p2.user_id <> $1
        """,
        user_id,
    )
    return [r["user_id"] for r in records]


async def list_groups_with_participants(
    conn: asyncpg.Connection, *, channel_ids: list[UUID]
) -> list[tuple[ChannelRow, list[UUID]]]:
    """These groups (others' ids are left out), in id order, each with its participants
    in the order they joined (list_participant_ids's)."""
    records = await conn.fetch(
        f"""
        SELECT {CHANNEL_COLUMNS_OF_C}, ARRAY(
            SELECT p.user_id FROM conversation_participants p WHERE p.channel_id = c.id
            ORDER BY p.joined_at, p.user_id
        ) AS people
        FROM channels c WHERE c.id = ANY($1::uuid[]) AND c.kind = 'group' ORDER BY c.id
        """,
        channel_ids,
    )
    return [(ChannelRow(*r[:-1]), list(r["people"])) for r in records]


async def delete_participant_of_all(
    conn: asyncpg.Connection, *, user_id: UUID, channel_ids: list[UUID]
) -> None:
    await conn.execute(
        "DELETE FROM conversation_participants WHERE user_id = $1 AND channel_id = ANY($2::uuid[])",
        user_id,
        channel_ids,
    )


async def hand_over_groups(
    conn: asyncpg.Connection, *, channel_ids: list[UUID], owner_ids: list[UUID]
) -> list[ChannelRow]:
    """Each group (channel_ids) to its new owner (owner_ids, pairwise), in id order."""
    records = await conn.fetch(
        f"""
        UPDATE channels c SET owner_id = n.owner_id, updated_at = now()
        FROM unnest($1::uuid[], $2::uuid[]) AS n(id, owner_id) WHERE c.id = n.id
        RETURNING {CHANNEL_COLUMNS_OF_C}
        """,
        channel_ids,
        owner_ids,
    )
    return sorted(many(ChannelRow, records), key=lambda c: c.id)


async def update_group(
    conn: asyncpg.Connection, *, channel_id: UUID, name: str | None, owner_id: UUID | None
) -> ChannelRow:
    record = await conn.fetchrow(
        f"""
        UPDATE channels SET name = $2, owner_id = $3, updated_at = now() WHERE id = $1
        RETURNING {CHANNEL_COLUMNS}
        """,
        channel_id,
        name,
        owner_id,
    )
    return one(ChannelRow, record)


UNREAD_CAP = 100
# The mentions of a reader that a mention count reads after the read position, at most,
# before it judges them (their message live, someone else's, not by someone the reader
# blocked): a blocked author who floods a channel with mentions of the reader adds at
# most this many rows to each of the reader's counts, where each of theirs was read.
# The count then misses mentions past those until the reader reads past them (the badge
# says less, never more). (@everyone's are all read, as before: only those with
# MENTION_EVERYONE send them.)
MENTION_WALK = 10 * UNREAD_CAP
# The greatest sequence number (bigint): the upper bound of a walk of one target's mentions
# in one channel by message_mentions' key.
MAX_SEQ = 9223372036854775807
# A message `m` whose author the reader ($1; `w.user_id` in a statement of many
# readers) blocked pings them no more than it would on Discord: it is no mention of
# theirs (in counts and in "my mentions"). Only the reader's own blocks count, so nothing
# here tells the author of a block.
NOT_FROM_BLOCKED = (
    "NOT EXISTS (SELECT 1 FROM blocks b WHERE b.blocker_id = $1 AND b.blocked_id = m.author_id)"
)
NOT_FROM_BLOCKED_W = (
    "NOT EXISTS (SELECT 1 FROM blocks b"
    " WHERE b.blocker_id = w.user_id AND b.blocked_id = m.author_id)"
)
# A message `m` the unread counts count for the reader: someone else's, not deleted (the
# mention counts here; the unread count's own walk, xf_unread_count of migration 0048,
# says the same in SQL).
# (`coalesce(m.author_id <> reader, true)` is `m.author_id IS DISTINCT FROM reader`, which
# the planner estimates from the column's statistics: in a channel of one author, a bot's
# announcements, it expected no row to pass, and read and sorted the whole history after
# the read position rather than walk the first hundred in order.)
OTHERS_LIVE = "coalesce(m.author_id <> $1, true) AND m.deleted_at IS NULL"
OTHERS_LIVE_W = "coalesce(m.author_id <> w.user_id, true) AND m.deleted_at IS NULL"


# Each conversation of a list, with its participants, the user's read position, unread
# and mention counts and the id of its last message ($1: the user).
_LIST_SELECT = f"""
    SELECT {CHANNEL_COLUMNS_OF_C},
           ARRAY(SELECT p2.user_id FROM conversation_participants p2
                 WHERE p2.channel_id = c.id ORDER BY p2.joined_at, p2.user_id) AS participant_ids,
           COALESCE(rs.last_read_seq, 0) AS last_read_seq,
           -- (in order, by the live messages' index, and never a bitmap of all of
           -- them: migration 0048)
           xf_unread_count(c.id, COALESCE(rs.last_read_seq, 0), $1, NULL, {UNREAD_CAP})
               AS unread,
           -- Walks the user's mentions in this conversation after the read position
           -- (message_mentions, migration 0041), not the unread; capped like `unread`,
           -- so never more than it. In order, by the key (target, channel, seq), the
           -- first MENTION_WALK at most, each message looked up by its own (OFFSET 0: a
           -- generic plan otherwise merges in the conversation's history, and the
           -- mentions of everyone there).
           (SELECT count(*) FROM (
                SELECT 1 FROM (
                    SELECT mm.channel_id, mm.seq FROM message_mentions mm
                    -- (bounds only the key can take: by the channel's index a generic
                    -- plan may walk everyone's mentions there, filtering for the user's)
                    WHERE (mm.target_id, mm.channel_id, mm.seq)
                          > ($1, c.id, COALESCE(rs.last_read_seq, 0))
                      AND (mm.target_id, mm.channel_id, mm.seq) <= ($1, c.id, {MAX_SEQ})
                    ORDER BY mm.target_id, mm.channel_id, mm.seq
                    LIMIT {MENTION_WALK}) mm
                CROSS JOIN LATERAL (
                    SELECT 1 FROM messages m
                    WHERE m.channel_id = mm.channel_id AND m.seq = mm.seq
                      AND {OTHERS_LIVE}
                      AND {NOT_FROM_BLOCKED}
                    OFFSET 0) ok
                LIMIT {UNREAD_CAP}) x) AS mention_count,
           last.id AS last_message_id
    FROM channels c
    LEFT JOIN read_states rs ON rs.user_id = $1 AND rs.channel_id = c.id
    LEFT JOIN LATERAL (
        SELECT m.id, m.created_at FROM messages m
        WHERE m.channel_id = c.id AND m.deleted_at IS NULL  -- (a tombstone says nothing)
        ORDER BY m.seq DESC LIMIT 1
    ) last ON true
"""
# Most recently active first: by the last live message, else by creation.
_BY_ACTIVITY = "last.created_at DESC NULLS LAST, c.created_at DESC, c.id"


async def list_conversation_ids_by_activity(
    conn: asyncpg.Connection, *, channel_ids: list[UUID]
) -> list[UUID]:
    """These conversations' ids, most recently active first (as list_conversations
    orders them): cheap, for reading the conversations themselves a few at a time."""
    records = await conn.fetch(
        f"""
        SELECT c.id FROM channels c
        LEFT JOIN LATERAL (
            SELECT m.created_at FROM messages m
            WHERE m.channel_id = c.id AND m.deleted_at IS NULL
            ORDER BY m.seq DESC LIMIT 1
        ) last ON true
        WHERE c.id = ANY($1::uuid[]) AND c.server_id IS NULL
        ORDER BY {_BY_ACTIVITY}
        """,
        channel_ids,
    )
    return [r["id"] for r in records]


async def list_conversations(
    conn: asyncpg.Connection, *, user_id: UUID, channel_ids: list[UUID]
) -> list[ConversationListRow]:
    """These conversations (the user's), most recently active first, each with its
    participants, the user's read position, unread and mention counts and the id of its
    last message."""
    records = await conn.fetch(
        f"""
        {_LIST_SELECT}
        WHERE c.id = ANY($2::uuid[]) AND c.server_id IS NULL
        ORDER BY {_BY_ACTIVITY}
        """,
        user_id,
        channel_ids,
    )
    return _list_rows(records)


async def list_conversations_by_id(
    conn: asyncpg.Connection,
    *,
    user_id: UUID,
    channel_ids: list[UUID],
    after: UUID | None,
    limit: int,
) -> list[ConversationListRow]:
    """The first `limit` of these conversations (the user's) by id, after `after`."""
    records = await conn.fetch(
        f"""
        {_LIST_SELECT}
        WHERE c.id = ANY($2::uuid[]) AND c.server_id IS NULL
          AND ($3::uuid IS NULL OR c.id > $3)
        ORDER BY c.id LIMIT $4
        """,
        user_id,
        channel_ids,
        after,
        limit,
    )
    return _list_rows(records)


def _list_rows(records: list[asyncpg.Record]) -> list[ConversationListRow]:
    fields = ChannelRow.__dataclass_fields__
    return [
        ConversationListRow(
            ChannelRow(**{f: r[f] for f in fields}),
            list(r["participant_ids"]),
            r["last_read_seq"],
            r["unread"],
            r["mention_count"],
            r["last_message_id"],
        )
        for r in records
    ]


async def block_between(conn: asyncpg.Connection, *, users: list[UUID], others: list[UUID]) -> bool:
    """Whether one of `users` and one of `others` have a block between them (either way)."""
    return bool(
        await conn.fetchval(
            """
            SELECT EXISTS (
                SELECT 1 FROM blocks
                WHERE (blocker_id = ANY($1::uuid[]) AND blocked_id = ANY($2::uuid[]))
                   OR (blocker_id = ANY($2::uuid[]) AND blocked_id = ANY($1::uuid[]))
            )
            """,
            users,
            others,
        )
    )


async def strangers_among(
    conn: asyncpg.Connection, *, user_id: UUID, others: list[UUID]
) -> list[UUID]:
    """Those of `others` who are not friends of `user_id`."""
    records = await conn.fetch(
        """
        SELECT o FROM unnest($2::uuid[]) AS o
        WHERE NOT EXISTS (
            SELECT 1 FROM friendships f
            WHERE f.user_low = LEAST($1::uuid, o) AND f.user_high = GREATEST($1::uuid, o)
        )
        """,
        user_id,
        others,
    )
    return [r["o"] for r in records]


async def existing_user_ids(conn: asyncpg.Connection, *, user_ids: list[UUID]) -> list[UUID]:
    records = await conn.fetch("SELECT id FROM users WHERE id = ANY($1::uuid[])", user_ids)
    return [r["id"] for r in records]


async def users_at_conversation_limit(
    conn: asyncpg.Connection, *, user_ids: list[UUID], limit: int
) -> list[UUID]:
    """Those of `user_ids` who already take part in `limit` conversations or more, not
    counting a direct conversation the other side opened with someone they blocked:
    anyone may open one with a person who takes direct messages from everyone, so
    strangers' accounts could otherwise fill that person's places (there is no leaving a
    direct conversation). One they opened counts whomever they block (else opening and
    blocking would free a place each time). (With no opener recorded, migration 0042's
    older ones, either side's block frees that side's place.) Each one left out needs
    a block standing, so a person takes part in at most `limit` + MAX_BLOCKS
    (domain/friends.py) conversations, however they block and unblock."""
    records = await conn.fetch(
        """
        SELECT p.user_id FROM conversation_participants p
        JOIN channels c ON c.id = p.channel_id
        WHERE p.user_id = ANY($1::uuid[])
          AND NOT (c.kind = 'direct' AND c.opened_by IS DISTINCT FROM p.user_id AND EXISTS (
              SELECT 1 FROM blocks b
              WHERE b.blocker_id = p.user_id
                AND b.blocked_id = CASE WHEN c.dm_user_low = p.user_id
                                        THEN c.dm_user_high ELSE c.dm_user_low END))
        GROUP BY p.user_id HAVING count(*) >= $2
        """,
        user_ids,
        limit,
    )
    return [r["user_id"] for r in records]
