"""The current user's account, sessions and usage; other users' public profiles."""

from __future__ import annotations

import contextlib
from datetime import date
from typing import Annotated, Literal
from uuid import UUID

from fastapi import Depends, Query, Request, Response
from pydantic import BaseModel, Field

from xfchat.api.deps import (
    AppSettings,
    Client,
    Conn,
    CurrentActor,
    Pool,
    check_limit,
    counted_actor,
    counted_if_email_taken,
    password_limit,
)
from xfchat.api.models import USERNAME, Instant, Text, UserPrivate, UserPublic, enforced
from xfchat.api.responses import JSONResponse
from xfchat.api.routing import api_router
from xfchat.api.two_factor import code_limit
from xfchat.domain import account_deletion, accounts, presence, profile, unchanged
from xfchat.domain.accounts import Actor
from xfchat.domain.event_payloads import PresencePayload, PublicUserPayload
from xfchat.domain.feeds import read_state_snapshot
from xfchat.domain.state import StatePayload
from xfchat.domain.usage import UsageRecorder
from xfchat.domain.validation import MAX_DISPLAY_NAME, MAX_STATUS_TEXT, MAX_URL
from xfchat.errors import BadRequest
from xfchat.realtime.cursor import Position, TokenCodec

router = api_router(prefix="/api/users", tags=["users"])


class PatchMeIn(BaseModel):
    """Only the fields present change; null clears display_name, status_text, avatar_url.
    To change `username` or `email`, `password` is needed (and `code` with two-factor sign-in
    on), as for a password change."""

    username: Text | None = Field(default=None, max_length=256, json_schema_extra=USERNAME)
    email: Text | None = Field(default=None, max_length=1024)
    display_name: Text | None = Field(
        default=None, max_length=1024, json_schema_extra=enforced(MAX_DISPLAY_NAME)
    )
    status_text: Text | None = Field(
        default=None, max_length=1024, json_schema_extra=enforced(MAX_STATUS_TEXT)
    )
    avatar_url: Text | None = Field(
        default=None, max_length=4096, json_schema_extra=enforced(MAX_URL)
    )
    password: Text | None = Field(
        default=None,
        max_length=1024,
        description="your password: needed to change `username` or `email`, else not read",
    )
    code: Text | None = Field(
        default=None,
        max_length=64,
        description="with `password`, when two-factor sign-in is on: an authenticator code"
        " or a recovery code",
    )


class PasswordIn(BaseModel):
    current_password: Text = Field(max_length=1024)
    new_password: Text = Field(max_length=1024)
    code: Text | None = Field(
        default=None,
        max_length=64,
        description="with two-factor sign-in on: an authenticator code or a recovery code",
    )


class SessionOut(BaseModel):
    id: UUID
    user_agent: str | None
    ip: str | None
    created_at: Instant
    last_used_at: Instant
    expires_at: Instant
    current: bool


class UsageOut(BaseModel):
    day: date
    requests: int
    messages_sent: int
    bytes_uploaded: int


@router.get("/@me")
async def get_me(actor: CurrentActor, conn: Conn) -> UserPrivate:
    return UserPrivate.of_me(await profile.get_me(conn, actor))


