"""The WebSocket gateway: GET /api/gateway (JSON text frames).

Server -> client: `{"op": 10, "d": {"heartbeat_interval": ms}}` (HELLO) first. The client
answers IDENTIFY `{"op": 2, "d": {"token": "<access token>"}}` or RESUME
`{"op": 6, "d": {"token": "<access token>", "seq": "<last s it received>"}}`; the server
sends DISPATCH `{"op": 0, "t": "ready", "s": ..., "d": {...}}` and then every event as
`{"op": 0, "t": "<type>", "s": "<resume token>", "d": {...}}` (ephemeral ones without
"s"). The client sends HEARTBEAT `{"op": 1}` at the interval; the server answers
HEARTBEAT_ACK `{"op": 11}`. `s` is opaque and names positions in the durable log, so a
RESUME works on any server process, within the log's retention. A RESUME from a place the
log no longer has (or never had) gets INVALID_SESSION `{"op": 9, "d": {"resumable": false}}` and close 4010: identify again
and reload state.

Until it has identified, a connection holds a file descriptor for anyone: IDENTIFY or
RESUME must come within the request head's timeout (XFCHAT_HEADER_TIMEOUT; else close
4009), and at most XFCHAT_GATEWAY_UNIDENTIFIED_IP connections of one client address wait
for it at once in a process (one more is answered 429 TOO_MANY_CONNECTIONS, before the
upgrade).

Close codes (see CLOSE_CODES): 4001 unknown opcode, 4002 not JSON, 4003 not identified,
4004 authentication failed, 4005 already identified, 4007 invalid seq (malformed, or another user's), 4009 heartbeat
missed (zombie) or no IDENTIFY/RESUME in time, 4010 resync required, 4011 slow consumer (resume), 4012 session
revoked, 4013 server shutting down or its database unavailable (resume), 4008 IDENTIFY/RESUME
rate limited, 4014 too many connections of the user, 4015 token expired (refresh, then
resume). The WebSocket protocol closes a client sending too many frames (4008 too) or
messages in too many pieces (1008) itself: api/ws_limits.py.

Voice: VOICE_STATE_UPDATE (4) and VOICE_SIGNAL (12), see api/gateway_voice.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Coroutine
from typing import Any

import orjson
from fastapi import WebSocket, WebSocketDisconnect

from xfchat.api.deps import REALTIME_BUCKET
from xfchat.api.errors import xfchat_error_response
from xfchat.api.gateway_voice import VOICE_OPS, VoiceOps
from xfchat.api.routing import api_router
from xfchat.api.streaming import COALESCE, until_either_ends
from xfchat.api.ws_limits import allow_larger_frames, text_sender
from xfchat.db.pool import DATABASE_ERRORS
from xfchat.domain.accounts import Actor, authenticate
from xfchat.domain.feeds import FeedStart
from xfchat.domain.rate_limits import address_of
from xfchat.errors import RateLimited, ServiceUnavailable, UpgradeRequired, XFChatError
from xfchat.realtime.feeds import Refused, check_token, open_user_feed
from xfchat.realtime.subscriber import Closed, Delivery, Subscriber
from xfchat.tasks import stop

# The database is down or too busy for now: the client resumes later, as at shutdown.
UNAVAILABLE = (ServiceUnavailable, *DATABASE_ERRORS)

router = api_router(tags=["realtime"])

DISPATCH, HEARTBEAT, IDENTIFY, RESUME, RECONNECT, INVALID_SESSION, HELLO, HEARTBEAT_ACK = (
    0,
    1,
    2,
    6,
    7,
    9,
    10,
    11,
)
CLOSE_CODES = {
    4001: "unknown opcode",
    4002: "decode error: frames are JSON objects whose op is an integer",
    4003: "not identified: send IDENTIFY or RESUME first",
    4004: "authentication failed",
    4005: "already identified",
    4007: "invalid seq: not one of your resume tokens",
    4009: "heartbeat missed: session timed out",
    4010: "resync required: identify again and reload state",
    4011: "slow consumer: resume from your last seq",
    4012: "session revoked",
    4013: "server shutting down or its database unavailable: resume",
    4008: "rate limited: too many IDENTIFY or RESUME, or frames",
    4014: "too many connections: close another first",
    4015: "token expired: refresh it, then resume",
}
# What a refused token is closed with: a client refreshes an expired one, and logs in
# again after a revoked session (as the HTTP API tells them apart); anything else 4004.
CLOSE_FOR_TOKEN = {"TOKEN_EXPIRED": 4015, "SESSION_REVOKED": 4012}
CLOSE_FOR_REASON = {
    "slow_consumer": 4011,
    "session_revoked": 4012,
    "resync": 4010,
    "shutdown": 4013,
    "unavailable": 4013,
}
SEND_TIMEOUT_S = 5.0


class GatewayClose(Exception):
    def __init__(self, code: int, reason: str | None = None) -> None:
        super().__init__(reason or CLOSE_CODES.get(code, "closed"))
        self.code = code


def dispatch(event_type: str, data: bytes, token: str | None) -> str:
    seq = f',"s":"{token}"' if token is not None else ""
    return f'{{"op":0,"t":"{event_type}"{seq},"d":' + data.decode() + "}"


def _parts(d: Delivery) -> tuple[str, str]:
    return f'{{"op":0,"t":"{d.type}"', ',"d":' + d.json.decode() + "}"


def delivered(d: Delivery, token: str | None) -> str:
    """A delivery's DISPATCH frame: framed once per process, its `s` per subscriber."""
    head, tail = d.framed("gateway", _parts)
    return head + tail if token is None else head + ',"s":"' + token + '"' + tail


