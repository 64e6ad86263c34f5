"""The current user's account, sessions and usage; other users' public profiles."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from xfchat.api.deps import AppSettings, Conn, CurrentActor, Pool
from xfchat.api.models import Text, UserPrivate, UserPublic
from xfchat.domain import accounts, profile
from xfchat.domain.usage import UsageRecorder

router = APIRouter(prefix="/api/users", tags=["users"])


class PatchMeIn(BaseModel):
    """Only the fields present change; null clears display_name, status_text, avatar_url."""

    username: Text | None = Field(default=None, max_length=256)
    display_name: Text | None = Field(default=None, max_length=1024)
    status_text: Text | None = Field(default=None, max_length=1024)
    avatar_url: Text | None = Field(default=None, max_length=4096)


class PasswordIn(BaseModel):
    current_password: Text = Field(max_length=1024)
    new_password: Text = Field(max_length=1024)


class SessionOut(BaseModel):
    id: UUID
    user_agent: str | None
    ip: str | None
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
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
    body: PatchMeIn, actor: CurrentActor, conn: Conn, request: Request
) -> UserPrivate:
    given = body.model_fields_set
    changes = profile.ProfileChanges(
        username=body.username,
        **{
            name: getattr(body, name)
            for name in ("display_name", "status_text", "avatar_url")
            if name in given
        },
    )
    user = await profile.update_profile(conn, actor, changes)
    request.app.state.sessions.forget_user(actor.user_id)
    return UserPrivate.of_me(user)


@router.post("/@me/password", status_code=204, response_class=Response)
async def post_password(
    body: PasswordIn, actor: CurrentActor, pool: Pool, settings: AppSettings, request: Request
) -> Response:
    """Change the password; every other session of the account is revoked."""
    revoked = await profile.change_password(
        pool, settings, actor, current=body.current_password, new=body.new_password
    )
    for session_id in revoked:
        request.app.state.sessions.forget_session(session_id)
    return Response(status_code=204)


@router.get("/@me/sessions")
async def get_sessions(actor: CurrentActor, conn: Conn) -> list[SessionOut]:
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


@router.get("/{user_id}")
async def get_user(user_id: UUID, _actor: CurrentActor, conn: Conn) -> UserPublic:
    """Another user's public profile (never their email)."""
    return UserPublic.of(await profile.get_public_profile(conn, user_id))
