from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from xfchat.db.queries import many, maybe, one
from xfchat.db.queries.attachments import ATTACHMENTS_JSON
from xfchat.db.queries.conversations import (
    MAX_SEQ,
    MENTION_WALK,
    NOT_FROM_BLOCKED,
    NOT_FROM_BLOCKED_W,
    OTHERS_LIVE_W,
    UNREAD_CAP,
)
from xfchat.db.queries.users import PUBLIC_USER_COLUMNS_U, PublicUserRow, public_user_from

MESSAGE_COLUMNS = (
    "id, channel_id, seq, author_id, kind, content, nonce, reply_to_id, mentions, "
    "mention_everyone, mention_roles, created_at, edited_at, deleted_at, pinned_at"
)
MESSAGE_COLUMNS_M = ", ".join(f"m.{c.strip()}" for c in MESSAGE_COLUMNS.split(","))
REPLY_PREVIEW_CHARS = 100
# The language a new message of channel $1 (or $2) is indexed in: its server's
# (migration 0021); conversations are indexed in English.
_SEARCH_CONFIG_OF = """(SELECT COALESCE(s.search_language, 'english'::regconfig)
     FROM channels ch LEFT JOIN servers s ON s.id = ch.server_id WHERE ch.id = $%d)"""
SEARCH_CONFIG_OF_1 = _SEARCH_CONFIG_OF % 1
SEARCH_CONFIG_OF_2 = _SEARCH_CONFIG_OF % 2
# A message (`rm`, its author `ru`) as a reply to it shows it: a JSON object with its
# id, author, the start of its text, and whether it was deleted.
REPLY_PREVIEW_OBJECT = f"""
    json_build_object(
        'id', rm.id,
        'author', CASE WHEN rm.webhook_name IS NOT NULL THEN json_build_object(
            'id', rm.webhook_id,
            'username', rm.webhook_name, 'display_name', rm.webhook_name,
            'avatar_url', rm.webhook_avatar_url, 'deleted', false,
            'bot', true)
        WHEN rm.author_id IS NULL THEN NULL ELSE json_build_object(
            'id', rm.author_id, 'username', ru.username,
            'display_name', ru.display_name, 'avatar_url', ru.avatar_url,
            'deleted', ru.deleted_at IS NOT NULL) END,
        'content', left(rm.content, {REPLY_PREVIEW_CHARS}),
        'deleted', rm.deleted_at IS NOT NULL)
"""
# The message a reply (`m`) answers, previewed.
REPLY_PREVIEW = f"""
    (SELECT {REPLY_PREVIEW_OBJECT} FROM messages rm LEFT JOIN users ru ON ru.id = rm.author_id
     WHERE rm.id = m.reply_to_id)
"""
# Whether the user $1 reacted to the message with the emoji of a count row `rc` (by the
# reactions' key: never the message's other reactions).
REACTED_RC = """EXISTS (SELECT 1 FROM reactions r WHERE r.message_id = rc.message_id
                        AND r.emoji = rc.emoji AND r.user_id = $1)"""
# A message as readers see it: its author's public fields, a preview of the message it
# replies to, and its reactions summed up, at most MAX_REACTION_EMOJI rows of the counts
# (migration 0049) in the order their emoji came (`me` says whether the viewer, $1 in
# every query that uses this, reacted). Only a message whose channel is there: a
# deleted channel's wait for their purge (migration 0055), and a read whose access was
# checked in a statement before the deletion's commit must not show them after it.
MESSAGE_VIEW = f"""
    SELECT {MESSAGE_COLUMNS_M},
           u.username AS author_username, u.display_name AS author_display_name,
           u.avatar_url AS author_avatar_url, u.deleted_at IS NOT NULL AS author_deleted,
           {REPLY_PREVIEW} AS reply_to,
           COALESCE((
               SELECT json_agg(json_build_object('emoji', rc.emoji, 'count', rc.count,
                                                 'me', {REACTED_RC})
                               ORDER BY rc.first_at, rc.emoji)
               FROM reaction_counts rc WHERE rc.message_id = m.id
           ), '[]'::json) AS reactions,
           {ATTACHMENTS_JSON} AS attachments,
           m.webhook_id, m.webhook_name, m.webhook_avatar_url
    FROM messages m JOIN channels mc ON mc.id = m.channel_id
         LEFT JOIN users u ON u.id = m.author_id
"""


@dataclass(frozen=True)
class MessageRow:
    id: UUID
    channel_id: UUID
    seq: int
    author_id: UUID | None
    kind: str
    content: str
    nonce: str | None
    reply_to_id: UUID | None
    mentions: list[UUID]
    mention_everyone: bool
    mention_roles: list[UUID]
    created_at: datetime
    edited_at: datetime | None
    deleted_at: datetime | None
    pinned_at: datetime | None


@dataclass(frozen=True)
class MessageViewRow(MessageRow):
    author_username: str | None
    author_display_name: str | None
    author_avatar_url: str | None
    author_deleted: bool
    reply_to: dict[str, Any] | None
    reactions: list[dict[str, Any]]
    attachments: list[dict[str, Any]]
    webhook_id: UUID | None  # a webhook's message (migration 0064): who posted it, as
    webhook_name: str | None  # what name
    webhook_avatar_url: str | None  # and avatar


