"""State a hostile account can make a long-running `xfchat serve` hold for ever, against
real server processes: each test fails where the state was never freed."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import httpx
import pytest
from fastapi import FastAPI

from tests.conftest import make_settings
from tests.e2e.test_edge_limits import client_frame
from tests.factories import MakeUser, community, server_channel
from tests.realtime.test_presence import FAST
from tests.support import METRICS_HEADERS, Servers, reading_nothing
from xfchat.domain.messages_send_fast import FactsCache
from xfchat.settings import RateLimit, Settings

VOICE_STATE_UPDATE, VOICE_SIGNAL = 4, 12
UPGRADE = (
    b"GET /api/gateway HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
)


async def test_a_voice_join_read_after_its_connection_closed_leaves_no_voice_state(
    servers: Servers, make_user: MakeUser
) -> None:
    """A connection that reads nothing has its writer stuck with what it was handed;
    then its own refused voice signals (each answered with a voice.error through its
    queue) overflow the queue in one read of the socket: it is closed as a slow
    consumer and the hub forgets it, while its reader goes on with the frames of that
    read (for the second its stuck writer is given). main took the join that came next:
    it marked the dead connection live for voice after the hub had forgotten it, so
    nothing ever unmarked it (the process's set of voice connections grew by one per
    such connection, for as long as it ran, and went to the database with every
    heartbeat), and the state the join wrote was never dropped: the account stayed in
    the voice channel, for everyone, with no connection."""
    _, base = servers.start(**FAST)
    ann = await make_user("ann")
    async with httpx.AsyncClient(base_url=base, timeout=10) as api:
        srv = await community(api, ann)
        room = (await server_channel(api, srv, ann, "Lounge", kind="voice"))["id"]
        chat = (await server_channel(api, srv, ann, "chat"))["id"]
        sock = reading_nothing(base, UPGRADE)
        sock.settimeout(10)
        seen = b""
        while b"heartbeat_interval" not in seen:
            seen += sock.recv(4096)
        identify = {"op": 2, "d": {"token": ann.access_token}}
        sock.sendall(client_frame(1, json.dumps(identify).encode()))
        while b'"t":"ready"' not in seen:
            seen += sock.recv(4096)
        # Events it does not read (6 MB): its writer is stuck, the rest wait in its queue.
        for _ in range(400):
            sent = await api.post(
                f"/api/channels/{chat}/messages", headers=ann.headers, json={"content": "😀" * 4000}
            )
            assert sent.status_code == 201, sent.text
        bad = json.dumps({"op": VOICE_SIGNAL, "d": {}}).encode()
        join = json.dumps({"op": VOICE_STATE_UPDATE, "d": {"channel_id": room}}).encode()
        # One write: every frame is in one read of the server's.
        sock.sendall(client_frame(1, bad) * 990 + client_frame(1, join))
        while (
            'ended_total{reason="slow_consumer"}'
            not in (await api.get("/metrics", headers=METRICS_HEADERS)).text
        ):
            await asyncio.sleep(0.1)
        await asyncio.sleep(2)  # (past the second its writer is given)
        sock.close()
        # A connection's state outlives it by a heartbeat and ORPHAN_GRACE_S at most.
        deadline = time.monotonic() + 8
        while True:
            states = await api.get(f"/api/channels/{room}/voice-states", headers=ann.headers)
            assert states.status_code == 200, states.text
            if not states.json() or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        assert states.json() == [], "a voice state with no connection, for ever"


@pytest.fixture
def settings(db_url: str) -> Settings:
    """The app fixtures' settings, with sends limited only by what the test sends."""
    many = RateLimit(100_000, 60)
    return make_settings(db_url, rate_messages_user=many, rate_api_user=many)


async def test_mentions_of_made_up_people_hold_the_send_caches_rows_within_a_bound(
    app: FastAPI, client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """The message writer keeps the access facts it read per channel and person (the
    authors and everyone a message mentions, existing or not) for its fast path: main
    kept 1,024 people in each of 4,096 channels, 4.2 million rows of some 2.5 KB, about
    10 GB, which one account fills alone in half a day at its 10 messages in 10 s (a
    message names 100 made-up people; an account's 200 servers hold 100,000 channels).
    Now the rows of every channel together are bounded too (32,768 by default; here
    the writer's cache is one of 2,048, which four channels of 1,024 were past)."""
    app.state.writer.facts = FactsCache(rows=2_048)
    ann = await make_user("ann")
    srv = await community(client, ann)
    channels = [(await server_channel(client, srv, ann, f"c{n}"))["id"] for n in range(4)]

    async def send(channel: str) -> None:
        content = " ".join(f"<@{uuid.uuid4()}>" for _ in range(100))
        sent = await client.post(
            f"/api/channels/{channel}/messages", headers=ann.headers, json={"content": content}
        )
        assert sent.status_code == 201, sent.text

    for channel in channels:  # (at once: the writer takes them in one batch or two)
        await asyncio.gather(*(send(channel) for _ in range(11)))
    facts = app.state.writer.facts
    held = sum(len(known) for known in facts._facts.values())
    assert held <= 2_048, f"{held} rows of access facts held, {len(facts._facts)} channels"