async def _receive(ws: WebSocket, within_s: float, late: str | None = None) -> dict[str, Any]:
    try:
        async with asyncio.timeout(within_s):
            text = await ws.receive_text()
    except TimeoutError:
        raise GatewayClose(4009, late) from None
    except KeyError:  # a binary frame
        raise GatewayClose(4002) from None
    try:
        frame = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise GatewayClose(4002) from None
    if not isinstance(frame, dict) or type(frame.get("op")) is not int:  # (true is no 1)
        raise GatewayClose(4002)
    return frame


async def _unless_ending(
    ws: WebSocket, receiving: Coroutine[Any, Any, dict[str, Any]]
) -> dict[str, Any]:
    """The frame, unless the process starts shutting down first: then 4013 (resume
    elsewhere or later), as an identified connection is told, not uvicorn's 1012."""
    ending: asyncio.Event = ws.app.state.hub.ending
    if ending.is_set():
        receiving.close()
        raise GatewayClose(4013)
    frame = asyncio.create_task(receiving)
    told = asyncio.create_task(ending.wait())
    try:
        await asyncio.wait((frame, told), return_when=asyncio.FIRST_COMPLETED)
    finally:
        await stop(frame if not frame.done() else None, told)
    if not frame.done() or frame.cancelled():
        raise GatewayClose(4013)
    return frame.result()


async def _handshake(
    ws: WebSocket, interval: float
) -> tuple[Actor, Subscriber, FeedStart, Refused | None]:
    state = ws.app.state
    # As long as a request head may take (or 1.5 intervals, if less): until then the
    # connection holds a file descriptor for anyone.
    within = min(state.settings.header_timeout_s, interval * 1.5)
    deadline = time.monotonic() + within
    while True:
        left = max(0.0, deadline - time.monotonic())
        frame = await _unless_ending(
            ws, _receive(ws, left, f"no IDENTIFY or RESUME within {within:g} s")
        )
        if frame["op"] != HEARTBEAT:
            break
        # A client that starts its heartbeats at HELLO, as Discord's libraries do, is
        # answered (the protocol bounds what an unidentified client may send).
        await ws.send_text('{"op":11}')
    op, data = frame["op"], frame.get("d") or {}
    if op not in (IDENTIFY, RESUME):
        raise GatewayClose(4003)
    if not isinstance(data, dict) or not isinstance(data.get("token"), str):
        raise GatewayClose(4004)
    try:
        async with state.pool.acquire() as conn:
            actor, _user = await authenticate(conn, state.settings, data["token"])
            limit = state.settings.rate_realtime_user
            decision = await state.limiter.check(conn, REALTIME_BUCKET, str(actor.user_id), limit)
    except UNAVAILABLE:  # (a busy database is no reason to drop one's credentials)
        raise GatewayClose(4013) from None
    except XFChatError as exc:
        raise GatewayClose(CLOSE_FOR_TOKEN.get(exc.code, 4004)) from None
    if not decision.allowed:
        raise GatewayClose(4008, f"rate limited: retry in {math.ceil(decision.reset_after)} s")
    seq = data.get("seq") if op == RESUME else None
    if op == RESUME:
        if not isinstance(seq, str):
            raise GatewayClose(4007)
        if isinstance(check_token(state.hub.codec, actor.user_id, seq), Refused):
            raise GatewayClose(4007)  # malformed, or another user's
    try:
        sub, refused, start = await open_user_feed(state.hub, state.pool, actor, seq)
    except UNAVAILABLE:
        raise GatewayClose(4013) from None
    except RateLimited:
        raise GatewayClose(4014) from None
    except XFChatError:  # the session ended meanwhile
        raise GatewayClose(4012) from None
    allow_larger_frames(ws)
    return actor, sub, start, refused


