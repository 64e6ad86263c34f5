"""A subscriber on process A receives, in order, what is sent through process B."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import httpx
import pytest

from tests.factories import MakeUser, pair, say
from tests.realtime.clients import (
    GatewayClient,
    braid,
    braid_messages_url,
    ensure_braid_client,
    node_available,
    sse_stream,
    wait_subscribers,
)
from tests.support import Servers

COUNT = 20


@pytest.mark.parametrize(
    ("with_braid", "workers"),
    [(False, False), (True, False), (False, True)],
    ids=["sse+gateway", "sse+gateway+braid", "sse+gateway, one server of 2 workers"],
)
async def test_all_three_transports_on_a_receive_what_b_sends_in_order(
    servers: Servers, make_user: MakeUser, with_braid: bool, workers: bool
) -> None:
    """Two processes, or one `xfchat serve --workers 2` (whose connections the kernel
    spreads over its workers: the receivers and the sends land where they land)."""
    if with_braid and not node_available():
        pytest.skip("Node.js and npm are needed for the braid-http client")
    if workers:
        _, a = servers.start(XFCHAT_WORKERS="2")
        b = a
    else:
        _, a = servers.start()
        _, b = servers.start()
    async with contextlib.AsyncExitStack() as stack:  # closes every client however it ends
        via_b = await stack.enter_async_context(httpx.AsyncClient(base_url=b, timeout=10))
        ann, ben, dm = await pair(via_b, make_user)
        stream = await stack.enter_async_context(sse_stream(a, ben.access_token))
        gw = await GatewayClient.connect(a, ben.access_token)
        stack.push_async_callback(gw.close)
        await gw.next("ready")
        braid_task = None
        if with_braid:
            ensure_braid_client()
            braid_task = asyncio.create_task(
                braid(
                    "subscribe",
                    "--url",
                    braid_messages_url(a, dm),
                    "--token",
                    ben.access_token,
                    "--count",
                    str(COUNT + 1),
                    "--timeout",
                    "30",
                )
            )
            await wait_subscribers(a, 3)  # SSE, the gateway and Braid

        sent = await asyncio.gather(  # concurrently, via B, each PUT with its own id
            *(say(via_b, ann, dm, f"n{i}", message_id=str(uuid.uuid4())) for i in range(COUNT))
        )
        in_order = [m["id"] for m in sorted(sent, key=lambda m: m["seq"])]

        got_sse = [e.data for e in await stream.collect("message.created", COUNT)]
        assert [m["seq"] for m in got_sse] == list(range(1, COUNT + 1))
        assert [m["id"] for m in got_sse] == in_order
        got_ws = [(await gw.next("message.created"))["d"] for _ in range(COUNT)]
        assert [m["id"] for m in got_ws] == in_order
    if braid_task is None:
        return
    rc, lines = await braid_task
    assert rc == 0, lines
    patches = [line for line in lines if line["event"] == "update"][1:]
    assert [p["version"][0] for p in patches] == in_order
