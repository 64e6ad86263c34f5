"""What an operator sees, attacked: log lines a client writes into (a forged record, an
escape sequence for the operator's terminal), secrets that reach a log line or a start-up
line (a search's text, a token in an exception's message, the password of DATABASE_URL),
and metrics whose series a client without a token multiplies."""

from __future__ import annotations

import io
import json
import logging
import re
import socket

import asyncpg
import httpx
import orjson
import pytest
import websockets
from pydantic import ValidationError

from tests.factories import MakeUser
from tests.support import METRICS_HEADERS, Servers, clean_env, fatal_lines, random_secret, run_cli
from xfchat.db.pool import without_password
from xfchat.log_format import JsonFormatter, log_handler, redact
from xfchat.settings import DatabaseSettings, describe_validation_error

# A record in the text log's own format, as a client would forge it.
FORGED = "2026-01-01 00:00:00,000 INFO xfchat.api: user admin granted the owner role"
# (one short enough for the frame's dump, which cuts a long reason in its middle)
SHORT_FORGED = "2026-01-01 00:00:00,000 INFO x: ok"
PEER_ADDRESS = "203.0.113.77"


async def test_a_websocket_close_reason_cannot_forge_a_log_line(
    servers: Servers, make_user: MakeUser
) -> None:
    """Broke: at XFCHAT_LOG_LEVEL=debug uvicorn's error logger writes every WebSocket
    frame, a client's close reason as it came (any UTF-8 up to 123 bytes): a line break
    in it started a line of the client's writing, and ESC sequences went to the
    operator's terminal as they were. Now every record is one line, its controls
    escaped, and a data frame's payload is not written at all."""
    user = await make_user()
    proc, base = servers.start(XFCHAT_LOG_LEVEL="debug")
    ws_url = base.replace("http", "ws") + f"/api/gateway?access_token={user.access_token}"
    async with websockets.connect(ws_url) as ws:
        await ws.recv()  # (hello)
        await ws.send(orjson.dumps({"op": 1, "d": None, "sdp": f"IN IP4 {PEER_ADDRESS}"}).decode())
        await ws.close(code=4000, reason=f"bye\n{SHORT_FORGED}\x1b[2J")
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        await client.get("/health")  # (a later line: the frames were written before it)
    log = proc.output
    assert "CLOSE 4000" in log, log[-3000:]  # (the frame was logged, escaped)
    assert not any(line.startswith(SHORT_FORGED) for line in log.splitlines()), log[-3000:]
    assert "\x1b" not in log
    # Broke too: a data frame's payload in the dump (what users read and wrote: message
    # text, names, a voice signal's SDP with the peer's address); its size is logged.
    assert PEER_ADDRESS not in log and "< TEXT [" in log, log[-3000:]


def _logged(fmt: str, emit: object) -> str:
    handler = log_handler(fmt)
    stream = io.StringIO()
    handler.setStream(stream)
    logger = logging.getLogger("xfchat.test_observability")
    logger.propagate, logger.level = False, logging.DEBUG
    logger.addHandler(handler)
    try:
        assert callable(emit)
        emit(logger)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


def test_an_exceptions_message_is_escaped_and_redacted_too() -> None:
    """Broke: the redaction filter cleaned a record's message and never its exception's
    text, in both formats (an exception that quotes a URL with `?access_token=`, as an
    HTTP client's error does, wrote the token); and in the text format the exception's
    message could hold a line that passed for a record of its own."""
    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXZhbHVl"

    def emit(logger: logging.Logger) -> None:
        try:
            raise RuntimeError(f"GET /api/events?access_token={token}\n{FORGED}")
        except RuntimeError:
            logger.exception("a stream failed")

    for fmt in ("text", "json"):
        out = _logged(fmt, emit)
        assert token not in out and "access_token=[redacted]" in out, out
        assert not any(line.startswith(FORGED) for line in out.splitlines()), out


async def test_a_database_errors_detail_never_reaches_the_log(conn: asyncpg.Connection) -> None:
    """Broke: an error the request handlers do not expect is logged with its traceback
    ("database error"; and a failed batch of sends, the message writer's connection,
    the presence writer log one's text), and asyncpg's text of a PostgreSQL error
    carries its DETAIL:
    for a not-null or check violation the whole row (`Failing row contains (...)`: an
    email, a password's hash, a message's text), for a unique one the key's value. And
    one inside an exception group (a TaskGroup's) kept it."""
    await conn.execute("CREATE TEMP TABLE probe (name text NOT NULL, email text)")
    email = "alice.private@example.com"
    try:
        await conn.execute("INSERT INTO probe VALUES (NULL, $1)", email)
    except asyncpg.NotNullViolationError as exc:
        caught = exc
    assert email in str(caught)  # (the driver's text of it)

    def emit(logger: logging.Logger) -> None:
        try:
            raise RuntimeError("a request failed") from caught
        except RuntimeError:
            logger.exception("database error")

    def emit_as_text(logger: logging.Logger) -> None:  # (as the send batches' warning)
        logger.warning("a batch of %d sends failed: %s", 3, caught)

    def emit_a_group(logger: logging.Logger) -> None:  # (a TaskGroup's, within another)
        try:
            raise ExceptionGroup("tasks", [ValueError("x"), ExceptionGroup("inner", [caught])])
        except ExceptionGroup:
            logger.exception("tasks failed")

    for fmt in ("text", "json"):
        out = _logged(fmt, emit)
        assert "NotNullViolationError" in out and email not in out, out
        out = _logged(fmt, emit_a_group)
        assert "NotNullViolationError" in out and email not in out, out
        out = _logged(fmt, emit_as_text)
        assert "violates not-null constraint" in out and email not in out, out
    assert email in str(caught)  # (the exception itself is left as it was)


