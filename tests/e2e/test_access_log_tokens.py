"""A token in a URL never reaches the access log: EventSource cannot send headers, so the
browser client opens SSE with `?access_token=`, and a real `xfchat serve` with
XFCHAT_ACCESS_LOG=true must log that request without the token."""

from __future__ import annotations

import httpx
import websockets

from tests.factories import MakeUser
from tests.support import Servers


async def read_to_ready(url: str) -> None:
    """Open an SSE stream and read it up to its `ready` (its request is logged then)."""
    async with (
        httpx.AsyncClient(timeout=10) as client,
        client.stream("GET", url, headers={"Accept": "text/event-stream"}) as stream,
    ):
        assert stream.status_code == 200
        async for line in stream.aiter_lines():
            if line.startswith("event: ready"):
                break


async def test_the_access_log_blanks_an_access_token_in_the_url(
    servers: Servers, make_user: MakeUser
) -> None:
    user = await make_user()
    proc, base = servers.start(XFCHAT_ACCESS_LOG="true")
    url = f"{base}/api/events?access_token={user.access_token}&since="
    await read_to_ready(url)
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        # Was: written whole: what users search for, and invite codes anyone could join by.
        await client.get("/api/search?q=wedding+plans&limit=5")
        await client.get("/api/invites/JoinCode7x")
        # Was: written whole: a webhook's token is its path's last segment, and whoever
        # reads the log could post as the webhook with it.
        hook = "/api/webhooks/00000000-0000-4000-8000-000000000001"
        await client.post(f"{hook}/SecretWebhookToken_abc-123", json={"content": "x"})
        await client.post(f"{hook}/SecretWebhookToken_abc-123?wait=false", json={"content": "x"})
        await client.get("/health")  # (a later line: the stream's was written before it)
    log = proc.output
    assert '"GET /health HTTP/1.1" 200' in log, log[-2000:]
    assert "/api/events?access_token=[redacted]&since=" in log, log[-2000:]
    assert user.access_token not in log
    assert "/api/search?q=[redacted]&limit=5" in log and "/api/invites/[redacted]" in log
    assert "wedding" not in log and "JoinCode7x" not in log, log[-2000:]
    assert f'"POST {hook}/[redacted] HTTP/1.1" 404' in log, log[-2000:]
    assert f"{hook}/[redacted]?wait=false" in log and "SecretWebhookToken" not in log


async def test_no_spelling_of_the_parameter_and_no_logger_lets_a_token_through(
    servers: Servers, make_user: MakeUser
) -> None:
    """Was: `access%5Ftoken=` (read as access_token by the server) went to the access
    log whole, and uvicorn's error logger wrote the gateway's URL with its token at the
    default level."""
    user = await make_user()
    proc, base = servers.start(XFCHAT_ACCESS_LOG="true")
    url = f"{base}/api/events?access%5Ftoken={user.access_token}"
    await read_to_ready(url)
    ws_url = base.replace("http", "ws") + f"/api/gateway?access_token={user.access_token}"
    async with websockets.connect(ws_url) as ws:
        await ws.recv()  # (hello: the upgrade was accepted, and logged)
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        await client.get("/health")
    log = proc.output
    assert '"GET /health HTTP/1.1" 200' in log and "/api/gateway" in log, log[-2000:]
    assert user.access_token not in log, log[-3000:]


async def test_a_metrics_listener_leaves_the_logs_as_they_were_set(servers: Servers) -> None:
    """Was: the metrics listener's uvicorn configuration (XFCHAT_METRICS_ADDR) set uvicorn's
    loggers anew, after the server's: the access log went silent, and so did uvicorn's
    start-up lines, whatever XFCHAT_ACCESS_LOG and XFCHAT_LOG_LEVEL said."""
    proc, base = servers.start(XFCHAT_ACCESS_LOG="true", XFCHAT_METRICS_ADDR="127.0.0.1:0")
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        assert (await client.get("/health")).status_code == 200
    log = proc.output
    assert "metrics bound to" in log, log[-2000:]
    assert '"GET /health HTTP/1.1" 200' in log, log[-2000:]
    assert "Application startup complete" in log, log[-2000:]
    assert log.count("Started server process") == 1, log[-2000:]  # (not the listener's too)


async def test_with_the_access_log_off_a_websocket_writes_no_line(servers: Servers) -> None:
    """Was: uvicorn wrote three lines a WebSocket connection (its upgrade's answer,
    "connection open", "connection closed") on its error logger whatever
    XFCHAT_ACCESS_LOG said: a client reconnecting in a loop filled the log. With the
    access log on they are written (the test above reads the gateway's)."""
    proc, base = servers.start()  # (XFCHAT_ACCESS_LOG off: the default)
    for _ in range(3):
        async with websockets.connect(base.replace("http", "ws") + "/api/gateway") as ws:
            await ws.recv()  # (hello: the upgrade was accepted)
    assert proc.stop() == 0  # (every connection's lines written by then)
    log = proc.output
    assert "Application startup complete" in log, log[-2000:]
    for line in ('"WebSocket /api/gateway"', "connection open", "connection closed"):
        assert line not in log, log[-2000:]
