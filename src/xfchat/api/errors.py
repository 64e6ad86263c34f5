"""One shape for every error: `{"code": "UPPER_SNAKE", "message": "..."}`."""

from __future__ import annotations

import email.message
import logging
import math
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from xfchat.api.responses import JSONResponse
from xfchat.errors import LimitWindow, RateLimited, UnsupportedMediaType, XFChatError

log = logging.getLogger("xfchat.api")

HTTP_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
}

DB_UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,  # (a broken exchange, as through PgBouncer at a shutdown)
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
)


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    return JSONResponse(
        {"code": code, "message": message, **extra}, status_code=status, headers=headers
    )


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def rate_limit_headers(window: LimitWindow) -> dict[str, str]:
    """A rate-limit bucket's window, as every counted response tells it."""
    return {
        "X-RateLimit-Limit": str(window.limit),
        "X-RateLimit-Remaining": str(window.remaining),
        "X-RateLimit-Reset": f"{window.reset_at:.3f}",
        "X-RateLimit-Reset-After": f"{window.reset_after:.3f}",
        "X-RateLimit-Bucket": window.bucket,
    }


def xfchat_error_response(exc: XFChatError) -> JSONResponse:
    headers = dict(exc.headers)
    if isinstance(exc, RateLimited) and exc.window is not None:
        headers.update(rate_limit_headers(exc.window))
    if exc.retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)


async def _xfchat_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, XFChatError)
    return xfchat_error_response(exc)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and isinstance(exc.__cause__, (ValueError, RecursionError)):
        # FastAPI's "There was an error parsing the body": JSON nested deeper than the
        # parser goes, an integer past Python's digit limit, bytes that are not UTF-8.
        return error_response(400, "MALFORMED_JSON", "the request body is not JSON we can read")
    code = HTTP_CODES.get(exc.status_code, f"HTTP_{exc.status_code}")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ").lower()
    if exc.status_code == 404 and message == "Not Found":
        message = "no such route"
    headers = getattr(exc, "headers", None)
    if exc.status_code == 405:
        headers = {**(headers or {}), "Allow": _allowed(request)}
    return error_response(exc.status_code, code, message, headers=headers)


def _allowed(request: Request) -> str:
    """Every method the request's path takes (Starlette's Allow names those of the first
    route of the path it met: `DELETE /api/users/@me` was told GET, not PATCH too, a
    hostile client's find)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        if route.matches(request.scope)[0] is not Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    if "GET" in methods:
        methods.add("HEAD")  # (answered by GET's route: api/routing.head_as_get)
    return ", ".join(sorted(methods))


def declared_not_json(request: Request) -> bool:
    """Whether the request's Content-Type is one FastAPI does not read as JSON, by its
    own rule: anything but application/json and application/*+json, a type without a
    media type ("; charset=utf-8", ";;;") included. None, or an empty one, is JSON (the
    app is not strict about it: see create_app)."""
    value = request.headers.get("content-type")
    if not value or value == "application/json":  # (what nearly every client sends)
        return False
    message = email.message.Message()
    message["content-type"] = value
    subtype = message.get_content_subtype()
    json = message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )
    return not json


def not_json() -> UnsupportedMediaType:
    return UnsupportedMediaType(
        "send the body as application/json", code="UNSUPPORTED_MEDIA_TYPE", field="body"
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if declared_not_json(request) and any(tuple(e.get("loc", ()))[:1] == ("body",) for e in errors):
        return xfchat_error_response(not_json())  # (FastAPI read it as bytes)
    if any(e.get("type") == "json_invalid" for e in errors):
        return error_response(400, "MALFORMED_JSON", "the request body is not valid JSON")
    details = [
        {"field": _field(tuple(e.get("loc", ()))), "message": str(e.get("msg", ""))} for e in errors
    ]
    first = details[0] if details else {"field": "body", "message": "invalid"}
    return error_response(
        400,
        "VALIDATION_ERROR",
        f"{first['field']}: {first['message']}",
        field=first["field"],
        errors=details,
    )


def install_error_handlers(app: FastAPI, on_db_error: Any = None) -> None:
    app.add_exception_handler(XFChatError, _xfchat_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)

    async def database_error(_request: Request, exc: Exception) -> JSONResponse:
        if on_db_error is not None:
            on_db_error(type(exc).__name__)
        if isinstance(exc, asyncpg.DataError):  # a value the driver cannot send (it is
            # an InterfaceError, so this comes before the "unavailable" answer)
            return error_response(400, "INVALID_VALUE", "a value in the request cannot be stored")
        if isinstance(
            exc, (asyncpg.CharacterNotInRepertoireError, asyncpg.UntranslatableCharacterError)
        ):
            return error_response(
                400, "INVALID_TEXT", "the request holds text PostgreSQL cannot store"
            )
        if isinstance(exc, asyncpg.CheckViolationError):  # a value the code's own checks
            # let through: the database keeps the rule, the client is told, we are warned
            log.warning("a check the code missed: %s", exc.constraint_name)
            return error_response(400, "INVALID_VALUE", "a value in the request is not allowed")
        if isinstance(exc, (asyncpg.QueryCanceledError, asyncpg.LockNotAvailableError)):
            # (the lock timeout: a COMMIT queued behind a lock held elsewhere, db/pool.py)
            return error_response(
                503,
                "DATABASE_TIMEOUT",
                "the database took too long to answer",
                headers={"Retry-After": "1"},
            )
        if isinstance(exc, asyncpg.TransactionRollbackError):  # a deadlock, or a standby
            # cancelling a read that conflicts with its replay: trying again works
            return error_response(
                503,
                "DATABASE_CONFLICT",
                "the database had to cancel this request; try again",
                headers={"Retry-After": "1"},
            )
        if isinstance(exc, DB_UNAVAILABLE_ERRORS):
            return error_response(
                503,
                "DATABASE_UNAVAILABLE",
                "the database is unavailable",
                headers={"Retry-After": "1"},
            )
        log.exception("database error", exc_info=exc)
        return error_response(500, "INTERNAL_ERROR", "internal error")

    for cls in (asyncpg.PostgresError, asyncpg.DataError, *DB_UNAVAILABLE_ERRORS):
        app.add_exception_handler(cls, database_error)

    async def internal_error(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return error_response(500, "INTERNAL_ERROR", "internal error")

    app.add_exception_handler(Exception, internal_error)
