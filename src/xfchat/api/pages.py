"""How every paged list says whether there is more: `X-Has-More: true|false`, and, when
there is, a `Link: <next page>; rel="next"` header (RFC 8288). Bodies stay plain JSON
arrays (a Braid-HTTP message list is the array itself)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from starlette.requests import Request

from xfchat.api.responses import JSONResponse
from xfchat.errors import BadRequest


def cursor_time(value: datetime | None, field: str) -> datetime | None:
    """A page cursor's time from the query, as given, once it is known to be a time the
    database can be sent: with its zone (the driver reads a time without one in the
    server process's own zone, so a cursor stripped of its `+00:00`, or a bare date, went
    hours off and skipped or repeated what it passed over), and in UTC within years 1 to
    9999 (9999-12-31T23:59-23:00 is in year 10000, and the driver's failure was a 400
    INVALID_VALUE).

    Raises: BadRequest (INVALID_PAGE)."""
    if value is None:
        return None
    if value.utcoffset() is None:
        raise BadRequest(
            f"{field} is a time with its zone, as the Link gives it",
            code="INVALID_PAGE",
            field=field,
        )
    try:
        value.astimezone(UTC)  # (what the driver does with it)
    except (OverflowError, ValueError):
        raise BadRequest(
            f"{field} is a time within years 1 to 9999 in UTC", code="INVALID_PAGE", field=field
        ) from None
    return value


def page_headers(request: Request, more: bool, cursor: dict[str, Any]) -> dict[str, str]:
    """The headers of a page; `cursor` holds the query parameters of the next one."""
    headers = {"X-Has-More": "true" if more else "false"}
    if more:
        headers["Link"] = page_link(request, cursor, "next")
    return headers


def page_link(
    request: Request, cursor: dict[str, Any], rel: str, drop: tuple[str, ...] = ()
) -> str:
    """A `Link` to this list with the request's parameters but `drop`, and `cursor`'s."""
    params = {k: v for k, v in request.query_params.items() if k not in cursor and k not in drop}
    params.update({k: str(v) for k, v in cursor.items()})
    # The path as decoded (an emoji in it is percent-encoded again here): not
    # `request.url.path`, where Starlette leaves `?`, `#` and `\` encoded (and this encoded
    # them twice: a reactions page's Link then named another emoji, and gave `[]`).
    path = quote(request.scope["path"], safe="/@:")
    return f'<{path}?{urlencode(params)}>; rel="{rel}"'


def page_response(
    request: Request, items: list[Any], more: bool, cursor: dict[str, Any]
) -> JSONResponse:
    return JSONResponse(items, headers=page_headers(request, more, cursor))


def page_of(
    request: Request, rows: list[Any], limit: int, cursor: Callable[[Any], dict[str, Any]]
) -> JSONResponse:
    """A page of `rows`, fetched with one more than `limit` (whether more follow), whose
    next page starts after `cursor(its last item)`."""
    more = len(rows) > limit
    return page_response(request, rows[:limit], more, cursor(rows[limit - 1]) if more else {})