def test_a_message_holds_no_line_break_or_escape_in_the_text_log() -> None:
    def emit(logger: logging.Logger) -> None:
        logger.warning("a name: %s", f"x\r\n{FORGED}\x1b]0;owned\x07\u2028{FORGED}")

    out = _logged("text", emit)
    assert out.count("\n") == 1 and "\x1b" not in out and "\u2028" not in out, out
    assert "\\n" + FORGED in out  # (still there to read, escaped)


def test_a_lone_surrogate_is_written_not_lost_in_the_json_log() -> None:
    """orjson writes UTF-8 only: a record with a lone surrogate in its message (or an
    `extra` field) raised in the formatter, and logging put a traceback on stderr in the
    record's place. (The record is formatted here, not logged: a surrogate that reaches
    a captured stream breaks pytest-xdist's report of the test.)"""
    record = logging.LogRecord(
        "xfchat.test", logging.WARNING, __file__, 1, "a name: %s", ("half \ud800 of a pair",), None
    )
    record.who = "\udfff"
    line = JsonFormatter().format(record)
    assert "\n" not in line
    written = json.loads(line)
    assert written["message"] == "a name: half \ufffd of a pair" and written["who"] == "\ufffd"


def test_an_integer_past_64_bits_is_written_not_lost_in_the_json_log() -> None:
    """Broke: orjson takes integers of 64 bits only; an `extra` field past that raised
    in the fallback too (it kept every integer as it was), and the record was lost to a
    traceback on stderr."""
    record = logging.LogRecord("xfchat.test", logging.INFO, __file__, 1, "counted", None, None)
    record.count = 2**70
    written = json.loads(JsonFormatter().format(record))
    assert written["message"] == "counted" and written["count"] == str(2**70)


def test_a_search_with_an_apostrophe_is_blanked_whole() -> None:
    """Broke: a query value was blanked up to its first `'`, which the browser client
    does not encode (encodeURIComponent: the user search of the group and mention
    pickers), so a search for O'Brien wrote `q=[redacted]'Brien` to the access log."""
    line = '127.0.0.1:5 - "GET /api/users/search?q=O\'Brien%20family&limit=25 HTTP/1.1" 401'
    assert redact(line) == (
        '127.0.0.1:5 - "GET /api/users/search?q=[redacted]&limit=25 HTTP/1.1" 401'
    )
    ws = '127.0.0.1:5 - "WebSocket /api/gateway?access_token=a\'b.c" [accepted]'
    assert redact(ws) == '127.0.0.1:5 - "WebSocket /api/gateway?access_token=[redacted]" [accepted]'


# Passwords holding a character the URL syntax gives a meaning (a random password of
# base64's alphabet holds `/` one time in 32), not percent-encoded: the authority ends
# there, the password's start is read as the port, its rest as the database's name, a
# query or a fragment.
BAD_URLS = {
    "postgresql://xf:Qx7/cret-Zq@127.0.0.1:1/db": ("Qx7", "cret-Zq"),
    "postgresql://xf:5432/cret-Zq@127.0.0.1:1/db": ("cret-Zq",),
    "postgresql://xf:5432?cret-Zq@127.0.0.1:1/db": ("cret-Zq",),
    "postgresql://xf:5432#cret-Zq@127.0.0.1:1/db": ("cret-Zq",),
    "postgresql://xf:pa?ss#cret-Zq@127.0.0.1:1/db": ("'pa'", "cret-Zq"),
    # (an operator's find: Python's parser took the last @ as the host's start, asyncpg
    # the first, and resolved "ss-cret-Zq@127.0.0.1" as the host)
    "postgresql://xf:p@ss-cret-Zq@127.0.0.1:1/db": ("ss-cret", "cret-Zq"),
}


def test_a_database_url_password_with_a_slash_is_never_repeated() -> None:
    """Broke: `DATABASE_URL cannot be read as a URL (Port could not be cast to integer
    value as 'Qx7')`, the start of the password; and a password whose start was a number
    (`5432/...`) passed, to be printed as the database's name on every start-up line:
    `connecting to PostgreSQL at ?@xf:5432/cret-Zq@127.0.0.1:1/db` (or quoted by the
    driver: `bad query field: 'cret-Zq@...'`)."""
    for url, pieces in BAD_URLS.items():
        with pytest.raises(ValidationError) as info:
            DatabaseSettings(database_url=url)
        line = describe_validation_error(info.value)
        assert line.startswith("DATABASE_URL ") and "percent-encoded" in line, line
        assert not any(piece in line for piece in pieces), (url, line)
    for url in (  # (not refused: the password encoded, and an @ in a query's value)
        "postgresql://xf:se%2Fcret@127.0.0.1:1/db",
        "postgresql://127.0.0.1:1/db?user=xf@corp&password=pw",
    ):
        assert DatabaseSettings(database_url=url).database_url == url