@dataclass(frozen=True)
class EditRow:
    content: str
    written_at: datetime
    replaced_at: datetime


@dataclass(frozen=True)
class ReadStateRow:
    """A read position, and the read receipt the others are shown of it: the highest
    position reached (`receipt_seq`) and when it was first reached (`receipt_at`)."""

    user_id: UUID
    last_read_seq: int
    updated_at: datetime
    receipt_seq: int
    receipt_at: datetime


# The receipt of a row (migration 0058): its highest position is GREATEST(receipt_seq,
# last_read_seq) (a send moves last_read_seq past receipt_seq without an ack); it was
# reached at updated_at while last_read_seq is above receipt_seq, else at receipt_at
# (NULL: at updated_at, for a row no ack below its highest has touched).
_READ_STATE = """user_id, last_read_seq, updated_at,
    GREATEST(receipt_seq, last_read_seq) AS receipt_seq,
    CASE WHEN last_read_seq > receipt_seq THEN updated_at
         ELSE COALESCE(receipt_at, updated_at) END AS receipt_at"""


async def insert_message(
    conn: asyncpg.Connection,
    *,
    message_id: UUID,
    channel_id: UUID,
    author_id: UUID | None,
    content: str,
    nonce: str | None = None,
    reply_to_id: UUID | None = None,
    mentions: list[UUID] | None = None,
    kind: str = "default",
) -> MessageRow:
    """Insert one message at the channel's next sequence number, without an event (the
    demo data and system messages, whose writers emit the event; sends go through
    insert_messages_and_events)."""
    record = await conn.fetchrow(
        f"""
        WITH c AS (
            UPDATE channels SET last_seq = last_seq + 1 WHERE id = $2 RETURNING last_seq
        )
        INSERT INTO messages (id, channel_id, seq, author_id, content, nonce, reply_to_id, mentions,
                              kind, search_config)
        SELECT $1, $2, c.last_seq, $3, $4, $5, $6, $7, $8, {SEARCH_CONFIG_OF_2} FROM c
        RETURNING {MESSAGE_COLUMNS}
        """,
        message_id,
        channel_id,
        author_id,
        content,
        nonce,
        reply_to_id,
        mentions or [],
        kind,
    )
    return one(MessageRow, record)


_LIST_NEWEST = MESSAGE_VIEW + " WHERE m.channel_id = $2 ORDER BY m.seq DESC LIMIT $3"
_LIST_BEFORE = MESSAGE_VIEW + " WHERE m.channel_id = $2 AND m.seq < $4 ORDER BY m.seq DESC LIMIT $3"
_LIST_AFTER = MESSAGE_VIEW + " WHERE m.channel_id = $2 AND m.seq > $4 ORDER BY m.seq ASC LIMIT $3"
# Around a seq: up to $3 at or before it and up to $5 after it, newest first.
_LIST_AROUND = f"""
    ({MESSAGE_VIEW} WHERE m.channel_id = $2 AND m.seq <= $4 ORDER BY m.seq DESC LIMIT $3)
    UNION ALL
    ({MESSAGE_VIEW} WHERE m.channel_id = $2 AND m.seq > $4 ORDER BY m.seq ASC LIMIT $5)
    ORDER BY seq DESC
"""


async def list_messages(
    conn: asyncpg.Connection,
    *,
    viewer: UUID,
    channel_id: UUID,
    limit: int,
    before: int | None = None,
    after: int | None = None,
) -> list[MessageViewRow]:
    """Newest first (no cursor, or `before`), or oldest first (`after`)."""
    if after is not None:
        records = await conn.fetch(_LIST_AFTER, viewer, channel_id, limit, after)
    elif before is not None:
        records = await conn.fetch(_LIST_BEFORE, viewer, channel_id, limit, before)
    else:
        records = await conn.fetch(_LIST_NEWEST, viewer, channel_id, limit)
    return many(MessageViewRow, records)


async def list_messages_around(
    conn: asyncpg.Connection,
    *,
    viewer: UUID,
    channel_id: UUID,
    around: int,
    older: int,
    newer: int,
) -> list[MessageViewRow]:
    """Up to `older` messages at or before `around` and up to `newer` after it, newest
    first."""
    records = await conn.fetch(_LIST_AROUND, viewer, channel_id, older, around, newer)
    return many(MessageViewRow, records)


async def list_message_views(
    conn: asyncpg.Connection, *, viewer: UUID | None, ids: list[UUID]
) -> list[MessageViewRow]:
    records = await conn.fetch(
        MESSAGE_VIEW + " WHERE m.id = ANY($2::uuid[]) ORDER BY m.seq", viewer, ids
    )
    return many(MessageViewRow, records)


async def get_message_view(
    conn: asyncpg.Connection, *, viewer: UUID, channel_id: UUID, message_id: UUID
) -> MessageViewRow | None:
    record = await conn.fetchrow(
        MESSAGE_VIEW + " WHERE m.id = $2 AND m.channel_id = $3", viewer, message_id, channel_id
    )
    return maybe(MessageViewRow, record)


