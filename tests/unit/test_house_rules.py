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
    assert offenders == [], offenders


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
    assert offenders == [], offenders


def test_http_lives_only_in_api() -> None:
    offenders = []
    for path in modules(PACKAGE):
        if PACKAGE / "api" in path.parents or path.name in {"app.py", "cli.py", "dev.py"}:
            continue
        text = path.read_text()
        if re.search(r"^\s*(from|import) (fastapi|starlette)\b", text, re.M):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == [], offenders


def test_events_are_emitted_only_from_the_domain() -> None:
    offenders = []
    for path in modules(PACKAGE):
        if PACKAGE / "domain" in path.parents:
            continue
        # (the signal module's own signal.signal() is not the domain's signal())
        if re.search(r"(?<!signal\.)\b(emit|emit_many|signal)\(", path.read_text()):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == [], offenders


def calls(path: Path, names: set[str]) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name in names:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}")
    return found


EVENT_WRITERS = {
    "insert_events",
    "insert_events_many",
    "insert_messages_and_events",
    "send_batch_fast",
    "notify",
}
EVENT_WRITING_MODULES = {
    PACKAGE / "domain" / "events.py",
    PACKAGE / "domain" / "messages_send.py",
    PACKAGE / "domain" / "messages_send_fast.py",
}


def test_only_the_event_writers_call_the_statements_that_write_events() -> None:
    """Appending to the log and NOTIFY happen only through domain/events.py (and the send
    batch, which appends its events in its own statement), whose functions refuse to run
    outside a transaction; pg_notify appears in Python only for ephemeral signals (the
    log's notifications are sent by the commit trigger of migration 0008)."""
    offenders = []
    for path in modules(PACKAGE):
        text = path.read_text()
        if "pg_notify" in text and path != QUERIES / "event_log.py":
            offenders.append(f"{path.relative_to(ROOT)}: pg_notify")
        if path in EVENT_WRITING_MODULES or QUERIES in path.parents:
            continue
        offenders += calls(path, EVENT_WRITERS)
    assert offenders == [], offenders


def test_events_are_made_only_by_their_registered_type() -> None:
    offenders = []
    for path in modules(PACKAGE):
        if path == PACKAGE / "domain" / "events.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Event":
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == [], offenders


# Tables that decide who may see a channel and do what in it.
ACCESS_TABLES = re.compile(
    r"\b(conversation_participants|blocks|server_members|member_roles|"
    r"channel_permission_overrides)\b"
)
# Query functions that read or write those tables for another purpose than deciding
# access: managing the memberships themselves.
ACCESS_TABLE_MANAGERS = {
    "users.py": {"search_users"},  # ranks people you share something with first
    "blocks.py": "*",
    "friends.py": "*",
    "servers.py": "*",
    "roles.py": "*",
    "channels.py": {
        "insert_conversation_participant",
        "insert_conversation_participants",
        "list_overrides",
        "count_server_overrides",
        "count_shown_overrides",
        "delete_permission_override",
        "list_channels_overriding_role",
    },
    # (an account's own memberships, blocks and roles, read for its owner's export)
    "account_export.py": {"ACCOUNT_DOCUMENT"},
    "conversations.py": {
        "NOT_FROM_BLOCKED",  # (a blocked author's mentions count for nothing)
        "NOT_FROM_BLOCKED_W",
        "list_participant_ids",
        "list_conversation_peers",  # (whose presence ready carries)
        "list_groups_with_participants",  # (the groups an account leaves at once)
        "delete_participant_of_all",
        "block_between",
        "users_at_conversation_limit",
        "list_conversations",
        "list_conversations_by_id",
        "_LIST_SELECT",  # (the select list of the two above)
    },
}


def test_only_the_access_seam_decides_who_may_see_a_channel() -> None:
    """SQL reads the tables that decide access only in db/queries/access.py (and in the
    functions that manage those memberships); only domain/access.py (and the send batch,
    through its `refusal` and `facts_permissions`, on either path) turns the facts into
    permissions; nothing in realtime or api touches either."""
    offenders = []
    for path in modules(QUERIES):
        if path.name == "access.py":
            continue
        allowed = ACCESS_TABLE_MANAGERS.get(path.name, set())
        for fn in ast.parse(path.read_text()).body:
            if not isinstance(fn, ast.AsyncFunctionDef | ast.FunctionDef | ast.Assign):
                continue
            if isinstance(fn, ast.Assign):  # a module constant, by its name
                target = fn.targets[0]
                name = target.id if isinstance(target, ast.Name) else "(module constant)"
            else:
                name = fn.name
            text = " ".join(c.value for c in string_constants(fn))
            if ACCESS_TABLES.search(text) and allowed != "*" and name not in allowed:
                offenders.append(f"{path.relative_to(ROOT)}: {name}")
    for path in modules(PACKAGE):
        text = path.read_text()
        if path not in {PACKAGE / "domain" / "access.py", PACKAGE / "domain" / "permissions.py"}:
            if re.search(r"\bcompute_permissions\(", text):
                offenders.append(f"{path.relative_to(ROOT)}: compute_permissions")
        seam_user = path.parent.name == "domain" and path.name in {
            "access.py",
            "messages_batch.py",
            "messages_send.py",
            "messages_send_fast.py",
        }
        if "queries.access" in text and not seam_user and path.parent != QUERIES:
            if path.name != "permissions.py":  # it only names the facts' type
                offenders.append(f"{path.relative_to(ROOT)}: imports db.queries.access")
    assert offenders == [], offenders


