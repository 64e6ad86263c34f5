"""SSE, the WebSocket gateway and Braid-HTTP against a real server process."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
import websockets

from tests import factories
from tests.factories import MakeUser, pair, say
from tests.realtime.clients import (
    GatewayClient,
    SseClient,
    braid,
    braid_messages_url,
    ensure_braid_client,
    node_available,
    sse_stream,
    wait_subscribers,
)
from tests.support import METRICS_HEADERS, Servers
from xfchat.domain.tokens import issue_access_token
from xfchat.settings import Settings

Http = Callable[[str], httpx.AsyncClient]


async def test_sse_delivers_in_order_and_resumes_exactly_after_the_last_id(
    server: str, http: Http, make_user: MakeUser
) -> None:
    api = http(server)
    ann, ben, dm = await pair(api, make_user)
    async with sse_stream(server, ben.access_token) as stream:
        assert stream.ready.data["user_id"] == str(ben.id) and stream.ready.id
        sent = [await say(api, ann, dm, f"m{i}") for i in range(5)]
        got = await stream.collect("message.created", 5)
        assert [e.data["id"] for e in got] == [m["id"] for m in sent]
        assert [e.data["seq"] for e in got] == [1, 2, 3, 4, 5]
        resume_from = stream.last_id

    missed = [await say(api, ann, dm, f"away{i}") for i in range(3)]
    async with sse_stream(server, ben.access_token, last_event_id=resume_from) as again:
        assert again.ready.data["resumed"] is True
        got = await again.collect("message.created", 3)
        assert [e.data["id"] for e in got] == [m["id"] for m in missed]
        live = await say(api, ann, dm, "live")
        assert (await again.next("message.created")).data["id"] == live["id"]


async def test_sse_carries_typing_edits_receipts_and_new_conversations(
    server: str, http: Http, make_user: MakeUser
) -> None:
    api = http(server)
    ann, ben, cid = await make_user("ann"), await make_user("ben"), await make_user("cid")
    async with sse_stream(server, ben.access_token) as stream:
        group = (await factories.group(api, ann, ben, cid))["id"]
        created = await stream.next("conversation.created")
        assert created.data["id"] == group
        message = await say(api, ann, group, "hello group")
        assert (await stream.next("message.created")).data["id"] == message["id"]
        await api.post(f"/api/channels/{group}/typing", headers=ann.headers)
        typing = await stream.next("typing.started")
        assert typing.id is None and typing.data["user_id"] == str(ann.id)
        await api.patch(
            f"/api/channels/{group}/messages/{message['id']}",
            headers=ann.headers,
            json={"content": "edited"},
        )
        assert (await stream.next("message.updated")).data["content"] == "edited"
        await api.put(f"/api/channels/{group}/ack", headers=cid.headers, json={"seq": 1})
        receipt = await stream.next("read_state.updated")
        assert receipt.data == {"channel_id": group, "user_id": str(cid.id), "last_read_seq": 1}


async def test_a_removed_participant_stops_receiving_at_the_removal(
    server: str, http: Http, make_user: MakeUser
) -> None:
    api = http(server)
    ann, ben, group = await pair(api, make_user, kind="group")
    async with sse_stream(server, ben.access_token) as stream:
        await say(api, ann, group, "before")
        assert (await stream.next("message.created")).data["content"] == "before"
        await api.delete(f"/api/conversations/{group}/participants/{ben.id}", headers=ann.headers)
        assert (await stream.next("conversation.removed")).data["id"] == group
        await say(api, ann, group, "after")
        ping = await say(api, ann, (await factories.direct(api, ann, ben))["id"], "dm")
        nxt = await stream.next("message.created")
        assert nxt.data["id"] == ping["id"]  # "after" never arrived


async def test_sse_with_an_unusable_token_says_resync(server: str, make_user: MakeUser) -> None:
    ben = await make_user("ben")
    async with sse_stream(server, ben.access_token, last_event_id="1.garbage!") as stream:
        resync = (await stream.next("resync")).data
        assert resync["reason"] == "malformed" and "reload" in resync["message"]


async def test_sse_needs_a_token(server: str, http: Http) -> None:
    r = await http(server).get("/api/events")
    assert r.status_code == 401 and r.json()["code"] == "MISSING_TOKEN"


async def test_gateway_identify_dispatch_heartbeat_and_resume(
    server: str, http: Http, make_user: MakeUser
) -> None:
    api = http(server)
    ann, ben, dm = await pair(api, make_user)
    gw = await GatewayClient.connect(server, ben.access_token)
    assert gw.hello["d"]["heartbeat_interval"] == 30000
    ready = await gw.next("ready")
    assert ready["d"]["user_id"] == str(ben.id) and ready["d"]["resumed"] is False
    first = await say(api, ann, dm, "one")
    frame = await gw.next("message.created")
    assert frame["d"]["id"] == first["id"] and frame["s"]
    await gw.heartbeat()
    for _ in range(50):
        if gw.acks:
            break
        await asyncio.sleep(0.05)
    assert gw.acks == 1
    seq = gw.last_seq
    await gw.close()

    missed = [await say(api, ann, dm, f"away{i}") for i in range(3)]
    again = await GatewayClient.connect(server, ben.access_token, resume=seq)
    assert (await again.next("ready"))["d"]["resumed"] is True
    got = [(await again.next("message.created"))["d"]["id"] for _ in range(3)]
    assert got == [m["id"] for m in missed]
    await again.close()


async def test_a_burst_of_large_events_arrives_whole_and_in_order_on_sse_and_the_gateway(
    server: str, http: Http, make_user: MakeUser
) -> None:
    """Forty messages of 3,900 two-byte characters sent at once: the writer commits
    most of them together, so each stream gets one batch of far more than 64 KiB,
    written in pieces (WRITE_PIECE, counted in bytes). Every event arrives whole, in
    order, on both transports."""
    api = http(server)
    ann, ben, dm = await pair(api, make_user)
    async with sse_stream(server, ben.access_token) as stream:
        gw = await GatewayClient.connect(server, ben.access_token)
        await gw.next("ready")
        contents = [f"{i:02d}" + "é" * 3900 for i in range(40)]
        await asyncio.gather(*(say(api, ann, dm, c) for c in contents))
        by_sse = [e.data for e in await stream.collect("message.created", 40)]
        by_gateway = [(await gw.next("message.created"))["d"] for _ in range(40)]
        await gw.close()
    for got in (by_sse, by_gateway):
        assert [m["seq"] for m in got] == list(range(1, 41))
        assert sorted(m["content"] for m in got) == contents


@pytest.mark.parametrize(
    ("first", "code"),
    [
        ({"op": 2, "d": {"token": "not-a-token"}}, 4004),
        ({"op": 4, "d": {"channel_id": None}}, 4003),
        ("not json", 4002),
        ({"op": True, "d": {}}, 4002),  # (main: 4003, taken for op 1)
    ],
)
async def test_gateway_refuses_bad_openings(server: str, first: Any, code: int) -> None:
    import json

    import websockets

    async with websockets.connect(server.replace("http", "ws") + "/api/gateway") as ws:
        await ws.recv()
        await ws.send(first if isinstance(first, str) else json.dumps(first))
        with pytest.raises(websockets.ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), 5)
        assert info.value.rcvd is not None and info.value.rcvd.code == code


async def test_gateway_answers_heartbeats_sent_before_identify(
    server: str, make_user: MakeUser
) -> None:
    """Discord's libraries start their heartbeats at HELLO, and one that waits for a
    fresh token before it identifies sends some first: they were closed 4003."""
    import json

    import websockets

    ben = await make_user("ben")
    async with websockets.connect(server.replace("http", "ws") + "/api/gateway") as ws:
        assert json.loads(await ws.recv())["op"] == 10
        for _ in range(3):
            await ws.send('{"op": 1, "d": null}')
            assert json.loads(await asyncio.wait_for(ws.recv(), 5)) == {"op": 11}
        await ws.send(json.dumps({"op": 2, "d": {"token": ben.access_token}}))
        ready = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert ready["t"] == "ready" and ready["d"]["user"]["id"] == str(ben.id)


async def test_gateway_refuses_an_op_that_is_a_boolean_once_identified(
    server: str, make_user: MakeUser
) -> None:
    """main: `{"op": true}` was taken as a HEARTBEAT (a bool is an int in Python)."""
    ben = await make_user("ben")
    gw = await GatewayClient.connect(server, ben.access_token)
    try:
        await gw.next("ready")
        await gw.ws.send('{"op": true}')
        assert await gw.closed_with() == 4002
        assert gw.acks == 0
    finally:
        await gw.close()


async def test_gateway_resume_from_a_position_the_log_never_had_says_invalid_session(
    server: str, make_user: MakeUser, secret: str
) -> None:
    from xfchat.realtime.cursor import Position, TokenCodec

    ben = await make_user("ben")
    gw = await GatewayClient.connect(server, ben.access_token)
    real = (await gw.next("ready"))["s"]
    await gw.close()
    codec = TokenCodec(secret)
    position = codec.decode(real, codec.tag(ben.id))
    forged = codec.encode(codec.tag(ben.id), Position(position.g + 1000, 0))
    gw = await GatewayClient.connect(server, ben.access_token, resume=forged)
    assert await gw.next() == {"op": 9, "d": {"resumable": False}}
    assert await gw.closed_with() == 4010


async def test_gateway_drops_a_client_that_stops_heartbeating(
    servers: Servers, make_user: MakeUser
) -> None:
    _, base = servers.start(XFCHAT_GATEWAY_HEARTBEAT="1")
    ben = await make_user("ben")
    gw = await GatewayClient.connect(base, ben.access_token)
    await gw.next("ready")
    assert await gw.closed_with(timeout=10) == 4009


async def test_gateway_closes_a_revoked_session(
    server: str, http: Http, make_user: MakeUser, secret: str
) -> None:
    ben = await make_user("ben")
    stale = issue_access_token(
        secret, user_id=ben.id, session_id=ben.session_id, ttl_s=900, now=time.time() - 3600
    )
    # Was: 4004 for both, so a client could not tell "refresh" from "log in again".
    expired = await GatewayClient.connect(server, stale)
    assert await expired.closed_with() == 4015
    gw = await GatewayClient.connect(server, ben.access_token)
    await gw.next("ready")
    await http(server).post("/api/auth/logout", headers=ben.headers)
    assert await gw.closed_with() == 4012
    again = await GatewayClient.connect(server, ben.access_token)
    assert await again.closed_with() == 4012
    # An expired token says only that it expired, its session ended or not (as the HTTP
    # API's TOKEN_EXPIRED does): the refresh it asks for tells "log in again".
    ended = await GatewayClient.connect(server, stale)
    assert await ended.closed_with() == 4015
    refreshed = await http(server).post(
        "/api/auth/refresh", json={"refresh_token": ben.refresh_token}
    )
    assert (refreshed.status_code, refreshed.json()["code"]) == (401, "SESSION_REVOKED")


async def test_the_session_a_login_past_the_limit_ends_closes_its_streams(
    server: str, make_user: MakeUser, pool: asyncpg.Pool, settings: Settings
) -> None:
    """The least recently used session, revoked by the 101st login (in this test's
    process), loses its gateway and SSE connections on the server process at once."""
    ben = await make_user("ben")
    gw = await GatewayClient.connect(server, ben.access_token)
    await gw.next("ready")
    async with sse_stream(server, ben.access_token) as stream:
        await factories.more_sessions(pool, settings, ben, 99)  # 100 live: no room left
        await factories.more_sessions(pool, settings, ben, 1)
        closed = await stream.next("closed")
        assert closed.data["reason"] == "session_revoked"
    assert await gw.closed_with() == 4012


async def test_log_out_everywhere_else_closes_the_other_sessions_streams(
    server: str, http: Http, make_user: MakeUser, pool: asyncpg.Pool, settings: Settings
) -> None:
    """The sessions `DELETE /api/users/@me/sessions` ends lose their gateway and SSE
    connections at once; the asking session's own stay open."""
    ben = await make_user("ben")
    phone = await factories.login(pool, settings, ben)
    gw = await GatewayClient.connect(server, phone.access_token)
    await gw.next("ready")
    own = await GatewayClient.connect(server, ben.access_token)
    await own.next("ready")
    async with sse_stream(server, phone.access_token) as stream:
        ended = await http(server).delete("/api/users/@me/sessions", headers=ben.headers)
        assert ended.status_code == 204
        closed = await stream.next("closed")
        assert closed.data["reason"] == "session_revoked"
    assert await gw.closed_with() == 4012
    told = await own.next("session.revoked")
    assert told["d"] == {"session_id": str(phone.session_id), "reason": "revoked"}


