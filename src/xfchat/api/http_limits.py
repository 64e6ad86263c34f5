"""Limits on what a client may make `xfchat serve` hold before the app sees a request.

uvicorn's httptools protocol has no bound on the request head: httptools gathers a
header's value in memory however long it grows (a 32 MiB header was buffered and
answered 200), there is no limit on how many headers come, and no deadline for the head
to arrive (a slowloris connection, or one that sends nothing, is never cut).

These subclasses add, per connection:
- a head (request line and headers) of at most `max_header_bytes`, counted as bytes
  arrive, so a connection never holds more than that plus one read: 431
  `HEADERS_TOO_LARGE`, and the connection is closed;
- at most `max_headers` header lines (repeats included): 431 `TOO_MANY_HEADERS`;
- a deadline of `header_timeout_s` for the whole head, from the connection's opening
  or from a request's first byte, however slowly the bytes trickle: 408
  `REQUEST_TIMEOUT`, and the connection is closed;
- deadlines for a request's body, in the client's time (the time the server itself is
  not reading, its buffer full or a `100-continue` not yet sent, does not count): no
  `header_timeout_s` without a byte of it; `header_timeout_s` plus one second for
  every MIN_BODY_RATE bytes received (the body must average that rate after a grace);
  and `body_timeout_s` in all, however fast it comes. Else 408 `REQUEST_TIMEOUT`, and
  the connection is closed (a body trickled a byte at a time held its connection, and
  its request, forever; one of 80 MiB sent at once, then nothing, held its spooled
  files for 22 hours: its bytes had bought a second a KiB);
- an answer the client takes none of: when the server has more to send and the
  client has taken nothing for SEND_STALL times `header_timeout_s`, the connection is
  reset (a reset frees the kernel's buffers too; a close would wait on them). A client
  that asked for big answers and read none held them, and its connection, forever; so
  did one that asked for small ones until the kernel's buffer was full and a little
  was left in the server's, and the keep-alive's close then waited on it;
- a request the parser cannot read: 400 `MALFORMED_REQUEST` in JSON, as every error
  (uvicorn's is text/plain), and the connection is closed; one whose method the parser
  does not know (`MULTIPLEX`) 501 `METHOD_NOT_IMPLEMENTED`, closed the same way.

And per client address (the peer's, not a forwarded one), at most `connections_ip`
connections open at once in the process, kept however long they are open, upgraded
to a WebSocket or not (its protocol gives the place back): one more is answered 429
`TOO_MANY_CONNECTIONS` at once and closed. A trusted proxy's address is not limited.

The WebSocket protocol's limits are in api/ws_limits.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import re
import socket
import struct
import sys
import termios
from collections.abc import Callable
from typing import Any

import httptools
import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from xfchat.domain.local_limits import Held, HeldPerAddress

# On every JSON answer of the API, the edge's own errors too: never read as another type
# (a browser sniffing a message's text as HTML), never kept by a cache (GET
# /api/users/@me holds the email, a page of history the messages: a shared computer's
# disk cache would keep them).
JSON_API_HEADERS = ((b"x-content-type-options", b"nosniff"), (b"cache-control", b"no-store"))


def declares_body(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether a request's headers (lower-case names) say a body follows."""
    return any(
        name == b"transfer-encoding" or (name == b"content-length" and value.strip(b" 0"))
        for name, value in headers
    )


# Bytes a second a request body must average once its grace (the head's timeout) is over.
MIN_BODY_RATE = 1024
# How many times the head's timeout a client may take nothing of an answer being sent.
SEND_STALL = 3
# Bytes a second a client must take, on average over each of those periods, of what the
# server and the kernel hold for it (as MIN_BODY_RATE for what it sends): one reading a
# byte now and then would keep megabytes of buffers for as long as it liked.
MIN_SEND_RATE = 1024
# The most a stream writes at once: more waits until the client has taken enough of the
# last (the transport's flow control), so a batch of large events is never copied
# whole into a connection's buffer.
WRITE_PIECE = 65_536
# The protocol's cycle of a request, in its scope: an endless response (api/
# streaming.py) writes the middle of its body with the cycle's own `send`, past the
# middleware's wrappers, which act only on the response's start and end (each wrapper
# is a coroutine call per chunk). uvicorn builds the scope: a client cannot set it.
RAW_CYCLE = "xfchat.cycle"

