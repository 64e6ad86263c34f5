"""An endless HTTP response fed by a subscription (SSE and Braid-HTTP use it).

Three things can end it: the producer finishes (it said goodbye: session revoked,
slow consumer, shutdown), the client disconnects, or the subscription is closed while
the producer is stuck writing to a client that stopped reading. In that last case the
producer gets a moment to finish, then it is abandoned: the response is left
incomplete, which makes the server close the connection, and the stalled client can
never hold up anyone else.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from xfchat.api.http_limits import RAW_CYCLE, WRITE_PIECE
from xfchat.realtime.subscriber import Subscriber
from xfchat.tasks import stop

log = logging.getLogger("xfchat.stream")
Write = Callable[[bytes], Awaitable[None]]
STALL_GRACE_S = 1.0
COALESCE = 256  # a stream's ready events taken at most at once (one chunk, or one write)
ENDLESS = 1 << 62  # what uvicorn counts down of an HTTP/1.0 stream's unframed body


def stream_head(status_code: int, headers: Mapping[str, str]) -> Response:
    """A stream's answer to a HEAD (api/routing.head_as_get): its status and headers,
    and no subscription opened for it, nor a real-time connection counted."""
    head = Response(status_code=status_code, headers=dict(headers))
    head.raw_headers = [(k, v) for k, v in head.raw_headers if k != b"content-length"]
    return head


class LiveStream(Response):
    def __init__(
        self,
        status_code: int,
        headers: Mapping[str, str],
        sub: Subscriber,
        produce: Callable[[Write], Coroutine[Any, Any, None]],
    ) -> None:
        super().__init__(status_code=status_code, headers=dict(headers))
        # Endless: chunked, so no Content-Length (Response adds "0" for an empty body).
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
        self.sub = sub
        self.produce = produce

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            cycle: Any = scope.get(RAW_CYCLE)
            unframed = cycle is not None and scope.get("http_version") == "1.0"
            if unframed:
                # An HTTP/1.0 client knows no chunked framing (uvicorn chunked every
                # answer without a length): the body ends where the connection does
                # (RFC 9112 6.3), which 1.0 never keeps alive.
                cycle.chunked_encoding = False
                cycle.expected_content_length = ENDLESS
                cycle.keep_alive = False  # (uvicorn keeps no 1.0 connection: nor may it)
            await send(
                {
                    "type": "http.response.start",
                    "status": self.status_code,
                    "headers": self.raw_headers,
                }
            )

            # The middle of the body past the middleware, once the start got through it
            # (its end goes through it again: telemetry closes its span there).
            raw = cycle.send if cycle is not None and cycle.response_started else send

            async def write(chunk: bytes) -> None:
                # In pieces (a whole chunk is not copied: a full slice of bytes is itself),
                # each sent once the client's buffer has room.
                for start in range(0, len(chunk), WRITE_PIECE):
                    piece = chunk[start : start + WRITE_PIECE]
                    await raw({"type": "http.response.body", "body": piece, "more_body": True})

            producer = asyncio.create_task(self.produce(write))
            gone = asyncio.create_task(_disconnected(receive))
            done = await until_either_ends(self.sub, producer, gone)
            finished = producer in done and not producer.cancelled()
            if finished and producer.exception() is not None:
                log.error("a live stream failed", exc_info=producer.exception())
                finished = False
            await stop(producer, gone)
            if finished and gone not in done:
                if unframed:
                    cycle.expected_content_length = 0  # (its end: the close)
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            self.sub.release()


async def until_either_ends(
    sub: Subscriber, producer: asyncio.Task[Any], client: asyncio.Task[Any]
) -> set[asyncio.Task[Any]]:
    """Wait until the producer (writing to the client) or the client's side (reading
    from it) finishes, or the subscription ends; returns what finished. A producer stuck
    writing to a client that stopped reading when its subscription ends gets
    STALL_GRACE_S to finish, and is then left out of the answer: the caller abandons it."""
    ended = asyncio.create_task(sub.ended.wait())
    try:
        done, _ = await asyncio.wait({producer, client, ended}, return_when=asyncio.FIRST_COMPLETED)
        if ended in done and producer not in done:
            late, _ = await asyncio.wait(
                {producer, client}, timeout=STALL_GRACE_S, return_when=asyncio.FIRST_COMPLETED
            )
            if not late:
                log.warning("cutting off a client that stopped reading (%s)", sub.closed)
            done |= late
        return done
    finally:
        await stop(ended)


async def _disconnected(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
