from __future__ import annotations

import logging
import socket
from pathlib import Path
from uuid import uuid4

import pytest
from pydantic import ValidationError

from xfchat.cli import bound_address, configure_logging
from xfchat.dev import dev_defaults
from xfchat.domain.sealed_secrets import Keyring, SealError
from xfchat.settings import (
    DatabaseSettings,
    Settings,
    SettingsError,
    describe_validation_error,
    load_database_settings,
    load_settings,
)

GOOD = "k3J9-pQ2x_Lm8vN4bR7tY1wZ6cF5hD0sA_eG"


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("XFCHAT_PORT", "SERVER_PORT", "XFCHAT_HOST"):
        monkeypatch.delenv(name, raising=False)
    s = Settings(secret=GOOD)  # type: ignore[arg-type]
    assert (s.host, s.port, s.pool_min, s.pool_max, s.statement_timeout_s) == (
        "0.0.0.0",
        3000,
        5,
        25,
        30.0,
    )
    assert s.event_retention_days == 7


def test_server_port_is_accepted_as_in_the_seeds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XFCHAT_PORT", raising=False)
    monkeypatch.setenv("SERVER_PORT", "4242")
    monkeypatch.setenv("XFCHAT_SECRET", GOOD)
    assert load_settings().port == 4242


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        ("changeme", "XFCHAT_SECRET is a well-known default"),
        ("CHANGEME", "XFCHAT_SECRET is a well-known default"),
        ("abc123", "XFCHAT_SECRET must be at least 32 characters"),
        ("ab" * 20, "XFCHAT_SECRET is too repetitive"),
        ("", "XFCHAT_SECRET must be at least 32 characters"),  # (was: taken, then 500s)
    ],
)
def test_weak_secrets_are_refused_naming_the_variable(secret: str, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        Settings(secret=secret)  # type: ignore[arg-type]
    line = describe_validation_error(info.value)
    assert line.startswith(message) and "token_urlsafe" in line


def test_missing_secret_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XFCHAT_SECRET", raising=False)
    with pytest.raises(SettingsError, match="^XFCHAT_SECRET is required"):
        load_settings()


def test_database_url_must_be_postgresql() -> None:
    with pytest.raises(ValidationError) as info:
        DatabaseSettings(database_url="sqlite:///x.db")
    assert describe_validation_error(info.value).startswith(
        "DATABASE_URL must start with postgresql://"
    )
    # Was: a traceback at start (describing the target read the port).
    for url in ("postgresql://u@127.0.0.1:notaport/db", "postgresql://u@[::1/db"):
        with pytest.raises(ValidationError) as info:
            DatabaseSettings(database_url=url)
        assert describe_validation_error(info.value).startswith("DATABASE_URL cannot be read")


def test_a_bad_value_names_the_variable_and_says_what_it_must_be(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Was: pydantic's words ("XFCHAT_DB_POOL_MAX Input should be a valid integer, unable to
    parse string as an integer"), without the value given."""
    monkeypatch.setenv("XFCHAT_SECRET", GOOD)
    for name, value in {
        "XFCHAT_DB_POOL_MAX": "lots",
        "XFCHAT_PORT": "99999",
        "XFCHAT_LOG_FORMAT": "xml",
        "XFCHAT_ACCESS_LOG": "maybe",
        "XFCHAT_SHUTDOWN_GRACE": "-1",
        "XFCHAT_SSE_KEEPALIVE": "soon",
        "XFCHAT_MAX_BODY_BYTES": "99999999999",
    }.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert sorted(info.value.problems) == [
        "XFCHAT_ACCESS_LOG must be true or false (or 1/0, yes/no, on/off), not 'maybe'",
        "XFCHAT_DB_POOL_MAX must be a whole number, not 'lots'",
        "XFCHAT_LOG_FORMAT must be 'text' or 'json', not 'xml'",
        "XFCHAT_MAX_BODY_BYTES must be at most 1073741824, not '99999999999'",
        "XFCHAT_PORT must be at most 65535, not '99999'",
        "XFCHAT_SHUTDOWN_GRACE must be at least 0, not '-1'",
        "XFCHAT_SSE_KEEPALIVE must be a number, not 'soon'",
    ]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"XFCHAT_TURN_URLS": "turn:turn.example.com:3478"},
            "XFCHAT_TURN_SECRET is required with XFCHAT_TURN_URLS",
        ),
        (
            {"XFCHAT_TURN_URLS": "turn:turn.example.com", "XFCHAT_TURN_SECRET": "secret"},
            "XFCHAT_TURN_SECRET must be at least 16 characters",
        ),
        ({"XFCHAT_TURN_URLS": "https://turn.example.com"}, "XFCHAT_TURN_URLS 'https://"),
        ({"XFCHAT_STUN_URLS": "stun:ok.example.com,turn:x"}, "XFCHAT_STUN_URLS 'turn:x'"),
        ({"XFCHAT_TURN_TTL": "10"}, "XFCHAT_TURN_TTL"),
        (
            {"XFCHAT_VOICE_RELAY_ONLY": "true", "XFCHAT_STUN_URLS": "stun:s.example.com"},
            "XFCHAT_VOICE_RELAY_ONLY needs XFCHAT_TURN_URLS",
        ),
        # Was: taken, the pool quietly using the smaller.
        (
            {"XFCHAT_DB_POOL_MIN": "50", "XFCHAT_DB_POOL_MAX": "10"},
            "XFCHAT_DB_POOL_MAX must be at least XFCHAT_DB_POOL_MIN (50)",
        ),
        # Was: sent as "0" (whole ms), which PostgreSQL reads as no timeout at all.
        ({"XFCHAT_DB_STATEMENT_TIMEOUT": "0.0009"}, "XFCHAT_DB_STATEMENT_TIMEOUT "),
        # Were taken: an idle server busy flushing, 880 KB/s of keep-alives per stream...
        *(
            ({name: "1e-9"}, f"{name} must be at least {least}, not '1e-9'")
            for name, least in (
                ("XFCHAT_USAGE_FLUSH_INTERVAL", "0.1"),
                ("XFCHAT_SSE_KEEPALIVE", "1"),
                ("XFCHAT_SEND_TIMEOUT", "0.1"),
                ("XFCHAT_EVENT_RETENTION_DAYS", "0.0417"),
                ("XFCHAT_REFRESH_TOKEN_TTL_DAYS", "0.0417"),
            )
        ),
    ],
)
def test_settings_that_would_be_taken_wrongly_are_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    monkeypatch.setenv("XFCHAT_SECRET", GOOD)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert str(info.value).startswith(message)


