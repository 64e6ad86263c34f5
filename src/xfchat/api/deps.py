"""Dependencies every router shares: the connection, the settings, the current actor,
rate limits."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any, TypeVar

import asyncpg
from fastapi import Depends, Header, Query, Request

from xfchat.api.edge import DECISIONS
from xfchat.domain.accounts import (
    Actor,
    ClientInfo,
    SessionCache,
    authenticate,
    authenticate_quick,
)
from xfchat.domain.rate_limits import Decision, RateLimiter, address_checks, address_of
from xfchat.errors import Conflict, RateLimited, Unauthorized
from xfchat.settings import RateLimit, Settings


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_pool(request: Request) -> asyncpg.Pool:
    return request.app.state.pool


async def get_conn(request: Request) -> AsyncIterator[asyncpg.Connection]:
    async with request.app.state.pool.acquire() as conn:
        yield conn


T = TypeVar("T")


def app_slots(request: Request, name: str, make: Callable[[], T]) -> T:
    """The app's `name` (a bound on jobs running at once): one per app, so one per
    process, made by `make` on first use (an asyncio primitive belongs to the app's
    loop)."""
    state = request.app.state
    slots: T | None = getattr(state, name, None)
    if slots is None:
        slots = make()
        setattr(state, name, slots)
    return slots


# Tabs and line breaks read as spaces; every other control character (C0, DEL, C1) goes.
# (Unicode's line and paragraph separators are line breaks too: they were kept, and an
# audit-log reason or a session's device name broke its line where it is shown.)
_CONTROLS = {
    **{c: None for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))},
    **{ord(c): " " for c in "\t\n\v\f\r\x1c\x1d\x1e\x1f\x85\u2028\u2029"},
}


def header_bytes_text(value: str) -> str:
    """A header's text as its sender wrote it: the server hands a header's bytes over as
    Latin-1, so raw UTF-8 (what browsers, curl and most clients send) arrived as mojibake
    ("Ã©" for "é", C1 controls for some). Bytes that are valid UTF-8 are read as UTF-8,
    any others stay Latin-1."""
    raw = value.encode("latin-1", errors="replace")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return value


def without_controls(text: str) -> str:
    return text.translate(_CONTROLS)


def client_info(request: Request) -> ClientInfo:
    agent = request.headers.get("user-agent")
    return ClientInfo(
        ip=address_of(request.client.host if request.client else None),
        user_agent=None if agent is None else without_controls(header_bytes_text(agent)),
    )


def live_session_cache(state: Any) -> SessionCache | None:
    """The cache of live sessions, usable only while the hub listens and has handed
    over every commit announced to it (it is how this process hears of revocations
    elsewhere: one waiting behind a commit read from the log is not heard yet)."""
    hub = state.hub
    return state.sessions if hub is not None and hub.caught_up else None


def record_decision(request: Request, decision: Decision) -> None:
    """Remember a rate-limit decision; the edge middleware puts the tightest one on the
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
    (decision,) = await check_limits(request, [(bucket, key, rule)], conn)
    return decision


async def check_limits(
    request: Request,
    checks: list[tuple[str, str, RateLimit]],
    conn: asyncpg.Connection | None = None,
    *,
    enforce: bool = True,
    record: bool = True,
) -> list[Decision]:
    """Count this request in several buckets (one statement); raises RateLimited (429)
    when over one of them, unless `enforce` is off (the count stands either way). With
    `record` off the response's X-RateLimit headers leave these buckets out (a hit that
    may be given back)."""
    limiter: RateLimiter = request.app.state.limiter
    if conn is None:
        async with request.app.state.pool.acquire() as own:
            decisions = await limiter.check_many(own, checks)
    else:
        decisions = await limiter.check_many(conn, checks)
    for decision in decisions if record else ():
        record_decision(request, decision)
    if enforce:
        for decision in decisions:
            decision.enforce()
    return decisions


