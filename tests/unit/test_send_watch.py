"""The connection protocols' watch on a client that takes nothing (api/http_limits.py's
SendWatch), with uvicorn on uvloop (as `xfchat serve` runs) and a bare ASGI app in this
process: what is judged is the transport, not the app (the e2e tests in
tests/e2e/test_edge_limits.py drive the whole server)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import pytest
import uvicorn
import uvloop

from xfchat.api.http_limits import MIN_SEND_RATE, SEND_STALL, http_protocol
from xfchat.api.ws_limits import GuardedWebSocketProtocol, ws_protocol

HEAD_S = 0.5  # the head's deadline: a client that takes nothing is cut 1.5 s on
UPGRADE = (
    b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
)
BIG = 8_000_000  # an HTTP answer far above what the kernel holds for a client


class Recorded(ws_protocol(HEAD_S)):  # type: ignore[misc,valid-type]
    """The WebSocket protocol, each connection kept where the app can see its buffer,
    and the client's close frame waited for 1 s (uvicorn's 10 s), after which the
    transport is closed."""

    live: ClassVar[list[GuardedWebSocketProtocol]] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.close_timeout = 1.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.live.append(self)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """HTTP: BIG bytes (600 KB at /mid). WebSocket: frames of 8 KB until what the kernel does not take
    (20 KB of it, below the mark where the writes stop) waits in the transport, then a
    close; or, at /ticks, a small frame every 0.1 s."""
    if scope["type"] == "http":
        await receive()
        size = 600_000 if scope["path"] == "/mid" else BIG
        head = [(b"content-length", str(size).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": head})
        await send({"type": "http.response.body", "body": b"x" * size})
        return
    await receive()
    await send({"type": "websocket.accept"})
    if scope["path"] == "/ticks":
        for i in range(100):
            await send({"type": "websocket.send", "text": f"tick {i}"})
            await asyncio.sleep(0.1)
        return
    for _ in range(2000):
        await send({"type": "websocket.send", "text": "x" * 8000})
        await asyncio.sleep(0.005)
        if Recorded.live[-1].transport.get_write_buffer_size() > 20_000:
            break
    await send({"type": "websocket.close", "code": 4009})


@contextlib.asynccontextmanager
async def serving(head_s: float = HEAD_S) -> AsyncIterator[int]:
    Recorded.live.clear()
    config = uvicorn.Config(
        app,
        http=http_protocol(16_384, 100, head_s),
        ws=type("Timed", (Recorded,), {"stall_s": head_s * SEND_STALL}),
        lifespan="off",
        log_level="warning",
    )
    async with served(uvicorn.Server(config)) as port:
        yield port


@contextlib.asynccontextmanager
async def served(server: uvicorn.Server) -> AsyncIterator[int]:
    """`server` (uvicorn, in this process) listening on a port of loopback, until the
    block ends: its port."""
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    task = asyncio.create_task(server.serve(sockets=[listening]))
    try:
        while not server.started:
            await asyncio.sleep(0.02)
        yield listening.getsockname()[1]
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


async def closed_by_app() -> GuardedWebSocketProtocol:
    """The first connection, once the app has filled what the kernel takes and sent its
    close (30 s at most)."""
    deadline = time.monotonic() + 30
    while not (Recorded.live and Recorded.live[0].close_sent):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    return Recorded.live[0]


def small_window(port: int) -> socket.socket:
    """A client with a receive buffer as small as the kernel allows."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    return sock


async def read_for(sock: socket.socket, seconds: float, rate: int | None = None) -> int:
    """Read for `seconds` (at most `rate` bytes a second since the start, or all that
    comes); the bytes read. Raises ConnectionResetError if the server resets the
    connection. (The rate is kept by the clock, not by the sleeps: on a busy box a
    sleep of 0.05 s took longer, and a reader of `rate // 20` a sleep fell behind it.)"""
    start = time.monotonic()
    got, end = 0, start + seconds
    while time.monotonic() < end:
        await asyncio.sleep(0.05 if rate else 0.001)
        due = int(rate * (time.monotonic() - start)) - got if rate else 1 << 20
        if due <= 0:
            continue
        with contextlib.suppress(BlockingIOError):
            data = sock.recv(due)
            if not data:
                break
            got += len(data)
    return got


def test_a_slow_reader_is_not_cut_while_what_the_kernel_holds_for_it_goes() -> None:
    uvloop.run(_a_slow_reader())


