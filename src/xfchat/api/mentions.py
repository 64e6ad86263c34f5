"""The messages that mention me."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import Query, Request
from starlette.responses import Response

from xfchat.api.deps import AppSettings, Conn, CurrentActor, check_limit
from xfchat.api.pages import page_response
from xfchat.api.routing import api_router
from xfchat.domain import mentions
from xfchat.domain.event_payloads import MessagePayload

router = api_router(prefix="/api/users/@me", tags=["messages"])


@router.get("/mentions", response_model=list[MessagePayload])
async def get_mentions(
    request: Request,
    actor: CurrentActor,
    conn: Conn,
    settings: AppSettings,
    before: UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 25,
) -> Response:
    """Live messages that mention me, newest first, from every channel whose history I
    may read; `before=<message id>` pages further back. It looks through every channel
    one may see, as a search does, so it counts in `search` (XFCHAT_RATE_SEARCH_USER)."""
    await check_limit(request, "search", str(actor.user_id), settings.rate_search_user, conn)
    page, more = await mentions.list_mentions(conn, actor, before=before, limit=limit)
    return page_response(request, page, more, {"before": page[-1]["id"]} if page else {})