@router.patch("/@me")
async def patch_me(
    body: PatchMeIn,
    actor: CurrentActor,
    pool: Pool,
    settings: AppSettings,
    request: Request,
    client: Client,
) -> UserPrivate:
    """Change your username, email, display name, status text or avatar URL. Each change
    is told to every conversation and server you are in (a change of the status text,
    your custom status, as presence: only to those who see your presence, and to nobody
    while you are invisible or offline; of the email, to you alone, and your other
    sessions end), so it counts in `profile` (XFCHAT_RATE_PROFILE_USER). With
    `username` or `email` changed, your `password` (and a `code` with two-factor sign-in on),
    counted as a password change counts them. A change of nothing (no field, or each as
    it is) answers you as you are, tells no one and is not counted there."""
    given = body.model_fields_set
    changes = profile.ProfileChanges(
        username=body.username,
        email=body.email,
        **{
            name: getattr(body, name)
            for name in ("display_name", "status_text", "avatar_url")
            if name in given
        },
    )
    async with pool.acquire() as conn:
        same = await unchanged.unchanged_profile(conn, actor, changes)
    if same is not None:
        return UserPrivate.of_me(same)
    if changes.guarded and body.password is not None:  # (each try costs argon2 work)
        await password_limit(request, actor)
        if body.code is not None:
            await code_limit(request, actor)
    await check_limit(request, "profile", str(actor.user_id), settings.rate_profile_user)
    # (an account of one's own checks no more emails than a registration form would)
    email_tried = changes.email is not None and body.password is not None
    async with (
        counted_if_email_taken(request, client.ip, settings)
        if email_tried
        else contextlib.nullcontext()
    ):
        changed = await profile.change_profile(
            pool, settings, actor, changes, password=body.password, code=body.code
        )
    cache = request.app.state.sessions
    for session_id in changed.ended:
        cache.forget_session(session_id)
    cache.forget_user(actor.user_id)
    return UserPrivate.of_me(changed.user)


@router.post("/@me/password", status_code=204, response_class=Response)
async def post_password(
    body: PasswordIn, actor: CurrentActor, pool: Pool, settings: AppSettings, request: Request
) -> Response:
    """Change the password (and give a code when two-factor sign-in is on); every other
    session of the account is revoked. Counted in the session's `account.password`
    bucket (each try costs argon2 work), a code also in `auth.two_factor.signed_in`."""
    await password_limit(request, actor)
    if body.code is not None:
        await code_limit(request, actor)
    revoked = await profile.change_password(
        pool, settings, actor, current=body.current_password, new=body.new_password, code=body.code
    )
    for session_id in revoked:
        request.app.state.sessions.forget_session(session_id)
    return Response(status_code=204)


class DeleteAccountIn(BaseModel):
    password: Text = Field(max_length=1024)
    code: Text | None = Field(
        default=None,
        max_length=64,
        description="with two-factor sign-in on: an authenticator code or a recovery code",
    )


@router.post("/@me/delete", status_code=204, response_class=Response)
async def post_account_deletion(
    body: DeleteAccountIn, actor: CurrentActor, pool: Pool, settings: AppSettings, request: Request
) -> Response:
    """Delete your account, with your password (and a code when two-factor sign-in is
    on). Refused while you own a server (409 OWNS_SERVERS: transfer or delete it). In one
    transaction: every session ends, you leave every server and group, friendships,
    requests and blocks go, your profile is scrubbed to a placeholder; your messages
    stay. Counted in `account.password` (and a code in `auth.two_factor.signed_in`). A POST, not a
    DELETE with a body, which HTTP gives no meaning and some proxies drop."""
    await password_limit(request, actor)
    if body.code is not None:
        await code_limit(request, actor)
    revoked = await account_deletion.delete_account(
        pool, settings, actor, password=body.password, code=body.code
    )
    cache = request.app.state.sessions
    for session_id in revoked:
        cache.forget_session(session_id)
    cache.forget_user(actor.user_id)
    return Response(status_code=204)


@router.get("/@me/sessions")
async def get_sessions(actor: CurrentActor, conn: Conn) -> list[SessionOut]:
    """Your live sessions, newest first. An account has at most 100 live sessions
    (`MAX_LIVE_SESSIONS`): a login or registration past that revokes the least recently
    used (`session.revoked` with reason `session_limit`), so this lists at most 100."""
    rows = await accounts.list_sessions(conn, actor)
    return [
        SessionOut(
            id=s.id,
            user_agent=s.user_agent,
            ip=str(s.ip) if s.ip else None,
            created_at=s.created_at,
            last_used_at=s.last_used_at,
            expires_at=s.expires_at,
            current=s.id == actor.session_id,
        )
        for s in rows
    ]