def test_a_url_of_several_hosts_is_refused_as_that() -> None:
    """(The review of the change: its refusal said to percent-encode the password.)"""
    for url in ("postgresql://xf:pw@h1:5432,h2:5433/db", "postgresql://h1,h2/db"):
        with pytest.raises(ValidationError) as info:
            DatabaseSettings(database_url=url)
        line = describe_validation_error(info.value)
        assert "several hosts" in line and "pw" not in line, line


def test_serve_refuses_such_a_url_in_one_line_without_the_password() -> None:
    url = "postgresql://xf:5432/cret-Zq@127.0.0.1:1/db"
    env = clean_env(DATABASE_URL=url, XFCHAT_SECRET=random_secret())
    env["XFCHAT_DB_CONNECT_ATTEMPTS"] = "1"
    done = run_cli("serve", env=env, timeout=60)
    assert done.returncode == 2, done.stderr  # (bad settings; was 3, after connecting)
    assert len(fatal_lines(done.stderr)) == 1, done.stderr
    assert "cret-Zq" not in done.stderr + done.stdout, done.stderr


def test_the_dev_banner_blanks_a_password_given_in_the_query() -> None:
    """Broke: `xfchat dev`'s banner (`Database: ...`) blanked a password in the URL's
    user part only; the driver reads `?password=` (and `sslpassword=`, the client key's)
    just as well, and the banner printed those whole."""
    url = "postgresql://op@db:5432/prod?sslmode=require&password=Pa55-Zq&sslpassword=K3y-Zq"
    shown = without_password(url)
    assert "Pa55-Zq" not in shown and "K3y-Zq" not in shown, shown
    assert shown == "postgresql://op@db:5432/prod?sslmode=require&password=***&sslpassword=***"


async def test_methods_cannot_multiply_the_metrics_series(client: httpx.AsyncClient) -> None:
    """Broke: the method of a request was a label as it came, and the HTTP parser takes
    some thirty (PROPFIND, MKCOL, PURGE, ...): each, sent to each route, was a counter
    and a 16-series histogram of its own. Without a token, one client added some 60,000
    series to the process's memory and to every scrape. Now any other method is `other`."""
    methods = ["PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK", "SEARCH"]
    methods += ["PURGE", "REPORT", "MKCALENDAR", "SUBSCRIBE", "NOTIFY", "LINK", "TRACE"]
    for method in methods:
        for path in ("/health", "/api/users/@me", "/no/such/route"):
            await client.request(method, path)
    text = (await client.get("/metrics", headers=METRICS_HEADERS)).text
    labels = set(re.findall(r'^xfchat_http_\w+\{method="([^"]*)"', text, re.MULTILINE))
    assert labels <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}
    assert 'xfchat_http_requests_total{method="other",route="/health",status="405"} 15.0' in text


def _send_raw(base: str, head: bytes) -> bytes:
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


BAD_HANDSHAKE = (
    b"GET /api/gateway HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


async def test_a_refused_websocket_handshake_writes_no_log_line(servers: Servers) -> None:
    """Broke: with XFCHAT_ACCESS_LOG off, the websockets library wrote an INFO line,
    "connection rejected (400 Bad Request)", for every malformed upgrade (and every
    upgrade to no route, 403): no token and no rate limit, so any client could write
    thousands a second (as "Invalid HTTP request received." could, a DEBUG line since).
    A DEBUG line now, as the other WebSocket lines are with the access log off."""
    proc, base = servers.start()
    for path in (b"/api/gateway", b"/api/gateway", b"/no/such/route"):
        answer = _send_raw(base, BAD_HANDSHAKE.replace(b"/api/gateway", path))
        assert answer.startswith((b"HTTP/1.1 400", b"HTTP/1.1 403")), answer[:100]
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        await client.get("/health")  # (a later request: the refusals were logged before)
    assert "connection rejected" not in proc.output, proc.output[-2000:]


def test_a_record_whose_message_is_not_text_is_written_not_raised() -> None:
    """Broke: the filter looked a record's `msg` up in a set of the WebSocket frame
    dumps' formats, and a message that is no text and cannot be hashed (a dict or a list:
    logging takes any object, `logger.info(payload)`, as a library may) raised
    TypeError out of the handler's filter: into the caller of the log call (a request
    failed for its debug line), and the record was lost."""

    def emit(logger: logging.Logger) -> None:
        logger.info({"access_token": "x"})
        logger.info(["a", "list"])

    for fmt in ("text", "json"):
        out = _logged(fmt, emit)
        assert "'list'" in out and "access_token" in out, out
