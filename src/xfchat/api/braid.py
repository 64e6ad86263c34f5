"""Braid-HTTP subscriptions to a channel's message list.

`GET /api/channels/{id}/messages` with a `Subscribe` header (any value) answers
209 and stays open. The resource is the list of messages in sequence order; a message's
id is its version. A fresh subscription starts with one snapshot (the latest 50
messages, oldest first, `Version` = the newest id); every later message comes as an
append patch (`Content-Range: json [-0:-0]`) with `Version` = its id and `Parents` = the
previous message's id. `Parents` on the request resumes right after that message:
exactly the missed messages, in order, then live ones. An unknown `Parents` gets 410.
`Heartbeats: Ns` is echoed and a blank line is written every N seconds while idle.
Edits, deletions and reactions are not part of this resource: they travel on
/api/events and the gateway. The subscription ends, its response whole, when the user
may no longer see the channel or read its history (`channel.hidden` or
`channel.history_hidden` at its place in the log, or a refused read of the history a
gap needs): a new subscription is then refused as any would be.
"""

from __future__ import annotations

import json
import logging
import re
from uuid import UUID

import asyncpg
import orjson
from fastapi import Request
from starlette.responses import Response

from xfchat.api.deps import REALTIME_BUCKET, check_limit
from xfchat.api.routing import is_head
from xfchat.api.streaming import LiveStream, Write, stream_head
from xfchat.db.pool import DATABASE_ERRORS
from xfchat.domain import messages
from xfchat.domain.accounts import Actor
from xfchat.domain.event_payloads import MessagePayload
from xfchat.domain.events import MESSAGE_CREATED
from xfchat.domain.messages import MAX_PARENTS
from xfchat.errors import BadRequest, Forbidden, NotFound, ServiceUnavailable
from xfchat.realtime.feeds import admit_channel_feed, open_channel_feed, peek_channel_feed
from xfchat.realtime.subscriber import ACCESS_LOST, Closed, Subscriber

log = logging.getLogger("xfchat.stream")

PAGE = 100
# Eight quoted message ids with their separators fit many times over.
MAX_PARENTS_HEADER = 1024


HTTP_HISTORY = "application/http-history"


def _header(name: str, description: str) -> dict[str, object]:
    return {"name": name, "in": "header", "schema": {"type": "string"}, "description": description}


SUBSCRIPTION_RESPONSE: dict[int | str, dict[str, object]] = {
    209: {
        "description": "With a `Subscribe` header: a Braid-HTTP subscription, an endless "
        "body of updates in Braid's own framing (each a status line, headers and a body, "
        "not one JSON value): a snapshot of the newest messages, then one append patch "
        "per message (`Content-Range: json [-0:-0]`, the message as its body); see the "
        "README",
        "content": {HTTP_HISTORY: {"schema": {"type": "string"}}},
        "headers": {
            "Subscribe": {"schema": {"type": "string"}, "description": "Echoed"},
            "Current-Version": {
                "schema": {"type": "string"},
                "description": "The newest message's id, quoted",
            },
            "Heartbeats": {
                "schema": {"type": "string"},
                "description": "Echoed when asked for: a blank line every so often while idle",
            },
        },
    }
}
# The request headers of a subscription, which the route reads from the request itself.
SUBSCRIPTION_HEADERS = {
    "parameters": [
        _header("Subscribe", "Any value: a subscription (209) instead of a page"),
        _header(
            "Parents",
            'Resume after these messages: their ids as JSON strings, e.g. "<id>" '
            f"(at most {MAX_PARENTS_HEADER} characters)",
        ),
        _header("Heartbeats", "Seconds between blank lines while idle, e.g. 30s (0.1-3600)"),
    ]
}

# A decimal number of seconds and at most one "s" (braid-http sends "30s").
HEARTBEATS = re.compile(r"(\d+(?:\.\d*)?|\.\d+)s?")


def braid_ids(header: str) -> list[str]:
    """`"a", "b"` -> ["a", "b"] (each a JSON string, as braid-http sends them)."""
    if len(header) > MAX_PARENTS_HEADER:
        raise BadRequest(
            f"Parents is at most {MAX_PARENTS_HEADER} characters", code="INVALID_PARENTS"
        )
    try:
        value = json.loads(f"[{header}]")
    except (ValueError, RecursionError):
        raise BadRequest(
            'Parents must be JSON strings, e.g. "<message id>"', code="INVALID_PARENTS"
        ) from None
    if not value or not all(isinstance(v, str) for v in value):
        raise BadRequest("Parents must be JSON strings", code="INVALID_PARENTS")
    if len(value) > MAX_PARENTS:
        raise BadRequest(f"at most {MAX_PARENTS} Parents", code="INVALID_PARENTS")
    return [str(v) for v in value]


def quoted(*versions: str) -> str:
    return ", ".join(json.dumps(v) for v in versions)


def update(body: bytes, version: str | None, parents: str | None, patch: bool) -> bytes:
    lines = ["HTTP/1.1 200 OK"]
    if version is not None:
        lines.append(f"Version: {quoted(version)}")
    if parents is not None:
        lines.append(f"Parents: {quoted(parents)}")
    lines.append("Content-Type: application/json")
    if patch:
        lines.append("Content-Range: json [-0:-0]")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body + b"\r\n\r\n"