async def _a_slow_reader() -> None:
    """Was: once closed with 20 KB left in the server's buffer, the connection of a
    client reading 80 KB a second was reset after three head timeouts: the buffer had
    not moved, because the kernel wakes the writer only when a third of its megabytes
    have gone. What the kernel holds counts too now."""
    async with serving() as port:
        sock = small_window(port)
        sock.sendall(UPGRADE)
        closed = await closed_by_app()
        assert 0 < closed.transport.get_write_buffer_size() < 65_536
        # The transport is closed 1 s on, and watched from then: read past four stalls.
        got = await read_for(sock, 1 + 4 * HEAD_S * 3, rate=80_000)
        assert got > 400_000
        sock.close()


def test_a_websocket_upgraded_after_a_large_answer_keeps_its_connection() -> None:
    uvloop.run(_upgraded_after_a_large_answer())


async def _upgraded_after_a_large_answer() -> None:
    """A WebSocket upgrade on a connection that was sent a large answer first keeps its
    connection (the HTTP protocol's timers end at the upgrade). One pipelined behind an
    answer still being sent is cut (tests/e2e/test_edge_limits.py)."""
    # (A head deadline of 2 s, the watch's stall 6 s: this process paused for the
    # test's usual 1.5 s, under a busy suite, looked like a client that takes nothing,
    # and the large answer was cut before the upgrade was asked.)
    head_s = 2.0
    async with serving(head_s) as port:
        sock = small_window(port)
        sock.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        got, deadline = 0, time.monotonic() + 60
        while got < BIG:  # (the whole answer, head and all, then the upgrade)
            assert time.monotonic() < deadline, f"{got} bytes of the answer in 60 s"
            got += await read_for(sock, 0.05)
        sock.sendall(UPGRADE.replace(b"GET / ", b"GET /ticks "))
        # Past the head's deadline and the watch's stall, with room: ticks come 0.1 s
        # apart for 10 s.
        ticks = await read_for(sock, 1.5 * head_s * SEND_STALL)
        assert ticks > 100  # the upgrade's answer and the ticks since
        sock.close()


def test_a_client_that_takes_a_trickle_is_cut_as_one_that_takes_nothing() -> None:
    uvloop.run(_a_trickle())


async def _a_trickle() -> None:
    """A client taking 6 KB every 8 s kept megabytes of buffers for as long as it liked
    (some of them went in every period); it must take MIN_SEND_RATE (1 KiB/s) on
    average over each period (9 s here). (The kernel gives a client that reads little
    room by the 6 KB: what it reads moves nothing before then.)"""
    head_s = 3.0
    async with serving(head_s) as port:
        sock = small_window(port)
        sock.sendall(UPGRADE)
        trickled = await closed_by_app()
        stall = head_s * SEND_STALL
        assert 6144 / 8 < MIN_SEND_RATE and 6144 < stall * MIN_SEND_RATE
        # The transport is closed 1 s on and watched from then: one read of the two at
        # 0 and 8 s falls in its first period.
        deadline = time.monotonic() + 1 + 2 * stall
        while not trickled.disconnected:
            assert time.monotonic() < deadline
            with contextlib.suppress(BlockingIOError):
                sock.recv(6144)
            for _ in range(80):  # (8 s)
                if trickled.disconnected:
                    break
                await asyncio.sleep(0.1)
        sock.close()


def test_a_client_that_takes_nothing_of_the_close_is_reset_and_nothing_stays_armed() -> None:
    uvloop.run(_takes_nothing_of_the_close())


async def _takes_nothing_of_the_close() -> None:
    """What the transport holds at the close does not go: reset three head timeouts
    after the transport was closed. And once the connection is lost no timer is left
    (uvicorn closes the transport again then, which armed a new one)."""
    async with serving() as port:
        sock = small_window(port)
        sock.sendall(UPGRADE)
        closed = await closed_by_app()
        deadline = time.monotonic() + 10
        while not closed.disconnected:  # (1 s, then 1.5 s)
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        with pytest.raises(ConnectionResetError):
            while sock.recv(1 << 20):  # (what its own small buffer held, then the reset)
                pass
        assert closed._stall is None
        sock.close()


def test_a_slow_reader_of_pipelined_answers_is_judged_by_what_it_takes() -> None:
    uvloop.run(_pipelined())


async def _pipelined() -> None:
    """Was: the watch, armed as one answer ended, took the next pipelined answer's bytes,
    written meanwhile, for the client taking nothing, and could cut one reading above
    MIN_SEND_RATE. What the client acknowledged is what counts now. (On loopback the
    window opens by 6 KB at a time: 6 KB a second gives each 1.5 s period some.)"""
    async with serving() as port:
        sock = small_window(port)
        sock.sendall(b"GET /mid HTTP/1.1\r\nHost: x\r\n\r\n" * 8)
        got = await read_for(sock, 1 + 4 * HEAD_S * SEND_STALL, rate=6000)
        assert got > 10_000
        sock.close()
