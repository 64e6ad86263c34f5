"""The ceiling: a minimal in-memory chat server that speaks the subset of XFChat's API
the load benchmark uses, with no database, no permissions beyond membership, no rate
limits. `bench.load` runs each point against it and XFChat alternately and prints
XFChat's share.

Two builds of it. The default is XFChat's own stack with nothing behind it: the same
server (uvicorn with uvloop and httptools), FastAPI routes, the request body read into
a pydantic model, the bearer token looked up in a dict; what XFChat spends beyond it is
its database, its checks and its own code. `--raw` answers the same requests from a
bare ASGI callable (no framework at all): what any Python server on this box could at
best show through the same generator.

    uv run python -m bench.ceiling --port 8765 [--raw]   # (bench.load starts it itself)

Speaks: POST /api/auth/register; friend requests and their acceptance (granted, not
kept); POST /api/conversations (group); POST /api/servers
(one text channel), POST /api/servers/{id}/invites, POST /api/invites/{code}; PUT
/api/channels/{id}/messages/{message id} (201, idempotent by id); GET /api/events (SSE:
ready, then message.created); the WebSocket gateway at /api/gateway (HELLO, IDENTIFY,
ready, message.created). A message is answered and delivered as XFChat shows it (the
same fields, its author's public ones among them), so both servers and the generator
move and parse the same bytes. Each event is encoded once and its bytes queued for
every connection of every member, as a lean server would.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import FastAPI, Header, Request, WebSocket
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

TOKENS: dict[str, str] = {}  # access token -> user id
AUTHORS: dict[str, dict[str, Any]] = {}  # user id -> the author object messages show
CHANNELS: dict[str, set[str]] = {}  # channel id -> member ids
SEQS: dict[str, int] = {}  # channel id -> last seq
MESSAGES: dict[str, bytes] = {}  # message id -> its JSON (replays answer it again)
SERVERS: dict[str, str] = {}  # server id -> its channel id
INVITES: dict[str, str] = {}  # code -> server id
# user id -> one sink per live connection: (queue of bytes, is it SSE)
SINKS: dict[str, list[tuple[asyncio.Queue[bytes], bool]]] = {}


async def _json(receive: Receive) -> Any:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return orjson.loads(body) if body else {}


async def _answer(send: Send, status: int, body: Any) -> None:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": data})


def _user(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            return TOKENS.get(value.decode().removeprefix("Bearer "))
    return None


def _deliver(members: set[str], event_id: str, data: bytes) -> None:
    """Encode once per transport, queue the bytes for every member's connections."""
    sse = b"id: " + event_id.encode() + b"\nevent: message.created\ndata: " + data + b"\n\n"
    ws = b'{"op":0,"t":"message.created","s":"' + event_id.encode() + b'","d":' + data + b"}"
    for member in members:
        for queue, is_sse in SINKS.get(member, ()):
            queue.put_nowait(sse if is_sse else ws)


async def _put_message(send: Send, receive: Receive, user: str, path: list[str]) -> None:
    channel, mid = path[3], path[5]
    body = await _json(receive)
    members = CHANNELS.get(channel)
    if members is None or user not in members:
        return await _answer(send, 404, {"code": "CHANNEL_NOT_FOUND", "message": "no"})
    if mid in MESSAGES:
        return await _answer(send, 200, MESSAGES[mid])
    data = _store(channel, mid, user, body["content"])
    await _answer(send, 201, data)
    _deliver(members, f"{channel}:{SEQS[channel]}", data)