_PHRASES = {
    400: b"Bad Request",
    408: b"Request Timeout",
    429: b"Too Many Requests",
    431: b"Request Header Fields Too Large",
    501: b"Not Implemented",
    505: b"HTTP Version Not Supported",
}
# A Host's value (RFC 9110 7.2): an IP literal or a registered name (RFC 3986 3.2.2),
# and a port; or empty.
_HOST = re.compile(rb"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]*)(:[0-9]*)?")


# A request line as RFC 9112 3 writes it: a method token, a target, a version.
_REQUEST_LINE = re.compile(rb"(?m)^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) [^\s]+ HTTP/[0-9]\.[0-9]\r?$")


def _names_an_unknown_method(chunk: bytes) -> bool:
    """Whether the bytes the parser refused hold a well-formed request line whose method
    the parser does not know (its InvalidMethod error is raised for garbage too)."""
    for match in _REQUEST_LINE.finditer(chunk):
        probe = httptools.HttpRequestParser(object())
        try:
            probe.feed_data(match.group(1) + b" / HTTP/1.1\r\n")
        except httptools.HttpParserInvalidMethodError:
            return True
        except httptools.HttpParserError:
            continue
    return False


def _head_refusal(headers: list[tuple[bytes, bytes]], version: str) -> tuple[int, str, str] | None:
    """What a request head breaks of RFC 9112's framing that the parser lets through: a
    version other than 1.0 and 1.1 (505: `HTTP/0.9` and `HTTP/2.0` were served as 1.1);
    a Host missing from an HTTP/1.1 request, named twice, or no host and port (3.2: 400);
    a Transfer-Encoding in HTTP/1.0 (6.1: faulty framing), or whose last coding is not
    chunked (6.3: the body's end unknown: 400), or with codings before chunked (6.1: 501;
    the parser read `gzip, chunked` as chunked and handed the app the gzipped bytes).
    None when it breaks none of these."""
    if version not in ("1.0", "1.1"):
        return (505, "HTTP_VERSION_NOT_SUPPORTED", "HTTP/1.1 and HTTP/1.0 are served")
    hosts = [value for name, value in headers if name == b"host"]
    if len(hosts) > 1 or (not hosts and version == "1.1"):
        return (400, "MALFORMED_REQUEST", "a request names its Host once (HTTP/1.1: always)")
    # (a field's value is without the whitespace around it, RFC 9110 5.5: the parser
    # keeps what trails it)
    if hosts and not _HOST.fullmatch(hosts[0].strip(b" \t")):
        return (400, "MALFORMED_REQUEST", "a Host is a host name or address, and a port")
    codings = [
        coding.strip().lower()
        for name, value in headers
        if name == b"transfer-encoding"
        for coding in value.split(b",")
        if coding.strip()
    ]
    if codings and version == "1.0":
        return (400, "MALFORMED_REQUEST", "an HTTP/1.0 request has no Transfer-Encoding")
    if codings and codings[-1] != b"chunked":
        return (400, "MALFORMED_REQUEST", "a request body's last transfer coding is chunked")
    if codings and codings != [b"chunked"]:
        return (
            501,
            "UNSUPPORTED_TRANSFER_CODING",
            "a request body's only transfer coding is chunked",
        )
    return None


def cancelled_timer(timer: asyncio.TimerHandle | None) -> asyncio.TimerHandle | None:
    """Cancel `timer` if there is one; None, for the attribute that held it."""
    if timer is not None:
        timer.cancel()
    return None