@pytest.fixture(scope="module")
def braid_client() -> None:
    if not node_available():
        pytest.skip("Node.js and npm are needed for the braid-http client test")
    ensure_braid_client()


async def test_the_real_braid_http_client_subscribes_puts_and_resumes(
    braid_client: None, server: str, http: Http, make_user: MakeUser
) -> None:
    api = http(server)
    ann, ben, dm = await pair(api, make_user)
    earlier = [await say(api, ann, dm, f"early{i}") for i in range(2)]
    url = braid_messages_url(server, dm)
    token = ["--token", ben.access_token]

    mid = str(uuid.uuid4())
    subscription = asyncio.create_task(
        braid(
            "subscribe",
            "--url",
            url,
            *token,
            "--count",
            "2",
            "--timeout",
            "15",
            "--heartbeats",
            "5",
        )
    )
    await wait_subscribers(server, 1)  # the subscription is open before the PUT
    rc, put_lines = await braid(
        "put",
        "--url",
        f"{url}/{mid}",
        "--token",
        ann.access_token,
        "--version",
        mid,
        "--parents",
        earlier[-1]["id"],
        "--body",
        '{"content": "via braid"}',
    )
    assert rc == 0 and put_lines[-1]["status"] == 201, put_lines
    rc, lines = await subscription
    assert rc == 0, lines
    opened, snapshot, patch = lines[0], lines[1], lines[2]
    assert opened["status"] == 209 and opened["headers"]["subscribe"]
    assert snapshot["version"] == [earlier[-1]["id"]] and snapshot["patches"] is None
    assert [m["id"] for m in snapshot["body"]] == [m["id"] for m in earlier]
    assert patch["version"] == [mid] and patch["parents"] == [earlier[-1]["id"]]
    assert patch["patches"][0]["range"] == "[-0:-0]"
    assert patch["patches"][0]["content"]["content"] == "via braid"

    away = [await say(api, ann, dm, f"away{i}") for i in range(2)]
    rc, lines = await braid(
        "subscribe", "--url", url, *token, "--parents", mid, "--count", "3", "--timeout", "3"
    )
    assert rc == 2 and lines[-1] == {"event": "timeout", "received": 2}  # no third update
    updates = [line for line in lines if line["event"] == "update"]
    assert [u["version"] for u in updates] == [[away[0]["id"]], [away[1]["id"]]]
    assert [u["parents"] for u in updates] == [[mid], [away[0]["id"]]]
    assert all(u["body"] is None for u in updates)  # patches only: no snapshot on resume