@router.delete("/@me/sessions", status_code=204, response_class=Response)
async def delete_other_sessions(actor: CurrentActor, conn: Conn, request: Request) -> Response:
    """Log out everywhere else: revoke every session of yours but this one, at once
    (their tokens stop working and their real-time connections close)."""
    for session_id in await accounts.revoke_other_sessions(conn, actor):
        request.app.state.sessions.forget_session(session_id)
    return Response(status_code=204)


@router.delete("/@me/sessions/{session_id}", status_code=204, response_class=Response)
async def delete_session(
    session_id: UUID, actor: CurrentActor, conn: Conn, request: Request
) -> Response:
    """Revoke one of your sessions (its tokens stop working at once)."""
    await accounts.revoke_session(conn, actor, session_id)
    request.app.state.sessions.forget_session(session_id)
    return Response(status_code=204)


@router.get("/@me/usage")
async def get_usage(
    actor: CurrentActor, request: Request, days: Annotated[int, Query(ge=1, le=366)] = 30
) -> list[UsageOut]:
    """Requests, messages sent and bytes uploaded per UTC day, newest first."""
    usage: UsageRecorder = request.app.state.usage
    rows = await usage.list_usage(actor.user_id, days)
    return [
        UsageOut(
            day=r.day,
            requests=r.requests,
            messages_sent=r.messages_sent,
            bytes_uploaded=r.bytes_uploaded,
        )
        for r in rows
    ]


class PrivacyIn(BaseModel):
    direct_messages: Literal["everyone", "friends"]


class PrivacyOut(BaseModel):
    direct_messages: Literal["everyone", "friends"]


@router.get("/@me/privacy")
async def get_privacy(actor: CurrentActor, conn: Conn) -> PrivacyOut:
    """Whom you take direct messages from. Nobody else sees it: a refused message says
    the same whether this or a block refused it."""
    return PrivacyOut(direct_messages=await profile.get_dm_policy(conn, actor))


@router.put("/@me/privacy")
async def put_privacy(
    body: PrivacyIn, actor: CurrentActor, conn: Conn, settings: AppSettings, request: Request
) -> PrivacyOut:
    """`{direct_messages: "everyone" | "friends"}`: from friends only, others cannot open
    a direct conversation with you, nor write in one open already. A change writes each
    of your direct conversations with strangers (up to about 1,000), so it counts in
    `profile` (XFCHAT_RATE_PROFILE_USER); the choice you have already answers as it
    stands, tells no one and is not counted."""
    if await profile.get_dm_policy(conn, actor) == body.direct_messages:
        return PrivacyOut(direct_messages=body.direct_messages)
    await check_limit(request, "profile", str(actor.user_id), settings.rate_profile_user, conn)
    policy = await profile.set_dm_policy(conn, actor, body.direct_messages)
    return PrivacyOut(direct_messages=policy)


class StateOut(StatePayload):
    resume_token: str  # open SSE with ?since=<it> (or the gateway's RESUME) to go on from here


@router.get("/@me/state", response_model=StateOut)
async def get_state(
    actor: Annotated[Actor, Depends(counted_actor("state"))], request: Request
) -> Response:
    """Everything a client needs to draw its first screen (the same object as the
    real-time `ready`), and the resume token after which every change is an event.
    Counted in `state` (XFCHAT_RATE_STATE_USER): it reads everything the user sees,
    seconds of work for an account in many servers of many channels."""
    state = request.app.state
    async with state.pool.acquire() as conn:
        snapshot, head = await read_state_snapshot(conn, actor, state.settings.presence_timeout_s)
    token = TokenCodec.encode(state.hub.codec.tag(actor.user_id), Position(head + 1, 0))
    return JSONResponse({**snapshot, "resume_token": token})