def _store(channel: str, mid: str, user: str, content: str) -> bytes:
    """The message as XFChat answers and delivers it: the same fields (the author's
    public ones among them), so that both send and parse the same bytes."""
    seq = SEQS[channel] = SEQS[channel] + 1
    data = orjson.dumps(
        {
            "id": mid,  # (first: the generator reads it at a fixed place)
            "channel_id": channel,
            "seq": seq,
            "kind": "default",
            "author": AUTHORS[user],
            "content": content,
            "created_at": datetime.now(UTC).isoformat(),
            "edited_at": None,
            "deleted": False,
            "deleted_at": None,
            "reply_to_id": None,
            "reply_to": None,
            "mentions": [],
            "mention_roles": [],
            "mention_everyone": False,
            "nonce": None,
            "pinned": False,
            "reactions": [],
            "attachments": [],
        }
    )
    MESSAGES[mid] = data
    return data


async def _stream(scope: Scope, receive: Receive, send: Send, user: str) -> None:
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    sink = (queue, True)
    SINKS.setdefault(user, []).append(sink)
    try:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        ready = orjson.dumps({"user_id": user})
        await send(
            {
                "type": "http.response.body",
                "body": b"retry: 1000\n\nevent: ready\ndata: " + ready + b"\n\n",
                "more_body": True,
            }
        )

        async def pump() -> None:
            while True:
                chunks = [await queue.get()]
                while not queue.empty():
                    chunks.append(queue.get_nowait())
                body = b"".join(chunks)
                await send({"type": "http.response.body", "body": body, "more_body": True})

        pumping = asyncio.create_task(pump())
        while (await receive())["type"] != "http.disconnect":
            pass
        pumping.cancel()
    finally:
        SINKS[user].remove(sink)


