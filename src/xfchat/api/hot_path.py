"""The send's route in front of the app's whole stack.

`PUT /api/channels/{channel_id}/messages/{message_id}` (put_message, api/messages.py) is
most of what a busy server answers. Through the app's stack it passed eight layers of
Starlette and FastAPI (the error middleware, FastAPI's telemetry and body-limit
layers, the exception middleware, the exit-stack middleware, the router, the route's
own exception wrapper), each a coroutine call and a wrapper of `send`. Here it passes
only what it needs, the same instances of the app's own parts:
- the edge (api/edge.py: request metrics under the documented route, the body limit,
  the rate-limit headers) and CORS when configured, built as in the app;
- the app's exception handlers, applied as the stack applies them: every handler but
  the catch-all inside the edge (as Starlette's exception middleware), the catch-all
  (500 INTERNAL_ERROR, logged) outside it (as its error middleware), so a body cut at
  the limit still becomes the edge's 413.
Measured in bench/README.md, "Sixth round". Every other request goes to the stack.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from uuid import UUID

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from xfchat.api.messages import HyphenatedUUID, documented_put_route, put_from_path

SEND_PATH = re.compile(f"/api/channels/({HyphenatedUUID.regex})/messages/({HyphenatedUUID.regex})")
Handler = Callable[[Request, Exception], Any]


def hot_path(app: Starlette, rest: ASGIApp, wrap: Callable[[ASGIApp], ASGIApp]) -> ASGIApp:
    """An ASGI app answering the send's route with its handler, through `wrap` (the
    edge, and CORS), and everything else with `rest` (the app's stack)."""
    route = documented_put_route()

    async def handle(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            response = await put_from_path(request)
        except Exception as exc:
            handler = _handler(app, exc)
            if handler is None:
                raise
            response = await handler(request, exc)
        await response(scope, receive, send)

    wrapped = wrap(handle)

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def send_tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await wrapped(scope, receive, send_tracked)
        except Exception as exc:
            last: Handler | None = app.exception_handlers.get(Exception)
            if started or last is None:
                raise
            answer: Response = await last(Request(scope, receive), exc)
            await answer(scope, receive, send)
            raise

    async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "PUT":
            match = SEND_PATH.fullmatch(scope["path"])
            if match is not None:
                scope["route"] = route
                scope["path_params"] = {
                    "channel_id": UUID(match[1]),
                    "message_id": UUID(match[2]),
                }
                await guarded(scope, receive, send)
                return
        await rest(scope, receive, send)

    return dispatch


def _handler(app: Starlette, exc: Exception) -> Handler | None:
    """The app's handler of `exc` by its class, as Starlette's exception middleware
    looks it up, but for the catch-all (which the stack applies outside the edge)."""
    for cls in type(exc).__mro__:
        if cls is Exception:
            return None
        handler: Handler | None = app.exception_handlers.get(cls)
        if handler is not None:
            return handler
    return None