@router.get("/api/gateway", include_in_schema=False)
async def gateway_without_upgrade() -> None:
    """A plain GET of the gateway (a client that forgot the upgrade, or a proxy that
    drops its headers): told so, not 404 as if there were nothing here."""
    raise UpgradeRequired(
        "the gateway is a WebSocket: open it with an Upgrade: websocket handshake",
        headers={"Upgrade": "websocket", "Connection": "Upgrade"},
    )


@router.websocket("/api/gateway")
async def gateway(ws: WebSocket) -> None:
    state = ws.app.state
    client = ws.scope.get("client")  # (a trusted proxy's client, as everywhere)
    held = state.unidentified.take(address_of(client[0] if client else None))
    if held is None:  # refused before the upgrade: 429, and the connection is closed
        limit = state.unidentified.limit
        too_many = RateLimited(
            f"{limit} gateway connections from your address have not identified yet",
            code="TOO_MANY_CONNECTIONS",
            retry_after=state.settings.header_timeout_s,
        )
        await ws.send_denial_response(xfchat_error_response(too_many))
        return
    interval = state.settings.gateway_heartbeat_s
    sub: Subscriber | None = None
    try:
        with held:  # until identified (or refused)
            await ws.accept()
            hello = {"op": HELLO, "d": {"heartbeat_interval": int(interval * 1000)}}
            await ws.send_text(orjson.dumps(hello).decode())
            actor, sub, start, refused = await _handshake(ws, interval)
        if refused is not None:
            await ws.send_text(
                orjson.dumps({"op": INVALID_SESSION, "d": {"resumable": False}}).decode()
            )
            raise GatewayClose(4010)
        ready = {
            "user_id": str(actor.user_id),
            "session_id": str(actor.session_id),
            "resumed": start.state is None,
            "heartbeat_interval": int(interval * 1000),
            **start.ready,
        }
        await ws.send_text(dispatch("ready", orjson.dumps(ready), sub.token()))
        voice = VoiceOps(ws, actor, sub)
        try:
            await _serve(ws, sub, interval, voice)
        finally:
            voice.close()
    except GatewayClose as close:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(SEND_TIMEOUT_S):
                await ws.close(close.code, str(close))
    except WebSocketDisconnect:
        pass
    finally:
        if sub is not None:
            sub.release()


async def _serve(ws: WebSocket, sub: Subscriber, interval: float, voice: VoiceOps) -> None:
    """Run the writer (events out) and the reader (heartbeats in) until one ends; a
    writer stuck on a client that stopped reading is abandoned when its subscription is
    closed for being too slow."""
    writer = asyncio.create_task(_write(ws, sub))
    reader = asyncio.create_task(_read(ws, interval, voice))
    try:
        done = await until_either_ends(sub, writer, reader)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        if sub.closed is not None:
            raise GatewayClose(CLOSE_FOR_REASON.get(sub.closed, 4011))
    finally:
        await stop(writer, reader)


async def _write(ws: WebSocket, sub: Subscriber) -> None:
    send_texts = text_sender(ws)
    while True:
        try:
            # Whatever is waiting goes out in one write, a frame per event.
            batch = await sub.next_batch(COALESCE)
        except Closed:
            return
        assert batch is not None
        await send_texts([delivered(d, sub.token_at(d) if d.stored else None) for d in batch])


async def _read(ws: WebSocket, interval: float, voice: VoiceOps) -> None:
    deadline = time.monotonic() + interval * 1.5
    while True:  # (the protocol limits how many frames come: api/ws_limits.py)
        frame = await _receive(ws, max(0.0, deadline - time.monotonic()))
        op = frame["op"]
        if op == HEARTBEAT:
            deadline = time.monotonic() + interval * 1.5
            await ws.send_text('{"op":11}')
        elif op in (IDENTIFY, RESUME):
            raise GatewayClose(4005)
        elif op in VOICE_OPS:  # one at a time: a peer receives signals in the order sent
            await voice.handle(op, frame.get("d"))
        else:
            raise GatewayClose(4001)