async def test_braid_refuses_outsiders_and_unknown_versions(
    braid_client: None, server: str, http: Http, make_user: MakeUser
) -> None:
    _, ben, dm = await pair(http(server), make_user)
    eve = await make_user("eve")
    url = braid_messages_url(server, dm)
    rc, lines = await braid(
        "subscribe", "--url", url, "--token", eve.access_token, "--timeout", "5"
    )
    assert rc == 1 and lines[-1]["status"] == 404
    rc, lines = await braid(
        "subscribe",
        "--url",
        url,
        "--token",
        ben.access_token,
        "--parents",
        str(uuid.uuid4()),
        "--timeout",
        "5",
    )
    assert rc == 1 and lines[-1]["status"] == 410


async def test_oversized_messages_arrive_in_order_through_the_hub(
    server: str, http: Http, make_user: MakeUser
) -> None:
    """Messages too big for a notification are read from the log by the hub (once per
    process) and still arrive in order, interleaved with small ones."""
    api = http(server)
    ann, ben, dm = await pair(api, make_user)
    wide = "é" * 3999  # 8 KB of UTF-8: no notification can carry it
    async with sse_stream(server, ben.access_token) as stream:
        sent = await asyncio.gather(
            *(say(api, ann, dm, wide if i % 3 == 0 else f"small {i}") for i in range(30))
        )
        got = [e.data for e in await stream.collect("message.created", 30)]
    assert [m["seq"] for m in got] == list(range(1, 31))
    assert {m["id"] for m in got} == {m["id"] for m in sent}
    assert sum(m["content"] == wide for m in got) == 10


