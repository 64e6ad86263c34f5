"""The audit log is read by an index of what a request asks for, as the pool plans it
(generically, once per connection): a filter of the server's log by actor or action, and
the export's entries of one account, read no more of the log than what they return."""

from __future__ import annotations

import asyncpg
import orjson
import pytest

from tests.support import plan_nodes
from xfchat.db.queries import account_export, audit

Args = str  # the EXECUTE's arguments, in SQL


async def _index_conditions(conn: asyncpg.Connection, sql: str, args: Args) -> list[str]:
    """What bounds each read of audit_log in the statement's generic plan, with sequential
    scans discouraged (so that any index able to serve it is taken): an index's condition,
    or "Seq Scan" where none could."""
    await conn.execute("SET enable_seqscan = off")
    await conn.execute(f"PREPARE probe AS {sql}")
    try:
        raw = await conn.fetchval(f"EXPLAIN (FORMAT JSON) EXECUTE probe({args})")
    finally:
        await conn.execute("DEALLOCATE probe")
        await conn.execute("RESET enable_seqscan")
    plan = orjson.loads(raw) if isinstance(raw, str) else raw
    reads = [
        n
        for n in plan_nodes(plan[0]["Plan"])
        if n.get("Relation Name") == "audit_log" or n.get("Index Name", "").startswith("audit")
    ]
    assert reads, plan
    return [
        "Seq Scan" if n["Node Type"] == "Seq Scan" else n.get("Index Cond", "")
        for n in reads
        if n["Node Type"] != "Bitmap Heap Scan"
    ]


SERVER, ACTOR = "gen_random_uuid()", "gen_random_uuid()"


@pytest.mark.parametrize(
    ("sql", "args", "bound_by"),
    [
        (audit.AUDIT_ALL, f"{SERVER}, 100, 50", ("server_id",)),
        (audit.AUDIT_BY_ACTOR, f"{SERVER}, 100, 50, {ACTOR}", ("actor_id",)),
        (audit.AUDIT_BY_ACTION, f"{SERVER}, 100, 50, 'member.banned'", ("action",)),
        (
            audit.AUDIT_BY_ACTOR_AND_ACTION,
            f"{SERVER}, 100, 50, {ACTOR}, 'member.banned'",
            ("actor_id", "action"),
        ),
    ],
)
async def test_a_page_of_a_servers_log_is_read_by_its_filter(
    pool: asyncpg.Pool, sql: str, args: Args, bound_by: tuple[str, ...]
) -> None:
    # Was: one statement took the filters as `($4 IS NULL OR actor_id = $4)`, which a
    # generic plan cannot look up: it read the server's whole log newest first and kept
    # that actor's entries (a filter naming someone who never acted read all of it).
    async with pool.acquire() as conn:
        conditions = await _index_conditions(conn, sql, args)
    assert conditions and all(any(b in c for b in bound_by) for c in conditions), conditions


async def test_an_accounts_entries_are_looked_up_for_its_export(pool: asyncpg.Pool) -> None:
    # Was: by it, about it, about its messages: the whole log read, under the CLI's
    # statement timeout.
    async with pool.acquire() as conn:
        conditions = await _index_conditions(conn, account_export.AUDIT_ENTRIES, ACTOR)
    assert len(conditions) == 3 and "Seq Scan" not in conditions, conditions
