"""Real-time test clients that speak to a real server process over 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import websockets
from httpx_sse import EventSource

from tests.support import METRICS_HEADERS, ROOT, one_at_a_time

JS = ROOT / "tests" / "js"


@dataclass
class SseEvent:
    event: str
    id: str | None
    data: Any


@dataclass
class SseClient:
    """Reads an SSE stream in the background into a queue of events."""

    url: str
    headers: dict[str, str]
    events: asyncio.Queue[SseEvent | None] = field(default_factory=asyncio.Queue)
    last_id: str | None = None
    status: int | None = None
    _ready: SseEvent | None = None
    _task: asyncio.Task[None] | None = None
    _opened: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> SseClient:
        self._task = asyncio.create_task(self._run())
        try:
            await asyncio.wait_for(self._opened.wait(), 10)
        except BaseException:
            await self.close()
            raise
        return self

    async def _run(self) -> None:
        try:
            async with (
                httpx.AsyncClient(timeout=httpx.Timeout(5, read=None)) as client,
                client.stream("GET", self.url, headers=self.headers) as response,
            ):
                self.status = response.status_code
                self._opened.set()
                if response.status_code != 200:
                    return
                # A parser written by other hands than the server's (httpx-sse), so that
                # a misreading of the spec on one side is not matched on the other.
                async for sse in EventSource(response).aiter_sse():
                    if not sse.event and not sse.data:
                        continue  # (the `retry:` block)
                    # A stored event's id is new; a tokenless one (typing) leaves the last
                    # id as it was, as the spec says: it has no id of its own (None).
                    own = sse.id if sse.id and sse.id != self.last_id else None
                    event = SseEvent(
                        sse.event or "message", own, orjson.loads(sse.data) if sse.data else None
                    )
                    self.last_id = sse.id or None
                    await self.events.put(event)
        finally:
            self._opened.set()
            await self.events.put(None)

    @property
    def ready(self) -> SseEvent:
        """The stream's `ready` event, which sse() waits for."""
        assert self._ready is not None, "the ready event has not been read"
        return self._ready

    async def next(self, event: str | None = None, timeout: float = 10) -> SseEvent:
        async with asyncio.timeout(timeout):
            while True:
                item = await self.events.get()
                if item is None:
                    raise EOFError("the stream ended")
                if event is None or item.event == event:
                    return item

    async def collect(self, event: str, count: int, timeout: float = 15) -> list[SseEvent]:
        return [await self.next(event, timeout) for _ in range(count)]

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task


async def sse(base: str, token: str, *, last_event_id: str | None = None) -> SseClient:
    """An open stream whose `ready` event has arrived (kept as `client.ready`); the
    caller closes it (or uses sse_stream)."""
    headers = {"Authorization": f"Bearer {token}"}
    if last_event_id:
        headers["Last-Event-ID"] = last_event_id
    client = await SseClient(f"{base}/api/events", headers).start()
    try:
        assert client.status == 200, client.status
        client._ready = await client.next("ready")
    except BaseException:
        await client.close()
        raise
    return client


@contextlib.asynccontextmanager
async def sse_stream(
    base: str, token: str, *, last_event_id: str | None = None
) -> AsyncIterator[SseClient]:
    """sse(), closed however the block ends (a failed assert must not leak the stream)."""
    client = await sse(base, token, last_event_id=last_event_id)
    try:
        yield client
    finally:
        await client.close()


class GatewayClient:
    def __init__(self, ws: websockets.ClientConnection) -> None:
        self.ws = ws
        self.dispatches: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.last_seq: str | None = None
        self.hello: dict[str, Any] = {}
        self.acks = 0
        self._reader: asyncio.Task[None] | None = None

    @classmethod
    async def connect(cls, base: str, token: str, *, resume: str | None = None) -> GatewayClient:
        ws = await websockets.connect(base.replace("http://", "ws://") + "/api/gateway")
        client = cls(ws)
        client.hello = json.loads(await ws.recv())
        assert client.hello["op"] == 10
        if resume is None:
            await ws.send(json.dumps({"op": 2, "d": {"token": token}}))
        else:
            await ws.send(json.dumps({"op": 6, "d": {"token": token, "seq": resume}}))
        client._reader = asyncio.create_task(client._read())
        return client

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                frame = json.loads(raw)
                if frame["op"] == 11:
                    self.acks += 1
                    continue
                if frame["op"] == 0 and "s" in frame:
                    self.last_seq = frame["s"]
                await self.dispatches.put(frame)
        except websockets.ConnectionClosed:
            pass
        finally:
            await self.dispatches.put(None)

    async def next(self, t: str | None = None, timeout: float = 10) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                frame = await self.dispatches.get()
                if frame is None:
                    raise EOFError(f"closed: {self.ws.close_code} {self.ws.close_reason}")
                if t is None or frame.get("t") == t:
                    return frame

    async def heartbeat(self) -> None:
        await self.ws.send('{"op": 1}')

    async def send(self, op: int, d: Any) -> None:
        await self.ws.send(json.dumps({"op": op, "d": d}))

    async def until(
        self, t: str, where: Any = None, timeout: float = 10
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The next dispatch of type `t` (for which `where(d)` holds, if given), and
        every dispatch received before it (which next() would drop)."""
        seen: list[dict[str, Any]] = []
        async with asyncio.timeout(timeout):
            while True:
                frame = await self.dispatches.get()
                if frame is None:
                    raise EOFError(f"closed: {self.ws.close_code} {self.ws.close_reason}")
                if frame.get("t") == t and (where is None or where(frame["d"])):
                    return frame, seen
                seen.append(frame)

    async def closed_with(self, timeout: float = 10) -> int | None:
        async with asyncio.timeout(timeout):
            await self.ws.wait_closed()
        return self.ws.close_code

    async def close(self) -> None:
        await self.ws.close()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await self._reader


def node_available() -> bool:
    return shutil.which("node") is not None and shutil.which("npm") is not None


def ensure_braid_client() -> None:
    with one_at_a_time("npm"):
        if not (JS / "node_modules" / "braid-http").is_dir():
            subprocess.run(
                ["npm", "install", "--no-package-lock", "--no-audit", "--no-fund"],
                cwd=JS,
                check=True,
                capture_output=True,
                timeout=300,
            )


async def braid(*args: str, timeout: float = 30) -> tuple[int, list[dict[str, Any]]]:
    """Run the real braid-http client (tests/js/braid_client.mjs); its JSON lines."""
    proc = await asyncio.create_subprocess_exec(
        "node",
        str(JS / "braid_client.mjs"),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "NODE_NO_WARNINGS": "1"},
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    lines = [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
    assert proc.returncode is not None
    if proc.returncode not in (0, 1, 2):
        raise AssertionError(err.decode())
    return proc.returncode, lines


def braid_messages_url(base: str, conversation_id: str) -> str:
    return f"{base}/api/channels/{conversation_id}/messages"


async def wait_subscribers(
    base: str, at_least: int, timeout: float = 10, *, at_most: int | None = None
) -> None:
    """Wait until the server process at `base` holds `at_least` subscriptions (and no
    more than `at_most`), so a test knows one is open (or gone) rather than guessing
    after a sleep."""
    async with httpx.AsyncClient(timeout=5) as client, asyncio.timeout(timeout):
        while True:
            text = (await client.get(f"{base}/metrics", headers=METRICS_HEADERS)).text
            for line in text.splitlines():
                if line.startswith("xfchat_realtime_subscribers "):
                    held = float(line.split()[1])
                    if held >= at_least and (at_most is None or held <= at_most):
                        return
            await asyncio.sleep(0.02)
