"""Server-Sent Events: GET /api/events streams everything the user follows.

Each event's `id` is a resume token; EventSource sends the last one back as
`Last-Event-ID` when it reconnects (or pass `?since=<token>`), and the stream resumes
right after it with nothing missed or repeated. A token that cannot be used (another
user's, malformed, older than the log keeps) gets an `event: resync` first: reload your
state, then carry on from the id it carries.
"""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import Header, Query, Request
from starlette.responses import Response

from xfchat.api.deps import StreamActor
from xfchat.api.routing import api_router, is_head
from xfchat.api.streaming import COALESCE, LiveStream, Write, stream_head
from xfchat.realtime.cursor import MAX_TOKEN_LENGTH
from xfchat.realtime.feeds import admit_user_feed, open_user_feed
from xfchat.realtime.subscriber import Closed, Delivery, Subscriber

router = api_router(prefix="/api", tags=["realtime"])

SSE_EVENT = "#/components/schemas/SseEvent"  # one event (xfchat.api.openapi)
HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache, no-transform",
    "X-Accel-Buffering": "no",
}


def frame(event: str, data: bytes, token: str | None = None) -> bytes:
    head = f"id: {token}\n" if token is not None else ""
    return f"{head}event: {event}\n".encode() + b"data: " + data + b"\n\n"


def _parts(d: Delivery) -> tuple[bytes | None, bytes]:
    """A delivery as every subscriber's frame shares it, made once per process: the
    `id:` line's beginning (None: no id, or a token that must be made whole) and the
    event and its data."""
    head = d.token_head() if d.stored else None
    return (None if head is None else b"id: " + head.encode()), frame(d.type, d.json)


def frames(batch: list[Delivery], sub: Subscriber) -> bytes:
    """The frames of `batch` for `sub`, in one chunk: each event's shared frame with
    the subscriber's part of its token (its token tail and the line's end)."""
    id_tail = (sub.token_tail + "\n").encode()
    parts: list[bytes] = []
    for d in batch:
        id_head, body = d.framed("sse", _parts)
        if id_head is not None:
            parts += (id_head, id_tail, body)
        elif d.stored:  # a place with no room to pad (TokenCodec.place): the token whole
            parts += (b"id: " + sub.token_at(d).encode() + b"\n", body)
        else:
            parts.append(body)
    return b"".join(parts)


@router.get(
    "/events",
    response_class=Response,
    summary="Server-Sent Events for the current user",
    responses={
        200: {
            "description": "An event stream: `ready` first, then every event (see the "
            "`Event` schema and the README); `id` is the resume token",
            "content": {"text/event-stream": {"schema": {"$ref": SSE_EVENT}}},
        }
    },
)
async def get_events(
    request: Request,
    actor: StreamActor,
    last_event_id: Annotated[
        str | None, Header(alias="Last-Event-ID", max_length=MAX_TOKEN_LENGTH)
    ] = None,
    since: Annotated[str | None, Query(max_length=MAX_TOKEN_LENGTH)] = None,
    heartbeat: Annotated[
        bool,
        Query(
            description="an idle stream says so with `event: heartbeat` (a page can hear "
            "it; a comment it cannot) every `heartbeat_interval` ms of `ready`"
        ),
    ] = False,
) -> Response:
    state = request.app.state
    if is_head(request):
        await admit_user_feed(state.hub, state.pool, actor)  # (GET's 429, 401)
        return stream_head(200, HEADERS)
    token = last_event_id or since
    sub, refused, start = await open_user_feed(state.hub, state.pool, actor, token)
    keepalive = state.settings.sse_keepalive_s
    # (a silent connection, its packets lost, is told apart only by what a page hears)
    idle = frame("heartbeat", b"{}") if heartbeat else b": keep-alive\n\n"
    first = sub.token()

    async def produce(write: Write) -> None:
        await write(b"retry: 1000\n\n")
        hello = {
            "user_id": str(actor.user_id),
            "session_id": str(actor.session_id),
            "resumed": start.state is None,
            "heartbeat_interval": round(keepalive * 1000),
            **start.ready,
        }
        await write(frame("ready", orjson.dumps(hello), first))
        if refused is not None:
            reason = {"reason": refused.reason, "message": f"{refused.message}; reload your state"}
            await write(frame("resync", orjson.dumps(reason), first))
        while True:
            try:
                # Whatever is waiting goes out in one write.
                batch = await sub.next_batch(COALESCE, idle_s=keepalive)
            except Closed as closed:
                await write(
                    frame("closed", orjson.dumps({"reason": closed.reason, "resume": sub.token()}))
                )
                return
            if batch is None:
                await write(idle)
                continue
            await write(frames(batch, sub))

    return LiveStream(200, HEADERS, sub, produce)