async def get_reply_to(
    conn: asyncpg.Connection, *, channel_id: UUID, message_id: UUID
) -> UUID | None:
    """The message a message replies to (never changes; read without a lock)."""
    value = await conn.fetchval(
        "SELECT reply_to_id FROM messages WHERE id = $1 AND channel_id = $2",
        message_id,
        channel_id,
    )
    return value if value is None else UUID(str(value))


async def get_message_for_update(
    conn: asyncpg.Connection, *, channel_id: UUID, message_id: UUID
) -> MessageRow | None:
    record = await conn.fetchrow(
        f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = $1 AND channel_id = $2 FOR UPDATE",
        message_id,
        channel_id,
    )
    return maybe(MessageRow, record)


async def lock_messages(
    conn: asyncpg.Connection, *, channel_id: UUID, message_ids: list[UUID]
) -> list[MessageRow]:
    """Those of the messages that are in this channel, locked FOR UPDATE in id order
    (two bulk deletions cannot deadlock), in sequence order."""
    records = await conn.fetch(
        f"""
        WITH locked AS (
            SELECT {MESSAGE_COLUMNS} FROM messages
            WHERE id = ANY($1::uuid[]) AND channel_id = $2 ORDER BY id FOR UPDATE
        )
        SELECT * FROM locked ORDER BY seq
        """,
        message_ids,
        channel_id,
    )
    return many(MessageRow, records)


async def get_message_seq(
    conn: asyncpg.Connection, *, channel_id: UUID, message_id: UUID
) -> int | None:
    """The message's seq in the channel; None if it is not there (nor is any of a deleted
    channel's, waiting for their purge: migration 0055)."""
    value = await conn.fetchval(
        """
        SELECT seq FROM messages WHERE id = $1 AND channel_id = $2
          AND EXISTS (SELECT 1 FROM channels WHERE id = $2)
        """,
        message_id,
        channel_id,
    )
    return None if value is None else int(value)


MAX_EDITS = 50  # earlier versions kept per message, newest first


async def update_message_content(
    conn: asyncpg.Connection,
    *,
    message_id: UUID,
    content: str,
    mentions: list[UUID],
    mention_everyone: bool = False,
    mention_roles: list[UUID] | None = None,
) -> MessageRow:
    """Keep the current version in message_edits (the MAX_EDITS newest are kept), then
    replace it."""
    await conn.execute(
        """
        WITH kept AS (
            INSERT INTO message_edits (message_id, content, written_at)
            SELECT id, content, COALESCE(edited_at, created_at) FROM messages WHERE id = $1
        )
        DELETE FROM message_edits WHERE message_id = $1 AND id <= (
            SELECT id FROM message_edits WHERE message_id = $1
            ORDER BY id DESC OFFSET $2 - 1 LIMIT 1
        )
        """,
        message_id,
        MAX_EDITS,
    )
    record = await conn.fetchrow(
        f"""
        UPDATE messages SET content = $2, mentions = $3, mention_everyone = $4,
                            mention_roles = $5, edited_at = now()
        WHERE id = $1
        RETURNING {MESSAGE_COLUMNS}
        """,
        message_id,
        content,
        mentions,
        mention_everyone,
        mention_roles or [],
    )
    return one(MessageRow, record)


async def soft_delete_messages(
    conn: asyncpg.Connection, *, message_ids: list[UUID], deleted_by: UUID
) -> datetime:
    """Empty the messages and forget their earlier versions, reactions and files; each row
    stays as a tombstone (its sequence number, author and times) so history has no
    hole. Returns when they were deleted."""
    await conn.execute("DELETE FROM message_edits WHERE message_id = ANY($1::uuid[])", message_ids)
    await conn.execute("DELETE FROM reactions WHERE message_id = ANY($1::uuid[])", message_ids)
    # Their files go with them, bytes and all (the trigger of migration 0019).
    await conn.execute("DELETE FROM attachments WHERE message_id = ANY($1::uuid[])", message_ids)
    deleted_at: datetime = await conn.fetchval(
        """
        UPDATE messages SET content = '', mentions = '{}', mention_everyone = false,
               mention_roles = '{}', deleted_at = now(), deleted_by = $2,
               pinned_at = NULL, pinned_by = NULL
        WHERE id = ANY($1::uuid[])
        RETURNING deleted_at
        """,
        message_ids,
        deleted_by,
    )
    return deleted_at


async def list_edits(conn: asyncpg.Connection, *, message_id: UUID) -> list[EditRow]:
    """The message's earlier versions, oldest first (none once its channel is deleted,
    as MESSAGE_VIEW)."""
    records = await conn.fetch(
        """
        SELECT e.content, e.written_at, e.replaced_at FROM message_edits e
        WHERE e.message_id = $1
          AND EXISTS (SELECT 1 FROM messages m JOIN channels c ON c.id = m.channel_id
                      WHERE m.id = $1)
        ORDER BY e.id
        """,
        message_id,
    )
    return many(EditRow, records)