async def test_resuming_after_being_removed_gets_exactly_what_came_before_the_removal(
    server: str, http: Http, make_user: MakeUser
) -> None:
    api = http(server)
    ann, ben, group = await pair(api, make_user, kind="group")
    async with sse_stream(server, ben.access_token) as stream:
        token = stream.ready.id
    before = await say(api, ann, group, "while ben was in")
    await api.delete(f"/api/conversations/{group}/participants/{ben.id}", headers=ann.headers)
    await say(api, ann, group, "after ben left")
    marker = await say(api, ann, (await factories.direct(api, ann, ben))["id"], "marker")
    seen = []
    async with sse_stream(server, ben.access_token, last_event_id=token) as resumed:
        while True:  # each next() fails after 10 s without an event
            event = await resumed.next()
            seen.append((event.event, event.data.get("content") if event.data else None))
            if event.event == "message.created" and event.data["id"] == marker["id"]:
                break
    contents = [c for e, c in seen if e == "message.created"]
    assert before["content"] in contents and "after ben left" not in contents
    assert ("conversation.removed", None) in seen
    assert ("participant.removed", None) not in seen  # it comes after ben's removal


async def test_removed_then_added_again_misses_only_the_time_outside(
    server: str, http: Http, make_user: MakeUser
) -> None:
    api = http(server)
    ann, ben, group = await pair(api, make_user, kind="group")
    async with sse_stream(server, ben.access_token) as stream:
        await api.delete(f"/api/conversations/{group}/participants/{ben.id}", headers=ann.headers)
        await say(api, ann, group, "while ben was out")
        await api.put(f"/api/conversations/{group}/participants/{ben.id}", headers=ann.headers)
        back = await say(api, ann, group, "ben is back")
        contents: list[str] = []
        while not contents or contents[-1] != back["content"]:
            contents.append((await stream.next("message.created")).data["content"])
    assert contents == ["ben is back"]


