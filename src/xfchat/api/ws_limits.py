"""Limits on what a WebSocket client may make `xfchat serve` hold or do.

uvicorn's WebSocket protocol takes frames of up to 16 MiB from anyone, identified or
not, and answers every ping. This subclass adds, per connection:
- WebSocket pings and pongs: CONTROL_BURST at once, then CONTROL_RATE a second, else
  the connection is closed (anyone could keep a process busy answering pings);
- data frames (text, binary, and each continuation of a message in pieces):
  FRAME_BURST at once, then FRAME_RATE a second, else close 4008; a message in at
  most MAX_PIECES frames, each but its last carrying data, else close 1008. Both are
  judged as each frame is parsed, before uvicorn keeps it (it kept every piece of an
  unfinished message: five million empty ones in 20 s grew the process without bound
  while the app, which counts messages, saw none);
- what arrives is parsed PARSE_SLICE bytes at a time, and nothing more once the
  connection is being closed: one read (256 KiB) of 6-byte frames is 43,000 of them,
  a quarter of a second of parsing, which the refusal of the first would not spare
  (after a refusal with a close code, what the client sends is read and dropped for
  DRAIN_S at most, so that the code reaches it: closing with data unread resets);
- at most UNIDENTIFIED_BYTES from a WebSocket client before it is identified, closed
  unparsed past them (pings are answered inside the parser: parsing them is the work);
- WebSocket frames of at most BEFORE_IDENTIFY bytes until the app says the client is
  identified (`allow_larger_frames`), then at most `ws_max_size`: a larger frame
  closes the connection with 1009 before its payload is read;
- a client that takes nothing of what is sent to it is reset (as an HTTP one is, see
  api/http_limits.py), and so is one that takes nothing of what is left unsent when the
  connection is closed (a close waits for that to go: for ever, from such a client);
- a text frame that is not UTF-8 is closed 1007 quietly.

And one thing more than uvicorn's: several text frames written at once (`text_sender`),
one system call for what the ASGI `websocket.send` writes with one each.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.websockets import WebSocket, WebSocketDisconnect
from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState
from websockets.frames import Frame
from websockets.http11 import Response

from xfchat.api.http_limits import JSON_API_HEADERS, SEND_STALL, WRITE_PIECE, SendWatch
from xfchat.domain.local_limits import Held

# Frames a client may send before IDENTIFY or RESUME (a token is a few hundred bytes),
# and after it (a voice signal carries up to 16 KiB of JSON).
BEFORE_IDENTIFY = 4096
AFTER_IDENTIFY = 65_536
# WebSocket pings and pongs a connection may send at once, then a second (a token bucket;
# identified or not; data frames have their own, below). Clients ping every
# 20 s or so, browsers never; a loop of pings was 350,000 a second, each answered.
CONTROL_BURST = 60
CONTROL_RATE = 10.0
# Bytes a WebSocket client may send before it is identified (IDENTIFY is one frame of at
# most BEFORE_IDENTIFY): past them the connection is closed before they are parsed.
UNIDENTIFIED_BYTES = 4 * BEFORE_IDENTIFY
# Data frames a connection may send at once, then a second (a token bucket; every piece
# of a message counts). Far above heartbeats, and above the voice limits, whose excess
# is answered (voice.error RATE_LIMITED: 120 signals at once, then 30 a second, per
# user) before this closes; far below the 10,000s a second a loop of heartbeats sends,
# each parsed and answered.
FRAME_BURST = 1000
FRAME_RATE = 200.0
# The frames one message may come in (a client that splits its largest, 64 KiB, into
# 1 KiB pieces); each but the last must carry data. Browsers send a message whole.
MAX_PIECES = 64
# What is parsed at once of what arrives, at most about 700 frames: the limits above are
# looked at after each, so nothing past a refusal costs more than this.
PARSE_SLICE = 4096
# How long a connection closed for breaking these limits is given to close its side
# (what it sends meanwhile is dropped unparsed).
DRAIN_S = 1.0
# Close codes of the refusals here (the gateway's own are 4001-4015).
RATE_LIMITED = 4008
POLICY_VIOLATION = 1008
# The ASGI scope extension by which the gateway lifts the first limit.
FRAME_LIMIT = "xfchat.frame_limit"
# The ASGI scope extension that writes several text frames at once.
SEND_TEXTS = "xfchat.send_texts"


class GuardedWebSocketProtocol(SendWatch, WebSocketsSansIOProtocol):
    # A client that takes nothing for this long is reset, as an HTTP one is (SEND_STALL
    # times the head's deadline): closing leaves the kernel sending it what it holds.
    stall_s = 30.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conn.max_message_size = BEFORE_IDENTIFY
        plain_reject = self.conn.reject

        def reject(status: int, text: str) -> Response:
            """A refused handshake (malformed, or a path with no WebSocket: uvicorn's 403
            with an empty body) answers JSON, as every error does."""
            code = "INTERNAL_ERROR" if status >= 500 else "WEBSOCKET_REFUSED"
            why = text.strip() or "there is no WebSocket at this path"
            response = plain_reject(status, orjson.dumps({"code": code, "message": why}).decode())
            del response.headers["Content-Type"]
            response.headers["Content-Type"] = "application/json"
            for name, value in JSON_API_HEADERS:  # (as every JSON answer under /api/)
                response.headers[name.decode()] = value.decode()
            return response

        self.conn.reject = reject  # type: ignore[method-assign]
        now = self.loop.time()
        self._controls = _Bucket(CONTROL_BURST, CONTROL_RATE, now)
        self._frames = _Bucket(FRAME_BURST, FRAME_RATE, now)
        self._pieces = 0  # frames of the message being received
        self._unidentified = 0  # bytes received while not identified (-1: identified)
        self._cut = False  # closed by this protocol: the app's sends find it gone
        # The connection's place among its address's (api/http_limits.py hands it over
        # at the upgrade), given back when it ends.
        self.held_place: Held | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(_WatchedClose(transport, self._watch_unsent))  # type: ignore[arg-type]

    def data_received(self, data: bytes) -> None:
        if self._cut or self.transport.is_closing():
            return  # (being closed: nothing more is parsed)
        over = False
        if self._unidentified >= 0 and self.handshake_initiated:  # (not the head itself)
            room = max(UNIDENTIFIED_BYTES - self._unidentified, 0)
            self._unidentified += len(data)
            over = self._unidentified > UNIDENTIFIED_BYTES
            data = data[:room]  # (what fits is parsed: a frame too large is still 1009)
        view = memoryview(data)
        for start in range(0, len(view), PARSE_SLICE):
            super().data_received(view[start : start + PARSE_SLICE])  # type: ignore[arg-type]
            if self._cut or self.transport.is_closing():
                return
        if over:
            self._drop()

    def _drop(self) -> None:
        """Close the connection without a word (and read nothing more of it)."""
        self._cut = True
        if not self.transport.is_closing():
            self.transport.close()

    def _refuse(self, code: int, reason: str) -> None:
        """Close the connection with `code`; the app is told it is gone, and what it had
        not read yet is dropped. Nothing more is parsed: what the client sends until it
        closes its side is read and dropped, for DRAIN_S at most (a socket closed with
        data unread resets the connection, and the client may never see the code)."""
        self.frames = []
        if self._cut or self.close_sent or self.conn.close_sent is not None:
            self._drop()  # (closing already)
            return
        self._cut = True
        unread = [self.queue.get_nowait() for _ in range(self.queue.qsize())]
        for message in unread:
            if message["type"] != "websocket.receive":
                self.queue.put_nowait(message)
        self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        self.conn.send_close(code, reason)
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        if self.transport.can_write_eof():
            self.transport.write_eof()
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()
        self.close_timer = self.loop.call_later(DRAIN_S, self.transport.close)

    def handle_parser_exception(self) -> None:
        self._cut = True
        super().handle_parser_exception()

    async def send(self, message: Any) -> None:
        """Once this protocol has closed the connection, the app finds it gone (uvicorn
        would raise a RuntimeError for a send after its close)."""
        if self._cut:
            raise ClientDisconnected
        await super().send(message)
        if message["type"] == "websocket.http.response.body" and not message.get("more_body"):
            # A refused upgrade, answered: uvicorn's protocol does not count it as the
            # handshake's end, and logged an ERROR for each one.
            self.handshake_complete = True

    def connection_lost(self, exc: Exception | None) -> None:
        if self.held_place is not None:
            self.held_place.release()
        super().connection_lost(exc)

    def send_receive_event_to_app(self) -> None:
        """A text message that is not UTF-8 is closed 1007 quietly: uvicorn's own path
        logs it as an error with a traceback, one per connection anyone may open."""
        if self.curr_msg_data_type == "text" and not self.close_sent:
            data = self.frames[0] if len(self.frames) == 1 else b"".join(self.frames)
            try:
                data.decode()
            except UnicodeDecodeError:
                self._refuse(1007, "text frames are UTF-8")
                return
        super().send_receive_event_to_app()

    def handle_text(self, event: Frame) -> None:
        if self._take_frame(event, first=True):
            super().handle_text(event)

    def handle_bytes(self, event: Frame) -> None:
        if self._take_frame(event, first=True):
            super().handle_bytes(event)

    def handle_cont(self, event: Frame) -> None:
        if self._take_frame(event, first=False):
            super().handle_cont(event)

    def _take_frame(self, event: Frame, first: bool) -> bool:
        """Whether a data frame is within the connection's limits; past them the
        connection is closed (and nothing more of it is parsed). O(1) a frame."""
        if self._cut or self.transport.is_closing():
            return False
        if not self._frames.take(self.loop.time()):
            self._refuse(RATE_LIMITED, f"rate limited: over {FRAME_RATE:g} frames a second")
            return False
        self._pieces = 1 if first else self._pieces + 1
        if not event.fin and not event.data:
            self._refuse(POLICY_VIOLATION, "only a message's last frame may be empty")
            return False
        if self._pieces > MAX_PIECES:
            self._refuse(POLICY_VIOLATION, f"a message comes in at most {MAX_PIECES} frames")
            return False
        return True

    def handle_ping(self) -> None:
        if self._take_control():
            super().handle_ping()

    def handle_pong(self, event: Any) -> None:
        if self._take_control():
            super().handle_pong(event)

    def _take_control(self) -> bool:
        """Whether one more ping or pong is within the connection's budget; past it the
        connection is closed (and nothing more of it is read)."""
        if self._cut or self.transport.is_closing():
            return False
        if self._controls.take(self.loop.time()):
            return True
        self._drop()
        return False

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"][FRAME_LIMIT] = self._lift
            scope["extensions"][SEND_TEXTS] = self._send_texts

    def _lift(self) -> None:
        self.conn.max_message_size = self.config.ws_max_size
        self._unidentified = -1

    async def _send_texts(self, texts: list[str]) -> None:
        """`texts` as text frames, in order, in writes of about WRITE_PIECE bytes (one,
        usually); before each, as `send` does, it waits while the client's buffer is
        full."""
        piece = 0
        for text in texts:
            if piece == 0:
                await self.writable.wait()
                if self.disconnected or self.close_sent or not self.handshake_complete:
                    raise WebSocketDisconnect(1006)
            data = text.encode()
            try:
                self.conn.send_text(data)
            except InvalidState:
                raise WebSocketDisconnect(1006) from None
            piece += len(data)
            if piece >= WRITE_PIECE:
                self.transport.write(b"".join(self.conn.data_to_send()))
                piece = 0
        if piece:
            self.transport.write(b"".join(self.conn.data_to_send()))


class _WatchedClose:
    """A WebSocket connection's transport whose close() also has the protocol watch
    what is left unsent (uvicorn's protocol closes it in a dozen places). What a frame
    uses is bound once: a lookup through __getattr__ costs twenty times as much."""

    __slots__ = (
        "_on_close",
        "_transport",
        "get_extra_info",
        "get_write_buffer_size",
        "is_closing",
        "pause_reading",
        "resume_reading",
        "write",
    )

    def __init__(self, transport: asyncio.Transport, on_close: Callable[[], None]) -> None:
        self._transport = transport
        self._on_close = on_close
        self.write = transport.write
        self.is_closing = transport.is_closing
        self.get_write_buffer_size = transport.get_write_buffer_size
        self.get_extra_info = transport.get_extra_info
        self.pause_reading = transport.pause_reading
        self.resume_reading = transport.resume_reading

    def close(self) -> None:
        self._transport.close()
        self._on_close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _Bucket:
    """A token bucket: `burst` at once, then `rate` a second."""

    __slots__ = ("burst", "filled", "rate", "tokens")

    def __init__(self, burst: int, rate: float, now: float) -> None:
        self.burst, self.rate = float(burst), rate
        self.tokens, self.filled = float(burst), now

    def take(self, now: float) -> bool:
        """Take one; whether there was one."""
        self.tokens = min(self.burst, self.tokens + (now - self.filled) * self.rate) - 1
        self.filled = now
        return self.tokens >= 0


def allow_larger_frames(ws: WebSocket) -> None:
    """The client identified itself: frames up to AFTER_IDENTIFY are taken from now on
    (a no-op under a server without these protocols, such as the tests' transports)."""
    lift = ws.scope.get("extensions", {}).get(FRAME_LIMIT)
    if callable(lift):
        lift()


def text_sender(ws: WebSocket) -> Callable[[list[str]], Awaitable[None]]:
    """How to send several text frames to `ws`: in one write under these protocols, one
    `send_text` each elsewhere (the tests' transports)."""
    send_texts: Callable[[list[str]], Awaitable[None]] | None = ws.scope.get("extensions", {}).get(
        SEND_TEXTS
    )
    if send_texts is not None:
        return send_texts

    async def one_by_one(texts: list[str]) -> None:
        for text in texts:
            await ws.send_text(text)

    return one_by_one


def ws_protocol(header_timeout_s: float) -> type[GuardedWebSocketProtocol]:
    """The WebSocket protocol class for uvicorn's `ws=`: a stalled client is reset after
    SEND_STALL times the head's deadline, as an HTTP one."""
    return type(
        "XFChatWebSocketProtocol",
        (GuardedWebSocketProtocol,),
        {"stall_s": header_timeout_s * SEND_STALL},
    )
