"""Limits on what a WebSocket client may make `xfchat serve` hold or do.

uvicorn's WebSocket protocol takes frames of up to 16 MiB from anyone, identified or
not, and answers every ping. This subclass adds, per connection:
- WebSocket pings and pongs: CONTROL_BURST at once, then CONTROL_RATE a second, else
  the connection is closed (anyone could keep a process busy answering pings);
- at most UNIDENTIFIED_BYTES from a WebSocket client before it is identified, closed
  unparsed past them (pings are answered inside the parser: parsing them is the work);
- WebSocket frames of at most BEFORE_IDENTIFY bytes until the app says the client is
  identified (`allow_larger_frames`), then at most `ws_max_size`: a larger frame
  closes the connection with 1009 before its payload is read;
- a client that takes nothing of what is sent to it is reset (as an HTTP one is, see
  api/http_limits.py);
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
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState
from websockets.http11 import Response

from xfchat.api.http_limits import SEND_STALL, WRITE_PIECE, cancelled_timer, reset_connection

# Frames a client may send before IDENTIFY or RESUME (a token is a few hundred bytes),
# and after it (a voice signal carries up to 16 KiB of JSON).
BEFORE_IDENTIFY = 4096
AFTER_IDENTIFY = 65_536
# WebSocket pings and pongs a connection may send at once, then a second (a token bucket;
# identified or not: the gateway limits the other frames itself). Clients ping every
# 20 s or so, browsers never; a loop of pings was 350,000 a second, each answered.
CONTROL_BURST = 60
CONTROL_RATE = 10.0
# Bytes a WebSocket client may send before it is identified (IDENTIFY is one frame of at
# most BEFORE_IDENTIFY): past them the connection is closed before they are parsed.
UNIDENTIFIED_BYTES = 4 * BEFORE_IDENTIFY
# The ASGI scope extension by which the gateway lifts the first limit.
FRAME_LIMIT = "xfchat.frame_limit"
# The ASGI scope extension that writes several text frames at once.
SEND_TEXTS = "xfchat.send_texts"


class GuardedWebSocketProtocol(WebSocketsSansIOProtocol):
    # A client that takes nothing for this long is reset, as an HTTP one is (SEND_STALL
    # times the head's deadline): closing leaves the kernel sending it what it holds.
    stall_s = 30.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._stall: asyncio.TimerHandle | None = None
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
            return response

        self.conn.reject = reject  # type: ignore[method-assign]
        self._controls, self._filled = float(CONTROL_BURST), self.loop.time()
        self._unidentified = 0  # bytes received while not identified (-1: identified)

    def data_received(self, data: bytes) -> None:
        if self._unidentified < 0 or not self.handshake_initiated:  # (or the head itself)
            super().data_received(data)
            return
        room = UNIDENTIFIED_BYTES - self._unidentified
        self._unidentified += len(data)
        if room > 0:  # (what fits is parsed: a frame too large is still closed 1009)
            super().data_received(data[:room])
        if self._unidentified > UNIDENTIFIED_BYTES and not self.transport.is_closing():
            self.transport.close()

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._stall is None:
            self._stall = self.loop.call_later(self.stall_s, self._stalled)

    def resume_writing(self) -> None:
        self._unstall()
        super().resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._unstall()
        super().connection_lost(exc)

    def _unstall(self) -> None:
        self._stall = cancelled_timer(self._stall)

    def _stalled(self) -> None:
        self._stall = None
        reset_connection(self.transport)

    def send_receive_event_to_app(self) -> None:
        """A text message that is not UTF-8 is closed 1007 quietly: uvicorn's own path
        logs it as an error with a traceback, one per connection anyone may open."""
        if self.curr_msg_data_type == "text" and not self.close_sent:
            data = self.frames[0] if len(self.frames) == 1 else b"".join(self.frames)
            try:
                data.decode()
            except UnicodeDecodeError:
                self.frames = []
                self.conn.send_close(1007, "text frames are UTF-8")
                self.handle_parser_exception()
                return
        super().send_receive_event_to_app()

    def handle_ping(self) -> None:
        if self._take_control():
            super().handle_ping()

    def handle_pong(self, event: Any) -> None:
        if self._take_control():
            super().handle_pong(event)

    def _take_control(self) -> bool:
        """Whether one more ping or pong is within the connection's budget; past it the
        connection is closed (and nothing more of it is read)."""
        now = self.loop.time()
        self._controls = min(CONTROL_BURST, self._controls + (now - self._filled) * CONTROL_RATE)
        self._controls, self._filled = self._controls - 1, now
        if self._controls >= 0:
            return True
        if not self.transport.is_closing():
            self.transport.close()
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
