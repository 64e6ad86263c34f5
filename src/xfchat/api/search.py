"""Message search: GET /api/search."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Annotated, Any
from uuid import UUID

from fastapi import Header, Query, Request
from pydantic import BaseModel

from xfchat.api.deps import app_slots, authenticate_request, bearer_token, get_settings
from xfchat.api.routing import api_router
from xfchat.domain import search
from xfchat.domain.accounts import Actor
from xfchat.domain.event_payloads import MessagePayload
from xfchat.domain.images import ImageSlots, Slots
from xfchat.errors import BadRequest, XFChatError

router = api_router(prefix="/api", tags=["search"])


class SearchBusy(XFChatError):
    status = 429
    default_code = "SEARCH_BUSY"


class SnippetSegment(BaseModel):
    text: str
    hit: bool


class SearchResult(BaseModel):
    message: MessagePayload
    snippet: list[SnippetSegment]


class SearchOut(BaseModel):
    results: list[SearchResult]
    total: int
    total_capped: bool
    next_cursor: str | None


def cursor_key(secret: str) -> bytes:
    """The key search cursors are signed with, derived from the server's secret."""
    return hashlib.sha256(b"xfchat search cursor\x00" + secret.encode()).digest()


def search_slots(request: Request, actor: Actor) -> Slots:
    """The actor's way into the app's search slots: XFCHAT_SEARCH_CONCURRENCY searches at
    once, at most one of them any one user's (their own turn first, then a process slot,
    as image jobs take theirs: ImageSlots is per-user fair slots of any kind), so one
    account's slow searches cannot hold every slot while everyone else's wait."""
    size = get_settings(request).search_concurrency
    return app_slots(request, "search_slots", lambda: ImageSlots(size)).of(actor.user_id)


@router.get(
    "/search",
    response_model=SearchOut,
    responses={422: {"description": "The search ran past its time budget (SEARCH_TIMEOUT)"}},
)
async def get_search(
    request: Request,
    q: str,  # (its length is the parser's to judge: INVALID_QUERY with a position)
    authorization: Annotated[str | None, Header()] = None,
    server_id: UUID | None = None,
    channel_id: UUID | None = None,
    conversation_id: UUID | None = None,
    sort: Annotated[str, Query(pattern="^(relevance|recent)$")] = "relevance",
    cursor: Annotated[str | None, Query(max_length=400)] = None,
    limit: Annotated[int, Query(ge=1, le=search.MAX_LIMIT)] = 25,
    tz: Annotated[str, Query(max_length=64)] = "UTC",
) -> dict[str, Any]:
    """Messages I may read that match `q` (the syntax is in the README): ranked by
    relevance among the newest 1,000 matches, or newest first (`sort=recent`); within
    one server, channel or conversation if given. `total` counts up to 1,000
    (`total_capped` says there are more); `next_cursor` fetches the next page."""
    settings = get_settings(request)
    actor = await authenticate_request(
        request,
        bearer_token(authorization),
        lambda actor: [("search", str(actor.user_id), settings.rate_search_user)],
    )
    scopes = [s for s in (server_id, channel_id, conversation_id) if s is not None]
    if len(scopes) > 1:
        raise BadRequest(
            "search one server, channel or conversation at a time", code="INVALID_SCOPE"
        )
    budget = settings.search_budget_ms
    slots = search_slots(request, actor)
    try:
        await asyncio.wait_for(slots.acquire(), budget / 1000)
    except TimeoutError:
        raise SearchBusy(
            "too many searches are running (or another of yours is); try again", retry_after=1
        ) from None
    try:
        async with request.app.state.reads.reading() as conn:  # the replica, if any
            page = await search.search_messages(
                conn,
                actor,
                text=q,
                scope=search.Scope(server_id=server_id, channel_id=channel_id or conversation_id),
                sort=sort,
                cursor=cursor,
                limit=limit,
                tz=tz,
                budget_ms=budget,
                cursor_key=cursor_key(settings.secret.get_secret_value()),
            )
    finally:
        slots.release()
    return {
        "results": page.results,
        "total": page.total,
        "total_capped": page.total_capped,
        "next_cursor": page.next_cursor,
    }
