"""A server's members: the list, one member, nickname and timeout, roles held,
leaving, kicks and bans."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import Path, Query, Request, Response
from pydantic import BaseModel, Field, StrictInt

from xfchat.api.deps import AppSettings, Conn, CurrentActor, check_limit, without_controls
from xfchat.api.models import IsoTime, Text
from xfchat.api.pages import page_of
from xfchat.api.responses import JSONResponse
from xfchat.api.routing import api_router
from xfchat.api.servers import AuditReason
from xfchat.domain import members, presence, roles, servers, unchanged
from xfchat.domain.accounts import Actor
from xfchat.domain.event_payloads import MemberPayload, PresencePayload, PublicUserPayload
from xfchat.errors import BadRequest

router = api_router(prefix="/api/servers/{server_id}", tags=["members"])
UserRef = Annotated[str, Path(description="a user id, or @me")]


def _user(actor: Actor, user_id: str) -> UUID:
    try:
        return actor.user_id if user_id == "@me" else UUID(user_id)
    except ValueError:
        raise BadRequest(
            "user_id is a user id or @me", code="VALIDATION_ERROR", field="user_id"
        ) from None


class MemberPatchIn(BaseModel):
    """Only the fields present change. nickname: null or "" clears it (CHANGE_NICKNAME
    for your own, MANAGE_NICKNAMES for others'); timed_out_until: a time with a zone at
    most 28 days ahead, null ends the timeout (MODERATE_MEMBERS)."""

    nickname: Text | None = Field(default=None, max_length=256)
    timed_out_until: IsoTime | None = None


class BanIn(BaseModel):
    """delete_message_seconds: also delete the user's messages in the server's channels
    sent that many seconds back (0, the default, none; at most 7 days, and at most
    MAX_BAN_DELETED_MESSAGES of them, newest first)."""

    reason: Text | None = Field(default=None, max_length=512)
    delete_message_seconds: StrictInt = Field(
        default=0, ge=0, le=members.MAX_DELETE_MESSAGE_SECONDS
    )


class BanOut(BaseModel):
    user: PublicUserPayload
    reason: str | None
    banned_by: str | None
    created_at: str


@router.get("/members", response_model=list[MemberPayload])
async def get_members(
    request: Request,
    server_id: UUID,
    actor: CurrentActor,
    conn: Conn,
    after: UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=members.MAX_PAGE)] = 100,
) -> Response:
    """A page of members by user id; pass the last one's user id as `after` (the `Link`
    header does)."""
    page = await members.list_members(conn, actor, server_id, after=after, limit=limit + 1)
    return page_of(request, page, limit, _after_user)


def _after_user(item: Any) -> dict[str, Any]:
    return {"after": item["user"]["id"]}


@router.get("/presences", response_model=list[PresencePayload])
async def get_member_presences(
    server_id: UUID,
    request: Request,
    actor: CurrentActor,
    conn: Conn,
    after: UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=presence.SERVER_PRESENCES)] = presence.SERVER_PRESENCES,
) -> Response:
    """A page of the members who are not offline, by user id, as `presence.updated`
    shows them; pass the last one's user id as `after` (the `Link` header does)."""
    timeout_s = request.app.state.settings.presence_timeout_s
    page = await presence.list_server_presences(
        conn, actor, server_id, timeout_s, after=after, limit=limit + 1
    )
    return page_of(request, page, limit, _after_presence)


def _after_presence(item: Any) -> dict[str, Any]:
    return {"after": item["user_id"]}


@router.get("/members/{user_id}", response_model=MemberPayload)
async def get_member(
    server_id: UUID, user_id: UserRef, actor: CurrentActor, conn: Conn
) -> Response:
    return JSONResponse(await members.get_member(conn, actor, server_id, _user(actor, user_id)))


