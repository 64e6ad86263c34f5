"""How the API's routers are made, and how their routes are put in an app.

FastAPI builds the routes of a router an app includes once more for that app, at its
first request: every route's response and parameter models checked again by pydantic,
about 0.45 s of CPU on the 2-core box, paid by each `xfchat serve` process (each worker
too) on its first request, and by each test's app. The API's routes are put in the app
as they are instead, built once when their module is imported (`add_routes`); what the
app would have given them at the include, each router is given when it is made
(`api_router`).

One thing the include gave cannot be given so: the app as the routes' provider of
`dependency_overrides` (a route, built once, is shared by every app made in the
process). `app.dependency_overrides` does not reach the API's routes: a test that
needs another dependency builds the app with what it needs instead."""

from __future__ import annotations

from enum import Enum

from fastapi import APIRouter, FastAPI, Request
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

# In the scope of a HEAD request answered by its path's GET route (see head_as_get).
HEAD_AS_GET = "xfchat.head"


def api_router(prefix: str = "", *, tags: list[str | Enum]) -> APIRouter:
    # A body with no Content-Type is JSON, as the README says (FastAPI's strict default
    # refuses it against CSRF by cookies; XFChat's credentials are bearer tokens a
    # cross-site request cannot carry). Any other type that is not JSON is 415
    # (api/errors.declared_not_json, FastAPI's own rule). The app says the same.
    return APIRouter(prefix=prefix, tags=tags, strict_content_type=False)


def add_routes(app: FastAPI, router: APIRouter) -> None:
    """`router`'s routes in `app`, in their order, as they were built."""
    app.router.routes.extend(router.routes)


def is_head(request: Request) -> bool:
    """Whether GET's route answers a HEAD (head_as_get: its answer's body is not sent)."""
    return bool(request.scope.get(HEAD_AS_GET))


def head_as_get(app: FastAPI, rest: ASGIApp) -> ASGIApp:
    """`rest`, with a HEAD request answered by its path's GET route where no route of
    its own takes HEAD (RFC 9110 9.3.2: every resource that answers GET answers HEAD;
    FastAPI's routes take only the methods they name, so HEAD was 405 on every JSON
    route). The route sees GET; uvicorn, whose own scope still says HEAD, writes the
    answer's head without its body (Content-Length as GET's). An endless stream ends
    after its head (api/streaming.py: HEAD_AS_GET)."""
    routes = app.router.routes

    async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "HEAD" and _get_only(routes, scope):
            scope = {**scope, "method": "GET", HEAD_AS_GET: True}
        await rest(scope, receive, send)

    return dispatch


def _get_only(routes: list[BaseRoute], scope: Scope) -> bool:
    """Whether no route takes this HEAD request as it is, and one would as a GET."""
    if any(route.matches(scope)[0] is Match.FULL for route in routes):
        return False
    as_get = {**scope, "method": "GET"}
    return any(route.matches(as_get)[0] is Match.FULL for route in routes)
