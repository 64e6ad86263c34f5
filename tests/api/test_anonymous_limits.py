"""What anyone may ask without a token (probes, the API document, stored images, the
client's files) is limited per client address in the process's memory
(XFCHAT_RATE_ANONYMOUS_IP), and those who ask /ready at once share one check."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import httpx
from fastapi import FastAPI

from tests.factories import AppWith, MakeUser
from tests.openapi_check import check_responses
from xfchat.domain.health import Readiness, SharedReadiness, check_ready

ANONYMOUS = [
    "/health",
    "/ready",
    "/",
    "/web/app.css",
    f"/api/media/{uuid.uuid4()}",  # (a 404 counts too)
    "/openapi.json",
    "/docs",
]


async def test_anonymous_routes_share_a_window_per_address_and_answer_429_past_it(
    app_with: AppWith, make_user: MakeUser
) -> None:
    rule = len(ANONYMOUS)
    first = await app_with("203.0.113.7", rate_anonymous_ip=f"{rule}/60")
    answers = [await first.get(path) for path in ANONYMOUS]
    assert [a.status_code for a in answers] == [200, 200, 200, 200, 404, 200, 200]
    assert answers[0].headers["x-ratelimit-bucket"] == "anonymous"
    assert answers[-1].headers["x-ratelimit-remaining"] == "0"
    refused = await first.get("/web/app.css")
    assert refused.status_code == 429
    assert refused.json()["code"] == "RATE_LIMITED"
    assert refused.json()["bucket"] == "anonymous"
    assert 0 < int(refused.headers["retry-after"]) <= 60
    assert (await first.get("/health")).status_code == 429
    # Routes with a token are counted per user, not here.
    ann = await make_user()
    me = await first.get("/api/users/@me", headers=ann.headers)
    assert me.status_code == 200 and me.headers["x-ratelimit-bucket"] != "anonymous"
    # Another address has its own window; an IPv6 address is counted by its /64.
    other, near, same_64, next_64 = (
        _from(first, ip)
        for ip in ("203.0.113.8", "2001:db8::1", "2001:db8::ffff", "2001:db8:0:1::1")
    )
    assert (await other.get("/health")).status_code == 200
    for _ in range(rule):
        assert (await near.get("/health")).status_code == 200
    assert (await same_64.get("/health")).status_code == 429
    assert (await next_64.get("/health")).status_code == 200


def _from(client: httpx.AsyncClient, ip: str) -> httpx.AsyncClient:
    """A client of the same app whose requests come from `ip`."""
    app = client._transport.app  # type: ignore[attr-defined]
    transport = httpx.ASGITransport(app=app, client=(ip, 40000))
    return check_responses(httpx.AsyncClient(transport=transport, base_url="http://test"))


async def test_ready_is_one_check_for_everyone_asking_at_once(
    app: FastAPI, pool: asyncpg.Pool
) -> None:
    checks = 0

    async def counted() -> Readiness:
        nonlocal checks
        checks += 1
        return await check_ready(pool, app.state.expected_migrations)

    shared = SharedReadiness(counted)
    answers = await asyncio.gather(*(shared() for _ in range(50)))
    assert all(a.ready for a in answers) and checks == 1
    assert (await shared()).ready and checks == 2  # a later caller gets a check of its own
    # A caller that goes away does not cancel the check the others wait for.
    leaving = asyncio.ensure_future(shared())
    staying = asyncio.ensure_future(shared())
    await asyncio.sleep(0)
    leaving.cancel()
    assert (await staying).ready and checks == 3
