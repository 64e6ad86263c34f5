"""Incoming webhooks, managed (README, "Webhooks"): a name, an avatar and a secret token
that post into one server text channel without an account (executed in
domain/webhooks_execute.py). Everything here needs MANAGE_WEBHOOKS in the webhook's
channel, decided by the channel-access seam; a channel you cannot see is 404.

No event is emitted for these changes: a webhook's token is never broadcast, the
browser client's Webhooks tab reads the list anew after each change and each redraw,
and the audit log (webhook.created, .updated with its diff, .deleted, .token_reset)
tells the managers what changed; a message a webhook posts is told to the channel as
any message."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg

from xfchat.db.queries import audit as audit_q
from xfchat.db.queries import channels as channels_q
from xfchat.db.queries import locks as locks_q
from xfchat.db.queries import webhooks as q
from xfchat.domain.access import ChannelAccess, access_channel, server_not_found, visible_channels
from xfchat.domain.accounts import Actor
from xfchat.domain.audit_diff import row_diff
from xfchat.domain.permissions import Permission
from xfchat.domain.servers import text_field
from xfchat.domain.validation import avatar_url as check_avatar_url
from xfchat.errors import BadRequest, Forbidden, NotFound

MAX_NAME = 80
MAX_PER_CHANNEL = 15  # Discord's
MAX_PER_SERVER = 1_000
TOKEN_BYTES = 32
LOCK_NAMESPACE = b"webhooks"  # (+ the server's id: its webhooks are counted under it)
MANAGE = Permission.MANAGE_WEBHOOKS


def webhook_name(value: str | None, field: str = "name") -> str | None:
    """Raises: BadRequest (INVALID_WEBHOOK_NAME): 1-80 characters, one line."""
    return text_field(value, field, MAX_NAME, "INVALID_WEBHOOK_NAME", name=True)


def hash_token(token: str) -> bytes:
    return hashlib.sha256(b"xfchat webhook tokens\0" + token.encode()).digest()


def token_matches(token: str, stored: bytes) -> bool:
    return hmac.compare_digest(hash_token(token), stored)


def webhook_not_found() -> NotFound:
    """The one answer for an unknown webhook, one you may not see, and a wrong token."""
    return NotFound("no such webhook", code="WEBHOOK_NOT_FOUND")


def _not_webhook_channel() -> BadRequest:
    return BadRequest(
        "webhooks post only into server text channels", code="WEBHOOK_CHANNEL_NOT_TEXT"
    )


def webhook_json(row: q.WebhookRow) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "server_id": str(row.server_id),
        "channel_id": str(row.channel_id),
        "name": row.name,
        "avatar_url": row.avatar_url,
        "created_by": str(row.created_by) if row.created_by else None,
        "created_at": row.created_at.isoformat(),
    }


@dataclass(frozen=True)
class WebhookWithToken:
    webhook: dict[str, Any]
    token: str  # shown this once: only its hash is stored


def _need(channel: channels_q.ChannelRow) -> Permission:
    # (a channel webhooks cannot post into: seen, then refused with a 400)
    usable = channel.server_id is not None and channel.kind == "text"
    return MANAGE if usable else Permission.VIEW_CHANNEL


async def _managed(conn: asyncpg.Connection, actor: Actor, channel_id: UUID) -> ChannelAccess:
    """The channel, if the actor manages webhooks there (FOR KEY SHARE on its row: a
    change of who may is wholly before or after).

    Raises: NotFound (CHANNEL_NOT_FOUND), BadRequest (WEBHOOK_CHANNEL_NOT_TEXT),
    Forbidden (MISSING_PERMISSIONS)."""
    access = await access_channel(conn, actor, channel_id, need=_need, share=True)
    if access.channel.server_id is None or access.channel.kind != "text":
        raise _not_webhook_channel()
    return access


async def _audit(
    conn: asyncpg.Connection,
    actor: Actor,
    row: q.WebhookRow,
    action: str,
    diff: list[dict[str, Any]] | None = None,
) -> None:
    await audit_q.insert_audit_entry(
        conn,
        server_id=row.server_id,
        actor_id=actor.user_id,
        action=action,
        target_type="webhook",
        target_id=row.id,
        changes={"name": row.name, "channel_id": str(row.channel_id)},
        reason=None,
        diff=diff,
    )


async def _room(
    conn: asyncpg.Connection, server_id: UUID, channel_id: UUID, *, moving: bool = False
) -> None:
    """Raises Forbidden (TOO_MANY_WEBHOOKS) when the channel or the server is full,
    counted under the server's webhook lock (held until the transaction ends). A webhook
    `moving` between the server's channels needs room in the channel only: the server's
    count stays as it was."""
    await locks_q.lock_transaction(conn, key=locks_q.advisory_key(LOCK_NAMESPACE, server_id))
    in_channel, in_server = await q.count_webhooks(conn, server_id=server_id, channel_id=channel_id)
    if in_channel >= MAX_PER_CHANNEL or (not moving and in_server >= MAX_PER_SERVER):
        raise Forbidden(
            f"a channel has at most {MAX_PER_CHANNEL} webhooks and a server {MAX_PER_SERVER}",
            code="TOO_MANY_WEBHOOKS",
        )


async def create_webhook(
    conn: asyncpg.Connection, actor: Actor, channel_id: UUID, name: str, avatar_url: str | None
) -> WebhookWithToken:
    """Make a webhook in a server text channel; its token is in the answer only.

    Raises: NotFound (CHANNEL_NOT_FOUND), BadRequest (WEBHOOK_CHANNEL_NOT_TEXT,
    INVALID_WEBHOOK_NAME, INVALID_AVATAR_URL), Forbidden (MISSING_PERMISSIONS,
    TOO_MANY_WEBHOOKS)."""
    checked = webhook_name(name)
    assert checked is not None
    avatar = check_avatar_url(avatar_url)
    token = secrets.token_urlsafe(TOKEN_BYTES)
    async with conn.transaction():
        access = await _managed(conn, actor, channel_id)
        server_id = access.channel.server_id
        assert server_id is not None
        await _room(conn, server_id, channel_id)
        row = await q.insert_webhook(
            conn,
            webhook_id=uuid.uuid4(),
            server_id=server_id,
            channel_id=channel_id,
            name=checked,
            avatar_url=avatar,
            token_hash=hash_token(token),
            created_by=actor.user_id,
        )
        await _audit(conn, actor, row, "webhook.created")
    return WebhookWithToken(webhook_json(row), token)


async def list_channel_webhooks(
    conn: asyncpg.Connection, actor: Actor, channel_id: UUID
) -> list[dict[str, Any]]:
    """Raises: as _managed."""
    await _managed(conn, actor, channel_id)
    return [webhook_json(r) for r in await q.list_webhooks(conn, channel_ids=[channel_id])]


async def list_server_webhooks(
    conn: asyncpg.Connection, actor: Actor, server_id: UUID
) -> list[dict[str, Any]]:
    """The webhooks of the server's channels the actor manages webhooks in.

    Raises: NotFound (SERVER_NOT_FOUND) where the actor sees none of its channels."""
    seen = [c for c in (await visible_channels(conn, actor.user_id)).values()]
    mine = [c for c in seen if c.server_id == server_id]
    if not mine:
        raise server_not_found()
    managed = [c.channel_id for c in mine if MANAGE in c.permissions]
    if not managed:
        return []
    return [webhook_json(r) for r in await q.list_webhooks(conn, channel_ids=managed)]


async def _webhook(
    conn: asyncpg.Connection, actor: Actor, webhook_id: UUID
) -> tuple[q.WebhookSecretRow, ChannelAccess]:
    """The webhook (locked FOR UPDATE) and its channel, if the actor manages webhooks
    there. The channel's row is locked first (FOR KEY SHARE), then the webhook's: the
    order of the channel's deletion, which locks its row and then, cascading, its
    webhooks' (the other order deadlocked with it). A webhook moved meanwhile is read
    again from its new channel, each try in a savepoint of its own: the locks of one
    that found it moved are let go before the next channel's is taken (kept, they
    would be the webhook's before a channel's again).

    Raises: NotFound (WEBHOOK_NOT_FOUND, also where the channel is hidden or was
    deleted), Forbidden (MISSING_PERMISSIONS)."""
    assert conn.is_in_transaction()  # (each try a savepoint of the caller's)
    seen = await q.get_webhook(conn, webhook_id=webhook_id)
    for _ in range(3):
        if seen is None:
            break
        try:
            async with conn.transaction():
                access = await _managed(conn, actor, seen.channel_id)
                row = await q.get_webhook(conn, webhook_id=webhook_id, lock=True)
                if row is not None and row.channel_id == seen.channel_id:
                    return row, access
                raise Moved(row)
        except NotFound:
            break
        except Moved as moved:
            seen = moved.row
    raise webhook_not_found()


class Moved(Exception):
    """A webhook found in another channel than the one locked for it (or gone): its
    try's savepoint is rolled back, letting go of what it locked."""

    def __init__(self, row: q.WebhookSecretRow | None) -> None:
        super().__init__("the webhook moved")
        self.row = row


