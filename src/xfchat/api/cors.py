"""Cross-origin requests from the origins in XFCHAT_CORS_ORIGINS, and no other.

Tokens travel in the Authorization header, never in cookies, so no credentials mode is
needed; a refused preflight is the usual JSON error."""

from __future__ import annotations

import orjson
from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp

# What a page on an allowed origin may send, and read back (Braid-HTTP's headers included).
CORS_REQUEST_HEADERS = [
    "Authorization",
    "Content-Type",
    "Last-Event-ID",
    "If-None-Match",
    "Subscribe",
    "Parents",
    "Heartbeats",
    "Peer",
    "Version",
    "X-Audit-Log-Reason",  # (configuration and moderation routes)
    "Range",  # (downloads)
    "If-Range",
]
CORS_EXPOSED_HEADERS = [
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "X-RateLimit-Reset-After",
    "X-RateLimit-Bucket",
    "Retry-After",
    "Version",
    "Current-Version",
    "Parents",
    "Subscribe",
    "Heartbeats",
    "Link",
    "X-Has-More",
    "ETag",
    "WWW-Authenticate",
    "Content-Disposition",  # (a download's file name)
    "Content-Range",
    "Accept-Ranges",
]

METHODS = "GET HEAD POST PUT PATCH DELETE".split()
PREFLIGHT_MAX_AGE_S = 600


class Cors(CORSMiddleware):
    def __init__(self, app: ASGIApp, origins: list[str]) -> None:
        super().__init__(
            app,
            allow_origins=origins,
            allow_methods=METHODS,
            allow_headers=CORS_REQUEST_HEADERS,
            expose_headers=CORS_EXPOSED_HEADERS,
            max_age=PREFLIGHT_MAX_AGE_S,
        )

    def preflight_response(self, request_headers: Headers) -> Response:
        answer = super().preflight_response(request_headers)
        headers = {k: v for k, v in answer.headers.items() if k.lower() != "content-length"}
        if answer.status_code == 200:
            return Response(status_code=204, headers=headers)
        refused = bytes(answer.body).decode().removeprefix("Disallowed CORS ")
        body = {
            "code": "CORS_REFUSED",
            "message": f"this cross-origin request is not allowed ({refused}); the server's "
            "XFCHAT_CORS_ORIGINS lists the origins it accepts",
        }
        headers.pop("content-type", None)
        return Response(
            orjson.dumps(body), status_code=400, headers=headers, media_type="application/json"
        )