def parse_heartbeats(value: str | None) -> float | None:
    """`Heartbeats: <n>` or `<n>s`, n a decimal number of seconds (braid-http sends
    `30s`); anything else (`5ss`, `1e3`, `nan`) is 400 INVALID_HEARTBEATS."""
    if not value:
        return None
    written = HEARTBEATS.fullmatch(value.strip())
    if written is None:
        raise BadRequest("Heartbeats is a number of seconds, e.g. 30s", code="INVALID_HEARTBEATS")
    seconds = float(written[1])
    if not 0.1 <= seconds <= 3600:
        raise BadRequest("Heartbeats is 0.1 to 3600 seconds", code="INVALID_HEARTBEATS")
    return seconds


def _patch(message: MessagePayload, parent: str | None) -> bytes:
    return update(orjson.dumps(message), message["id"], parent, patch=True)


async def subscribe(request: Request, actor: Actor, channel_id: UUID) -> Response:
    state = request.app.state
    head = is_head(request)  # (its checks, without a subscription: stream_head)
    await check_limit(
        request, REALTIME_BUCKET, str(actor.user_id), state.settings.rate_realtime_user
    )
    heartbeats = parse_heartbeats(request.headers.get("heartbeats"))
    # Repeated headers are one list (RFC 9110): they count together against the limits.
    parents = ", ".join(request.headers.getlist("parents"))
    versions = braid_ids(parents) if parents else None
    if head:
        state.hub.admit(actor.user_id)  # (GET's 429 TOO_MANY_CONNECTIONS)
        start = await peek_channel_feed(state.pool, actor, channel_id, versions)
        admit_channel_feed(state.hub, actor, channel_id)
    else:
        sub, start = await open_channel_feed(state.hub, state.pool, actor, channel_id, versions)
    headers = {
        "Subscribe": request.headers.get("subscribe") or "true",
        # (the multiresponse draft's media type, as braid-http's own server sends it)
        "Content-Type": HTTP_HISTORY,
        "Cache-Control": "no-cache, no-transform, no-store",
        "X-Accel-Buffering": "no",
    }
    if start.newest:
        headers["Current-Version"] = quoted(start.newest[0]["id"])
    if heartbeats is not None:
        headers["Heartbeats"] = f"{heartbeats:g}s"
    if head:
        return stream_head(209, headers)
    body = _Body(state.pool, actor, channel_id, sub, heartbeats, start.resume, start.newest)
    return LiveStream(209, headers, sub, body.produce)


class _Body:
    """A subscription's body: the snapshot (the newest messages as one version) or, on a
    resume, the history after the client's version; then each new message as a patch
    on the one before, the gaps filled from the history, until access ends."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        actor: Actor,
        channel_id: UUID,
        sub: Subscriber,
        heartbeats: float | None,
        resume: tuple[int, str] | None,
        newest: list[MessagePayload],
    ) -> None:
        self.pool, self.actor, self.channel_id, self.sub = pool, actor, channel_id, sub
        self.heartbeats = heartbeats
        self.resume = resume
        self.snapshot = list(reversed(newest)) if resume is None else []
        # Where the subscription started (the newest message then): a resume's catch-up
        # reads the history up to it and no further, since the history is read with the
        # access of the moment and what came after is the hub's, judged in order (a
        # removal and a re-adding meanwhile end the subscription at the removal).
        self.start_seq = newest[0]["seq"] if newest else (resume[0] if resume else 0)
        self.last_seq: int = resume[0] if resume is not None else 0
        self.last_id: str | None = resume[1] if resume is not None else None

    async def produce(self, write: Write) -> None:
        if self.resume is None:
            if self.snapshot:
                self.last_seq, self.last_id = self.snapshot[-1]["seq"], self.snapshot[-1]["id"]
            await write(update(orjson.dumps(self.snapshot), self.last_id, None, patch=False))
        try:
            if self.resume is not None:
                await self._catch_up(write, self.start_seq)
            await self._follow(write)
        except (NotFound, Forbidden):
            self.sub.close(ACCESS_LOST)  # no longer allowed to read it: the subscription ends
        except (*DATABASE_ERRORS, ServiceUnavailable) as exc:
            # History cannot be read now: end the body whole (the client resumes with
            # Parents, as after any end), not cut off in the middle of a chunk.
            log.warning("a Braid subscription ended: its history cannot be read: %s", exc)

    async def _follow(self, write: Write) -> None:
        while True:
            try:
                item = await self.sub.next(idle_s=self.heartbeats)
            except Closed:
                return
            if item is None:
                await write(b"\r\n")  # heartbeat
                continue
            delivery, _ = item
            if delivery.type != MESSAGE_CREATED.name or delivery.data["seq"] <= self.last_seq:
                continue
            if delivery.data["seq"] > self.last_seq + 1:
                await self._catch_up(write, delivery.data["seq"])
                continue
            await self._write(write, delivery.data)

    async def _catch_up(self, write: Write, upto: int) -> None:
        """The history after the last message written, up to `upto`."""
        while True:
            async with self.pool.acquire() as conn:
                page, _ = await messages.list_messages(
                    conn, self.actor, self.channel_id, limit=PAGE, before=None, after=self.last_seq
                )
            for message in page:
                if message["seq"] > upto:
                    return
                await self._write(write, message)
            if len(page) < PAGE:
                return

    async def _write(self, write: Write, message: MessagePayload) -> None:
        await write(_patch(message, self.last_id))
        self.last_seq, self.last_id = message["seq"], message["id"]