def reset_connection(transport: asyncio.Transport) -> None:
    """Reset a connection: what the kernel still holds for the client goes too (a close,
    even an abort, leaves it sending that to a client that reads nothing)."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def bytes_taken(transport: asyncio.BaseTransport) -> int | None:
    """The bytes of the connection the client has acknowledged (Linux's TCP_INFO
    tcpi_bytes_acked): what it took, whatever was written since; None where that cannot
    be asked."""
    sock = transport.get_extra_info("socket")
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    except (AttributeError, OSError, ValueError):
        return None
    return int(struct.unpack_from("Q", info, 120)[0]) if len(info) >= 128 else None


def limit_unacknowledged(transport: asyncio.BaseTransport, seconds: float) -> None:
    """Have the kernel drop the connection when what it sent stays unacknowledged (a
    window kept shut included) for `seconds` (TCP_USER_TIMEOUT), set as the connection
    is closed (or half-closed by the client): after the server let go of it, its
    megabytes for a client that reads nothing were the kernel's to keep, for minutes,
    outside every count of the process's."""
    sock = transport.get_extra_info("socket")
    option = getattr(socket, "TCP_USER_TIMEOUT", None)
    if sock is None or option is None:
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, option, max(1, int(seconds * 1000)))


def kernel_unsent(transport: asyncio.BaseTransport) -> int:
    """The bytes the kernel holds unsent (or unacknowledged) on the connection (Linux's
    SIOCOUTQ); 0 where that cannot be asked."""
    sock = transport.get_extra_info("socket")
    try:
        held = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
    except (AttributeError, OSError, ValueError):
        return 0
    return int(struct.unpack("i", held)[0])


class SendWatch:
    """How a connection's protocol (HTTP or WebSocket, mixed in before uvicorn's) cuts a
    client that takes nothing of what is sent to it: when the transport's buffer is full
    (pause_writing: the kernel's is already), and when what is left in it below that
    mark does not go once the answers are written or the connection is being closed (a
    close waits for it to go, for ever from such a client). Either way the client gets
    `stall_s`, and as long again each time it acknowledged MIN_SEND_RATE a second
    meanwhile (`_taken`: a slow reader is not cut, though the kernel wakes the writer
    only when a third of its megabytes have gone); else the connection is reset
    (`_stalled`), which frees the kernel's buffers too. What the kernel keeps once the
    connection is closed is bounded by `limit_unacknowledged`."""

    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    _stall: asyncio.TimerHandle | None = None
    _lost = False

    @property
    def stall_s(self) -> float:
        raise NotImplementedError

    def _stalled(self) -> None:
        self._stall = None
        reset_connection(self.transport)

    def pause_writing(self) -> None:
        super().pause_writing()  # type: ignore[misc]
        self._watch_unsent()

    def resume_writing(self) -> None:
        self._unstall()
        super().resume_writing()  # type: ignore[misc]
        if self.transport.is_closing():
            self._watch_unsent()

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True  # (uvicorn's closes the transport again: nothing is watched)
        self._unstall()
        super().connection_lost(exc)  # type: ignore[misc]

    def _unstall(self) -> None:
        self._stall = cancelled_timer(self._stall)

    def _taken(self) -> int:
        """A count that grows by what the client takes: the bytes it acknowledged (what
        is written meanwhile, pipelined answers, does not count against it), or, where
        that cannot be asked, less what the server and the kernel still hold."""
        taken = bytes_taken(self.transport)
        if taken is not None:
            return taken
        return -(self.transport.get_write_buffer_size() + kernel_unsent(self.transport))

    def eof_received(self) -> None:
        # (the client's half-close: the transport closes, what the kernel holds stays)
        limit_unacknowledged(self.transport, self.stall_s)
        super().eof_received()  # type: ignore[misc]

    def _watch_unsent(self) -> None:
        if self.transport.is_closing() and not self._lost:
            # What the kernel keeps once the process lets go is bounded too.
            limit_unacknowledged(self.transport, self.stall_s)
        if self._stall is None and not self._lost and self.transport.get_write_buffer_size():
            self._stall = self.loop.call_later(self.stall_s, self._unsent_due, self._taken())

    def _unsent_due(self, before: int) -> None:
        self._stall = None
        if not self.transport.get_write_buffer_size():
            return  # (all of it is the kernel's: limit_unacknowledged bounds that)
        if self._taken() - before >= self.stall_s * MIN_SEND_RATE:  # (slowly: watched on)
            self._watch_unsent()
        else:
            self._stalled()