async def test_a_position_older_than_the_log_gets_a_resync(
    server: str, http: Http, make_user: MakeUser, pool: Any
) -> None:
    from xfchat.domain.retention import prune_event_log

    api = http(server)
    ann, ben, dm = await pair(api, make_user)
    async with sse_stream(server, ben.access_token) as stream:
        await say(api, ann, dm, "one")
        await stream.next("message.created")
        old_token = stream.last_id
    await say(api, ann, dm, "two")
    await asyncio.sleep(0.01)
    assert await prune_event_log(pool, retention_days=0) >= 2  # everything is "old" now
    await say(api, ann, dm, "three")

    async with sse_stream(server, ben.access_token, last_event_id=old_token) as resumed:
        assert resumed.ready.data["resumed"] is False
        resync = (await resumed.next("resync")).data
        assert resync["reason"] == "expired" and "reload" in resync["message"]
        await say(api, ann, dm, "four")  # from now on it is live again
        assert (await resumed.next("message.created")).data["content"] == "four"
    gw = await GatewayClient.connect(server, ben.access_token, resume=old_token)
    assert await gw.next() == {"op": 9, "d": {"resumable": False}}
    assert await gw.closed_with() == 4010


async def test_a_revocation_reaches_a_process_that_had_the_session_cached(
    servers: Servers, make_user: MakeUser
) -> None:
    _, a = servers.start()
    _, b = servers.start()
    ben = await make_user("ben")
    async with httpx.AsyncClient(timeout=10) as c:
        assert (await c.get(f"{b}/api/users/@me", headers=ben.headers)).status_code == 200
        assert (await c.get(f"{b}/api/users/@me", headers=ben.headers)).status_code == 200
        assert (await c.post(f"{a}/api/auth/logout", headers=ben.headers)).status_code == 204
        # B hears of it through PostgreSQL's NOTIFY, in milliseconds; without it, B would
        # go on trusting its 30 s session cache. Polling up to 10 s leaves a loaded machine
        # plenty of slack yet stays far below 30 s, so a pass still proves the NOTIFY.
        deadline = asyncio.get_running_loop().time() + 10
        while True:
            response = await c.get(f"{b}/api/users/@me", headers=ben.headers)
            if response.status_code == 401 or asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.02)
        assert response.status_code == 401 and response.json()["code"] == "SESSION_REVOKED"


