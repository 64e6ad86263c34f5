"""The one middleware of our own: request metrics, the body size limit, the rate-limit
headers, and the per-address limit on what anyone may ask without a token. (One layer
instead of four: every request passes through it, and the start and end of a live
stream; the chunks between go past it, api/streaming.py.)"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from xfchat.api.errors import rate_limit_headers, xfchat_error_response
from xfchat.api.http_limits import JSON_API_HEADERS, declares_body
from xfchat.api.metrics import Metrics, route_label
from xfchat.api.routing import HEAD_AS_GET
from xfchat.domain.local_limits import LocalLimiter, crowd_of
from xfchat.domain.rate_limits import Decision, address_checks, address_of
from xfchat.errors import UnsupportedMediaType
from xfchat.settings import RateLimit

DECISIONS = "rate_limit_decisions"
# What anyone may ask without a token and without the database's rate limits: the
# readiness probe, the API document and its page, stored images, the browser client's
# files. Each is counted per client address in the process's memory
# (XFCHAT_RATE_ANONYMOUS_IP). (/health is not: it costs nothing, and a liveness probe
# refused would restart the process. The sign-in routes have limits of their own, in
# the database; every other route needs a token and is counted per user.)
ANONYMOUS_PATHS = frozenset({"/", "/ready", "/metrics", "/openapi.json", "/docs"})
ANONYMOUS_PREFIXES = ("/web/", "/api/media/", "/docs/")
ANONYMOUS_LABEL = "(anonymous limit)"  # the route of what the limit refused, in metrics

UploadRoute = tuple[str, str, int, str]
"""(method, path regex, largest body in bytes, content type prefix or ""): a route whose
body may be larger (or smaller) than the limit of every other route, when its
Content-Type starts so."""


class EdgeMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        metrics: Metrics,
        max_body_bytes: int,
        upload_routes: Sequence[UploadRoute] = (),
        anonymous: tuple[LocalLimiter, RateLimit] | None = None,
    ) -> None:
        self.app = app
        self.anonymous = anonymous
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.upload_routes = [
            (method.upper(), re.compile(path), limit, kind.encode())
            for method, path, limit, kind in upload_routes
        ]

    def body_limit(self, scope: Scope) -> int:
        for method, path, limit, kind in self.upload_routes:
            if scope["method"] == method and path.fullmatch(scope["path"]):
                if not kind or _content_type(scope).startswith(kind):
                    return limit
        return self.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        limit = self.body_limit(scope)
        status = 500
        label: str | None = None  # (the route's, unless refused before routing)
        try:
            if self.anonymous is not None and _anonymous(scope["path"]):
                refused = self._count_anonymous(scope)
                if refused is not None:
                    status, label = 429, ANONYMOUS_LABEL
                    await xfchat_error_response(refused.refusal())(scope, receive, send)
                    return
            if _declares_too_much(scope, limit):
                status = 413
                await _too_large(send, limit)
                return
            if _content_coded(scope):
                status = 415
                await xfchat_error_response(_coded())(scope, receive, send)
                return
            seen = 0
            exceeded = False
            responding = False

            async def receive_counted() -> Message:
                nonlocal seen, exceeded
                if exceeded:
                    return {"type": "http.disconnect"}
                message = await receive()
                if message["type"] == "http.request":
                    seen += len(message.get("body", b""))
                    if seen > limit:
                        # The handler sees a disconnect; its answer is replaced by a 413.
                        exceeded = True
                        return {"type": "http.disconnect"}
                return message

            async def send_edged(message: Message) -> None:
                nonlocal status, responding
                if message["type"] == "http.response.start":
                    if exceeded:
                        return
                    responding = True
                    status = message["status"]
                    self.metrics.observe_latency(
                        _method(scope), route_label(scope), time.perf_counter() - started
                    )
                    decisions = scope.get("state", {}).get(DECISIONS)
                    api = scope["path"].startswith("/api/")
                    if decisions or api:
                        message = _with_edge_headers(message, decisions, api)
                elif exceeded and not responding:
                    return
                await send(message)

            try:
                await self.app(scope, receive_counted, send_edged)
            except Exception:
                if not exceeded:
                    raise
            if exceeded and not responding:
                status = 413
                await _too_large(send, limit)
        finally:
            self.metrics.count_request(_method(scope), label or route_label(scope), status)

    def _count_anonymous(self, scope: Scope) -> Decision | None:
        """Count the request in its address's windows, the widest first (an IPv6 /48,
        then the /64), stopping at a refusal; in its crowd once, if a window of its
        own finds the table full. The refusal that lasts longest, if any."""
        assert self.anonymous is not None
        limiter, rule = self.anonymous
        client = scope.get("client")
        ip = address_of(client[0] if client else None)
        decisions: list[Decision] = []
        for _, key, key_rule in reversed(address_checks(limiter.bucket, ip, rule)):
            decision = limiter.hit(key, key_rule)
            if decision is None:
                decisions.append(limiter.hit_crowd(crowd_of(ip), rule))
                break
            decisions.append(decision)
            if not decision.allowed:
                break
        scope.setdefault("state", {}).setdefault(DECISIONS, []).extend(decisions)
        refused = [d for d in decisions if not d.allowed]
        return max(refused, key=lambda d: d.reset_after) if refused else None


def _method(scope: Scope) -> str:
    """The request's method as the client sent it (a HEAD answered by GET's route too)."""
    return "HEAD" if scope.get(HEAD_AS_GET) else str(scope["method"])


def _declares_too_much(scope: Scope, limit: int) -> bool:
    """A Content-Length over `limit`, or one that is no length."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                return True
            if declared > limit or declared < 0:
                return True
    return False