async def update_webhook(
    conn: asyncpg.Connection,
    actor: Actor,
    webhook_id: UUID,
    values: dict[str, Any],
) -> dict[str, Any]:
    """Change the name, avatar or channel (`values`: those given; moving needs
    MANAGE_WEBHOOKS in both channels, of the same server).

    Raises: as _webhook and create_webhook; BadRequest (WEBHOOK_CHANNEL_NOT_TEXT for
    a channel of another server)."""
    name = webhook_name(values["name"]) if "name" in values else None
    avatar = check_avatar_url(values["avatar_url"]) if "avatar_url" in values else None
    async with conn.transaction():
        row, _ = await _webhook(conn, actor, webhook_id)
        channel_id = values.get("channel_id") or row.channel_id
        if channel_id != row.channel_id:
            target = await _managed(conn, actor, channel_id)
            if target.channel.server_id != row.server_id:
                raise BadRequest(
                    "a webhook moves only into a text channel of its own server",
                    code="WEBHOOK_CHANNEL_NOT_TEXT",
                    field="channel_id",
                )
            await _room(conn, row.server_id, channel_id, moving=True)
        new = await q.update_webhook(
            conn,
            webhook_id=webhook_id,
            name=name if name is not None else row.name,
            avatar_url=avatar if "avatar_url" in values else row.avatar_url,
            channel_id=channel_id,
        )
        diff = row_diff(row, new, ("name", "avatar_url", "channel_id"))
        if diff:
            await _audit(conn, actor, new, "webhook.updated", diff)
    return webhook_json(new)


async def delete_webhook(conn: asyncpg.Connection, actor: Actor, webhook_id: UUID) -> None:
    """Its messages stay, with the name and avatar they were posted with.

    Raises: as _webhook."""
    async with conn.transaction():
        row, _ = await _webhook(conn, actor, webhook_id)
        await q.delete_webhook(conn, webhook_id=webhook_id)
        await _audit(conn, actor, row, "webhook.deleted")


async def regenerate_token(
    conn: asyncpg.Connection, actor: Actor, webhook_id: UUID
) -> WebhookWithToken:
    """A new token; the old one stops working at its commit (an execution holding the
    row's share lock finishes first).

    Raises: as _webhook."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    async with conn.transaction():
        row, _ = await _webhook(conn, actor, webhook_id)
        await q.update_webhook_token(conn, webhook_id=webhook_id, token_hash=hash_token(token))
        await _audit(conn, actor, row, "webhook.token_reset")
    return WebhookWithToken(webhook_json(row), token)