async def check_address_limits(
    request: Request,
    checks: list[tuple[str, str, RateLimit]],
    *,
    enforce: bool = True,
    record: bool = True,
) -> list[Decision]:
    """check_limits for the checks of one client address (domain/rate_limits.py's
    address_checks), the widest first, stopping at a refusal: a network past its rule
    opens no window of its own for each address in it (an IPv6 /48 holds 65,536 /64s,
    each a row in `rate_limits` for its window), as the limits kept in memory count
    (domain/local_limits.py). The decisions, widest first: those of the first checks
    of `widest_first(checks)`, the ones counted."""
    decisions = []
    for check in widest_first(checks):
        (decision,) = await check_limits(request, [check], enforce=enforce, record=record)
        decisions.append(decision)
        if not decision.allowed:
            break
    return decisions


def widest_first(checks: list[tuple[str, str, RateLimit]]) -> list[tuple[str, str, RateLimit]]:
    """address_checks in the order check_address_limits counts them."""
    return checks[::-1]


async def give_back(request: Request, checks: list[tuple[str, str, RateLimit]]) -> None:
    """Take back this request's hit in buckets it was counted in (see
    RateLimiter.give_back)."""
    limiter: RateLimiter = request.app.state.limiter
    async with request.app.state.pool.acquire() as conn:
        for bucket, key, _ in checks:
            await limiter.give_back(conn, bucket, key)


@contextlib.asynccontextmanager
async def counted_if_email_taken(
    request: Request, ip: str | None, settings: Settings
) -> AsyncIterator[None]:
    """The block counted in the client address's `auth.register.taken` (EMAIL_TAKEN
    says an email is registered: XFCHAT_RATE_REGISTER_TAKEN_IP), as registration and
    an email change count it: a place taken up front (answers sent at once cannot all
    pass a check made before them), given back unless the block is answered
    EMAIL_TAKEN, so the bucket holds the address's EMAIL_TAKEN answers and the tries
    in flight; an address past its share waits (429, RateLimited) before the block.

    Raises: RateLimited; what the block raises."""
    checks = address_checks("auth.register.taken", ip, settings.rate_register_taken_ip)
    decisions = await check_address_limits(request, checks, enforce=False, record=False)
    counted = widest_first(checks)[: len(decisions)]  # (a refusal stops the counting there)
    told = False
    try:
        for decision in decisions:
            decision.enforce()
        yield
    except Conflict as exc:
        told = exc.code == "EMAIL_TAKEN"
        raise
    finally:
        if not told:
            await give_back(request, counted)


def ip_limit(bucket: str, setting: str) -> Any:
    """A dependency limiting a route per client address with the rule in
    `settings.<setting>` (an IPv6 one: its /64, and its /48 more loosely)."""

    async def dependency(request: Request) -> None:
        rule = getattr(get_settings(request), setting)
        await check_address_limits(request, address_checks(bucket, client_info(request).ip, rule))

    return Depends(dependency)


async def password_limit(request: Request, actor: Actor) -> None:
    """Count a try of the actor's password (argon2 work) in their session's
    `account.password` bucket (XFCHAT_RATE_PASSWORD_USER), then, if it passed, in the
    account's `account.password.all` (XFCHAT_RATE_PASSWORD_ACCOUNT, wider): a stolen
    token can guess only so often, and cannot spend its owner's tries (the owner's own
    session has its own), nor keep the CPU busy for everyone. A session keeps its id
    across refreshes, and every session is made with the password (a login, its second
    step, a registration), so one cannot be traded for a fresh budget without it; the
    account's bucket bounds the work of many sessions at once, and is four sessions'
    worth, so one thief's session leaves the owner most of it.

    Raises: RateLimited (429)."""
    settings = get_settings(request)
    await session_limit(
        request,
        actor,
        "account.password",
        settings.rate_password_user,
        settings.rate_password_account,
    )


async def session_limit(
    request: Request,
    actor: Actor,
    bucket: str,
    session_rule: RateLimit,
    account_rule: RateLimit,
    conn: asyncpg.Connection | None = None,
) -> None:
    """Count a try in the actor's session's `bucket`, then, if it passed, in the
    account's `<bucket>.all` (wider); a try the account's bucket refused is given back
    to the session's (refused before any work: not spent).

    Raises: RateLimited (429)."""
    session = (bucket, f"session:{actor.session_id}", session_rule)
    await check_limit(request, *session, conn)
    try:
        await check_limit(request, f"{bucket}.all", str(actor.user_id), account_rule, conn)
    except RateLimited:  # (refused before any work: not spent)
        if conn is None:
            await give_back(request, [session])
        else:  # (on the caller's connection: no second one taken while it is held)
            limiter: RateLimiter = request.app.state.limiter
            await limiter.give_back(conn, session[0], session[1])
        raise


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise Unauthorized(
            "this needs an access token: Authorization: Bearer <token>",
            code="MISSING_TOKEN",
            token_error=False,
        )
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        # (RFC 6750 3.1: another scheme is no token at all, so the challenge names no error)
        raise Unauthorized(
            "the Authorization header must be: Bearer <token>",
            code="INVALID_TOKEN",
            token_error=False,
        )
    return token.strip()