@dataclass(frozen=True, slots=True)
class ReactionEmojiRow:
    emoji: str  # as stored
    mine: bool  # whether the user reacted with it


async def list_reaction_emoji(
    conn: asyncpg.Connection, *, message_id: UUID, user_id: UUID
) -> list[ReactionEmojiRow]:
    """The different emoji of the message's reactions, in the order they came (migration
    0049), and whether `user_id` reacted with each."""
    records = await conn.fetch(
        f"""
        SELECT rc.emoji, {REACTED_RC} AS mine FROM reaction_counts rc
        WHERE rc.message_id = $2 ORDER BY rc.first_at, rc.emoji
        """,
        user_id,
        message_id,
    )
    return [ReactionEmojiRow(r["emoji"], r["mine"]) for r in records]


async def get_reaction_time(
    conn: asyncpg.Connection, *, message_id: UUID, emoji: list[str], user_id: UUID
) -> datetime | None:
    """When the user first reacted to the message with one of `emoji` (None: they have
    not)."""
    reacted_at: datetime | None = await conn.fetchval(
        "SELECT min(created_at) FROM reactions"
        " WHERE message_id = $1 AND emoji = ANY($2::text[]) AND user_id = $3",
        message_id,
        emoji,
        user_id,
    )
    return reacted_at


async def insert_reaction(
    conn: asyncpg.Connection, *, message_id: UUID, user_id: UUID, emoji: str
) -> bool:
    return bool(
        await conn.fetchval(
            """
        INSERT INTO reactions (message_id, user_id, emoji) VALUES ($1, $2, $3)
        ON CONFLICT DO NOTHING RETURNING true
        """,
            message_id,
            user_id,
            emoji,
        )
    )


async def delete_reaction(
    conn: asyncpg.Connection, *, message_id: UUID, user_id: UUID, emoji: str
) -> bool:
    return bool(
        await conn.fetchval(
            "DELETE FROM reactions WHERE message_id = $1 AND user_id = $2 AND emoji = $3 RETURNING true",
            message_id,
            user_id,
            emoji,
        )
    )


async def count_messages(conn: asyncpg.Connection, *, channel_id: UUID) -> int:
    return int(
        await conn.fetchval("SELECT count(*) FROM messages WHERE channel_id = $1", channel_id)
    )


async def get_last_seq(conn: asyncpg.Connection, *, channel_id: UUID) -> int:
    return int(await conn.fetchval("SELECT last_seq FROM channels WHERE id = $1", channel_id) or 0)


async def upsert_read_state(
    conn: asyncpg.Connection, *, user_id: UUID, channel_id: UUID, seq: int
) -> tuple[ReadStateRow, bool, bool]:
    """Set the user's read position to `seq`; the row, whether it changed (a position
    already at `seq`, or a first one at 0, is left as it is, its `updated_at` too) and
    whether `seq` is above the highest position the user had reached (the read receipt
    moved: the others are to be told). In the caller's transaction (a position left as
    it is is read again, and a deletion in between would leave nothing to read)."""
    if seq == 0:
        # (no row is position 0 already, as every read of one counts it: its first ack
        # at 0 moves nothing, so it is not a change and nobody is told of it)
        record = await conn.fetchrow(
            f"""
            INSERT INTO read_states (user_id, channel_id, last_read_seq) VALUES ($1, $2, 0)
            ON CONFLICT (user_id, channel_id) DO NOTHING
            RETURNING {_READ_STATE}
            """,
            user_id,
            channel_id,
        )
        if record is not None:
            return one(ReadStateRow, record), False, False
    # (a change keeps the receipt as it was before it: the highest then, and when that
    # was reached; `seq` above it is the new highest, read off last_read_seq)
    record = await conn.fetchrow(
        f"""
        INSERT INTO read_states AS r (user_id, channel_id, last_read_seq) VALUES ($1, $2, $3)
        ON CONFLICT (user_id, channel_id) DO UPDATE SET
            last_read_seq = $3,
            updated_at = now(),
            receipt_seq = GREATEST(r.receipt_seq, r.last_read_seq),
            receipt_at = CASE WHEN r.last_read_seq > r.receipt_seq THEN r.updated_at
                              ELSE COALESCE(r.receipt_at, r.updated_at) END
            WHERE r.last_read_seq <> $3
        RETURNING {_READ_STATE}, last_read_seq > r.receipt_seq AS raised
        """,
        user_id,
        channel_id,
        seq,
    )
    if record is not None:
        raised = bool(record["raised"])
        return one(ReadStateRow, {k: v for k, v in record.items() if k != "raised"}), True, raised
    record = await conn.fetchrow(
        f"SELECT {_READ_STATE} FROM read_states WHERE user_id = $1 AND channel_id = $2",
        user_id,
        channel_id,
    )
    return one(ReadStateRow, record), False, False


async def advance_read_state(
    conn: asyncpg.Connection, *, user_id: UUID, channel_id: UUID, seq: int
) -> None:
    """Move the user's read position up to `seq` (never back), as a send moves its
    author's."""
    await conn.execute(
        """
        INSERT INTO read_states AS r (user_id, channel_id, last_read_seq) VALUES ($1, $2, $3)
        ON CONFLICT (user_id, channel_id) DO UPDATE
            SET last_read_seq = GREATEST(r.last_read_seq, EXCLUDED.last_read_seq),
                updated_at = now()
        """,
        user_id,
        channel_id,
        seq,
    )


