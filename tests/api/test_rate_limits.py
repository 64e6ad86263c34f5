from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.factories import PASSWORD, AppWith, MakeUser

HEADERS = (
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "x-ratelimit-reset-after",
    "x-ratelimit-bucket",
)


def assert_limited(response: httpx.Response, limit: int, bucket: str) -> None:
    assert response.status_code == 429, response.text
    body = response.json()
    assert body["code"] == "RATE_LIMITED" and body["bucket"] == bucket
    for name in (*HEADERS, "retry-after"):
        assert name in response.headers, name
    assert response.headers["x-ratelimit-limit"] == str(limit)
    assert response.headers["x-ratelimit-remaining"] == "0"
    assert response.headers["x-ratelimit-bucket"] == bucket
    assert int(response.headers["retry-after"]) >= 1
    assert 0 < float(response.headers["x-ratelimit-reset-after"]) <= 300


async def test_successful_responses_carry_the_rate_limit_headers(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    user = await make_user()
    first = await client.get("/api/users/@me", headers=user.headers)
    second = await client.get("/api/users/@me", headers=user.headers)
    for name in HEADERS:
        assert name in first.headers, name
    assert first.headers["x-ratelimit-bucket"] == "api"
    assert first.headers["x-ratelimit-limit"] == "600"
    assert (
        int(first.headers["x-ratelimit-remaining"]) - int(second.headers["x-ratelimit-remaining"])
        == 1
    )
    assert "retry-after" not in first.headers


async def test_login_is_limited_per_ip(app_with: AppWith, make_user: MakeUser) -> None:
    user = await make_user()
    client = await app_with(rate_login_ip="3/300")
    statuses = []
    for _ in range(3):
        r = await client.post(
            "/api/auth/login", json={"login": user.username, "password": "wrong-wrong"}
        )
        statuses.append(r.status_code)
        assert r.headers["x-ratelimit-limit"] in {"3", "10"}
    assert statuses == [401, 401, 401]
    blocked = await client.post(
        "/api/auth/login", json={"login": user.username, "password": PASSWORD}
    )
    assert_limited(blocked, 3, "auth.login")  # even the right password waits
    other_ip = await app_with(ip="10.9.9.9", rate_login_ip="3/300")
    ok = await other_ip.post("/api/auth/login", json={"login": user.username, "password": PASSWORD})
    assert ok.status_code == 200


async def test_login_is_limited_per_account_whatever_the_ip(
    app_with: AppWith, make_user: MakeUser
) -> None:
    user, bystander = await make_user(), await make_user()
    results = []
    for i in range(3):
        client = await app_with(ip=f"10.0.0.{i + 1}", rate_login_account="2/300")
        results.append(
            await client.post(
                "/api/auth/login", json={"login": user.username.upper(), "password": "wrong-wrong"}
            )
        )
    assert [r.status_code for r in results[:2]] == [401, 401]
    assert_limited(results[2], 2, "auth.login.account")
    fine = await client.post(
        "/api/auth/login", json={"login": bystander.username, "password": PASSWORD}
    )
    assert fine.status_code == 200


async def test_register_is_limited_per_ip(app_with: AppWith) -> None:
    client = await app_with(rate_register_ip="2/300")
    responses = [
        await client.post(
            "/api/auth/register",
            json={"username": f"fresh{i}", "email": f"fresh{i}@example.com", "password": PASSWORD},
        )
        for i in range(3)
    ]
    assert [r.status_code for r in responses[:2]] == [201, 201]
    assert_limited(responses[2], 2, "auth.register")


async def test_the_api_is_limited_per_user(app_with: AppWith, make_user: MakeUser) -> None:
    user, other = await make_user(), await make_user()
    client = await app_with(rate_api_user="3/300")
    codes = [
        (await client.get("/api/users/@me", headers=user.headers)).status_code for _ in range(4)
    ]
    assert codes == [200, 200, 200, 429]
    limited = await client.get("/api/users/@me", headers=user.headers)
    assert_limited(limited, 3, "api")
    assert (await client.get("/api/users/@me", headers=other.headers)).status_code == 200


async def test_friend_requests_are_limited_per_sender(
    app_with: AppWith, make_user: MakeUser
) -> None:
    """Sending and cancelling a request over and over notified its target each time."""
    ann, ben, cid = await make_user(), await make_user(), await make_user()
    client = await app_with(rate_friend_requests_user="3/300")
    url = "/api/users/@me/friend-requests"
    for _ in range(3):
        sent = await client.post(url, headers=ann.headers, json={"username": ben.username})
        assert sent.status_code == 201, sent.text
        gone = await client.delete(f"{url}/{sent.json()['id']}", headers=ann.headers)
        assert gone.status_code == 204, gone.text
    limited = await client.post(url, headers=ann.headers, json={"username": ben.username})
    assert_limited(limited, 3, "friend_requests")
    sent = await client.post(url, headers=cid.headers, json={"username": ben.username})
    assert sent.status_code == 201  # per sender


async def test_a_limit_lifts_when_its_window_ends(app_with: AppWith, make_user: MakeUser) -> None:
    user = await make_user()
    client = await app_with(rate_api_user="2/2")
    for _ in range(20):  # start at the beginning of a window so the test is not racing its end
        r = await client.get("/api/users/@me", headers=user.headers)
        if r.status_code == 429:
            break
        assert r.status_code == 200, r.text
    else:
        pytest.fail("20 requests against a limit of 2 per 2 s were never refused")
    assert_limited(r, 2, "api")
    wait = float(r.headers["x-ratelimit-reset-after"])
    await asyncio.sleep(wait + 0.05)
    again = await client.get("/api/users/@me", headers=user.headers)
    assert again.status_code == 200
    assert again.headers["x-ratelimit-remaining"] == "1"
