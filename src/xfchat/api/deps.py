"""Dependencies every router shares: the connection, the settings, the current actor,
rate limits."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, Header, Query, Request

from xfchat.domain.accounts import Actor, ClientInfo, authenticate
from xfchat.domain.ratelimit import Decision, RateLimiter
from xfchat.domain.usage import UsageRecorder
from xfchat.errors import Unauthorized
from xfchat.settings import RateLimit, Settings

DECISIONS = "ratelimit_decisions"


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_pool(request: Request) -> asyncpg.Pool:
    return request.app.state.pool


async def get_conn(request: Request) -> AsyncIterator[asyncpg.Connection]:
    async with request.app.state.pool.acquire() as conn:
        yield conn


def client_info(request: Request) -> ClientInfo:
    return ClientInfo(
        ip=request.client.host if request.client else None,
        user_agent=request.headers.get("user-agent"),
    )


def record_decision(request: Request, decision: Decision) -> None:
    """Remember a rate-limit decision; RateLimitHeaders puts the tightest one on the
    response."""
    request.scope.setdefault("state", {}).setdefault(DECISIONS, []).append(decision)


async def check_limit(
    request: Request,
    bucket: str,
    key: str,
    rule: RateLimit,
    conn: asyncpg.Connection | None = None,
) -> Decision:
    """Count this request in a bucket; raises RateLimited (429) when over the limit."""
    limiter: RateLimiter = request.app.state.limiter
    if conn is None:
        async with request.app.state.pool.acquire() as own:
            decision = await limiter.check(own, bucket, key, rule)
    else:
        decision = await limiter.check(conn, bucket, key, rule)
    record_decision(request, decision)
    return decision.enforce()


def ip_limit(bucket: str, setting: str) -> Any:
    """A dependency limiting a route per client IP with the rule in `settings.<setting>`."""

    async def dependency(request: Request) -> None:
        rule = getattr(get_settings(request), setting)
        await check_limit(request, bucket, client_info(request).ip or "unknown", rule)

    return Depends(dependency)


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise Unauthorized(
            "this needs an access token: Authorization: Bearer <token>",
            code="MISSING_TOKEN",
            token_error=False,
        )
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("the Authorization header must be: Bearer <token>", code="INVALID_TOKEN")
    return token.strip()


async def authenticate_request(request: Request, token: str) -> Actor:
    """A valid access token of a live session, then the per-user API rate limit; counts
    the request in the user's usage. Holds a connection only while it checks."""
    settings = get_settings(request)
    async with request.app.state.pool.acquire() as conn:
        actor, user = await authenticate(conn, settings, token)
        await check_limit(request, "api", str(actor.user_id), settings.rate_api_user, conn)
    usage: UsageRecorder = request.app.state.usage
    usage.count_request(actor.user_id)
    request.state.user = user
    return actor


async def current_actor(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> Actor:
    """The one authentication dependency of every protected route."""
    return await authenticate_request(request, bearer_token(authorization))


async def stream_actor(
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
    access_token: Annotated[str | None, Query(max_length=4096)] = None,
) -> Actor:
    """For streams a browser opens with EventSource, which cannot send headers: the
    token may come as `?access_token=` instead (only on these routes)."""
    if authorization is None and access_token:
        return await authenticate_request(request, access_token)
    return await authenticate_request(request, bearer_token(authorization))


Conn = Annotated[asyncpg.Connection, Depends(get_conn)]
Pool = Annotated[asyncpg.Pool, Depends(get_pool)]
CurrentActor = Annotated[Actor, Depends(current_actor)]
StreamActor = Annotated[Actor, Depends(stream_actor)]
AppSettings = Annotated[Settings, Depends(get_settings)]
Client = Annotated[ClientInfo, Depends(client_info)]