async def list_read_states(
    conn: asyncpg.Connection, *, channel_id: UUID, limit: int, user_id: UUID | None = None
) -> list[ReadStateRow]:
    """A channel's read states, the most recently updated first (at most `limit`), in
    user order; only `user_id`'s, when given."""
    if user_id is not None:
        # (by its key: `$3 IS NULL OR user_id = $3` was a filter of a generic plan, every
        # read state of the channel read and sorted for one, 10,000 in a server channel)
        records = await conn.fetch(
            f"""
            SELECT {_READ_STATE} FROM read_states
            WHERE user_id = $2 AND channel_id = $1 LIMIT $3
            """,
            channel_id,
            user_id,
            limit,
        )
        return many(ReadStateRow, records)
    records = await conn.fetch(
        f"""
        SELECT * FROM (
            SELECT {_READ_STATE} FROM read_states
            WHERE channel_id = $1
            ORDER BY updated_at DESC LIMIT $2
        ) r ORDER BY user_id
        """,
        channel_id,
        limit,
    )
    return many(ReadStateRow, records)


async def list_reactors(
    conn: asyncpg.Connection,
    *,
    message_id: UUID,
    emoji: list[str],
    after_user: UUID | None,
    after_at: datetime | None,
    limit: int,
) -> list[tuple[PublicUserRow, datetime]]:
    """Who reacted with one of `emoji` (the spellings of one), once each, in the order
    they did (by time, then user id), with when: after `after_user`'s reaction made at
    `after_at` (both or neither). None once the message's channel is deleted (as
    MESSAGE_VIEW)."""
    records = await conn.fetch(
        f"""
        SELECT {PUBLIC_USER_COLUMNS_U}, r.created_at AS reacted_at
        FROM (SELECT user_id, min(created_at) AS created_at FROM reactions
              WHERE message_id = $1 AND emoji = ANY($2::text[]) GROUP BY user_id) r
        JOIN users u ON u.id = r.user_id
        WHERE ($3::uuid IS NULL OR (r.created_at, r.user_id) > ($5::timestamptz, $3))
          AND EXISTS (SELECT 1 FROM messages m JOIN channels c ON c.id = m.channel_id
                      WHERE m.id = $1)
        ORDER BY r.created_at, r.user_id
        LIMIT $4
        """,
        message_id,
        emoji,
        after_user,
        limit,
        after_at,
    )
    return [(public_user_from(r), r["reacted_at"]) for r in records]


async def list_mentions(
    conn: asyncpg.Connection,
    *,
    user_id: UUID,
    role_ids: list[UUID],
    channel_ids: list[UUID],
    before: tuple[datetime, UUID, int] | None,
    limit: int,
) -> list[MessageViewRow]:
    """Live messages of these channels that mention the user (by name, or, from
    someone else, @everyone or one of `role_ids`), but none from someone the user
    blocked, newest first (by time, then channel,
    then sequence number: a batch's messages share a time), after `before` (a
    `mention_position`), as the user sees them. Each kind walks its own index."""
    records = await conn.fetch(
        MESSAGE_VIEW
        + """
        WHERE m.channel_id = ANY($2::uuid[]) AND m.deleted_at IS NULL
          AND """
        + NOT_FROM_BLOCKED
        + """
          AND ((m.mentions <> '{}' AND m.mentions @> ARRAY[$1]::uuid[])
               OR (m.mention_everyone AND m.deleted_at IS NULL
                   AND m.author_id IS DISTINCT FROM $1)
               OR (m.mention_roles <> '{}' AND m.mention_roles && $5::uuid[]
                   AND m.author_id IS DISTINCT FROM $1))
          AND ($3::timestamptz IS NULL OR (m.created_at, m.channel_id, m.seq) < ($3, $6, $7))
        ORDER BY m.created_at DESC, m.channel_id DESC, m.seq DESC
        LIMIT $4
        """,
        user_id,
        channel_ids,
        before[0] if before else None,
        limit,
        role_ids,
        before[1] if before else None,
        before[2] if before else None,
    )
    return many(MessageViewRow, records)


async def mention_position(
    conn: asyncpg.Connection,
    *,
    user_id: UUID,
    message_id: UUID,
    channel_ids: list[UUID],
    role_ids: list[UUID],
) -> tuple[datetime, UUID, int] | None:
    """Where message `message_id` stands among the user's mentions, if it may have
    been one: one that names the user (anywhere: a conversation they left since, say),
    or, in one of these channels, that names @everyone or one of `role_ids` as
    list_mentions counts them, or that was deleted or edited since (what it said when
    it was listed is gone)."""
    record = await conn.fetchrow(
        """
        SELECT created_at, channel_id, seq FROM messages m
        WHERE id = $1
          -- (not one of a deleted channel, waiting for its purge: migration 0055)
          AND EXISTS (SELECT 1 FROM channels c WHERE c.id = m.channel_id)
          AND ((mentions <> '{}' AND mentions @> ARRAY[$2]::uuid[])
               OR (channel_id = ANY($3::uuid[])
                   AND (deleted_at IS NOT NULL OR edited_at IS NOT NULL
                        OR (author_id IS DISTINCT FROM $2
                            AND (mention_everyone OR mention_roles && $4::uuid[])))))
        """,
        message_id,
        user_id,
        channel_ids,
        role_ids,
    )
    return None if record is None else (record[0], record[1], record[2])