def test_ice_server_settings_read_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XFCHAT_SECRET", GOOD)
    monkeypatch.setenv("XFCHAT_STUN_URLS", "stun:a.example.com:3478, stuns:[2001:db8::1]:5349")
    monkeypatch.setenv("XFCHAT_TURN_URLS", "turns:t.example.com:5349?transport=tcp")
    monkeypatch.setenv("XFCHAT_TURN_SECRET", "a-coturn-static-auth-secret")
    s = load_settings()
    assert s.stun_urls == ["stun:a.example.com:3478", "stuns:[2001:db8::1]:5349"]
    assert s.turn_urls == ["turns:t.example.com:5349?transport=tcp"]
    assert s.turn_ttl_s == 86_400


def test_a_transaction_pooler_needs_a_direct_listen_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XFCHAT_SECRET", GOOD)
    monkeypatch.setenv("DATABASE_URL", "postgresql://x@127.0.0.1:6432/db")
    monkeypatch.setenv("XFCHAT_DB_POOLER", "transaction")
    monkeypatch.delenv("XFCHAT_LISTEN_URL", raising=False)
    with pytest.raises(SettingsError, match="^XFCHAT_LISTEN_URL is required with XFCHAT_DB_POOLER"):
        load_settings()
    monkeypatch.setenv("XFCHAT_LISTEN_URL", "postgresql://x@127.0.0.1:5432/db")
    s = load_settings()
    assert s.direct_url() == "postgresql://x@127.0.0.1:5432/db"
    monkeypatch.setenv("XFCHAT_REPLICA_URL", "mysql://replica")
    with pytest.raises(SettingsError, match="XFCHAT_REPLICA_URL must start with postgresql://"):
        load_settings()


def test_json_log_lines_carry_level_logger_message_and_extras() -> None:
    import json
    import logging

    from xfchat.log_format import JsonFormatter

    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = logging.LogRecord(
            "xfchat.x", logging.ERROR, "f", 1, "a %s", ("b",), sys.exc_info()
        )
    record.user_id = "u1"
    line = json.loads(JsonFormatter().format(record))
    assert (line["level"], line["logger"], line["message"], line["user_id"]) == (
        "error",
        "xfchat.x",
        "a b",
        "u1",
    )
    assert "ValueError: boom" in line["exception"] and line["time"].endswith("+00:00")


