"""Log lines as plain text (the default) or as one JSON object per line
(XFCHAT_LOG_FORMAT=json), for a log collector to index without parsing prose."""

from __future__ import annotations

import logging
import re
import sys
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_plus

import orjson

# Attributes every LogRecord has; anything else was passed with `extra=` and is kept.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


# uvicorn's copy of a message with terminal colours in it, for its own formatter.
_DROPPED = frozenset({"color_message"})


def _fields(level: str, logger: str, message: str, created: float) -> dict[str, Any]:
    when = datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")
    return {"time": when, "level": level, "logger": logger, "message": message}


def json_line(level: str, logger: str, message: str) -> str:
    """One log line as JSON, as JsonFormatter writes them: the `[STARTUP]` lines of the
    CLI under XFCHAT_LOG_FORMAT=json (xfchat/cli.py's say)."""
    return orjson.dumps(_fields(level, logger, message, time.time())).decode()


class JsonFormatter(logging.Formatter):
    """{"time", "level", "logger", "message"}, plus "exception" and any `extra` fields."""

    def format(self, record: logging.LogRecord) -> str:
        level = record.levelname.lower()
        out = _fields(level, record.name, record.getMessage(), record.created)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in _DROPPED and key not in out:
                out[key] = value
        return orjson.dumps(out, default=str).decode()


# A query parameter (`?access_token=`, which EventSource has to use, and the gateway's
# URL), whatever its name's percent-encoding: the server reads `access%5Ftoken` too.
_QUERY_PARAM = re.compile(r"((?:^|[?&])([^=&\s?\"']*)=)([^&\s\"']*)")
# Blanked query values: tokens (a refresh token or a login's two-factor ticket, which
# no route reads from a URL, blanked all the same if a client puts one there), and what
# users typed (`q`: a search, a name's prefix).
_BLANKED_PARAMS = frozenset({"access_token", "refresh_token", "ticket", "token", "q"})
# An invite's code in a path (`/api/invites/{code}`, `/api/servers/{id}/invites/{code}`):
# whoever reads the log could join with it.
_INVITE_CODE = re.compile(r"(?i)(/invites/)[^/?#\s\"']+")
# A bearer credential (a header dumped at debug level), a JWT anywhere, and a token in
# JSON (a gateway frame dumped at debug level, maybe cut to its last characters).
_SECRETS = (
    (re.compile(r"(?i)(\bbearer\s+)[^\s'\"]+"), r"\1[redacted]"),
    (re.compile(r"eyJ[\w-]{4,}\.[\w-]{4,}\.[\w-]{4,}"), "[redacted]"),
    (re.compile(r"(\"(?:access_|refresh_)?token\"\s*:\s*\")[^\"]*"), r"\1[redacted]"),
)


def _param(match: re.Match[str]) -> str:
    name = unquote_plus(match[2]).lower()
    return f"{match[1]}[redacted]" if name in _BLANKED_PARAMS else match[0]


def redact(text: str) -> str:
    """`text` with every token, search text and invite code in it blanked."""
    text = _QUERY_PARAM.sub(_param, text)
    text = _INVITE_CODE.sub(r"\1[redacted]", text)
    for pattern, blank in _SECRETS:
        text = pattern.sub(blank, text)
    return text


class RedactTokens(logging.Filter):
    """Blanks tokens in every record (on the handler, so whatever logger wrote it:
    uvicorn's access and error logs write request lines, the gateway's among them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # (a bad format: the handler's own error path reports it)
            return True
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def log_handler(fmt: str) -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactTokens())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    return handler