@dataclass(frozen=True)
class UnreadRow:
    channel_id: UUID
    last_read_seq: int
    unread: int  # others' live messages after last_read_seq, counted up to UNREAD_CAP
    mention_count: int  # ... of them, those that mention the user (by name, role, @everyone),
    # but not those from someone the user blocked


async def list_unreads(
    conn: asyncpg.Connection,
    *,
    user_id: UUID,
    role_ids: list[UUID],
    channel_ids: list[UUID],
    since: list[datetime | None] | None = None,
) -> list[UnreadRow]:
    """The user's read position in each of these channels, with what is unread after
    it (list_unreads_of_pairs, for one reader)."""
    n = len(channel_ids)
    rows = await list_unreads_of_pairs(
        conn,
        user_ids=[user_id] * n,
        channel_ids=channel_ids,
        since=since if since is not None else [None] * n,
        role_sets=[role_ids],
        role_set=[0] * n,
    )
    return [UnreadRow(r.channel_id, r.last_read_seq, r.unread, r.mention_count) for r in rows]


@dataclass(frozen=True)
class MemberUnreadRow:
    user_id: UUID
    channel_id: UUID
    last_read_seq: int
    unread: int
    mention_count: int


# Read positions and counts for pairs (w.user_id, w.id) of reader and channel, each with
# the reader's roles (r.roles: the w.role_set-th of the role lists $5, each parsed once,
# not once a message walked) and, where they may not read the history, its `since`.
_LIST_UNREADS_OF_PAIRS = f"""
    WITH role_sets AS MATERIALIZED (
        SELECT i::int AS i, s::uuid[] AS roles
        FROM unnest($5::text[]) WITH ORDINALITY AS t(s, i)
    )
    SELECT w.user_id, c.id AS channel_id, COALESCE(rs.last_read_seq, 0) AS last_read_seq,
           -- (in order, by a function planned for that alone: migration 0048)
           xf_unread_count(c.id, b.after_seq, w.user_id, w.since, {UNREAD_CAP}) AS unread,
           -- The messages after the read position that name the reader or a role of
           -- theirs (message_mentions, migration 0041) or everyone (its own index):
           -- never the mentions of anyone else, nor those of other channels. Each of
           -- whom the reader is (them, each role) is walked on its own, in order, and
           -- stops at the cap, as @everyone's is: the first UNREAD_CAP of each, together,
           -- hold the first UNREAD_CAP of all. (One set of them all, `m.seq IN (...)`,
           -- was planned generic as a hash of every mention there after the read
           -- position, anyone's, joined to a scan of the whole table.)
           (SELECT count(*) FROM (
                SELECT DISTINCT n.seq FROM (
                    SELECT t.seq
                    FROM unnest(w.user_id || r.roles) AS g(id)
                    CROSS JOIN LATERAL (
                        SELECT mm.seq FROM (
                            SELECT mm.channel_id, mm.seq FROM message_mentions mm
                            -- ((target, channel, seq) in the key's order, as bounds only
                            -- the key can take: by the channel's index a generic plan
                            -- may walk everyone's mentions there, filtering for this
                            -- one's; the first MENTION_WALK at most)
                            WHERE (mm.target_id, mm.channel_id, mm.seq)
                                  > (g.id, c.id, b.after_seq)
                              AND (mm.target_id, mm.channel_id, mm.seq)
                                  <= (g.id, c.id, {MAX_SEQ})
                            ORDER BY mm.target_id, mm.channel_id, mm.seq
                            LIMIT {MENTION_WALK}) mm
                        -- (each message looked up by its key: OFFSET 0 keeps a generic
                        -- plan from merging the channel's whole history in instead)
                        CROSS JOIN LATERAL (
                            SELECT 1 FROM messages m
                            WHERE m.channel_id = mm.channel_id AND m.seq = mm.seq
                              AND {OTHERS_LIVE_W}
                              AND (w.since IS NULL OR m.created_at >= w.since)
                              AND {NOT_FROM_BLOCKED_W}
                            OFFSET 0) ok
                        LIMIT {UNREAD_CAP}) t
                    UNION ALL
                    -- (@everyone's: only those with MENTION_EVERYONE send them, and
                    -- the planner reads them by a bitmap of the channel's, all of them
                    -- after the read position, however they are limited)
                    (SELECT m.seq FROM messages m
                     WHERE m.channel_id = c.id AND m.seq > b.after_seq
                       AND m.mention_everyone AND m.deleted_at IS NULL
                       AND {OTHERS_LIVE_W}
                       AND (w.since IS NULL OR m.created_at >= w.since)
                       AND {NOT_FROM_BLOCKED_W}
                     ORDER BY m.seq LIMIT {UNREAD_CAP})
                ) n
                LIMIT {UNREAD_CAP}) x) AS mention_count
    FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[], $4::int[])
        AS w(user_id, id, since, role_set)
    JOIN role_sets r ON r.i = w.role_set
    JOIN channels c ON c.id = w.id
    LEFT JOIN read_states rs ON rs.user_id = w.user_id AND rs.channel_id = c.id
    CROSS JOIN LATERAL (
        SELECT GREATEST(COALESCE(rs.last_read_seq, 0), CASE WHEN w.since IS NULL THEN 0
               ELSE COALESCE((SELECT min(f.seq) - 1 FROM (
                                  SELECT seq FROM messages
                                  WHERE channel_id = c.id AND created_at >= w.since
                                  ORDER BY created_at LIMIT {UNREAD_CAP}) f),
                             c.last_seq) END) AS after_seq
    ) b
"""