async def test_a_server_channel_reaches_sse_the_gateway_and_braid(
    server: str, http: Http, make_user: MakeUser, pool: Any
) -> None:
    """Every real-time path works for a server's text channel as for a conversation."""
    api = http(server)
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await factories.server(pool, ann, ben, text=("general", "staff"))
    general, staff = str(srv.channels["general"]), str(srv.channels["staff"])
    from xfchat.db.queries import servers as servers_q
    from xfchat.domain.permissions import Permission

    async with pool.acquire() as conn:  # #staff is hidden from everyone but its owner
        await servers_q.upsert_permission_override(
            conn,
            channel_id=srv.channels["staff"],
            role_id=srv.everyone_role,
            allow=0,
            deny=int(Permission.VIEW_CHANNEL),
        )
    async with sse_stream(server, ben.access_token) as stream:
        gw = await GatewayClient.connect(server, ben.access_token)
        try:
            await gw.next("ready")
            await say(api, ann, staff, "for the staff only")
            first = await say(api, ann, general, "hello server")
            assert (await stream.next("message.created")).data["id"] == first["id"]
            assert (await gw.next("message.created"))["d"]["id"] == first["id"]
            await api.post(f"/api/channels/{general}/typing", headers=ann.headers)
            assert (await stream.next("typing.started")).data["channel_id"] == general
        finally:
            await gw.close()
    async with httpx.AsyncClient(timeout=10) as raw:
        braid_url = f"{server}/api/channels/{general}/messages"
        headers = {**ben.headers, "Subscribe": "true"}
        async with raw.stream("GET", braid_url, headers=headers) as response:
            assert response.status_code == 209
            async for chunk in response.aiter_text():
                assert first["id"] in chunk  # the snapshot
                break
        hidden = await raw.get(f"{server}/api/channels/{staff}/messages", headers=headers)
        assert hidden.status_code == 404 and hidden.json()["code"] == "CHANNEL_NOT_FOUND"


async def test_sse_keeps_an_idle_stream_alive_and_a_busy_one_without_keep_alives(
    servers: Servers, http: Http, make_user: MakeUser
) -> None:
    """An idle stream gets a keep-alive comment every XFCHAT_SSE_KEEPALIVE seconds and
    still delivers what comes after; a stream that delivers more often than that gets
    none (its idle timer counts from the last thing it handed over, not from when it
    was armed)."""
    idle = 1.0
    _, base = servers.start(XFCHAT_SSE_KEEPALIVE=str(idle))
    api = http(base)
    ann, ben, dm = await pair(api, make_user)
    loop = asyncio.get_running_loop()
    async with (
        httpx.AsyncClient(timeout=httpx.Timeout(5, read=10)) as client,
        client.stream("GET", f"{base}/api/events", headers=ben.headers) as response,
    ):
        lines = response.aiter_lines()

        async def next_of(*wanted: str) -> str:
            async with asyncio.timeout(10):
                async for line in lines:
                    if line in wanted:
                        return line
            raise EOFError("the stream ended")

        await next_of("event: ready")
        assert await next_of(": keep-alive") == ": keep-alive"
        assert await next_of(": keep-alive") == ": keep-alive"

        # A trickle of messages, each sooner than `idle` after the one before.
        await say(api, ann, dm, "first")
        await next_of("event: message.created")
        seen: list[str] = []
        arrivals = [loop.time()]
        for i in range(12):  # (lasting several times `idle` in all)
            await asyncio.sleep(idle / 4)
            await say(api, ann, dm, f"trickle {i}")
            seen.append(await next_of("event: message.created", ": keep-alive"))
            arrivals.append(loop.time())
        # A keep-alive is right after a quiet spell of `idle`: a machine that stalled
        # that long between two sends proves nothing here, and says so.
        if max(b - a for a, b in itertools.pairwise(arrivals)) >= idle * 0.8:
            pytest.skip("the test machine stalled between two sends")
        assert seen == ["event: message.created"] * 12, seen


