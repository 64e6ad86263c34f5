"""A user's live real-time connections are capped per server process, and opening them
(SSE, Braid, the gateway's IDENTIFY and RESUME) is rate-limited per user."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import httpx
import pytest
import websockets

from tests import factories
from tests.factories import MakeUser
from tests.realtime.clients import GatewayClient, sse, wait_subscribers
from tests.support import Servers
from xfchat.api.ws_limits import FRAME_BURST


@contextlib.asynccontextmanager
async def braid_stream(base: str, token: str, channel: str) -> AsyncIterator[httpx.Response]:
    headers = {"Authorization": f"Bearer {token}", "Subscribe": "true"}
    async with (
        httpx.AsyncClient(timeout=httpx.Timeout(10, read=None)) as client,
        client.stream("GET", f"{base}/api/channels/{channel}/messages", headers=headers) as r,
    ):
        yield r


async def gateway_refusal(base: str, token: str, op: int = 2, seq: str | None = None) -> int:
    """The close code the gateway answers an IDENTIFY (or RESUME) with, or 0 if it is
    accepted."""
    async with websockets.connect(base.replace("http://", "ws://") + "/api/gateway") as ws:
        await ws.recv()
        await ws.send(json.dumps({"op": op, "d": {"token": token, "seq": seq}}))
        try:
            frame = json.loads(await ws.recv())
        except websockets.ConnectionClosed:
            return ws.close_code or -1
        assert frame["t"] == "ready"
        return 0


async def test_a_users_live_connections_are_capped_with_a_clear_answer(
    servers: Servers, make_user: MakeUser
) -> None:
    _, base = servers.start(XFCHAT_REALTIME_CONNECTIONS_USER="3")
    ann, ben = await make_user("ann"), await make_user("ben")
    async with httpx.AsyncClient(base_url=base) as api:
        dm = str((await factories.direct(api, ann, ben))["id"])
    first, second = await sse(base, ann.access_token), await sse(base, ann.access_token)
    gateway = await GatewayClient.connect(base, ann.access_token)
    try:
        await gateway.next("ready")
        async with httpx.AsyncClient(base_url=base) as api:
            refused = await api.get("/api/events", headers=ann.headers)
        assert refused.status_code == 429 and refused.json()["code"] == "TOO_MANY_CONNECTIONS"
        async with braid_stream(base, ann.access_token, dm) as braid:
            assert braid.status_code == 429
            await braid.aread()
            assert braid.json()["code"] == "TOO_MANY_CONNECTIONS"
        assert await gateway_refusal(base, ann.access_token) == 4014
        other = await sse(base, ben.access_token)  # the cap is per user
        await other.close()
        await first.close()
        await wait_subscribers(base, 0, at_most=2)
        async with braid_stream(base, ann.access_token, dm) as braid:
            assert braid.status_code == 209
    finally:
        await second.close()
        await gateway.close()


async def test_identify_resume_and_streams_are_rate_limited_per_user(
    servers: Servers, make_user: MakeUser
) -> None:
    _, base = servers.start(XFCHAT_RATE_REALTIME_USER="3/300")
    ann, ben = await make_user("ann"), await make_user("ben")
    assert await gateway_refusal(base, ann.access_token) == 0
    stream = await sse(base, ann.access_token)
    resume = stream.ready.id
    await stream.close()
    assert await gateway_refusal(base, ann.access_token, op=6, seq=resume) == 0
    assert await gateway_refusal(base, ann.access_token) == 4008
    assert await gateway_refusal(base, ann.access_token, op=6, seq=resume) == 4008
    async with httpx.AsyncClient(base_url=base) as api:
        refused = await api.get("/api/events", headers=ann.headers)
    assert refused.status_code == 429
    assert refused.json()["bucket"] == "realtime.connect" and "retry-after" in refused.headers
    assert await gateway_refusal(base, ben.access_token) == 0  # per user


async def test_a_flood_of_frames_after_identify_closes_the_connection(
    servers: Servers, make_user: MakeUser
) -> None:
    """main: every frame was taken, 41,000 heartbeats a second from four connections of
    one user, each answered, and /health took 3.4 s meanwhile. Now a connection may send
    FRAME_BURST frames at once, then FRAME_RATE a second; past that: close 4008."""
    _, base = servers.start()
    ann = await make_user("ann")
    gateway = await GatewayClient.connect(base, ann.access_token)
    try:
        await gateway.next("ready")
        with contextlib.suppress(websockets.ConnectionClosed):
            for i in range(FRAME_BURST * 4):
                await gateway.heartbeat()
                if i % 50 == 0:
                    # (a turn of the loop now and then, to read what came: a send on
                    # loopback never waits, so the loop read nothing while it sent, and
                    # on a busy box the server, having drained for its DRAIN_S, closed
                    # with the flood unread: a reset that lost its close frame, 1006)
                    await asyncio.sleep(0)
        assert await gateway.closed_with() == 4008
        assert "frames" in (gateway.ws.close_reason or "")
        assert gateway.acks < FRAME_BURST * 2  # (the bucket refills a little meanwhile)
    finally:
        await gateway.close()


async def test_a_connection_that_does_not_identify_is_closed_at_the_heads_deadline(
    servers: Servers,
) -> None:
    """main: a gateway connection that read HELLO and sent nothing was held 1.5 heartbeat
    intervals (45 s), a file descriptor each for anyone; now as long as a request head
    may take (XFCHAT_HEADER_TIMEOUT)."""
    _, base = servers.start(XFCHAT_HEADER_TIMEOUT="1")
    async with websockets.connect(base.replace("http://", "ws://") + "/api/gateway") as ws:
        assert json.loads(await ws.recv())["op"] == 10
        async with asyncio.timeout(20):  # (a bound on the test, far past the 1 s deadline)
            await ws.wait_closed()
    assert ws.close_code == 4009
    assert "IDENTIFY" in (ws.close_reason or "")


async def test_connections_waiting_to_identify_are_capped_per_address(
    servers: Servers, make_user: MakeUser
) -> None:
    """main: one address opened 1,004 gateway connections that never identified and
    filled the process's file descriptors; signed-in users' requests then failed."""
    proc, base = servers.start(
        XFCHAT_GATEWAY_UNIDENTIFIED_IP="3", XFCHAT_TRUSTED_PROXIES="127.0.0.1"
    )
    ann = await make_user("ann")
    url = base.replace("http://", "ws://") + "/api/gateway"

    async def waiting(address: str = "203.0.113.1") -> websockets.ClientConnection:
        ws = await websockets.connect(url, additional_headers={"X-Forwarded-For": address})
        assert json.loads(await ws.recv())["op"] == 10
        return ws

    async def refusal(address: str = "203.0.113.1") -> websockets.InvalidStatus:
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(url, additional_headers={"X-Forwarded-For": address})
        return refused.value

    first, second, third = [await waiting() for _ in range(3)]
    try:
        refused = await refusal()
        assert refused.response.status_code == 429
        assert json.loads(refused.response.body or b"")["code"] == "TOO_MANY_CONNECTIONS"
        assert "retry-after" in refused.response.headers
        other = await waiting("203.0.113.2")  # another address (as a trusted proxy says)
        await other.close()
        await first.send(json.dumps({"op": 2, "d": {"token": ann.access_token}}))
        assert json.loads(await first.recv())["t"] == "ready"  # identified: no longer waiting
        fourth = await waiting()
        await refusal()
        await second.close()  # gone: no longer waiting either
        await wait_for_room(url)
        await fourth.close()
    finally:
        for ws in (first, second, third):
            await ws.close()
    assert "ERROR" not in proc.output, proc.output[-2000:]  # (uvicorn's, for each refusal)


async def wait_for_room(url: str) -> None:
    """Until one more connection of 203.0.113.1 is taken (the server sees a close a
    moment after the client)."""
    async with asyncio.timeout(10):
        while True:
            try:
                ws = await websockets.connect(
                    url, additional_headers={"X-Forwarded-For": "203.0.113.1"}
                )
            except websockets.InvalidStatus:
                await asyncio.sleep(0.05)
                continue
            await ws.close()
            return