async def list_unreads_of_pairs(
    conn: asyncpg.Connection,
    *,
    user_ids: list[UUID],
    channel_ids: list[UUID],
    since: list[datetime | None],
    role_sets: list[list[UUID]],
    role_set: list[int],
) -> list[MemberUnreadRow]:
    """For each pair (user_ids[i], channel_ids[i]), in one statement however many: that
    reader's read position there, with what is unread after it (both counts capped at
    UNREAD_CAP; the unread count walks at most that many rows of live messages, migration
    0040, the mention count the reader's own mentions there and those of everyone,
    migration 0041), mentions counted for the roles `role_sets[role_set[i]]`.
    Where `since[i]` is given (a channel whose history the reader may not read), only
    messages written from then on count: the reader received those live; older ones are
    history they may not read, whose existence, deletion or mentions the counts must not
    tell.

    The walk starts after the later of the read position and the last message before
    `since` (found by the channel's time index, among the first UNREAD_CAP written from
    then on: sequence numbers follow times but for sends that overlapped), never at the
    read position alone: a newcomer's is 0, and the walk would then pass over the whole
    history before they joined, on every `ready`."""
    # Each list of roles goes once, however many pairs name it (sent once a pair, a
    # `ready` in a server of 250 roles and 300 channels sent 2.8 MB, and the roles were
    # parsed at every message walked).
    roles = ["{" + ",".join(str(r) for r in ids) + "}" for ids in role_sets]
    records = await conn.fetch(
        _LIST_UNREADS_OF_PAIRS, user_ids, channel_ids, since, [i + 1 for i in role_set], roles
    )
    return many(MemberUnreadRow, records)


async def lock_message_shared(conn: asyncpg.Connection, *, message_id: UUID) -> None:
    """Share-lock a message until the transaction ends: its deletion (FOR UPDATE) waits,
    so a preview of it written meanwhile is one the deletion then scrubs."""
    await conn.execute("SELECT 1 FROM messages WHERE id = $1 FOR SHARE", message_id)


async def lock_channel_counter(conn: asyncpg.Connection, *, channel_id: UUID) -> None:
    """Lock the channel's row as taking a sequence number does (FOR NO KEY UPDATE: sends,
    which share-lock it, go on) until the transaction ends."""
    await conn.execute("SELECT 1 FROM channels WHERE id = $1 FOR NO KEY UPDATE", channel_id)


async def count_pins(conn: asyncpg.Connection, *, channel_id: UUID) -> int:
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM messages WHERE channel_id = $1 AND pinned_at IS NOT NULL",
            channel_id,
        )
    )


async def set_pinned(
    conn: asyncpg.Connection, *, message_id: UUID, pinned_by: UUID | None
) -> datetime | None:
    """Pin the message (by `pinned_by`) or, with None, unpin it; when it was pinned."""
    pinned_at: datetime | None = await conn.fetchval(
        """
        UPDATE messages
        SET pinned_at = CASE WHEN $2::uuid IS NULL THEN NULL ELSE now() END, pinned_by = $2
        WHERE id = $1
        RETURNING pinned_at
        """,
        message_id,
        pinned_by,
    )
    return pinned_at


async def list_pins(
    conn: asyncpg.Connection, *, viewer: UUID, channel_id: UUID
) -> list[MessageViewRow]:
    """The channel's pinned messages, the most recently pinned first."""
    records = await conn.fetch(
        MESSAGE_VIEW
        + """
        WHERE m.channel_id = $2 AND m.pinned_at IS NOT NULL
        ORDER BY m.pinned_at DESC, m.id
        """,
        viewer,
        channel_id,
    )
    return many(MessageViewRow, records)


@dataclass(frozen=True)
class AuthoredRow:
    channel_id: UUID
    id: UUID
    created_at: datetime