async def test_gateway_reconnects_during_traffic_leave_no_unretrieved_task_exceptions(
    servers: Servers, make_user: MakeUser
) -> None:
    """main: when a client went while its channel was busy, the connection's reader and
    writer both saw it go; one exception was raised, the other left to asyncio, which
    logged "Task exception was never retrieved" with a traceback (29 in 150 reconnects)."""
    proc, base = servers.start(XFCHAT_RATE_REALTIME_USER="1000/60")
    url = base.replace("http://", "ws://") + "/api/gateway"
    async with httpx.AsyncClient(base_url=base, timeout=30) as api:
        ann, ben, dm = await pair(api, make_user)
        busy = True

        async def talk() -> None:
            while busy:
                await say(api, ann, dm, "busy")

        talkers = [asyncio.create_task(talk()) for _ in range(3)]
        try:
            for i in range(90):
                ws = await websockets.connect(url, max_size=None)
                await ws.recv()  # HELLO
                await ws.send(orjson.dumps({"op": 2, "d": {"token": ben.access_token}}).decode())
                for _ in range(2 + i % 4):  # ready, then events as they come
                    await asyncio.wait_for(ws.recv(), 10)
                if i % 3 == 0:
                    ws.transport.abort()  # gone (1006)
                elif i % 3 == 1:
                    await ws.close()  # 1000
                else:
                    ws.transport.write(b"\x88\x80\0\0\0\0")  # a close without a code (1005)
                    await asyncio.sleep(0.01)
                    ws.transport.abort()
        finally:
            busy = False
            await asyncio.gather(*talkers)
    await wait_subscribers(base, 0, at_most=0)  # every connection's handler has ended
    assert "never retrieved" not in proc.output, proc.output[-3000:]
    assert "Traceback" not in proc.output, proc.output[-3000:]


