"""Cross-origin requests: only from XFCHAT_CORS_ORIGINS (empty by default)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
import pytest

from tests.factories import TestUser
from xfchat.dev import own_origins
from xfchat.settings import Settings, parse_origins

AppWith = Callable[..., Awaitable[httpx.AsyncClient]]
MakeUser = Callable[..., Awaitable[TestUser]]
ALLOWED = "https://chat.example.com"


def preflight(origin: str, method: str = "POST", headers: str = "authorization,content-type"):
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": headers,
    }


async def test_a_preflight_from_an_allowed_origin_is_answered(app_with: AppWith) -> None:
    client = await app_with(cors_origins=f"{ALLOWED},http://localhost:5173")
    answer = await client.options("/api/conversations", headers=preflight(ALLOWED))
    assert answer.status_code == 204
    assert answer.headers["access-control-allow-origin"] == ALLOWED
    allowed = answer.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed and "content-type" in allowed
    assert "POST" in answer.headers["access-control-allow-methods"]
    assert answer.headers["access-control-max-age"] == "600"
    # Braid-HTTP subscriptions and SSE resumption from a page on that origin.
    braid = await client.options(
        "/api/channels/00000000-0000-4000-8000-000000000000/messages",
        headers=preflight(ALLOWED, "GET", "authorization,subscribe,parents,heartbeats"),
    )
    assert braid.status_code == 204
    # An audit log reason with a moderation, a range of a download (a client found
    # both refused).
    for method, path, asked in [
        ("PATCH", "/api/servers/00000000-0000-4000-8000-000000000000", "x-audit-log-reason"),
        ("GET", "/api/attachments/00000000-0000-4000-8000-000000000000", "range,if-range"),
    ]:
        answer = await client.options(path, headers=preflight(ALLOWED, method, asked))
        assert answer.status_code == 204, (asked, answer.text)


async def test_a_preflight_from_another_origin_is_a_clear_400(app_with: AppWith) -> None:
    client = await app_with(cors_origins=ALLOWED)
    answer = await client.options("/api/conversations", headers=preflight("https://evil.test"))
    assert answer.status_code == 400
    assert answer.json()["code"] == "CORS_REFUSED"
    assert "access-control-allow-origin" not in answer.headers
    odd_header = await client.options(
        "/api/conversations", headers=preflight(ALLOWED, headers="x-something")
    )
    assert odd_header.status_code == 400 and "headers" in odd_header.json()["message"]


async def test_responses_to_an_allowed_origin_expose_the_rate_limit_and_version_headers(
    app_with: AppWith, make_user: MakeUser
) -> None:
    client = await app_with(cors_origins=ALLOWED)
    ann = await make_user("ann")
    me = await client.get("/api/users/@me", headers={**ann.headers, "Origin": ALLOWED})
    assert me.status_code == 200
    assert me.headers["access-control-allow-origin"] == ALLOWED
    exposed = {h.strip().lower() for h in me.headers["access-control-expose-headers"].split(",")}
    assert {"x-ratelimit-remaining", "retry-after", "version", "link", "x-has-more"} <= exposed
    assert {"content-disposition", "content-range", "accept-ranges"} <= exposed
    assert "x-ratelimit-remaining" in me.headers
    # An error answered on the way in carries them too, so the page can read it.
    refused = await client.get("/api/users/@me", headers={"Origin": ALLOWED})
    assert refused.status_code == 401
    assert refused.headers["access-control-allow-origin"] == ALLOWED
    other = await client.get(
        "/api/users/@me", headers={**ann.headers, "Origin": "https://evil.test"}
    )
    assert "access-control-allow-origin" not in other.headers


async def test_no_origin_is_allowed_by_default(client: httpx.AsyncClient) -> None:
    answer = await client.options("/api/conversations", headers=preflight(ALLOWED))
    assert "access-control-allow-origin" not in answer.headers
    assert answer.status_code == 405 and answer.json()["code"] == "METHOD_NOT_ALLOWED"


def test_origins_are_parsed_strictly() -> None:
    assert parse_origins(" https://a.example , http://localhost:5173/ ") == [
        "https://a.example",
        "http://localhost:5173",
    ]
    assert parse_origins("") == []
    assert parse_origins("*") == ["*"]
    for bad in ("a.example", "https://a.example/path", "*,https://a.example", "ftp://a.example"):
        with pytest.raises(ValueError):
            parse_origins(bad)


def test_dev_allows_its_own_origin(settings: Settings) -> None:
    port = settings.model_copy(update={"port": 3000})
    assert own_origins(port) == ["http://127.0.0.1:3000", "http://localhost:3000"]
