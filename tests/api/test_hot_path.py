"""The send's route answered in front of the app's stack (api/hot_path.py) keeps what
the stack gave it: the edge (body limit, metrics, rate-limit headers), CORS, and the
app's exception handlers, the catch-all outside the edge."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
from fastapi import FastAPI
from starlette.types import Message

from tests import factories
from tests.factories import AppWith, MakeUser
from tests.support import METRICS_HEADERS
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
    # Counted as through the stack: under the documented route once routed, and a
    # refusal of the declared length before routing as "unmatched".
    text = (await client.get("/metrics", headers=METRICS_HEADERS)).text
    assert f'method="PUT",route="{ROUTE}",status="201"}} 1.0' in text
    assert f'method="PUT",route="{ROUTE}",status="413"}} 1.0' in text
    assert 'method="PUT",route="unmatched",status="413"} 1.0' in text


def bare_app() -> FastAPI:
    """An app without its pool: a token check then fails unexpectedly."""
    settings = Settings(
        database_url="postgresql://unused@127.0.0.1/unused", secret=os.urandom(32).hex()
    )
    return create_app(settings)


async def test_an_unexpected_error_is_a_500_in_json_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    transport = httpx.ASGITransport(app=bare_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        answer = await client.put(
            put_url(str(uuid.uuid4())),
            headers={"Authorization": "Bearer a.b.c"},
            json={"content": "hi"},
        )
    assert answer.status_code == 500 and answer.json()["code"] == "INTERNAL_ERROR"
    logged = [r for r in caplog.records if r.name == "xfchat.api" and "unhandled" in r.message]
    assert len(logged) == 1


async def test_only_the_send_takes_the_hot_path() -> None:
    """The router marks the scope of what it routes: the send's never reaches it."""
    app = bare_app()
    send_path = f"/api/channels/{uuid.uuid4()}/messages/{uuid.uuid4()}"
    cases = [
        ("PUT", send_path, False),
        (
            "PUT",
            send_path.upper()
            .replace("/API/CHANNELS/", "/api/channels/")
            .replace("/MESSAGES/", "/messages/"),
            False,
        ),
        ("GET", send_path, True),
        ("PUT", send_path.replace("-", ""), True),  # (not 8-4-4-4-12: the stack answers)
        ("PUT", send_path + "/", True),
        ("GET", "/health", True),
    ]
    routed = []
    for method, path, _ in cases:
        scope = {
            "type": "http", "method": method, "path": path, "raw_path": path.encode(),
            "root_path": "", "scheme": "http", "query_string": b"", "headers": [],
            "client": ("127.0.0.1", 1), "server": ("t", 80), "http_version": "1.1",
            "asgi": {"version": "3.0"},
        }  # fmt: skip
        answers: list[Message] = []

        async def receive() -> Message:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Message, answers: list[Message] = answers) -> None:
            answers.append(message)

        await app(scope, receive, send)
        assert answers and answers[0]["type"] == "http.response.start"
        routed.append("router" in scope)
    assert routed == [expected for _, _, expected in cases]
