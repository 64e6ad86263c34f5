"""A lean HTTP/1.1 client for the load generator.

The generator shares the machine with the server and PostgreSQL, so every microsecond
it spends is taken from what it measures. httpx costs about a millisecond of CPU per
request here; this keep-alive client writes prebuilt bytes and parses only what it
needs (status, Content-Length or chunked framing), and the SSE reader picks the message
id out of each event without decoding the whole JSON.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class Connection:
    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.host = host

    @classmethod
    async def open(cls, base: str) -> Connection:
        host, port = base.removeprefix("http://").rstrip("/").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        return cls(reader, writer, f"{host}:{port}")

    async def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes = b""
    ) -> tuple[int, bytes]:
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}", f"Content-Length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        if body:
            head.append("Content-Type: application/json")
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        # (the head in one read: a readline per header line cost the generator about
        # 2 µs each, and an answer carries a dozen)
        answer = (await self.reader.readuntil(b"\r\n\r\n")).lower()
        status = int(answer[9:12])
        length, chunked = 0, False
        at = answer.find(b"\r\ncontent-length:")
        if at >= 0:
            length = int(answer[at + 17 : answer.index(b"\r\n", at + 2)])
        at = answer.find(b"\r\ntransfer-encoding:")
        if at >= 0:
            chunked = b"chunked" in answer[at : answer.index(b"\r\n", at + 2)]
        if chunked:
            data = b""
            while True:
                size = int((await self.reader.readline()).strip(), 16)
                chunk = await self.reader.readexactly(size + 2)
                if size == 0:
                    return status, data
                data += chunk[:-2]
        return status, await self.reader.readexactly(length) if length else b""

    def close(self) -> None:
        self.writer.close()


async def sse_events(
    base: str, path: str, headers: dict[str, str], on_event: Callable[[bytes, bytes, float], None]
) -> None:
    """Read an SSE stream (chunked), calling on_event(event, data, arrival time) for each
    event until the connection ends."""
    conn = await Connection.open(base)
    head = [
        f"GET {path} HTTP/1.1",
        f"Host: {conn.host}",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    conn.writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
    reader = conn.reader
    try:
        await reader.readuntil(b"\r\n\r\n")  # status and headers
    except asyncio.IncompleteReadError:
        conn.close()
        return  # (closed before its head ended, as when it ends later)
    buffer = b""
    try:
        while True:
            size_line = await reader.readline()
            if not size_line:
                return
            size = int(size_line.strip() or b"0", 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                return
            now = time.perf_counter()
            # Split once per chunk (slicing the rest off after each event would copy a
            # chunk of n events n times over).
            *blocks, buffer = (buffer + chunk[:-2]).split(b"\n\n")
            for block in blocks:
                event = data = b""
                for line in block.split(b"\n"):
                    if line.startswith(b"event: "):
                        event = line[7:]
                    elif line.startswith(b"data: "):
                        data = line[6:]
                if event:
                    on_event(event, data, now)
    finally:
        conn.close()


def message_id(data: bytes) -> str:
    """The id of a message event's JSON, which always comes first: {"id":"<uuid>",..."""
    return data[7:43].decode()
