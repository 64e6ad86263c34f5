"""An answer's head goes out with its body in one write (api/http_limits.py's
HeadWithBody), with uvicorn on uvloop as `xfchat serve` runs it and a bare ASGI app in
this process; the writes are counted on the connection's real transport."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import uvicorn
import uvloop

from tests.unit.test_send_watch import served
from xfchat.api.http_limits import http_protocol


class Counting:
    """The connection's transport, each write it is given kept (it still writes)."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class Counted(http_protocol(16_384, 100, 5.0)):  # type: ignore[misc,valid-type]
    live: ClassVar[list[Counting]] = []

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        counting = Counting(transport)
        self.live.append(counting)
        super().connection_made(counting)


late_go: list[asyncio.Event] = []
held: list[asyncio.Event] = []  # /held's: it began, it may answer
running: list[uvicorn.Server] = []


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """/json: a JSON answer; /late: a stream whose first bytes wait for the test;
    /held: a JSON answer that waits for the test (its request not read: uvicorn reads
    no more of the connection meanwhile)."""
    if scope["path"] == "/held":
        held[0].set()
        await held[1].wait()
    else:
        await receive()
    if scope["path"] == "/late":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await late_go[0].wait()
        await send({"type": "http.response.body", "body": b"late", "more_body": False})
        return
    body = b'{"ok":true}'
    head = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": head})
    await send({"type": "http.response.body", "body": body})


@contextlib.asynccontextmanager
async def serving() -> AsyncIterator[int]:
    Counted.live.clear()
    late_go[:] = [asyncio.Event()]
    held[:] = [asyncio.Event(), asyncio.Event()]
    config = uvicorn.Config(app, http=Counted, lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    running[:] = [server]
    async with served(server) as port:
        yield port


async def read_until(reader: asyncio.StreamReader, end: bytes) -> bytes:
    return await asyncio.wait_for(reader.readuntil(end), 10)


def test_an_answer_is_one_write_its_head_with_its_body() -> None:
    uvloop.run(_one_write())


async def _one_write() -> None:
    """Was: uvicorn wrote the status line and headers, then the body: two system calls
    and two wake-ups of the client for every answer, a send's included."""
    async with serving() as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(3):  # (each answer of a kept-alive connection)
            writer.write(b"GET /json HTTP/1.1\r\nHost: x\r\n\r\n")
            await read_until(reader, b'{"ok":true}')
        writer.close()
        writes = Counted.live[0].writes
        assert len(writes) == 3, writes
        assert all(w.startswith(b"HTTP/1.1 200 OK\r\n") for w in writes), writes
        assert all(w.endswith(b'\r\n\r\n{"ok":true}') for w in writes), writes


def test_a_head_whose_body_waits_goes_out_alone() -> None:
    uvloop.run(_head_alone())


async def _head_alone() -> None:
    """A HEAD's answer has no body to wait for, and a stream's first bytes may come
    much later: the head is not held past the turn of the event loop it was written
    in (the client reads it before any body is written)."""
    async with serving() as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"HEAD /json HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await read_until(reader, b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"content-length: 11" in head
        writer.write(b"GET /late HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await read_until(reader, b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"transfer-encoding: chunked" in head
        late_go[0].set()
        assert await read_until(reader, b"0\r\n\r\n") == b"4\r\nlate\r\n0\r\n\r\n"
        writer.close()
        writes = Counted.live[0].writes
        assert [w.startswith(b"HTTP/1.1 200 OK\r\n") for w in writes] == [True, True, False]


async def read_to_end(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.read(), 10)


def test_a_head_goes_out_to_a_client_that_half_closed() -> None:
    uvloop.run(_half_closed())


async def _half_closed() -> None:
    """A client may end its side once its request is sent (its half-close closes the
    transport, the answer still goes): a HEAD's head, held to the end of the turn, was
    found the transport closing then and dropped, and the client got nothing."""
    async with serving() as port:
        for _ in range(3):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"HEAD /json HTTP/1.1\r\nHost: x\r\n\r\n")
            writer.write_eof()
            answer = await read_to_end(reader)
            writer.close()
            assert answer.startswith(b"HTTP/1.1 200 OK\r\n"), answer
            assert b"content-length: 11\r\n" in answer and answer.endswith(b"\r\n\r\n"), answer


def test_a_held_head_goes_before_the_next_requests_refusal() -> None:
    uvloop.run(_held_then_refused())


async def _held_then_refused() -> None:
    """The request after a HEAD fails its body in the turn the HEAD's head is held (the
    next request starts as the HEAD's answer ends): the protocol's 400 flushed only the
    held head of the request it is answering (none yet), closed the connection, and the
    HEAD's head was dropped (or, written regardless, came after the 400)."""
    async with serving() as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"HEAD /held HTTP/1.1\r\nHost: x\r\n\r\n"
            b"PUT /json HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        await asyncio.wait_for(held[0].wait(), 10)  # (both heads read: the PUT waits)
        writer.write(b"zz\r\n")  # (its body's chunk size is no number)
        await writer.drain()
        held[1].set()
        answers = await read_to_end(reader)
        writer.close()
        first, _, second = answers.partition(b"\r\n\r\n")
        assert first.startswith(b"HTTP/1.1 200 OK\r\n"), answers
        assert second.startswith(b"HTTP/1.1 400 Bad Request\r\n"), answers


def test_a_held_head_goes_out_when_the_server_shuts_down_in_its_turn() -> None:
    uvloop.run(_shut_down_in_its_turn())


async def _shut_down_in_its_turn() -> None:
    """uvicorn's shutdown closes at once a connection whose answer is complete: one that
    ended in the same turn of the event loop, its head held, was closed without it."""
    async with serving() as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"HEAD /held HTTP/1.1\r\nHost: x\r\n\r\n")
        await asyncio.wait_for(held[0].wait(), 10)
        held[1].set()
        await asyncio.sleep(0)  # (the HEAD is answered in the next turn, and this after it)
        await running[0].shutdown()
        answer = await read_to_end(reader)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n"), answer
