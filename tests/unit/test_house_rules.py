"""The conventions that can be checked mechanically."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.support import ROOT, SRC

PACKAGE = SRC / "xfchat"
QUERIES = PACKAGE / "db" / "queries"
SQL_START = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|WITH|CREATE|ALTER|DROP|TRUNCATE)\b")


def modules(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.py"))


def string_constants(tree: ast.AST) -> list[ast.Constant]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def test_sql_lives_only_in_db_queries() -> None:
    offenders = []
    for path in modules(PACKAGE):
        if QUERIES in path.parents:
            continue
        for node in string_constants(ast.parse(path.read_text())):
            if SQL_START.match(node.value):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


SQL_WORDS = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|FROM|WHERE|VALUES|RETURNING|CREATE|DROP)\b")


def is_sql(node: ast.JoinedStr) -> bool:
    literal = "".join(p.value for p in node.values if isinstance(p, ast.Constant))
    return bool(SQL_WORDS.search(literal))


def test_only_module_constants_are_ever_interpolated_into_sql() -> None:
    """f-strings in query modules may splice in column-list constants (ALL_CAPS names)
    or a checked identifier (`_ident(...)`), never a value: values are $n parameters."""
    offenders = []
    for path in modules(QUERIES):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.JoinedStr) and is_sql(node):
                for part in node.values:
                    if not isinstance(part, ast.FormattedValue):
                        continue
                    value = part.value
                    ok = (
                        (isinstance(value, ast.Name) and value.id.isupper())
                        or (
                            isinstance(value, ast.Call)
                            and isinstance(value.func, ast.Name)
                            and value.func.id == "_ident"
                        )
                        or (isinstance(value, ast.Name) and value.id == "quoted")
                    )
                    if not ok:
                        offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "format"
                and isinstance(node.func.value, ast.Constant)
            ):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} (.format)")
            if (
                isinstance(node, ast.BinOp)
                and isinstance(node.op, ast.Mod)
                and isinstance(node.left, ast.Constant)
                and isinstance(node.left.value, str)
            ):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} (%)")
    assert offenders == []


def test_http_lives_only_in_api() -> None:
    offenders = []
    for path in modules(PACKAGE):
        if PACKAGE / "api" in path.parents or path.name in {"app.py", "cli.py", "dev.py"}:
            continue
        text = path.read_text()
        if re.search(r"^\s*(from|import) (fastapi|starlette)\b", text, re.M):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_events_are_emitted_only_from_the_domain() -> None:
    offenders = []
    for path in modules(PACKAGE):
        if PACKAGE / "domain" in path.parents or path.parent.name == "realtime":
            continue
        if re.search(r"\b(emit|emit_many|append_messages|signal_ephemeral)\(", path.read_text()):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


EVENT_WRITERS = ("insert_events", "insert_messages_and_events", "notify")
NOTIFYING_QUERIES = {QUERIES / "event_log.py", QUERIES / "messages_send.py"}


def test_only_realtime_events_calls_the_statements_that_write_events() -> None:
    """Appending to the log and NOTIFY happen only through realtime/events.py, whose
    functions refuse to run outside a transaction; pg_notify appears only in the two
    query modules that hold those statements."""
    offenders = []
    for path in modules(PACKAGE):
        text = path.read_text()
        if "pg_notify" in text and path not in NOTIFYING_QUERIES:
            offenders.append(f"{path.relative_to(ROOT)}: pg_notify")
        if path == PACKAGE / "realtime" / "events.py" or QUERIES in path.parents:
            continue
        for node in ast.walk(ast.parse(text)):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name in EVENT_WRITERS:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}")
    assert offenders == []


def test_every_error_code_is_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    codes = set()
    for path in modules(PACKAGE):
        text = path.read_text()
        codes |= set(re.findall(r'code="([A-Z][A-Z0-9_]+)"', text))
        codes |= set(re.findall(r'default_code = "([A-Z][A-Z0-9_]+)"', text))
        codes |= set(re.findall(r'"code": "([A-Z][A-Z0-9_]+)"', text))
        codes |= set(re.findall(r'error_response\(\s*\d+,\s*"([A-Z][A-Z0-9_]+)"', text))
    codes |= {"NOT_FOUND", "METHOD_NOT_ALLOWED", "MALFORMED_JSON", "VALIDATION_ERROR"}
    codes.discard("UPPER_SNAKE")  # the placeholder in docstrings
    missing = sorted(code for code in codes if f"`{code}`" not in readme)
    assert missing == []


def test_every_setting_is_documented_in_the_readme() -> None:
    from pydantic import AliasChoices

    from xfchat.settings import Settings

    readme = (ROOT / "README.md").read_text()
    missing = []
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        assert isinstance(alias, AliasChoices)
        for name in alias.choices:
            if f"`{name}`" not in readme:
                missing.append(name)
    assert missing == []


def test_ci_runs_exactly_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "uv run pytest" in readme.split("\n## ")[0]  # among the first commands
    assert 'exec uv run pytest "$@"' in ci