@router.patch("/members/{user_id}", response_model=MemberPayload)
async def patch_member(
    server_id: UUID,
    user_id: UserRef,
    body: MemberPatchIn,
    actor: CurrentActor,
    conn: Conn,
    reason: AuditReason,
    settings: AppSettings,
    request: Request,
) -> Response:
    """A change of one's own nickname is counted in `nickname` (XFCHAT_RATE_NICKNAME_USER,
    refused ones included): each tells every member of the server and is audited. The
    nickname given as it is already is no change (nothing written, audited or told),
    so it is not counted, as a profile change of nothing is not (a client saving a
    member form with the nickname untouched was refused 429 at the eleventh save)."""
    fields = body.model_dump(exclude_unset=True)
    target = _user(actor, user_id)
    if (
        "nickname" in fields
        and target == actor.user_id
        and not await unchanged.unchanged_nickname(conn, server_id, target, fields["nickname"])
    ):
        rule = settings.rate_nickname_user
        await check_limit(request, "nickname", str(actor.user_id), rule, conn)
    return JSONResponse(
        await members.update_member(conn, actor, server_id, target, fields=fields, reason=reason)
    )


@router.delete("/members/{user_id}", status_code=204, response_class=Response)
async def delete_member(
    server_id: UUID, user_id: UserRef, actor: CurrentActor, conn: Conn, reason: AuditReason
) -> Response:
    """`@me` leaves; anyone else is kicked (KICK_MEMBERS). Your own id is 400
    CANNOT_KICK_SELF: a moderation tool acting on the member it shows never removes its
    own user (a client developer's find: it left the server)."""
    if user_id == "@me":
        await members.leave_server(conn, actor, server_id)
    else:
        await members.kick_member(conn, actor, server_id, _user(actor, user_id), reason)
    return Response(status_code=204)


MEMBER_ROLE = "/members/{user_id}/roles/{role_id}"


@router.put(MEMBER_ROLE, status_code=204, response_class=Response)
async def put_member_role(
    server_id: UUID,
    user_id: UserRef,
    role_id: UUID,
    actor: CurrentActor,
    conn: Conn,
    reason: AuditReason,
) -> Response:
    """Give a member a role (MANAGE_ROLES; the role below your highest)."""
    target = _user(actor, user_id)
    await roles.set_member_role(conn, actor, server_id, target, role_id, held=True, reason=reason)
    return Response(status_code=204)


@router.delete(MEMBER_ROLE, status_code=204, response_class=Response)
async def delete_member_role(
    server_id: UUID,
    user_id: UserRef,
    role_id: UUID,
    actor: CurrentActor,
    conn: Conn,
    reason: AuditReason,
) -> Response:
    target = _user(actor, user_id)
    await roles.set_member_role(conn, actor, server_id, target, role_id, held=False, reason=reason)
    return Response(status_code=204)


@router.get("/bans", response_model=list[BanOut])
async def get_bans(
    request: Request,
    server_id: UUID,
    actor: CurrentActor,
    conn: Conn,
    after: UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=members.MAX_PAGE)] = 100,
) -> Response:
    """A page of bans by user id (BAN_MEMBERS); `after` as for members."""
    page = await members.list_bans(conn, actor, server_id, after=after, limit=limit + 1)
    return page_of(request, page, limit, _after_user)


@router.put("/bans/{user_id}", status_code=204, response_class=Response)
async def put_ban(
    server_id: UUID,
    user_id: UUID,
    actor: CurrentActor,
    conn: Conn,
    reason: AuditReason,
    body: BanIn | None = None,
) -> Response:
    """Ban a user (BAN_MEMBERS): a member is removed, and no invite lets them back. The
    reason is the body's or the X-Audit-Log-Reason header's, cleaned as the header's is
    (a body's line breaks and escape sequences went into the ban list and the log).
    `delete_message_seconds` also deletes their recent messages in the server (the
    audit entry says how many; the answer stays 204, as Discord's)."""
    given = body.reason if body else None
    why = (servers.audit_reason(without_controls(given)) if given else None) or reason
    seconds = body.delete_message_seconds if body else 0
    await members.ban_member(conn, actor, server_id, user_id, why, seconds)
    return Response(status_code=204)


@router.delete("/bans/{user_id}", status_code=204, response_class=Response)
async def delete_ban(
    server_id: UUID, user_id: UUID, actor: CurrentActor, conn: Conn, reason: AuditReason
) -> Response:
    await members.unban_member(conn, actor, server_id, user_id, reason)
    return Response(status_code=204)