def test_no_pattern_relies_on_a_dollar_to_end_the_text() -> None:
    """To Python's `re` a pattern ending in `$` passes a value with a final newline
    ("name\n" was a username, and a 500 from the database's check): patterns that judge
    a whole value use `fullmatch`, written without the anchors. (Schema patterns, which
    pydantic runs in Rust, where `$` ends the text, keep theirs.)"""
    offenders = []
    for path in modules(PACKAGE):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "re"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and str(node.args[0].value).endswith("$")
            ):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == [], offenders


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


def test_every_bucket_counted_per_client_address_is_listed_in_the_readme() -> None:
    """Each `ip_limit` bucket is among the README's buckets, and among those that count
    an IPv6 client in its /48 too (address_checks does so for every one of them)."""
    readme = " ".join((ROOT / "README.md").read_text().split())
    listed = readme[readme.index("Buckets: ") :]
    listed = listed[: listed.index(" A client address is ")]
    wide = readme[readme.index("The buckets per client address (") :]
    wide = wide[: wide.index(")")]
    buckets = set()
    for path in modules(PACKAGE):
        buckets |= set(re.findall(r'ip_limit\(\s*"([a-z_.]+)"', path.read_text()))
    assert buckets  # (the pattern still finds them)
    assert sorted(b for b in buckets if f"`{b}`" not in listed) == []
    assert sorted(b for b in buckets if f"`{b}`" not in wide) == []


def test_ci_runs_exactly_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "uv run pytest" in readme.split("\n## ")[0]  # among the first commands
    assert 'exec uv run pytest "$@"' in ci


def test_the_readme_lists_every_event_type_as_defined() -> None:
    from xfchat.domain.events import markdown_table

    assert markdown_table() in (ROOT / "README.md").read_text()


DESTRUCTIVE = re.compile(r"\b(DROP\s+TABLE|DROP\s+COLUMN|DELETE\s+FROM|TRUNCATE|UPDATE)\b", re.I)


def test_every_down_that_drops_or_deletes_rows_says_what_it_destroys() -> None:
    """`xfchat migrate revert` refuses a down marked `-- xfchat: destroys <what>` without
    --destroy-data: a DROP TABLE, DROP COLUMN, DELETE, TRUNCATE or UPDATE in a down
    either carries that mark, or `-- xfchat: no data lost: <why>` (transient rows), in
    its header comment."""
    from xfchat.db.migrate import DEFAULT_DIR, DESTROYS, KEEPS, discover

    unmarked, misplaced = [], []
    for mig in discover(DEFAULT_DIR):
        lines = mig.down_sql.splitlines()
        header = []
        for line in lines:
            if line.strip() and not line.strip().startswith("--"):
                break
            header.append(line.strip())
        marks = [h for h in header if h.startswith((DESTROYS, KEEPS))]
        statements = "\n".join(line.split("--", 1)[0] for line in lines)
        if DESTRUCTIVE.search(statements) and not marks:
            unmarked.append(mig.down_path.name)
        if any(line.strip().startswith((DESTROYS, KEEPS)) for line in lines[len(header) :]):
            misplaced.append(mig.down_path.name)  # (a mark below the header is not read)
    assert unmarked == [], f"say what reverting these destroys: {unmarked}"
    assert misplaced == [], misplaced


def test_every_down_that_destroys_data_is_in_the_operations_table() -> None:
    """docs/operations.md lists the downs that destroy data, for whoever plans a rollback
    (0033's was missing: found by a self-hoster following the doc)."""
    from xfchat.db.migrate import DEFAULT_DIR, discover

    doc = (ROOT / "docs" / "operations.md").read_text()
    listed = set(re.findall(r"^\| `(\d{4}_\w+)` \|", doc, flags=re.MULTILINE))
    destroying = {
        mig.down_path.name.removesuffix(".down.sql")
        for mig in discover(DEFAULT_DIR)
        if mig.destroys is not None
    }
    assert destroying - listed == set(), "add these to the table of downs that destroy data"
    assert listed - destroying == set(), "these downs destroy nothing (or are gone)"