async def list_live_messages_by_author(
    conn: asyncpg.Connection,
    *,
    author_id: UUID,
    since: datetime | None,
    after: tuple[datetime, UUID] | None,
    limit: int,
) -> list[AuthoredRow]:
    """The author's live messages sent at `since` or later (all, if None) and after
    `after` (the time and id of the last one a walk read), oldest first, at most
    `limit`: read by messages_author_idx from where the walk stands, so that a walk
    never reads again what it passed (from the first, each round read every message it
    had deleted: quadratic in the author's messages)."""
    records = await conn.fetch(
        """
        SELECT channel_id, id, created_at FROM messages m
        WHERE author_id = $1 AND deleted_at IS NULL
          -- (not those of a deleted channel, waiting for their purge: migration 0055)
          AND EXISTS (SELECT 1 FROM channels c WHERE c.id = m.channel_id)
          AND created_at >= GREATEST(COALESCE($2::timestamptz, '-infinity'),
                                     COALESCE($3::timestamptz, '-infinity'))
          AND ($3::timestamptz IS NULL OR (created_at, id) > ($3::timestamptz, $4::uuid))
        ORDER BY created_at, id
        LIMIT $5
        """,
        author_id,
        since,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )
    return many(AuthoredRow, records)


async def list_recent_messages_by_author(
    conn: asyncpg.Connection,
    *,
    server_id: UUID,
    author_id: UUID,
    within_s: int,
    limit: int,
    scanned: int,
) -> list[AuthoredRow]:
    """The author's live messages in the server's channels sent in the last `within_s`
    seconds, newest first, at most `limit` (a ban's deletion of them), among the newest
    `scanned` the author wrote in that time anywhere (deleted ones included): read by
    messages_author_idx from now back, so the walk ends at the window's start or after
    `scanned` rows, whatever the author wrote before or elsewhere (an author sending
    600 a minute for days elsewhere made it read millions)."""
    records = await conn.fetch(
        """
        SELECT m.channel_id, m.id, m.created_at
        FROM (SELECT m.channel_id, m.id, m.created_at, m.deleted_at FROM messages m
              WHERE m.author_id = $1 AND m.created_at >= now() - make_interval(secs => $3)
              ORDER BY m.created_at DESC
              LIMIT $5) m
        JOIN channels c ON c.id = m.channel_id  -- (none of a deleted channel: 0055)
        WHERE c.server_id = $2 AND m.deleted_at IS NULL
        ORDER BY m.created_at DESC, m.id DESC
        LIMIT $4
        """,
        author_id,
        server_id,
        float(within_s),
        limit,
        scanned,
    )
    return many(AuthoredRow, records)


async def delete_newest_messages(conn: asyncpg.Connection, *, channel_id: UUID, limit: int) -> int:
    """Delete up to `limit` of the channel's newest messages, with what hangs on them
    (edits, reactions, files, mention rows), in the caller's transaction; how many. The
    newest first: a reply is deleted before what it answers, so no message left is
    rewritten to forget one (its `reply_to_id` set to null, its search text indexed
    again)."""
    # (a range of the key below the newest: bounded whatever the plan, where `seq IN
    # (... LIMIT $2)` may be planned as a join over the whole channel)
    status: str = await conn.execute(
        """
        DELETE FROM messages WHERE channel_id = $1 AND seq > COALESCE(
            (SELECT seq FROM messages WHERE channel_id = $1
             ORDER BY seq DESC OFFSET $2 LIMIT 1), 0)
        """,
        channel_id,
        limit,
    )
    return int(status.split()[-1])


async def claim_channel_purge(
    conn: asyncpg.Connection, *, passing: list[UUID] | None = None
) -> UUID | None:
    """A deleted channel whose messages are still to be purged (migration 0055), the
    longest waiting first, but none of `passing`, its place in the queue locked until
    the caller's transaction ends; one another transaction holds is skipped. None if
    there is none."""
    channel_id: UUID | None = await conn.fetchval(
        """
        SELECT channel_id FROM channel_purges WHERE channel_id <> ALL($1::uuid[])
        ORDER BY queued_at, channel_id LIMIT 1 FOR UPDATE SKIP LOCKED
        """,
        passing or [],
    )
    return channel_id


async def requeue_channel_purge(conn: asyncpg.Connection, *, channel_id: UUID) -> None:
    """Put a deleted channel at the back of the purge queue (its purge failed)."""
    await conn.execute(
        "UPDATE channel_purges SET queued_at = now() WHERE channel_id = $1", channel_id
    )


async def end_channel_purge(conn: asyncpg.Connection, *, channel_id: UUID) -> None:
    """Take a deleted channel out of the purge queue (it holds no message any more)."""
    await conn.execute("DELETE FROM channel_purges WHERE channel_id = $1", channel_id)


async def delete_read_states(
    conn: asyncpg.Connection, *, channel_ids: list[UUID], limit: int
) -> int:
    """Delete up to `limit` of these channels' read positions (channels about to go), in
    the caller's transaction; how many. (Found first, then deleted by the key: bounded
    whatever the plan.)"""
    status: str = await conn.execute(
        """
        DELETE FROM read_states r USING (
            SELECT channel_id, user_id FROM read_states WHERE channel_id = ANY($1::uuid[])
            LIMIT $2
        ) d WHERE r.user_id = d.user_id AND r.channel_id = d.channel_id
        """,
        channel_ids,
        limit,
    )
    return int(status.split()[-1])