class _Refused(Exception):
    """Raised inside a parser callback: the head broke a limit."""


log = logging.getLogger("xfchat.http")
_WARN_AGAIN = [0.0]  # when a refused connection is worth a warning again (loop time)


def _uncounted(code: str) -> None:
    pass


def _no_proxy(_ip: str | None) -> bool:
    return False


class GuardedHttpProtocol(SendWatch, HttpToolsProtocol):
    max_header_bytes = 16_384
    max_headers = 100
    header_timeout_s = 10.0
    body_timeout_s = 300.0
    count_refusal: Callable[[str], None] = staticmethod(_uncounted)  # (by code)
    open_per_address: HeldPerAddress | None = None  # (None: not limited)
    is_proxy: Callable[[str | None], bool] = staticmethod(_no_proxy)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True  # reading a request line and headers (or waiting for one)
        self._arrived = 0  # bytes received since this head began
        self._parsed = 0  # bytes of the head the parser has handed over
        self._headers = 0
        self._deadline: asyncio.TimerHandle | None = None
        self._refusal: tuple[int, str, str] | None = None
        self._refused_next = False  # a refused head waits for the answers due before it
        self._chunk = b""  # the last bytes handed to the parser
        self._body: _BodyClock | None = None  # while a request body is arriving
        self._running: Any = None  # the request whose answer the app is writing
        self._holding: HeadWithBody | None = None  # the request whose answer's head is held
        self._place: Held | None = None  # the connection's, among its address's
        # Whether the request being read is a HEAD, once its URL came (the parser's
        # method is the request before's until it reads this one's, or one it cannot)
        self._head_asked = False

    # -- the deadline

    def _arm(self) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(self.header_timeout_s, self._too_slow)

    def _disarm(self) -> None:
        self._deadline = cancelled_timer(self._deadline)

    def _too_slow(self) -> None:
        self._deadline = None
        if self._in_head and not self.transport.is_closing():
            seconds = f"{self.header_timeout_s:g}"
            self._refuse(408, "REQUEST_TIMEOUT", f"the request head took over {seconds} s")

    def _await_body(self) -> None:
        if declares_body(self.headers) and not self.parser.should_upgrade():
            self._body = _BodyClock(self.loop.time())
            first_look = min(self.header_timeout_s, self.body_timeout_s)
            self._deadline = self.loop.call_later(first_look, self._body_due)

    def _body_due(self) -> None:
        self._deadline = None
        body = self._body
        if body is None or self.transport.is_closing():
            return
        now, cycle = self.loop.time(), self.cycle
        server_waits = self.flow.read_paused or (
            cycle is not None and cycle.waiting_for_100_continue
        )
        body.look(now, server_waits)
        left, message = body.left(now, self.header_timeout_s, self.body_timeout_s)
        if left > 0:
            next_look = min(left, 1.0) if server_waits else max(left, 0.05)
            self._deadline = self.loop.call_later(next_look, self._body_due)
            return
        self._body = None
        self._refusal = (408, "REQUEST_TIMEOUT", message)
        if cycle is not None and cycle.response_started:
            self._held_out()
            self.transport.close()  # (answered already: the client sends on regardless)
        else:
            self._answer(408, "REQUEST_TIMEOUT", message)

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()  # a connection that sends nothing is cut too
        table = self.open_per_address
        peer = self.client[0] if self.client else None
        if table is None or self.is_proxy(peer):
            return
        self._place = table.take(peer)
        if self._place is None:
            message = f"{table.limit} connections from your address are open already"
            self._refuse(429, "TOO_MANY_CONNECTIONS", message)
            if self.loop.time() >= _WARN_AGAIN[0]:  # (once a minute at most)
                _WARN_AGAIN[0] = self.loop.time() + 60
                log.warning(
                    "refused a connection from %s: %d open already (XFCHAT_CONNECTIONS_IP);"
                    " behind a reverse proxy, set XFCHAT_TRUSTED_PROXIES to its address",
                    peer,
                    table.limit,
                )

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._place is not None:
            self._place.release()
        super().connection_lost(exc)

    def handle_websocket_upgrade(self) -> None:
        self._held_out()  # (before the WebSocket protocol writes: its refusals at once)
        cycle = self.cycle
        if (
            (cycle is not None and not cycle.response_complete)
            or self.pipeline
            or self.flow.write_paused
        ):
            # An upgrade pipelined behind requests not yet answered whole: uvicorn would
            # hand the connection over with them still running, never to be told of its
            # end (their tasks, and the database connections they held, kept for ever),
            # and the WebSocket protocol would take a paused transport unknowing. No
            # client does this: the connection is cut, those requests with it.
            self._drop()
            reset_connection(self.transport)
            return
        super().handle_websocket_upgrade()
        # (this protocol's timers would outlive it: the transport now tells the
        # WebSocket protocol when its buffer empties, or the connection ends)
        self._disarm()
        self._unstall()
        # (the WebSocket protocol has the connection now, and gives its place back;
        # release is once, whichever protocol is told of the connection's end)
        self.transport.get_protocol().held_place = self._place  # type: ignore[attr-defined]

    @property
    def stall_s(self) -> float:
        return self.header_timeout_s * SEND_STALL

    def _stalled(self) -> None:
        self._drop()
        super()._stalled()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._refused_next and self._refusal is not None:
            self.flow.pause_reading()  # (uvicorn's resumed it: still nothing more is read)
            running = self._running
            if (running is None or running.response_complete) and not self.pipeline:
                if not self.transport.is_closing():
                    self._answer(*self._refusal)  # (after every answer due before it)
                    return
        self._watch_unsent()

    def shutdown(self) -> None:
        self._held_out()  # (uvicorn closes a connection whose answer is complete at once)
        super().shutdown()

    def eof_received(self) -> None:
        self._held_out()  # (the transport closes as this returns, and drops what comes after)
        super().eof_received()

    def timeout_keep_alive_handler(self) -> None:
        self._held_out()  # (it closes the transport)
        super().timeout_keep_alive_handler()
        self._watch_unsent()

    def data_received(self, data: bytes) -> None:
        if self._refusal is not None:
            return
        self._chunk = data  # (what a parser's refusal is told apart by)
        if self._in_head:
            self._arrived += len(data)
            self._arm()
        super().data_received(data)
        if self._refusal is None and self._in_head and self._arrived > self.max_header_bytes:
            self._refuse(*self._too_large())

    # -- parser callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._parsed, self._headers = True, 0, 0
        self._head_asked = False
        self._arm()

    def on_url(self, url: bytes) -> None:
        self._head_asked = self.parser.get_method() == b"HEAD"  # (read before the URL)
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers += 1
        if self._headers > self.max_headers:
            self._refusal = (
                431,
                "TOO_MANY_HEADERS",
                f"a request has at most {self.max_headers} header lines",
            )
            raise _Refused
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        # The request line's other bytes and the blank line: with the URL and each
        # header line counted already, the whole head (for the usual "Name: value").
        self._count(len(self.parser.get_method()) + len(b"  HTTP/1.1\r\n\r\n"))
        self._disarm()
        upgrade = self.parser.should_upgrade() and self._should_upgrade()
        if upgrade and self.parser.get_method() != b"GET":
            # (RFC 6455 4.1: the WebSocket library refused anything else with its own
            # text body, a HEAD's too)
            self._refusal = (400, "WEBSOCKET_REFUSED", "a WebSocket handshake is a GET")
            raise _Refused
        if declares_body(self.headers) and upgrade:
            # uvicorn makes no request of a WebSocket handshake and drops its body, and
            # the parser never upgrades one with a body: it was read for ever, unbounded
            # and unanswered (a helper session's attack). RFC 6455's handshake is a GET
            # without one. (Refused as a head: uvicorn made no request of it, so one
            # before it on the connection is answered first.)
            self._refusal = (400, "WEBSOCKET_REFUSED", "a WebSocket handshake has no body")
            raise _Refused
        self._refusal = _head_refusal(self.headers, self.parser.get_http_version())
        if self._refusal is not None:
            raise _Refused  # (as a head: those before it on the connection are answered)
        self._in_head, self._arrived = False, 0
        super().on_headers_complete()
        self._await_body()

    def on_body(self, body: bytes) -> None:
        if self._body is not None:
            self._body.arrived(self.loop.time(), len(body))
        super().on_body(body)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        if self._body is not None:
            self._body = None
            self._disarm()
        self._in_head = True

    def _count(self, size: int) -> None:
        self._parsed += size
        if self._parsed > self.max_header_bytes:
            self._refusal = self._too_large()
            raise _Refused

    def _too_large(self) -> tuple[int, str, str]:
        return (
            431,
            "HEADERS_TOO_LARGE",
            f"the request line and headers are over {self.max_header_bytes} bytes",
        )

    # -- answering

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a parser error, which a refusing callback raises; for
        anything else the parser cannot read, 400 MALFORMED_REQUEST in JSON (uvicorn's
        own is text/plain), and the connection is closed. A method the parser does not
        know (a well-formed token such as braid-http's `MULTIPLEX` probe) is 501
        METHOD_NOT_IMPLEMENTED, as RFC 9110 9.1 asks: the request was read, its method is
        just none XFChat serves (uvicorn calls this from its `except`, so the parser's
        error is the one being handled)."""
        if (
            self._refusal is None
            and isinstance(sys.exc_info()[1], httptools.HttpParserInvalidMethodError)
            and _names_an_unknown_method(self._chunk)
        ):
            self._refusal = (
                501,
                "METHOD_NOT_IMPLEMENTED",
                "no route of XFChat answers this method",
            )
        if self._refusal is None:
            self._refusal = (
                400,
                "MALFORMED_REQUEST",
                "the request is not HTTP/1.1 XFChat can read",
            )
        self._refuse(*self._refusal)

    def _refuse(self, status: int, code: str, message: str) -> None:
        self.count_refusal(code)
        self._refusal = (status, code, message)
        self._disarm()
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            if self._in_head:
                # The head of a request behind those being answered: they are answered
                # first, then this, and the connection is closed (was: closed with no
                # answer at all, that request's nor theirs: a POST whose JSON came
                # without its Content-Length, read as the next request, got nothing).
                # Nothing more is read meanwhile.
                self._refused_next = True
                self.flow.pause_reading()
                return
            if cycle.response_started or self.pipeline:
                self._drop()
                self.transport.close()  # (another request's answer is due first)
                return
            # The request being read is refused after its head (a Transfer-Encoding the
            # parser will not take, say): this is its answer, the app's goes nowhere.
            self._drop()
        self._answer(status, code, message)

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        self._running = cycle  # (with pipelining, not always self.cycle)
        cycle.scope[RAW_CYCLE] = cycle
        cycle.transport = HeadWithBody(self, cycle)
        super()._start_asgi_task(cycle, app)

    def _drop(self) -> None:
        """From now on the app's answers go nowhere, as when the client goes away (the
        transport is about to close: uvloop's raises on a write after that). Every
        request of the connection, the one being answered and those queued behind it."""
        self._held_out()
        queued = [cycle for cycle, _ in self.pipeline]
        for cycle in (self._running, self.cycle, *queued):
            if cycle is not None and not cycle.response_complete:
                cycle.disconnected = True
                cycle.message_event.set()
        self.flow.resume_writing()

    def _held_out(self) -> None:
        """The head an answer holds (HeadWithBody) goes out now, before this protocol's
        own writes and closes: the answer being written's, or the one before's (a HEAD's
        ends with its head held, and the next request starts in that turn)."""
        if self._holding is not None:
            self._holding.flush()

    def _answer(self, status: int, code: str, message: str) -> None:
        self._held_out()
        body = orjson.dumps({"code": code, "message": message})
        length = len(body)
        if self._head_asked:  # (the parser's method may be the request before's)
            body = b""  # (RFC 9110 9.3.2: its length, as a GET's would be, and no body)
        head = b"HTTP/1.1 %d %s\r\n" % (status, _PHRASES[status])
        head += b"content-type: application/json\r\ncontent-length: %d\r\n" % length
        head += b"".join(b"%s: %s\r\n" % pair for pair in JSON_API_HEADERS)  # (as /api/'s)
        if status == 429:
            head += b"retry-after: %d\r\n" % max(1, round(self.header_timeout_s))
        self.transport.write(head + b"connection: close\r\n\r\n" + body)
        self.transport.close()
        self._watch_unsent()  # (a client that reads none of it is let go of too)


class HeadWithBody:
    """A request's transport as its answer writes to it: the head goes out with the
    body's first bytes, in one write.

    uvicorn writes an answer's status line and headers as soon as the app starts it,
    then each piece of its body: two writes for every answer, so two system calls and,
    over loopback, two wake-ups of the client, which must read twice. The app writes
    its body in the same turn of the event loop (Starlette's `Response` sends both
    without waiting), so the head is held until that write, and written at the end of
    the turn at the latest (an answer whose body comes later, or never: a HEAD's, a
    stream's that waits for its first event)."""

    def __init__(self, protocol: GuardedHttpProtocol, cycle: Any):
        self._protocol = protocol
        self._transport = protocol.transport
        self._cycle = cycle
        self._loop = protocol.loop
        self._head: bytes | None = None  # held
        self._headed = False  # the head came

    def write(self, data: bytes) -> None:
        if self._head is not None:
            data, self._head = self._head + data, None
            self._protocol._holding = None
        elif not self._headed and self._cycle.response_started:
            self._headed = True  # (uvicorn's first write once the answer starts: its head)
            self._head = data
            self._protocol._holding = self
            self._loop.call_soon(self.flush)
            return
        self._transport.write(data)

    def flush(self) -> None:
        if self._head is not None:
            head, self._head = self._head, None
            if self._protocol._holding is self:
                self._protocol._holding = None
            if not self._transport.is_closing():
                self._transport.write(head)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _BodyClock:
    """How much of the client's time a request body has taken, and how much arrived."""

    def __init__(self, now: float) -> None:
        # Both moved on by the time the server was not reading.
        self.started = now
        self.last_byte = now  # (or the head's end, before the first)
        self.looked = now
        self.received = 0

    def arrived(self, now: float, size: int) -> None:
        self.received += size
        self.last_byte = now

    def look(self, now: float, server_waits: bool) -> None:
        """The time since the last look is the server's if it is not reading now (judged
        at each look, a second apart at most while it is not reading)."""
        if server_waits:
            self.started += now - self.looked
            self.last_byte += now - self.looked
        self.looked = now

    def left(self, now: float, grace_s: float, most_s: float) -> tuple[float, str]:
        """The seconds left before the first of the body's deadlines, and what passing
        that one means."""
        return min(
            (
                self.last_byte + grace_s - now,
                f"no byte of the request body came for {grace_s:g} s",
            ),
            (
                self.started + grace_s + self.received / MIN_BODY_RATE - now,
                f"the request body came slower than {MIN_BODY_RATE} bytes a second"
                f" after its first {grace_s:g} s",
            ),
            (self.started + most_s - now, f"the request body took over {most_s:g} s"),
        )


def http_protocol(
    max_header_bytes: int,
    max_headers: int,
    header_timeout_s: float,
    count_refusal: Callable[[str], None] = _uncounted,
    body_timeout_s: float = GuardedHttpProtocol.body_timeout_s,
    open_per_address: HeldPerAddress | None = None,
    is_proxy: Callable[[str | None], bool] = _no_proxy,
) -> type[GuardedHttpProtocol]:
    """The HTTP protocol class for uvicorn's `http=`, with these limits; each refusal's
    code is passed to `count_refusal`."""
    return type(
        "XFChatHttpProtocol",
        (GuardedHttpProtocol,),
        {
            "max_header_bytes": max_header_bytes,
            "max_headers": max_headers,
            "header_timeout_s": header_timeout_s,
            "body_timeout_s": body_timeout_s,
            "count_refusal": staticmethod(count_refusal),
            "open_per_address": open_per_address,
            "is_proxy": staticmethod(is_proxy),
        },
    )
