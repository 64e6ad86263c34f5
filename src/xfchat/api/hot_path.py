"""The send's route in front of FastAPI's layers.

`PUT /api/channels/{channel_id}/messages/{message_id}` (put_message, api/messages.py) is
most of what a busy server answers. Through the app it passed FastAPI's layers besides
Starlette's (its telemetry and body-limit middleware, its exit stack) and the router
and the route's own exception wrapper, each a coroutine call and a wrapper of `send`.
Here it is answered by the stack as Starlette itself builds it (the error middleware
with the app's catch-all handler, the app's own middleware, the edge and CORS among
them, and the exception middleware with the app's other handlers), with the send's
handler in place of the router: the same answers, headers, metrics and logs, without
the rest. The whole app takes 40.8-44.6 µs for a send refused at its token, this path
28.4-28.9 (bench/README.md, "Sixth round"). A send under a root_path, or whose ids are
not written 8-4-4-4-12, goes to the documented route.

What the send does not get here: FastAPI's telemetry (an OpenTelemetry span named by
the route, when an SDK is configured) and FastAPI's body limit (unset: the edge has
its own). Everything else goes to the app's full stack.
"""

from __future__ import annotations

import re
from uuid import UUID

from fastapi import FastAPI
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from xfchat.api.messages import HyphenatedUUID, documented_put_route, put_from_path

SEND_PATH = re.compile(f"/api/channels/({HyphenatedUUID.regex})/messages/({HyphenatedUUID.regex})")


def hot_path(app: FastAPI, rest: ASGIApp) -> ASGIApp:
    """An ASGI app answering the send's route through Starlette's stack around its
    handler, and everything else with `rest` (the app's full stack). Build it when
    the app builds its stack (its middleware and handlers are all known by then)."""
    route = documented_put_route()

    async def handle(scope: Scope, receive: Receive, send: Send) -> None:
        # (the route is named only now, as the router would: the edge's early refusals
        # are counted before routing)
        scope["route"] = route
        response = await put_from_path(Request(scope, receive))
        await response(scope, receive, send)

    handlers, catch_all = {}, None  # (split as Starlette's build_middleware_stack does)
    for key, handler in app.exception_handlers.items():
        if key in (500, Exception):
            catch_all = handler
        else:
            handlers[key] = handler
    hot: ASGIApp = ExceptionMiddleware(handle, handlers=handlers, debug=app.debug)
    for cls, args, kwargs in reversed(app.user_middleware):
        hot = cls(hot, *args, **kwargs)
    hot = ServerErrorMiddleware(hot, handler=catch_all, debug=app.debug)

    async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "PUT" and not scope.get("root_path"):
            match = SEND_PATH.fullmatch(scope["path"])
            if match is not None:
                scope["path_params"] = {
                    "channel_id": UUID(match[1]),
                    "message_id": UUID(match[2]),
                }
                await hot(scope, receive, send)
                return
        await rest(scope, receive, send)

    return dispatch
