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
from tests.support import METRICS_HEADERS
from xfchat.domain.health import Readiness, SharedReadiness, check_ready

ANONYMOUS = [
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
    assert [a.status_code for a in answers] == [200, 200, 200, 404, 200, 200]
    assert answers[0].headers["x-ratelimit-bucket"] == "anonymous"
    assert answers[-1].headers["x-ratelimit-remaining"] == "0"
    refused = await first.get("/web/app.css")
    assert refused.status_code == 429
    assert refused.json()["code"] == "RATE_LIMITED"
    assert refused.json()["bucket"] == "anonymous"
    assert 0 < int(refused.headers["retry-after"]) <= 60
    assert (await first.get("/ready")).status_code == 429
    # The liveness probe costs nothing and is never refused; routes with a token are
    # counted per user, not here.
    assert (await first.get("/health")).status_code == 200
    ann = await make_user()
    me = await first.get("/api/users/@me", headers=ann.headers)
    assert me.status_code == 200 and me.headers["x-ratelimit-bucket"] != "anonymous"
    # Another address has its own window; refusals are counted under a route of their own.
    other = _from(first, "203.0.113.8")
    assert (await other.get("/ready")).status_code == 200
    text = (await other.get("/metrics", headers=METRICS_HEADERS)).text
    assert 'route="(anonymous limit)",status="429"} 2.0' in text


async def test_ipv6_counts_by_64_and_by_48_and_what_is_no_address_shares_one_window(
    app_with: AppWith,
) -> None:
    first = await app_with("2001:db8::1", rate_anonymous_ip="1/60")
    assert (await first.get("/ready")).status_code == 200
    assert (await _from(first, "2001:db8::ffff").get("/ready")).status_code == 429  # same /64
    # Other /64s of the /48 each get the rule, and the /48 sixteen times it: 16 requests,
    # counted refused or not (this is the 17th).
    for i in range(1, 15):
        assert (await _from(first, f"2001:db8:0:{i}::1").get("/ready")).status_code == 200
    assert (await _from(first, "2001:db8:0:99::1").get("/ready")).status_code == 429
    assert (await _from(first, "2001:db8:1::1").get("/ready")).status_code == 200  # next /48
    # A full table: a new client is counted once, in its network's crowd (16 times the
    # rule), not in windows of its own.
    limiter, _ = _app(first).state.anonymous
    limiter.max_keys = len(limiter)
    crowded = await _from(first, "2001:db8:77::1").get("/ready")
    assert crowded.status_code == 200
    assert (crowded.headers["x-ratelimit-limit"], crowded.headers["x-ratelimit-remaining"]) == (
        "16",
        "15",
    )
    limiter.max_keys = 65_536
    # A client address that is no IP (an untrusted proxy's header, say) chooses no key.
    assert (await _from(first, "junk-1").get("/ready")).status_code == 200
    assert (await _from(first, "junk-2").get("/ready")).status_code == 429


def _app(client: httpx.AsyncClient) -> FastAPI:
    return client._transport.app  # type: ignore[attr-defined, no-any-return]


def _from(client: httpx.AsyncClient, ip: str) -> httpx.AsyncClient:
    """A client of the same app whose requests come from `ip`."""
    transport = httpx.ASGITransport(app=_app(client), client=(ip, 40000))
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