def _content_coded(scope: Scope) -> bool:
    """A body sent with a content coding (gzip, br, ...): it would be read as it came,
    a gzipped JSON as malformed, a gzip declared over plain JSON as JSON (a hostile
    client's find). RFC 9110 8.4.1: 415 for a coding the server does not take."""
    headers = scope["headers"]
    if not declares_body(headers):
        return False
    codings = b",".join(value for name, value in headers if name == b"content-encoding")
    return any(c.strip().lower() not in (b"", b"identity") for c in codings.split(b","))


def _coded() -> UnsupportedMediaType:
    return UnsupportedMediaType(
        "a body is read as it is sent: no Content-Encoding but identity", field="body"
    )


def _anonymous(path: str) -> bool:
    return path in ANONYMOUS_PATHS or path.startswith(ANONYMOUS_PREFIXES)


def _with_edge_headers(message: Message, decisions: list | None, api: bool) -> Message:  # type: ignore[type-arg]
    """The headers of the tightest bucket this request was counted in (429s already
    carry their own); and on a JSON answer of the API, JSON_API_HEADERS (where the
    route set none of them). (A few hundred nanoseconds: a send costs the server's CPU
    hundreds of microseconds.)"""
    headers = list(message.get("headers", []))
    present = {name.lower(): value for name, value in headers}
    if decisions:
        tightest = min(decisions, key=lambda d: (d.remaining, -d.reset_after))
        for name, value in rate_limit_headers(tightest).items():
            if name.lower().encode() not in present:
                headers.append((name.lower().encode(), value.encode()))
    if api and present.get(b"content-type", b"").startswith(b"application/json"):
        headers.extend(h for h in JSON_API_HEADERS if h[0] not in present)
    return {**message, "headers": headers}


def _content_type(scope: Scope) -> bytes:
    for name, value in scope["headers"]:
        if name == b"content-type":
            return bytes(value).lower()
    return b""


async def _too_large(send: Send, limit: int) -> None:
    body = orjson.dumps(
        {"code": "PAYLOAD_TOO_LARGE", "message": f"the request body is larger than {limit} bytes"}
    )
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
                *JSON_API_HEADERS,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
