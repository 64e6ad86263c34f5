"""Executing a webhook: a message posted with its token, without an account (README,
"Webhooks"). It is written by the send batch's checked path (domain/messages_send.py's
write_batch, in a transaction of its own as a send with files is): the channel's
sequence number and its `message.created` event are taken there as for every send,
and the answer comes only after COMMIT."""

from __future__ import annotations

import uuid
from uuid import UUID

import asyncpg

from xfchat.db.queries import channels as channels_q
from xfchat.db.queries import webhooks as q
from xfchat.domain.accounts import Actor
from xfchat.domain.messages import check_content, webhook_author
from xfchat.domain.messages_batch import SendRequest, SendResult, WebhookPost
from xfchat.domain.messages_send import write_batch
from xfchat.domain.messages_writer import RETRIED, RETRIES, channel_busy
from xfchat.domain.validation import avatar_url as check_avatar_url
from xfchat.domain.webhooks import Moved, token_matches, webhook_name, webhook_not_found
from xfchat.errors import XFChatError
from xfchat.settings import RateLimit

NO_SESSION = UUID(int=0)


async def _locked(conn: asyncpg.Connection, webhook_id: UUID) -> q.WebhookSecretRow | None:
    """The webhook, FOR SHARE (a regeneration or deletion committed first is seen here;
    one after waits for this send's commit), its channel's row locked before it (FOR
    KEY SHARE, as the send then takes it): the order of the channel's deletion, which
    locks its row and then, cascading, its webhooks' (the other order deadlocked with
    it). None if it is gone, or its channel. A webhook moved meanwhile is read again,
    after its try's savepoint let go of what it locked (as domain/webhooks._webhook)."""
    assert conn.is_in_transaction()  # (each try a savepoint of the caller's)
    seen = await q.get_webhook(conn, webhook_id=webhook_id)
    for _ in range(3):
        if seen is None:
            return None
        try:
            async with conn.transaction():
                if not await channels_q.key_share_channel(conn, channel_id=seen.channel_id):
                    return None
                row = await q.get_webhook(conn, webhook_id=webhook_id, share=True)
                if row is None or row.channel_id == seen.channel_id:
                    return row
                raise Moved(row)
        except Moved as moved:
            seen = moved.row
    return None


async def execute_webhook(
    pool: asyncpg.Pool,
    webhook_id: UUID,
    token: str,
    *,
    content: str,
    username: str | None,
    avatar_url: str | None,
    limits: list[tuple[str, str, RateLimit]],
) -> SendResult:
    """Post `content` as the webhook (with `username` and `avatar_url` instead of its
    own, for this message), counted in `limits` besides the webhook's own bucket.

    Raises: NotFound (WEBHOOK_NOT_FOUND: no such webhook, or the wrong token, alike);
    BadRequest (EMPTY_MESSAGE, MESSAGE_TOO_LONG, INVALID_WEBHOOK_NAME,
    INVALID_AVATAR_URL...); RateLimited (429); ServiceUnavailable (CHANNEL_BUSY)."""
    check_content(content)
    name = webhook_name(username, "username")
    avatar = check_avatar_url(avatar_url)
    message_id = uuid.uuid4()
    for attempt in range(1, RETRIES + 1):
        try:
            async with pool.acquire() as conn, conn.transaction():
                row = await _locked(conn, webhook_id)
                if row is None or not token_matches(token, row.token_hash):
                    raise webhook_not_found()
                post = WebhookPost(row.id, name or row.name, avatar or row.avatar_url)
                req = SendRequest(
                    actor=Actor(row.id, NO_SESSION),
                    author=webhook_author(post.webhook_id, post.name, post.avatar_url),
                    channel_id=row.channel_id,
                    message_id=message_id,
                    content=content,
                    client_chose_id=False,
                    limits=limits,
                    webhook=post,
                )
                (outcome,) = await write_batch(conn, row.channel_id, [req])
                if isinstance(outcome, XFChatError):
                    raise outcome
                return outcome
        except RETRIED:
            if attempt == RETRIES:
                raise channel_busy() from None
    raise AssertionError("unreachable")