LimitsOf = Callable[[Actor], list[tuple[str, str, RateLimit]]]


async def authenticate_request(
    request: Request, token: str, limits: LimitsOf | None = None
) -> Actor:
    """A valid access token of a live session, then the per-user API rate limit (and any
    other `limits`, counted in the same statement); counts the request in the user's
    usage. Holds a connection only while it checks."""
    state = request.app.state
    settings = get_settings(request)
    cache = live_session_cache(state)
    async with state.pool.acquire() as conn:
        actor, user = await authenticate(conn, settings, token, cache)
        checks = [
            ("api", str(actor.user_id), settings.rate_api_user),
            *(limits(actor) if limits else []),
        ]
        decisions = await state.limiter.check_many(conn, checks)
    for decision in decisions:
        record_decision(request, decision)
    for decision in decisions:
        decision.enforce()
    state.usage.count_request(actor.user_id)
    request.state.user = user
    return actor


def counted_actor(*buckets: str) -> Callable[..., Awaitable[Actor]]:
    """CurrentActor, also counted in each of these per-user buckets (their rules are the
    settings `rate_<bucket>_user`), in the same statement as the API limit and before a
    byte of the body is read."""
    names = [f"rate_{bucket}_user" for bucket in buckets]
    assert all(name in Settings.model_fields for name in names), names

    async def actor(
        request: Request, authorization: Annotated[str | None, Header()] = None
    ) -> Actor:
        settings = get_settings(request)
        rules: list[RateLimit] = [getattr(settings, name) for name in names]
        return await authenticate_request(
            request,
            bearer_token(authorization),
            lambda actor: [
                (bucket, str(actor.user_id), rule)
                for bucket, rule in zip(buckets, rules, strict=True)
            ],
        )

    return actor


async def current_actor(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> Actor:
    """The one authentication dependency of every protected route."""
    return await authenticate_request(request, bearer_token(authorization))


async def identify(request: Request) -> Actor:
    """Authentication alone, for the send routes (their rate limits are counted by the
    message writer, in its own transaction): usually no database round trip at all, the
    session being in the cache of live sessions."""
    state = request.app.state
    settings = get_settings(request)
    token = bearer_token(request.headers.get("authorization"))
    cache = live_session_cache(state)
    actor, user = await authenticate_quick(settings, token, cache, state.pool)
    state.usage.count_request(actor.user_id)
    request.state.user = user
    return actor


async def stream_actor(
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
    access_token: Annotated[str | None, Query(max_length=4096)] = None,
) -> Actor:
    """For streams a browser opens with EventSource, which cannot send headers: the
    token may come as `?access_token=` instead (only on these routes). Counted in the
    user's real-time connection bucket too."""
    token = access_token if authorization is None and access_token else None
    # (a HEAD too: it opens no connection, but reads what its GET would follow)
    return await authenticate_request(
        request, token or bearer_token(authorization), realtime_limit(request)
    )


def realtime_limit(request: Request) -> LimitsOf:
    """The bucket every new real-time connection (SSE, Braid, the gateway) counts in."""
    rule = get_settings(request).rate_realtime_user
    return lambda actor: [(REALTIME_BUCKET, str(actor.user_id), rule)]


REALTIME_BUCKET = "realtime.connect"


Conn = Annotated[asyncpg.Connection, Depends(get_conn)]
Pool = Annotated[asyncpg.Pool, Depends(get_pool)]
CurrentActor = Annotated[Actor, Depends(current_actor)]
StreamActor = Annotated[Actor, Depends(stream_actor)]
AppSettings = Annotated[Settings, Depends(get_settings)]
Client = Annotated[ClientInfo, Depends(client_info)]