async def _gateway(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": '{"op":10,"d":{"heartbeat_interval":30000}}'})
    first = await receive()
    if first["type"] != "websocket.receive":
        return
    frame = orjson.loads(first.get("text") or first.get("bytes") or b"{}")
    user = TOKENS.get((frame.get("d") or {}).get("token", ""))
    if user is None:
        await send({"type": "websocket.close", "code": 4004})
        return
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    sink = (queue, False)
    SINKS.setdefault(user, []).append(sink)

    async def pump() -> None:
        while True:
            await send({"type": "websocket.send", "text": (await queue.get()).decode()})

    await send(
        {"type": "websocket.send", "text": f'{{"op":0,"t":"ready","d":{{"user_id":"{user}"}}}}'}
    )
    pumping = asyncio.create_task(pump())
    try:
        while (await receive())["type"] != "websocket.disconnect":
            pass  # heartbeats: nothing to answer in a ceiling
    finally:
        pumping.cancel()
        SINKS[user].remove(sink)


def _new_channel(members: set[str]) -> str:
    channel = str(uuid.uuid4())
    CHANNELS[channel] = members
    SEQS[channel] = 0
    return channel


async def _post(send: Send, receive: Receive, user: str | None, path: list[str]) -> None:
    body = await _json(receive)
    if path[:3] == ["", "api", "auth"]:  # register
        new, token = str(uuid.uuid4()), secrets.token_urlsafe(24)
        TOKENS[token] = new
        AUTHORS[new] = {
            "id": new,
            "username": body.get("username", ""),
            "display_name": None,
            "avatar_url": None,
            "deleted": False,
        }
        return await _answer(send, 201, {"user": {"id": new}, "access_token": token})
    if user is None:
        return await _answer(send, 401, {"code": "UNAUTHORIZED", "message": "log in"})
    if path[2] == "users":  # friend requests (a group takes its owner's friends): granted
        return await _answer(send, 201, {"id": str(uuid.uuid4())})
    if path[2] == "conversations":
        channel = _new_channel({user, *body.get("participant_ids", [])})
        return await _answer(send, 201, {"id": channel, "kind": "group"})
    if path[2] == "servers" and len(path) == 3:
        server = str(uuid.uuid4())
        SERVERS[server] = _new_channel({user})
        channels = [{"id": SERVERS[server], "name": "general"}]
        roles = [{"id": server, "name": "@everyone"}]
        return await _answer(send, 201, {"id": server, "channels": channels, "roles": roles})
    if path[2] == "servers":  # an invite
        code = secrets.token_urlsafe(6)
        INVITES[code] = path[3]
        return await _answer(send, 201, {"code": code})
    CHANNELS[SERVERS[INVITES[path[3]]]].add(user)  # joining by invite
    return await _answer(send, 200, {"id": INVITES[path[3]]})


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["type"] == "websocket":
        return await _gateway(scope, receive, send)
    path, method, user = scope["path"].split("/"), scope["method"], _user(scope)
    if method == "PUT" and user is not None and len(path) == 6:
        return await _put_message(send, receive, user, path)
    if method == "POST":
        return await _post(send, receive, user, path)
    if method == "GET" and scope["path"] == "/api/events" and user is not None:
        return await _stream(scope, receive, send, user)
    if method == "GET" and scope["path"] == "/ready":
        return await _answer(send, 200, {"status": "ready"})
    await _answer(send, 404, {"code": "NOT_FOUND", "message": "not in the ceiling's subset"})


class MessageIn(BaseModel):
    content: str = Field(max_length=100_000)


def framework_app() -> Any:
    """The same subset as `app`, as FastAPI routes (XFChat's framework)."""
    api = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    def who(authorization: str | None) -> str | None:
        return TOKENS.get((authorization or "").removeprefix("Bearer "))

    def json(status: int, body: Any) -> Response:
        data = body if isinstance(body, bytes) else orjson.dumps(body)
        return Response(data, status, media_type="application/json")

    @api.put("/api/channels/{channel_id}/messages/{message_id}", status_code=201)
    async def put_message(
        channel_id: uuid.UUID,
        message_id: uuid.UUID,
        body: MessageIn,
        authorization: str | None = Header(None),
    ) -> Response:
        user = who(authorization)
        channel, mid = str(channel_id), str(message_id)
        members = CHANNELS.get(channel)
        if user is None or members is None or user not in members:
            return json(404, {"code": "CHANNEL_NOT_FOUND", "message": "no"})
        if mid in MESSAGES:
            return json(200, MESSAGES[mid])
        data = _store(channel, mid, user, body.content)
        _deliver(members, f"{channel}:{SEQS[channel]}", data)
        return json(201, data)

    @api.get("/api/events")
    async def events(request: Request, authorization: str | None = Header(None)) -> Response:
        user = who(authorization)
        if user is None:
            return json(401, {"code": "UNAUTHORIZED", "message": "log in"})
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        sink = (queue, True)
        SINKS.setdefault(user, []).append(sink)

        async def stream() -> Any:
            try:
                yield b"retry: 1000\n\nevent: ready\ndata: " + orjson.dumps({"user_id": user})
                yield b"\n\n"
                while True:
                    chunks = [await queue.get()]
                    while not queue.empty():
                        chunks.append(queue.get_nowait())
                    yield b"".join(chunks)
            finally:
                SINKS[user].remove(sink)

        return StreamingResponse(stream(), media_type="text/event-stream")

    @api.websocket("/api/gateway")
    async def gateway(ws: WebSocket) -> None:
        await _gateway(ws.scope, ws.receive, ws.send)

    @api.post("/{path:path}")
    async def post(request: Request, path: str) -> Response:
        answers: list[Response] = []

        async def capture(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                answers.append(Response(status_code=message["status"]))
            else:
                answers[0].body = message["body"]

        await _post(capture, request.receive, _user(request.scope), request.url.path.split("/"))
        return json(answers[0].status_code, answers[0].body)

    @api.get("/ready")
    async def ready() -> Response:
        return json(200, {"status": "ready"})

    return api


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--raw", action="store_true", help="a bare ASGI callable, no framework")
    args = parser.parse_args()
    kind = "raw ASGI" if args.raw else "FastAPI"
    print(f"ceiling ({kind}) on 127.0.0.1:{args.port}", file=sys.stderr, flush=True)
    uvicorn.run(
        app if args.raw else framework_app(),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=1,
    )


if __name__ == "__main__":
    main()