class PresenceIn(BaseModel):
    """Only the fields present change; `status_text: null` clears the custom status."""

    status: Literal["online", "idle", "dnd", "invisible"] | None = None
    status_text: Text | None = Field(default=None, max_length=1024)


def user_ids(text: str, field: str) -> list[UUID]:
    """Comma-separated user ids (empty parts skipped).

    Raises: BadRequest (VALIDATION_ERROR)."""
    try:
        return [UUID(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise BadRequest(
            f"{field} are user ids separated by commas", code="VALIDATION_ERROR", field=field
        ) from None


@router.get("/@me/presences", response_model=list[PresencePayload])
async def get_presences(
    actor: CurrentActor,
    conn: Conn,
    settings: AppSettings,
    ids: Annotated[
        str | None,
        Query(alias="user_ids", max_length=4000, description="user ids, comma-separated"),
    ] = None,
) -> Response:
    """The presences `ready` carries, as they are now: your friends and the people you
    share a conversation with who are not offline (anyone absent is offline), by user
    id. What to ask when a conversation brings you someone new (`conversation.created`,
    `participant.added`): their changes reach you from then on, their state before
    does not. With `user_ids` (at most 100): those of them whose presence you may see
    (friends, group peers, members of a server you are in) who are not offline."""
    timeout_s = settings.presence_timeout_s
    if ids is not None:
        among = user_ids(ids, "user_ids")
        return JSONResponse(await presence.presences_among(conn, actor.user_id, among, timeout_s))
    return JSONResponse(await presence.related_presences(conn, actor.user_id, timeout_s))


@router.put("/@me/presence", response_model=PresencePayload)
async def put_presence(
    body: PresenceIn, actor: CurrentActor, conn: Conn, settings: AppSettings, request: Request
) -> Response:
    """Choose how others see you while you are connected (invisible: offline to them)
    and your custom status (shown only in your presence, never in your profile);
    announced at once to your friends and the people you share a group or a server
    with, so it counts in `presence` (XFCHAT_RATE_PRESENCE_USER); one that changes
    nothing answers as it stands, tells no one and is not counted."""
    status, text = body.status, body.status_text
    clear = "status_text" in body.model_fields_set and text is None
    timeout_s = settings.presence_timeout_s
    same = await presence.unchanged_presence(
        conn, actor, timeout_s, status=status, status_text=text, clear_status_text=clear
    )
    if same is not None:  # (tells no one: not counted)
        return JSONResponse(same)
    await check_limit(request, "presence", str(actor.user_id), settings.rate_presence_user, conn)
    own = await presence.set_presence(
        conn, actor, timeout_s, status=status, status_text=text, clear_status_text=clear
    )
    return JSONResponse(own)


@router.get("", response_model=list[PublicUserPayload])
async def get_users(
    _actor: CurrentActor,
    conn: Conn,
    ids: Annotated[str, Query(max_length=4000, description="user ids, comma-separated")],
) -> Response:
    """Public profiles of up to 100 users at once, in the order asked (unknown ids are
    left out)."""
    return JSONResponse(await profile.list_profiles(conn, user_ids(ids, "ids")))


@router.get("/search", response_model=list[PublicUserPayload])
async def get_user_search(
    actor: CurrentActor,
    conn: Conn,
    q: Annotated[str, Query(max_length=256, json_schema_extra=enforced(64, 1))],
    limit: Annotated[int, Query(ge=1, le=25)] = 10,
) -> Response:
    """Users whose username or display name starts with `q` (ignoring case): your
    friends first, then people you share a conversation with, then anyone. Never emails."""
    return JSONResponse(await profile.search_profiles(conn, actor, q, limit))


@router.get("/{user_id}")
async def get_user(user_id: UUID, _actor: CurrentActor, conn: Conn) -> UserPublic:
    """Another user's public profile (never their email, nor their custom status: that
    is in their presence)."""
    return UserPublic.of(await profile.get_public_profile(conn, user_id))
