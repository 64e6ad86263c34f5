"""What `xfchat admin export` reads of one account: its data as JSON texts that PostgreSQL
builds, column by column (never a whole row: a column added to a table later, a secret
say, is not exported until it is named here). Read in the caller's transaction (one
snapshot for the whole export)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

# Everything but the messages, the reactions and the files, in one document. Lists here
# are bounded by what an account may hold (sessions, friends, servers, conversations,
# channels read), or by the days it was used.
ACCOUNT_DOCUMENT = """
SELECT jsonb_build_object(
    'profile', jsonb_build_object(
        'id', u.id, 'username', u.username, 'email', u.email,
        'display_name', u.display_name, 'avatar_url', u.avatar_url,
        'status', u.status, 'status_text', u.status_text, 'dm_policy', u.dm_policy,
        'created_at', u.created_at, 'updated_at', u.updated_at, 'deleted_at', u.deleted_at),
    'two_factor', jsonb_build_object(
        'enabled', EXISTS (SELECT 1 FROM user_totp t
                           WHERE t.user_id = u.id AND t.confirmed_at IS NOT NULL),
        'since', (SELECT t.confirmed_at FROM user_totp t WHERE t.user_id = u.id),
        'recovery_codes_left', (SELECT count(*) FROM recovery_codes r
                                WHERE r.user_id = u.id AND r.used_at IS NULL)),
    'sessions', COALESCE((
        SELECT jsonb_agg(jsonb_build_object(
                   'id', s.id, 'user_agent', s.user_agent, 'ip', host(s.ip),
                   'created_at', s.created_at, 'last_used_at', s.last_used_at,
                   'expires_at', s.expires_at, 'revoked_at', s.revoked_at,
                   'revoked_reason', s.revoked_reason) ORDER BY s.created_at, s.id)
        FROM sessions s WHERE s.user_id = u.id), '[]'),
    'friends', COALESCE((
        SELECT jsonb_agg(jsonb_build_object(
                   'user_id', o.id, 'username', o.username, 'since', f.created_at)
                   ORDER BY f.created_at, o.id)
        FROM friendships f
        JOIN users o ON o.id = CASE WHEN f.user_low = u.id THEN f.user_high ELSE f.user_low END
        WHERE f.user_low = u.id OR f.user_high = u.id), '[]'),
    'friend_requests', COALESCE((
        SELECT jsonb_agg(jsonb_build_object(
                   'id', r.id, 'from_user_id', r.from_user_id, 'to_user_id', r.to_user_id,
                   'status', r.status, 'created_at', r.created_at,
                   'responded_at', r.responded_at) ORDER BY r.created_at, r.id)
        FROM friend_requests r WHERE r.from_user_id = u.id OR r.to_user_id = u.id), '[]'),
    'blocks', COALESCE((
        SELECT jsonb_agg(jsonb_build_object('user_id', b.blocked_id, 'since', b.created_at)
                         ORDER BY b.created_at, b.blocked_id)
        FROM blocks b WHERE b.blocker_id = u.id), '[]'),
    'mutes', COALESCE((
        SELECT jsonb_agg(jsonb_build_object(
                   'channel_id', m.channel_id, 'server_id', m.server_id,
                   'user_id', m.target_id, 'until', m.muted_until,
                   'created_at', m.created_at) ORDER BY m.created_at)
        FROM mutes m WHERE m.user_id = u.id), '[]'),
    'notification_settings', COALESCE((
        SELECT jsonb_agg(jsonb_build_object(
                   'channel_id', n.channel_id, 'server_id', n.server_id, 'level', n.level,
                   'suppress_everyone', n.suppress_everyone, 'created_at', n.created_at)
                   ORDER BY n.created_at, n.target_id)
        FROM notification_settings n WHERE n.user_id = u.id), '[]'),
    'servers', COALESCE((
        SELECT jsonb_agg(jsonb_build_object(
                   'id', s.id, 'name', s.name, 'owner', s.owner_id = u.id,
                   'joined_at', sm.joined_at, 'nickname', sm.nickname,
                   'timed_out_until', sm.timed_out_until,
                   'voice_mute', sm.voice_mute, 'voice_deaf', sm.voice_deaf,
                   'roles', COALESCE((
                       SELECT jsonb_agg(jsonb_build_object('id', r.id, 'name', r.name)
                                        ORDER BY r.position DESC, r.id)
                       FROM member_roles mr JOIN roles r ON r.id = mr.role_id
                       WHERE mr.server_id = s.id AND mr.user_id = u.id), '[]'))
                   ORDER BY sm.joined_at, s.id)
        FROM server_members sm JOIN servers s ON s.id = sm.server_id
        WHERE sm.user_id = u.id), '[]'),
    'bans', COALESCE((
        SELECT jsonb_agg(jsonb_build_object(
                   'server_id', b.server_id, 'reason', b.reason, 'created_at', b.created_at)
                   ORDER BY b.created_at, b.server_id)
        FROM bans b WHERE b.user_id = u.id), '[]'),
    'conversations', COALESCE((
        SELECT jsonb_agg(jsonb_build_object(
                   'id', c.id, 'kind', c.kind, 'name', c.name, 'joined_at', p.joined_at,
                   'owner', c.owner_id IS NOT DISTINCT FROM u.id,
                   'participants', (SELECT jsonb_agg(q.user_id ORDER BY q.joined_at, q.user_id)
                                    FROM conversation_participants q
                                    WHERE q.channel_id = c.id))
                   ORDER BY p.joined_at, c.id)
        FROM conversation_participants p JOIN channels c ON c.id = p.channel_id
        WHERE p.user_id = u.id), '[]'),
    'read_states', COALESCE((
        SELECT jsonb_agg(jsonb_build_object(
                   'channel_id', r.channel_id, 'last_read_seq', r.last_read_seq,
                   'updated_at', r.updated_at, 'last_sent_at', r.last_sent_at,
                   -- (the read receipt the others were shown: migration 0058)
                   'read_receipt_seq', GREATEST(r.receipt_seq, r.last_read_seq))
                   ORDER BY r.channel_id)
        FROM read_states r WHERE r.user_id = u.id), '[]'),
    'usage', COALESCE((
        SELECT jsonb_agg(jsonb_build_object(
                   'day', d.day, 'requests', d.requests, 'messages_sent', d.messages_sent,
                   'bytes_uploaded', d.bytes_uploaded) ORDER BY d.day)
        FROM usage_tracking d WHERE d.user_id = u.id), '[]'),
    -- (a server's timeout kept after the account left it, to meet it again on return)
    'lingering_timeouts', COALESCE((
        SELECT jsonb_agg(jsonb_build_object('server_id', t.server_id, 'until', t.until)
                         ORDER BY t.until, t.server_id)
        FROM lingering_timeouts t WHERE t.user_id = u.id), '[]'),
    'channel_permission_overrides', COALESCE((
        SELECT jsonb_agg(jsonb_build_object(
                   'channel_id', o.channel_id, 'allow', o.allow, 'deny', o.deny)
                   ORDER BY o.channel_id)
        FROM channel_permission_overrides o WHERE o.user_id = u.id), '[]'),
    -- (its images, its avatar and the server icons it uploaded, all counted in its quota;
    -- their bytes are under files/)
    'uploaded_images', COALESCE((
        SELECT jsonb_agg(jsonb_build_object(
                   'id', i.id, 'purpose', i.purpose, 'content_type', i.content_type,
                   'size_bytes', i.size_bytes, 'width', i.width, 'height', i.height,
                   'created_at', i.created_at,
                   'server_ids', (SELECT jsonb_agg(s.id ORDER BY s.id) FROM servers s
                                  WHERE s.icon_url = '/api/media/' || i.id::text))
                   ORDER BY i.created_at, i.id)
        FROM media i WHERE i.owner_id = u.id), '[]'),
    'invites', COALESCE((
        SELECT jsonb_agg(jsonb_build_object(
                   'code', v.code, 'server_id', v.server_id, 'channel_id', v.channel_id,
                   'uses', v.uses, 'max_uses', v.max_uses, 'expires_at', v.expires_at,
                   'created_at', v.created_at) ORDER BY v.created_at, v.code)
        FROM invites v WHERE v.inviter_id = u.id), '[]'),
    -- (never the token's hash: the token is a secret, and the export names no secret)
    'webhooks', COALESCE((
        SELECT jsonb_agg(jsonb_build_object(
                   'id', k.id, 'server_id', k.server_id, 'channel_id', k.channel_id,
                   'name', k.name, 'avatar_url', k.avatar_url,
                   'created_at', k.created_at) ORDER BY k.created_at, k.id)
        FROM webhooks k WHERE k.created_by = u.id), '[]'),
    -- (now: in a voice channel, connected; never the ids of its sessions or processes)
    'voice_state', (
        SELECT jsonb_build_object(
                   'channel_id', w.channel_id, 'server_id', w.server_id,
                   'self_mute', w.self_mute, 'self_deaf', w.self_deaf,
                   'server_mute', w.server_mute, 'server_deaf', w.server_deaf,
                   'self_video', w.self_video, 'suppress', w.suppress,
                   'joined_at', w.joined_at, 'updated_at', w.updated_at)
        FROM voice_states w WHERE w.user_id = u.id),
    'connected_since', COALESCE((
        SELECT jsonb_agg(pc.since ORDER BY pc.since)
        FROM presence_connections pc WHERE pc.user_id = u.id), '[]')
)::text
FROM users u WHERE u.id = $1
"""

# The account's live messages, oldest first, a page after (created_at, id): each with its
# channel, its files and its earlier versions (the edit history keeps them). The first
# page and the next ones are two statements: in one, the key's condition was `$2 IS NULL
# OR ...`, which a generic plan (plan_cache_mode, db/pool.py) cannot make an index's
# bound, so every page walked the messages again from the oldest one (quadratic in the
# account's messages; and, by messages_created_idx, everyone's). (created_at >= the key's
# too, apart: that one bounds the index's walk, the row comparison only filters.)
MESSAGE_LINE = """
SELECT m.created_at, m.id, jsonb_build_object(
    'id', m.id, 'channel_id', m.channel_id, 'server_id', c.server_id,
    'channel_name', c.name, 'seq', m.seq, 'kind', m.kind, 'content', m.content,
    'reply_to_id', m.reply_to_id, 'created_at', m.created_at, 'edited_at', m.edited_at,
    'pinned_at', m.pinned_at,
    'attachments', COALESCE((
        SELECT jsonb_agg(jsonb_build_object(
                   'id', a.id, 'filename', a.filename, 'content_type', a.content_type,
                   'size_bytes', a.size_bytes) ORDER BY a.position)
        FROM attachments a WHERE a.message_id = m.id), '[]'),
    'earlier_versions', COALESCE((
        SELECT jsonb_agg(jsonb_build_object(
                   'content', e.content, 'written_at', e.written_at,
                   'replaced_at', e.replaced_at) ORDER BY e.id)
        FROM message_edits e WHERE e.message_id = m.id), '[]'))::text AS line,
    COALESCE((SELECT array_agg(a.id ORDER BY a.position)
              FROM attachments a WHERE a.message_id = m.id), '{}') AS attachment_ids
FROM messages m JOIN channels c ON c.id = m.channel_id
WHERE m.author_id = $1 AND m.deleted_at IS NULL
"""
MESSAGES_FIRST_PAGE = MESSAGE_LINE + "ORDER BY m.created_at, m.id LIMIT $2"
MESSAGES_PAGE = (
    MESSAGE_LINE
    + "AND m.created_at >= $2 AND (m.created_at, m.id) > ($2, $3)"
    + " ORDER BY m.created_at, m.id LIMIT $4"
)

# The server audit log's entries of what the account did as a member (all of it), and of
# what was done to it: to the account itself, or to a message it wrote. Who did the
# latter is another member's data and is not named (a moderator's identity; the action,
# the reason and when are about the account): nor is it by a transfer's `diff`, whose
# old owner is who handed it over. Through a cursor, as the reactions are.
AUDIT_ENTRIES = """
SELECT jsonb_build_object(
    'id', a.id, 'server_id', a.server_id, 'by_you', a.actor_id IS NOT DISTINCT FROM $1,
    'action', a.action, 'target_type', a.target_type, 'target_id', a.target_id,
    'changes', a.changes,
    'diff', CASE WHEN a.action <> 'server.transferred' OR a.actor_id = $1 THEN a.diff END,
    'reason', a.reason, 'created_at', a.created_at)::text
FROM audit_log a
WHERE a.actor_id = $1
   OR (a.target_type = 'user' AND a.target_id = $1)
   OR (a.target_type = 'message' AND a.changes ->> 'author_id' = $1::text)
ORDER BY a.id
"""

# (read through a cursor: reactions are found by their user alone, in no order, so a
# page after a key would read them all again for each page)
REACTIONS = """
SELECT jsonb_build_object(
    'message_id', r.message_id, 'channel_id', m.channel_id, 'emoji', r.emoji,
    'created_at', r.created_at)::text
FROM reactions r JOIN messages m ON m.id = r.message_id
     -- (a deleted channel's messages wait for their purge: migration 0055)
     JOIN channels c ON c.id = m.channel_id
WHERE r.user_id = $1
ORDER BY r.created_at, r.message_id, r.emoji
"""


@dataclass(frozen=True)
class MessageLine:
    created_at: datetime
    id: UUID
    line: str  # the message as a JSON text
    attachment_ids: list[UUID]


@dataclass(frozen=True)
class ExportedFile:
    file_id: UUID
    size_bytes: int
    filename: str
    content_type: str


async def get_account_document(conn: asyncpg.Connection, *, user_id: UUID) -> str | None:
    """Everything of the account but its messages, reactions and files, as one JSON
    text; None when there is no such account."""
    document: str | None = await conn.fetchval(ACCOUNT_DOCUMENT, user_id)
    return document


async def list_message_lines(
    conn: asyncpg.Connection, *, user_id: UUID, after: tuple[datetime, UUID] | None, limit: int
) -> list[MessageLine]:
    """The account's live messages after `after` (oldest first), at most `limit`."""
    if after is None:
        rows = await conn.fetch(MESSAGES_FIRST_PAGE, user_id, limit)
    else:
        rows = await conn.fetch(MESSAGES_PAGE, user_id, *after, limit)
    return [
        MessageLine(r["created_at"], r["id"], r["line"], list(r["attachment_ids"])) for r in rows
    ]


async def iter_reaction_lines(
    conn: asyncpg.Connection, *, user_id: UUID, prefetch: int
) -> AsyncIterator[str]:
    """The account's reactions (oldest first) as JSON texts, `prefetch` at a time (in the
    caller's transaction)."""
    async for row in conn.cursor(REACTIONS, user_id, prefetch=prefetch):
        yield row[0]


async def iter_audit_lines(
    conn: asyncpg.Connection, *, user_id: UUID, prefetch: int
) -> AsyncIterator[str]:
    """The audit-log entries by the account or about it (oldest first) as JSON texts."""
    async for row in conn.cursor(AUDIT_ENTRIES, user_id, prefetch=prefetch):
        yield row[0]


async def list_uploaded_images(
    conn: asyncpg.Connection, *, user_id: UUID
) -> list[tuple[UUID, ExportedFile]]:
    """The images (avatar, server icons) the account uploaded that are kept, each with
    its stored file (by the media's id)."""
    rows = await conn.fetch(
        "SELECT m.id, m.file_id, f.size_bytes, m.purpose AS name, m.content_type"
        " FROM media m JOIN files f ON f.id = m.file_id"
        " WHERE m.owner_id = $1 ORDER BY m.created_at, m.id",
        user_id,
    )
    return [(r["id"], _file(r)) for r in rows]


async def list_attachment_files(
    conn: asyncpg.Connection, *, attachment_ids: list[UUID]
) -> list[tuple[UUID, ExportedFile]]:
    """These attachments' stored files (by the attachment's id; one gone since is left
    out), in the order asked."""
    rows = await conn.fetch(
        "SELECT a.id, a.file_id, f.size_bytes, a.filename AS name, a.content_type"
        " FROM unnest($1::uuid[]) WITH ORDINALITY AS k(id, ord)"
        " JOIN attachments a ON a.id = k.id JOIN files f ON f.id = a.file_id"
        " ORDER BY k.ord",
        attachment_ids,
    )
    return [(r["id"], _file(r)) for r in rows]


def _file(r: asyncpg.Record) -> ExportedFile:
    return ExportedFile(r["file_id"], r["size_bytes"], r["name"], r["content_type"])
