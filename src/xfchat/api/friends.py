"""Friend requests, friends and blocks of the current user."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import Query, Request, Response
from pydantic import BaseModel, Field

from xfchat.api.deps import Conn, CurrentActor, check_limit, get_settings
from xfchat.api.models import Instant, Text, UserPublic
from xfchat.api.pages import cursor_time, page_headers, page_of
from xfchat.api.responses import JSONResponse
from xfchat.api.routing import api_router
from xfchat.domain import friends
from xfchat.domain.profile import public_profile
from xfchat.errors import BadRequest

router = api_router(prefix="/api/users/@me", tags=["friends"])


class FriendRequestIn(BaseModel):
    username: Text = Field(max_length=256)


class FriendRequestOut(BaseModel):
    id: UUID
    from_user_id: UUID
    to_user_id: UUID
    status: str
    created_at: Instant
    user: UserPublic  # the user at the other end
    conversation_id: UUID | None = None  # once accepted: your direct conversation

    @classmethod
    def of(cls, view: friends.FriendRequestView) -> FriendRequestOut:
        r = view.request
        return cls(
            id=r.id,
            from_user_id=r.from_user_id,
            to_user_id=r.to_user_id,
            status=r.status,
            created_at=r.created_at,
            user=UserPublic.of(view.other),
            conversation_id=view.conversation_id,
        )


class FriendRequestsOut(BaseModel):
    incoming: list[FriendRequestOut]
    outgoing: list[FriendRequestOut]


class FriendOut(BaseModel):
    user: UserPublic
    since: Instant


REQUESTS_PAGE = 100


@router.get("/friend-requests", response_model=FriendRequestsOut)
async def get_friend_requests(
    request: Request,
    actor: CurrentActor,
    conn: Conn,
    before: UUID | None = None,
    before_at: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=REQUESTS_PAGE)] = REQUESTS_PAGE,
) -> Response:
    """Your pending requests, newest first, a page at a time: the `limit` newest, both
    ways together, split into incoming and outgoing. The next page starts before the
    last one's `created_at` and `id` (`before_at`, `before`: the `Link` header has them)."""
    if (before is None) != (before_at is None):
        raise BadRequest("give before and before_at together", code="INVALID_PAGE")
    before_at = cursor_time(before_at, "before_at")
    cursor = (before_at, before) if before_at is not None and before is not None else None
    rows = await friends.list_friend_requests(conn, actor, before=cursor, limit=limit + 1)
    views = [FriendRequestOut.of(v) for v in rows[:limit]]
    body = FriendRequestsOut(
        incoming=[v for v in views if v.to_user_id == actor.user_id],
        outgoing=[v for v in views if v.from_user_id == actor.user_id],
    )
    more = len(rows) > limit
    last = views[-1] if more else None
    headers = page_headers(
        request,
        more,
        {"before": last.id, "before_at": last.created_at.isoformat()} if last else {},
    )
    return JSONResponse(body.model_dump(mode="json"), headers=headers)


@router.post(
    "/friend-requests",
    status_code=201,
    responses={200: {"model": FriendRequestOut, "description": "They had asked you: now accepted"}},
)
async def post_friend_request(
    body: FriendRequestIn, actor: CurrentActor, conn: Conn, response: Response, request: Request
) -> FriendRequestOut:
    """Send a request by username. If that user had already asked you, this accepts
    their request (200, status "accepted"). Each one counts in `friend_requests`
    (XFCHAT_RATE_FRIEND_REQUESTS_USER): a request notifies its target, and sending and
    cancelling over and over would flood anyone's stream."""
    rule = get_settings(request).rate_friend_requests_user
    await check_limit(request, "friend_requests", str(actor.user_id), rule, conn)
    view = await friends.send_friend_request(conn, actor, username=body.username)
    if view.request.status == "accepted":
        response.status_code = 200
    return FriendRequestOut.of(view)


@router.post("/friend-requests/{request_id}/accept")
async def post_accept(request_id: UUID, actor: CurrentActor, conn: Conn) -> FriendRequestOut:
    """Accept: you become friends, and your direct conversation is created or reused."""
    return FriendRequestOut.of(await friends.accept_friend_request(conn, actor, request_id))


@router.post("/friend-requests/{request_id}/decline", status_code=204, response_class=Response)
async def post_decline(request_id: UUID, actor: CurrentActor, conn: Conn) -> Response:
    await friends.decline_friend_request(conn, actor, request_id)
    return Response(status_code=204)


@router.delete("/friend-requests/{request_id}", status_code=204, response_class=Response)
async def delete_friend_request(request_id: UUID, actor: CurrentActor, conn: Conn) -> Response:
    """Cancel a request you sent."""
    await friends.cancel_friend_request(conn, actor, request_id)
    return Response(status_code=204)


@router.get("/friends")
async def get_friends(actor: CurrentActor, conn: Conn) -> list[FriendOut]:
    return [
        FriendOut(user=UserPublic.of(f.user), since=f.since)
        for f in await friends.list_friends(conn, actor)
    ]


@router.delete("/friends/{user_id}", status_code=204, response_class=Response)
async def delete_friend(user_id: UUID, actor: CurrentActor, conn: Conn) -> Response:
    await friends.remove_friend(conn, actor, user_id)
    return Response(status_code=204)


@router.get("/blocks", response_model=list[UserPublic])
async def get_blocks(
    request: Request,
    actor: CurrentActor,
    conn: Conn,
    after: UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=friends.MAX_BLOCKS)] = 100,
) -> Response:
    """Users you blocked (public profiles), a page at a time by user id; pass the last
    one's id as `after` (the `Link` header does)."""
    rows = await friends.list_blocked(conn, actor, after=after, limit=limit + 1)
    page = [public_profile(u) for u in rows]
    return page_of(request, page, limit, lambda last: {"after": last["id"]})


@router.put("/blocks/{user_id}", status_code=204, response_class=Response)
async def put_block(user_id: UUID, actor: CurrentActor, conn: Conn) -> Response:
    """Block a user: ends any friendship and pending request; they are not told."""
    await friends.block_user(conn, actor, user_id)
    return Response(status_code=204)


@router.delete("/blocks/{user_id}", status_code=204, response_class=Response)
async def delete_block(user_id: UUID, actor: CurrentActor, conn: Conn) -> Response:
    await friends.unblock_user(conn, actor, user_id)
    return Response(status_code=204)
