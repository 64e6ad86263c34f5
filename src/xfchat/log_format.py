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

import asyncpg
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
        if record.exc_text:  # (as the filter redacted it)
            out["exception"] = record.exc_text
        elif record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in _DROPPED and key not in out:
                out[key] = value
        try:
            return orjson.dumps(out, default=str).decode()
        except TypeError:  # (a lone surrogate in a text: orjson writes only UTF-8; an
            # integer past 64 bits, a key that is not text)
            return orjson.dumps(_well_formed(out)).decode()


def _well_formed(value: Any) -> Any:
    """`value` with each text's lone surrogates as U+FFFD, every other value as text:
    a record that holds one is still written, as one line, not lost to logging's error
    path (a traceback on stderr in its place)."""
    if isinstance(value, dict):
        return {str(k): _well_formed(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_well_formed(v) for v in value]
    if isinstance(value, bool | float) or value is None:
        return value
    if isinstance(value, int) and -(2**63) <= value < 2**64:  # (orjson's range; else text)
        return value
    return _SURROGATE.sub("\ufffd", str(value))


_SURROGATE = re.compile("[\ud800-\udfff]")


# A query parameter (`?access_token=`, which EventSource has to use, and the gateway's
# URL), whatever its name's percent-encoding: the server reads `access%5Ftoken` too.
# (A value runs to the next `&`, space or `"`: not to a `'`, which a browser leaves as
# it is in a URL, encodeURIComponent's among them: `?q=O'Brien` blanked only to its
# `'` wrote the rest of the search to the log.)
_QUERY_PARAM = re.compile(r"((?:^|[?&])([^=&\s?\"']*)=)([^&\s\"]*)")
# Blanked query values: tokens (a refresh token or a login's two-factor ticket, which
# no route reads from a URL, blanked all the same if a client puts one there), and what
# users typed (`q`: a search, a name's prefix).
_BLANKED_PARAMS = frozenset({"access_token", "refresh_token", "ticket", "token", "q"})
# An invite's code in a path (`/api/invites/{code}`, `/api/servers/{id}/invites/{code}`):
# whoever reads the log could join with it.
_INVITE_CODE = re.compile(r"(?i)(/invites/)[^/?#\s\"']+")
# A webhook's token in its execute path (`/api/webhooks/{id}/{token}`): whoever reads
# the log could post as the webhook with it. (`/api/webhooks/{id}/token`, the route of a
# new token, has none: kept.)
_WEBHOOK_TOKEN = re.compile(r"(?i)(/webhooks/[^/?#\s\"']+/)(?!token(?:[/?#\s\"']|$))[^/?#\s\"']+")
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
    """`text` with every token (a webhook's in its path too), search text and invite code
    in it blanked."""
    text = _QUERY_PARAM.sub(_param, text)
    text = _INVITE_CODE.sub(r"\1[redacted]", text)
    text = _WEBHOOK_TOKEN.sub(r"\1[redacted]", text)
    for pattern, blank in _SECRETS:
        text = pattern.sub(blank, text)
    return text


class RedactTokens(logging.Filter):
    """Blanks tokens in every record (on the handler, so whatever logger wrote it:
    uvicorn's access and error logs write request lines, the gateway's among them), in
    its message and in its exception's text (an exception's message can quote a URL or
    a value as well as a log call can)."""

    def filter(self, record: logging.LogRecord) -> bool:
        frame = _data_frame(record)
        if frame is not None:
            record.msg, record.args = frame, None
        elif isinstance(record.args, tuple) and any(map(_has_detail, record.args)):
            record.args = tuple(_without_detail(arg) for arg in record.args)
        try:
            message = record.getMessage()
        except Exception:  # (a bad format: the handler's own error path reports it)
            return True
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info:  # (even if another handler wrote its text first: again)
            record.exc_text = redact(_exception_text(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


_FORMATTER = logging.Formatter()


def _has_detail(arg: object) -> bool:
    return isinstance(arg, asyncpg.PostgresError) and bool(arg.detail)


def _without_detail(arg: object) -> object:
    """A PostgreSQL error passed to a log line's `%s` (`"... failed: %s", exc`) as its
    message alone, without the DETAIL that quotes the row (see _exception_text)."""
    if not _has_detail(arg):
        return arg
    assert isinstance(arg, asyncpg.PostgresError)
    return str(arg.args[0]) if arg.args else type(arg).__name__


def _exception_text(exc_info: Any) -> str:
    """The traceback, without the DETAIL of PostgreSQL's errors in it: that quotes the
    row's values (`Failing row contains (...)`: a not-null or check violation's whole row,
    an email, a password's hash, a message's text; `Key (email)=(...)` of a unique
    one). The error's own message, its sqlstate's class and the constraint stay. The
    errors looked through: the one logged, its causes and contexts, and what an exception
    group holds, at any depth."""
    hidden: list[tuple[asyncpg.PostgresError, str]] = []
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc_info[1]]
    while pending:
        exc = pending.pop()
        if exc is None or id(exc) in seen:
            continue
        seen.add(id(exc))
        if isinstance(exc, asyncpg.PostgresError) and exc.detail:
            hidden.append((exc, exc.detail))
            exc.detail = None  # (put back below: the exception may be raised again)
        pending += [exc.__cause__, exc.__context__]
        if isinstance(exc, BaseExceptionGroup):  # (a TaskGroup's: each error it holds)
            pending += exc.exceptions
    try:
        return _FORMATTER.formatException(exc_info)
    finally:
        for exc, detail in hidden:
            exc.detail = detail


# The frames of a WebSocket, as the websockets library logs each at debug level
# (`< %s` read, `> %s` sent): a data frame's payload is what users wrote and read
# (messages, names, emails, a voice signal's SDP with its addresses), and is not logged;
# its type and size are. (A close frame's code and reason are, escaped.)
_FRAME_MESSAGES = frozenset({"< %s", "> %s"})
_DATA_FRAMES = frozenset({"TEXT", "BINARY", "CONT"})


def _data_frame(record: logging.LogRecord) -> str | None:
    """A data frame's dump as `< TEXT [n bytes]`, for a record that is one; else None."""
    # (`msg` may be any object, a dict or a list among them: not looked up unless text)
    if not isinstance(record.msg, str) or record.msg not in _FRAME_MESSAGES:
        return None
    if not isinstance(record.args, tuple):
        return None
    frame = record.args[0] if len(record.args) == 1 else None
    opcode = getattr(getattr(frame, "opcode", None), "name", None)
    data = getattr(frame, "data", None)
    if opcode not in _DATA_FRAMES or not isinstance(data, (bytes, bytearray, memoryview)):
        return None
    return f"{str(record.msg)[0]} {opcode} [{len(data)} bytes, not logged]"


# What a line of text must not hold as it is: a line break would start a line of the
# client's writing (a forged record, in the log's own format), an escape sequence would
# rewrite the operator's terminal. C0 and C1 controls, DEL, and Unicode's line and
# paragraph separators (lines to some log viewers).
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(match: re.Match[str]) -> str:
    char = match[0]
    code = ord(char)
    return _ESCAPES.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def escape_controls(text: str) -> str:
    """`text` on one line, its control characters written as escapes (`\\n`, `\\x1b`)."""
    return _CONTROLS.sub(_escaped, text)


def _indented(text: str) -> str:
    return "\n".join("  " + escape_controls(line) for line in text.rstrip("\n").split("\n"))


class TextFormatter(logging.Formatter):
    """`time LEVEL logger: message`, on one line whatever its message holds (client text
    reaches log lines: a WebSocket's close reason in the frames uvicorn dumps at debug
    level, an exception's message). An exception's or a stack's lines follow, each
    indented: none of them can pass for a record of its own."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        record.message = escape_controls(record.getMessage())
        record.asctime = self.formatTime(record, self.datefmt)
        lines = [self.formatMessage(record)]
        trace = record.exc_text or (
            self.formatException(record.exc_info) if record.exc_info else ""
        )
        if trace:  # (the filter's, redacted)
            lines.append(_indented(trace))
        if record.stack_info:
            lines.append(_indented(self.formatStack(record.stack_info)))
        return "\n".join(lines)


def log_handler(fmt: str) -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactTokens())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter())
    return handler
