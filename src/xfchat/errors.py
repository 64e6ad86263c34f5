"""The errors a client can see.

Every error leaves the server as JSON `{"code": "UPPER_SNAKE", "message": "..."}` with the
error's HTTP status. Codes are stable and listed in the README (a test checks that every
code raised in `src/` is documented there).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Protocol


class XFChatError(Exception):
    status: ClassVar[int] = 400
    default_code: ClassVar[str] = "BAD_REQUEST"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        field: str | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.field = field
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})
        # Seconds after which trying again makes sense (the API sends it as Retry-After).
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            out["field"] = self.field
        if self.code == "VALIDATION_ERROR":  # one shape with the validator's (api/errors.py)
            out["field"] = self.field or "body"  # (what the whole body did not say)
            out["errors"] = [{"field": out["field"], "message": self.message}]
        out.update(self.extra)
        return out


class BadRequest(XFChatError):
    status = 400
    default_code = "BAD_REQUEST"


class Unauthorized(XFChatError):
    status = 401
    default_code = "UNAUTHORIZED"

    def __init__(self, message: str, *, code: str | None = None, token_error: bool = True) -> None:
        challenge = 'Bearer realm="xfchat"'
        if token_error:  # RFC 6750: tell the client its token is the problem
            challenge += ', error="invalid_token"'
        super().__init__(message, code=code, headers={"WWW-Authenticate": challenge})


class Forbidden(XFChatError):
    status = 403
    default_code = "FORBIDDEN"


class NotFound(XFChatError):
    """Also the answer for "exists, but you may not see it"."""

    status = 404
    default_code = "NOT_FOUND"


class Conflict(XFChatError):
    status = 409
    default_code = "CONFLICT"


class Gone(XFChatError):
    status = 410
    default_code = "GONE"


class PayloadTooLarge(XFChatError):
    status = 413
    default_code = "PAYLOAD_TOO_LARGE"


class UnsupportedMediaType(XFChatError):
    status = 415
    default_code = "UNSUPPORTED_MEDIA_TYPE"


class UpgradeRequired(XFChatError):
    status = 426
    default_code = "UPGRADE_REQUIRED"


class RangeNotSatisfiable(XFChatError):
    status = 416
    default_code = "RANGE_NOT_SATISFIABLE"


class LimitWindow(Protocol):
    """A rate-limit bucket's window as a decision saw it (domain/rate_limits.Decision);
    the API tells it in the X-RateLimit-* headers."""

    @property
    def bucket(self) -> str: ...
    @property
    def limit(self) -> int: ...
    @property
    def remaining(self) -> int: ...
    @property
    def reset_at(self) -> float: ...  # epoch seconds when the window ends
    @property
    def reset_after(self) -> float: ...  # seconds from now until then


class RateLimited(XFChatError):
    status = 429
    default_code = "RATE_LIMITED"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        extra: Mapping[str, Any] | None = None,
        retry_after: float | None = None,
        window: LimitWindow | None = None,
    ) -> None:
        super().__init__(message, code=code, extra=extra, retry_after=retry_after)
        self.window = window  # the bucket that refused, if one did


class ServiceUnavailable(XFChatError):
    status = 503
    default_code = "SERVICE_UNAVAILABLE"