async def test_the_streams_answer_head_and_http_1_0_as_http_says(
    server: str, http: Http, make_user: MakeUser
) -> None:
    """The thirtieth round's left: HEAD was 405 on every route but the downloads (RFC
    9110 9.3.2: a resource that answers GET answers HEAD), and an HTTP/1.0 request to a
    stream was answered in chunked framing, which 1.0 does not know (RFC 9112 6.3: its
    body ends where the connection does). A HEAD to a stream ends after its head."""
    api = http(server)
    ann, ben, dm = await pair(api, make_user)
    bearer = {"Authorization": f"Bearer {ben.access_token}"}
    me = await api.get("/api/users/@me", headers=bearer)
    head = await api.head("/api/users/@me", headers=bearer)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(me.content))
    assert head.headers["content-type"] == "application/json"
    assert (await api.head("/api/users/@me")).status_code == 401  # (as GET: no token)
    login = await api.head("/api/auth/login")
    assert login.status_code == 405 and login.headers["allow"] == "POST", login.headers
    assert (await api.delete("/api/users/@me/friends")).headers.get("allow", "").count("HEAD")
    for _ in range(3):  # (a helper session's find: each HEAD opened a subscription, and
        # held a real-time connection of the user's; it opens none now, but counts in
        # the rate of new ones as its GET: it reads what the GET would follow)
        events = await api.head("/api/events", headers=bearer)
        assert events.status_code == 200 and events.content == b""
        assert events.headers["x-ratelimit-bucket"] == "realtime.connect", events.headers
    assert events.headers["content-type"].startswith("text/event-stream")
    subscribed = await api.head(
        braid_messages_url(server, dm), headers={**bearer, "Subscribe": "true"}
    )
    assert subscribed.status_code == 209 and subscribed.content == b"", subscribed.headers
    assert subscribed.headers["x-ratelimit-bucket"] == "realtime.connect", subscribed.headers
    unseen = await api.head(
        braid_messages_url(server, str(uuid.uuid4())), headers={**bearer, "Subscribe": "true"}
    )
    assert unseen.status_code == 404, unseen.headers  # (as its GET)
    await wait_subscribers(server, 0, at_most=0)  # (the HEADs held no subscription)
    scraped = (await api.get("/metrics", headers=METRICS_HEADERS)).text
    assert 'method="HEAD",route="/api/users/@me",status="200"' in scraped

    host, port = server.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        f"GET /api/events HTTP/1.0\r\nAuthorization: Bearer {ben.access_token}\r\n\r\n".encode()
    )
    raw_head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert raw_head.startswith(b"HTTP/1.1 200 "), raw_head
    assert b"transfer-encoding" not in raw_head.lower(), raw_head
    assert b"connection: close" in raw_head.lower(), raw_head
    sent = await say(api, ann, dm, "to a 1.0 client")
    body = b""
    while sent["id"].encode() not in body:
        body += await asyncio.wait_for(reader.read(65536), 10)
    writer.close()
    # The events as they are written, with no chunk sizes between them.
    assert body.startswith(b"retry: 1000\n\nid: "), body[:200]
    assert b"\nevent: message.created\n" in body and b"\r\n" not in body, body[-400:]


async def test_a_streams_head_is_refused_as_its_get_past_the_connections_cap(
    servers: Servers, http: Http, make_user: MakeUser
) -> None:
    """A review's find: a HEAD to a stream, which opens nothing, said 200 (209) where
    its GET said 429 TOO_MANY_CONNECTIONS."""
    _, base = servers.start(XFCHAT_REALTIME_CONNECTIONS_USER="1")
    api = http(base)
    _ann, ben, dm = await pair(api, make_user)
    bearer = {"Authorization": f"Bearer {ben.access_token}"}
    assert (await api.head("/api/events", headers=bearer)).status_code == 200
    async with sse_stream(base, ben.access_token):
        for url, extra in (
            ("/api/events", {}),
            (braid_messages_url(base, dm), {"Subscribe": "true"}),
        ):
            head = await api.head(url, headers={**bearer, **extra})
            get = await api.get(url, headers={**bearer, **extra})
            assert head.status_code == get.status_code == 429, (url, head.headers)


async def test_an_idle_sse_stream_asked_for_heartbeats_sends_events_a_page_hears(
    servers: Servers, make_user: MakeUser
) -> None:
    """A helper session's find: the keep-alive of an idle stream is a comment, which a
    page's EventSource never shows, so a page could not tell a quiet stream from one
    whose packets no longer get through (no close for minutes). With `?heartbeat=true`
    it is `event: heartbeat` (no id: the place to resume from stays), every
    `heartbeat_interval` ms of the `ready`; without, still a comment."""
    _, base = servers.start(XFCHAT_SSE_KEEPALIVE="1")
    ben = await make_user("ben")
    headers = {"Authorization": f"Bearer {ben.access_token}"}
    asked = await SseClient(f"{base}/api/events?heartbeat=true", headers).start()
    plain = await SseClient(f"{base}/api/events", headers).start()
    try:
        for stream in (asked, plain):
            ready = await stream.next("ready")
            assert ready.data["heartbeat_interval"] == 1000
        place = asked.last_id
        beats = [await asked.next("heartbeat", timeout=5) for _ in range(2)]
        assert [(b.id, b.data) for b in beats] == [(None, {})] * 2
        assert asked.last_id == place
        with pytest.raises(TimeoutError):  # (two intervals of comments: nothing to parse)
            await plain.next("heartbeat", timeout=2.5)
    finally:
        await asked.close()
        await plain.close()
