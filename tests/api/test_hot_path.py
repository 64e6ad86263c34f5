"""The send's route answered in front of the app's stack (api/hot_path.py) keeps what
the stack gave it: the edge (body limit, metrics, rate-limit headers), CORS, and the
app's exception handlers, the catch-all outside the edge."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import httpx
import orjson
from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send

from tests import factories
from tests.factories import AppWith, MakeUser
from tests.support import METRICS_HEADERS
from xfchat.api.hot_path import hot_path
from xfchat.app import create_app
from xfchat.settings import Settings

ALLOWED = "https://chat.example.com"
ROUTE = "/api/channels/{channel_id}/messages/{message_id}"


def put_url(channel: str) -> str:
    return f"/api/channels/{channel}/messages/{uuid.uuid4()}"


async def test_the_hot_path_keeps_the_edge_cors_and_the_error_answers(
    app_with: AppWith, make_user: MakeUser
) -> None:
    client = await app_with(max_body_bytes=4096, cors_origins=ALLOWED)
    ann, _, dm = await factories.pair(client, make_user)
    headers = {**ann.headers, "Origin": ALLOWED}
    sent = await client.put(put_url(dm), headers=headers, json={"content": "hi"})
    assert sent.status_code == 201
    assert sent.headers["access-control-allow-origin"] == ALLOWED
    assert sent.headers["x-ratelimit-bucket"]
    # The body limit, declared and streamed.
    big = orjson.dumps({"content": "x" * 5000})
    declared = await client.put(put_url(dm), headers=headers, content=big)
    assert declared.status_code == 413 and declared.json()["code"] == "PAYLOAD_TOO_LARGE"

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield b" " * 1000
        yield big

    streamed = await client.put(put_url(dm), headers=headers, content=chunks())
    assert streamed.status_code == 413 and streamed.json()["code"] == "PAYLOAD_TOO_LARGE"
    # The app's handlers: a body that is no JSON, a missing token, a channel not yours.
    bad = await client.put(put_url(dm), headers=headers, content=b"{")
    assert bad.status_code == 400 and bad.json()["code"] == "MALFORMED_JSON"
    anonymous = await client.put(put_url(dm), json={"content": "hi"})
    assert anonymous.status_code == 401 and "www-authenticate" in anonymous.headers
    hidden = await client.put(put_url(str(uuid.uuid4())), headers=headers, json={"content": "x"})
    assert hidden.status_code == 404
    # Counted under the documented route.
    text = (await client.get("/metrics", headers=METRICS_HEADERS)).text
    assert f'method="PUT",route="{ROUTE}",status="201"}} 1.0' in text
    assert f'method="PUT",route="{ROUTE}",status="413"}} 2.0' in text


async def test_an_unexpected_error_is_a_500_in_json() -> None:
    """The catch-all answers outside the edge, as the stack's error middleware does
    (here: an app without its pool, whose token check then fails)."""
    settings = Settings(
        database_url="postgresql://unused@127.0.0.1/unused", secret=os.urandom(32).hex()
    )
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        answer = await client.put(
            put_url(str(uuid.uuid4())),
            headers={"Authorization": "Bearer a.b.c"},
            json={"content": "hi"},
        )
    assert answer.status_code == 500 and answer.json()["code"] == "INTERNAL_ERROR"


async def test_only_the_send_takes_the_hot_path() -> None:
    rest_saw: list[tuple[str, str]] = []

    async def rest(scope: Scope, receive: Receive, send: Send) -> None:
        rest_saw.append((scope["method"], scope["path"]))

    wrapped: list[str] = []

    def wrap(inner: ASGIApp) -> ASGIApp:
        async def layer(scope: Scope, receive: Receive, send: Send) -> None:
            wrapped.append(scope["path"])

        return layer

    dispatch = hot_path(Starlette(), rest, wrap)
    send_path = f"/api/channels/{uuid.uuid4()}/messages/{uuid.uuid4()}"
    cases = [
        ("PUT", send_path),
        ("GET", send_path),
        ("POST", send_path.rsplit("/", 1)[0]),
        ("PUT", send_path.replace("-", "")),  # (not 8-4-4-4-12: the stack answers it)
        ("PUT", send_path + "/"),
    ]
    for method, path in cases:
        scope = {"type": "http", "method": method, "path": path, "headers": []}
        await dispatch(scope, None, None)  # type: ignore[arg-type]
    assert wrapped == [send_path]
    assert rest_saw == cases[1:]