def test_json_log_lines_leave_out_uvicorns_coloured_copy() -> None:
    """Was: uvicorn's `color_message` extra (the message again, with terminal escapes)
    was a field of every such JSON line."""
    import json
    import logging

    from xfchat.log_format import JsonFormatter

    record = logging.LogRecord("uvicorn.error", logging.INFO, "f", 1, "Started %d", (7,), None)
    record.color_message = "Started \x1b[36m%d\x1b[0m"
    line = json.loads(JsonFormatter().format(record))
    assert sorted(line) == ["level", "logger", "message", "time"]
    assert line["message"] == "Started 7"


def test_the_cli_lines_are_json_lines_too_under_the_json_format(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Was: `[STARTUP] ...` lines (the start's steps, the workers' supervisor, a refusal)
    in plain text among the JSON lines of XFCHAT_LOG_FORMAT=json."""
    import json

    from xfchat.cli import fatal, say

    monkeypatch.setenv("XFCHAT_LOG_FORMAT", "json")
    say("ready: http://127.0.0.1:8080?access_token=SECRET1")
    with pytest.raises(SystemExit) as stopped:
        fatal("no database", 3, "and no luck", tag="MIGRATE")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(x["level"], x["logger"], x["message"]) for x in lines] == [
        ("info", "xfchat.startup", "ready: http://127.0.0.1:8080?access_token=[redacted]"),
        ("critical", "xfchat.migrate", "no database"),
        ("critical", "xfchat.migrate", "and no luck"),
    ]
    assert stopped.value.code == 3
    monkeypatch.setenv("XFCHAT_LOG_FORMAT", "text")
    say("ready")
    assert capsys.readouterr().err == "[STARTUP] ready\n"


@pytest.mark.parametrize(
    ("line", "kept"),
    [
        ("GET /api/events?access%5Ftoken=SECRET1&since=5 HTTP/1.1", "since=5"),
        # (no route reads these from a URL; a client that puts them there is not logged)
        ("GET /api/events?refresh_token=SECRET1&since=5 HTTP/1.1", "since=5"),
        ("GET /api/x?ticket=SECRET1 HTTP/1.1", "ticket="),
        ('"WebSocket /api/gateway?token=SECRET1" [accepted]', "[accepted]"),
        ("headers: [(b'authorization', b'Bearer SECRET1')]", "authorization"),
        ('< TEXT \'{"op":2,"d":{"token":"...SECRET1"}}\' [90 bytes]', "op"),
        ("a JWT eyJhbGciOi.eyJzdWIiOiJ.SECRET1abc in prose", "in prose"),
        # What users typed, and invite codes (anyone who read them could join).
        ('"GET /api/search?server_id=1&q=SECRET1+plans HTTP/1.1" 200', "server_id=1&q="),
        ('"GET /api/users/search?%71=SECRET1 HTTP/1.1" 200', "HTTP/1.1"),
        ('"POST /api/invites/SECRET1 HTTP/1.1" 200', "/api/invites/[redacted] HTTP"),
        ('"DELETE /api/servers/5/invites/SECRET1 HTTP/1.1" 204', "/invites/[redacted] "),
    ],
)
def test_every_log_line_is_written_without_its_tokens(line: str, kept: str) -> None:
    """On the handler, for every logger: the debug dumps of a header or a frame too."""
    import logging

    from xfchat.log_format import log_handler

    record = logging.LogRecord("uvicorn.error", logging.INFO, "f", 1, "%s", (line,), None)
    handler = log_handler("text")
    assert handler.filter(record)
    written = handler.format(record)
    assert "SECRET1" not in written and kept in written, written


def test_every_problem_is_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("XFCHAT_SECRET", "changeme")
    monkeypatch.setenv("XFCHAT_PORT", "http")
    monkeypatch.setenv("XFCHAT_PRESENCE_TIMEOUT", "1")  # under twice the 10 s interval
    monkeypatch.setenv("XFCHAT_TRUSTED_PROXIES", "the load balancer")
    with pytest.raises(SettingsError) as info:
        load_settings(require_database=True)
    named = [problem.split()[0] for problem in info.value.problems]
    assert sorted(named) == [
        "DATABASE_URL",
        "XFCHAT_PORT",
        "XFCHAT_PRESENCE_TIMEOUT",
        "XFCHAT_SECRET",
        "XFCHAT_TRUSTED_PROXIES",
    ]


def test_the_dev_banner_prints_a_database_url_without_its_password() -> None:
    """Was: `xfchat dev` printed DATABASE_URL whole, password and all."""
    from xfchat.db.pool import without_password

    assert without_password("postgresql://op:right-pass@db:5432/prod") == (
        "postgresql://op:***@db:5432/prod"
    )
    socket_url = "postgresql://postgres@/xfchat?host=/tmp/x&port=5432"
    assert without_password(socket_url) == socket_url  # (usable as it is)


def test_an_empty_setting_is_the_default_and_one_padded_or_naming_nothing_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Was: XFCHAT_HOST="" bound every interface (`xfchat dev`'s banner saying
    127.0.0.1), XFCHAT_MIGRATIONS_DIR="" read the current directory, and a directory
    that does not exist failed later, as a migration failure (exit 4)."""
    monkeypatch.setenv("XFCHAT_SECRET", GOOD)
    for empty in ("", "  "):
        monkeypatch.setenv("XFCHAT_HOST", empty)
        monkeypatch.setenv("XFCHAT_MIGRATIONS_DIR", empty)
        settings = load_settings()
        assert (settings.host, settings.migrations_dir) == ("0.0.0.0", None)
    monkeypatch.setenv("XFCHAT_HOST", "")
    dev_defaults(tmp_path)  # (`xfchat dev`: its own default, 127.0.0.1)
    assert load_settings().host == "127.0.0.1"

    monkeypatch.setenv("XFCHAT_HOST", " 10.0.0.1")
    monkeypatch.setenv("XFCHAT_MIGRATIONS_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert sorted(p.split()[0] for p in info.value.problems) == [
        "XFCHAT_HOST",
        "XFCHAT_MIGRATIONS_DIR",
    ]
    with pytest.raises(SettingsError, match="^XFCHAT_MIGRATIONS_DIR '/"):
        load_database_settings()  # (`xfchat migrate`: exit 2, one line)

    with socket.socket() as everywhere, socket.socket() as local:
        everywhere.bind(("", 0))
        local.bind(("127.0.0.1", 0))
        assert bound_address(everywhere).endswith(" (every interface)")
        assert bound_address(local) == f"127.0.0.1:{local.getsockname()[1]}"


def test_a_secret_with_whitespace_around_it_is_refused_and_what_it_sealed_opens(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Was: XFCHAT_METRICS_TOKEN with a file's final newline started a server no scrape
    could ever match, and XFCHAT_SECRET was taken with its newline while the keys of
    XFCHAT_TOTP_KEYS were stripped: the old secret listed there opened nothing."""
    monkeypatch.setenv("XFCHAT_SECRET", GOOD + "\n")
    monkeypatch.setenv("XFCHAT_METRICS_TOKEN", GOOD[::-1] + "\n")
    monkeypatch.setenv("XFCHAT_TOTP_KEYS", f"{GOOD[::-1]}, {GOOD}")
    monkeypatch.setenv("XFCHAT_TURN_URLS", "turn:turn.example.com")
    monkeypatch.setenv("XFCHAT_TURN_SECRET", " a-coturn-static-auth-secret")
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert sorted(p.split()[0] for p in info.value.problems) == [
        "XFCHAT_METRICS_TOKEN",
        "XFCHAT_SECRET",
        "XFCHAT_TOTP_KEYS",
        "XFCHAT_TURN_SECRET",
    ]
    assert all("starts or ends with whitespace" in p for p in info.value.problems)

    # Sealed before, under the secret with its newline: opens under the secret without
    # it, and is not current (the start seals it again).
    user, secret = uuid4(), "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
    sealed = Keyring([GOOD + "\n"]).seal(user, secret)
    keys = Keyring([GOOD])
    assert keys.open(user, sealed) == secret and not keys.is_current(sealed)
    with pytest.raises(SealError):
        Keyring([GOOD[::-1]]).open(user, sealed)


def test_a_credential_handed_to_another_party_may_not_be_the_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Was: XFCHAT_METRICS_TOKEN (given to whatever scrapes /metrics) or XFCHAT_TURN_SECRET
    (written into coturn's configuration) could be XFCHAT_SECRET itself, and whoever held
    either could sign session tokens."""
    monkeypatch.setenv("XFCHAT_SECRET", GOOD)
    monkeypatch.setenv("XFCHAT_METRICS_TOKEN", GOOD)
    monkeypatch.setenv("XFCHAT_TURN_URLS", "turn:turn.example.com")
    monkeypatch.setenv("XFCHAT_TURN_SECRET", GOOD)
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert sorted(p.split()[0] for p in info.value.problems) == [
        "XFCHAT_METRICS_TOKEN",
        "XFCHAT_TURN_SECRET",
    ]
    assert all("must not be XFCHAT_SECRET" in p for p in info.value.problems)
    monkeypatch.setenv("XFCHAT_METRICS_TOKEN", GOOD[::-1])
    monkeypatch.setenv("XFCHAT_TURN_SECRET", GOOD[::-1])
    assert load_settings().metrics_token is not None


def test_what_any_client_can_make_uvicorn_warn_about_is_a_debug_line(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Was: every unreadable request wrote a WARNING line (14 GB a day from one client)."""
    logger = logging.getLogger("uvicorn.error")
    monkeypatch.setattr(logger, "filters", [])
    monkeypatch.setattr(logger, "level", logging.INFO)  # (uvicorn sets it from the setting)
    configure_logging("info")
    logger.warning("Invalid HTTP request received.")
    logger.warning("Unsupported upgrade request.")
    logger.warning("a warning of the server's own")
    assert [r.getMessage() for r in caplog.records] == ["a warning of the server's own"]
    # The shutdown's grace ending with a stalled client's task left is the documented
    # end of a stop, not an error to alert on.
    caplog.clear()
    logger.error("Cancel %s running task(s), timeout graceful shutdown exceeded", 2)
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "Cancel 2 running task(s), timeout graceful shutdown exceeded")
    ]
    caplog.clear()
    logger.setLevel(logging.DEBUG)  # (XFCHAT_LOG_LEVEL=debug: shown, as debug)
    logger.warning("Invalid HTTP request received.")
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("DEBUG", "Invalid HTTP request received.")
    ]


def test_the_pools_retries_while_the_database_is_away_are_one_line_each(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Was: each of asyncpg's retries to open its minimum of connections logged a
    traceback of asyncpg's own internals (26-34 in a chaos run's three minutes of
    outages); the cause is kept on the line."""
    logger = logging.getLogger("asyncpg.pool")
    monkeypatch.setattr(logger, "filters", [])
    configure_logging("info")
    try:
        raise ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)")
    except ConnectionRefusedError:
        logger.warning("Failed to restore the pool connection floor; retrying", exc_info=True)
        logger.warning("another warning of the pool's", exc_info=True)
    try:
        raise TypeError("a defect, not the database away")
    except TypeError:
        logger.warning("Failed to restore the pool connection floor; retrying", exc_info=True)
    floor, other, defect = caplog.records
    assert defect.exc_info is not None  # (a defect keeps its traceback)
    assert floor.levelname == "WARNING" and floor.exc_info is None
    assert floor.getMessage() == (
        "Failed to restore the pool connection floor; retrying (ConnectionRefusedError:"
        " [Errno 111] Connect call failed ('127.0.0.1', 5432))"
    )
    assert other.exc_info is not None  # (anything else keeps its traceback)


def test_an_xfchat_variable_that_is_no_setting_is_named_with_the_nearest() -> None:
    """Was: a misspelt setting (XFCHAT_SHUTDOWN_GRCE) was silently its default."""
    from xfchat.settings import unknown_variables

    environ = {
        "XFCHAT_PORT": "1",
        "XFCHAT_PG_SOURCE": "wheel",  # (read by xfchat dev's PostgreSQL, not Settings)
        "XFCHAT_SHUTDOWN_GRCE": "60",
        "XFCHAT_ZZZ": "1",
        "PATH": "/bin",
    }
    assert unknown_variables(environ) == [
        "XFCHAT_SHUTDOWN_GRCE is no setting of XFChat's and is ignored"
        " (did you mean XFCHAT_SHUTDOWN_GRACE?)",
        "XFCHAT_ZZZ is no setting of XFChat's and is ignored",
    ]
