"""An operator upgrading a live installation: every migration's down is the exact
inverse of its up (the schema as pg_dump prints it), and what a migration writes beside
the running servers' writes stays right."""

from __future__ import annotations

import asyncio
import difflib
import shutil
import subprocess
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.db.test_migrations import a_group_before_0041, hold_users, with_migration
from tests.support import until_one_waits_for_a_lock
from xfchat.db.migrate import MigrationError, Migrator, _statements, discover

PG_DUMP = shutil.which("pg_dump")


def schema(url: str) -> str:
    """The schema as pg_dump prints it, without what differs between two dumps of one
    schema (comments, SET lines, the schema_migrations bookkeeping)."""
    assert PG_DUMP is not None
    out = subprocess.run(
        [
            PG_DUMP,
            "--schema-only",
            "--no-owner",
            "--no-privileges",
            "--exclude-table=schema_migrations",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    lines = [
        line
        for line in out.splitlines()
        if line.strip()
        and not line.startswith(("--", "SET ", "SELECT pg_catalog", "\\restrict", "\\unrestrict"))
    ]
    # (sorted: a column a down dropped and the up added again comes last, which changes
    # no behaviour of the code: it names its columns)
    return "\n".join(sorted(line.rstrip(",") for line in lines))


def first(count: int, tmp_path: Path) -> Path:
    """A migrations directory with only the first `count` migrations of the code."""
    directory = tmp_path / f"first_{count}"
    directory.mkdir()
    for mig in discover()[:count]:
        for path in (mig.up_path, mig.down_path):
            (directory / path.name).symlink_to(path)
    return directory


@pytest.mark.skipif(PG_DUMP is None, reason="pg_dump is not installed")
async def test_every_down_is_the_exact_inverse_of_its_up(empty_db_url: str, tmp_path: Path) -> None:
    """Every migration reverted one at a time, newest first, then applied again one at a
    time: the schema at each step up is the one its step down left (pg_dump
    --schema-only: tables, columns with their types and defaults, constraints, indexes,
    functions, triggers), so a down leaves nothing of its up behind and takes nothing
    else with it."""
    conn = await asyncpg.connect(empty_db_url)
    try:
        migrations = discover()
        await Migrator(conn).run()
        before: dict[int, str] = {len(migrations): schema(empty_db_url)}
        for count in range(len(migrations), 0, -1):
            await Migrator(conn).revert(1, destroy_data=True)
            before[count - 1] = schema(empty_db_url)
        differ = []
        for count in range(1, len(migrations) + 1):
            await Migrator(conn, first(count, tmp_path)).run()
            again = schema(empty_db_url)
            if again != before[count]:
                diff = "\n".join(
                    difflib.unified_diff(
                        before[count].splitlines(), again.splitlines(), lineterm="", n=1
                    )
                )
                differ.append(f"{migrations[count - 1].label}:\n{diff}")
        assert not differ, "\n\n".join(differ)
    finally:
        await conn.close()


async def test_an_edit_in_flight_across_0041s_backfill_leaves_no_mention_it_took_back(
    empty_db_url: str,
) -> None:
    """0041 runs beside the servers: its triggers first, then the backfill of the messages
    already there, then a pass that takes out what the backfill wrote from a message as
    it was before an edit that committed meanwhile. Was: an edit whose trigger ran before
    the backfill committed (its DELETE could not see the backfill's row) and which
    committed after the pass had read the message as it was, left the backfill's row of
    the mention it took back: the named person's unread mention count counted a message
    that no longer names them, for as long as the message lives. Now 0043 waits for the
    writes to messages in flight, then takes out every such row."""
    conn = await asyncpg.connect(empty_db_url)
    editor = await asyncpg.connect(empty_db_url)
    try:
        author, channel = await a_group_before_0041(conn)
        was_named, now_named = uuid.uuid4(), uuid.uuid4()
        await conn.execute(
            "INSERT INTO messages (id, channel_id, seq, author_id, content, mentions)"
            " VALUES (gen_random_uuid(), $1, 1, $2, 'hi', ARRAY[$3]::uuid[])",
            channel,
            author,
            was_named,
        )
        # 0041 as `xfchat migrate run` runs it, one statement at a time, with an edit of
        # the message (a server of either release) begun once its triggers are in place
        # and committed after its last statement.
        mention_rows = next(m for m in discover() if m.version == 41)
        statements = _statements(mention_rows.up_sql)
        assert statements is not None
        backfill = next(
            i for i, s in enumerate(statements) if s.startswith("INSERT INTO message_mentions")
        )
        for statement in statements[:backfill]:
            await conn.execute(statement)
        edit = editor.transaction()
        await edit.start()
        await editor.execute(
            "UPDATE messages SET mentions = ARRAY[$2]::uuid[], content = 'hello' WHERE channel_id = $1 AND seq = 1",
            channel,
            now_named,
        )
        for statement in statements[backfill:]:
            await conn.execute(statement)
        await conn.execute(
            "INSERT INTO schema_migrations (version, name, checksum, execution_ms) VALUES ($1, $2, $3, 0)",
            mention_rows.version,
            mention_rows.name,
            mention_rows.checksum,
        )
        # The rest of the release's migrations start while the edit is still open.
        running = asyncio.create_task(Migrator(conn).run())
        watch = await asyncpg.connect(empty_db_url)
        try:  # (until 0043's statement is seen waiting for the edit; a hang guard only)
            for _ in range(1200):
                if running.done() or await watch.fetchval(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE query LIKE '%virtualxid = ANY(writing)%'"
                    " AND pid <> pg_backend_pid()"
                ):
                    break
                await asyncio.sleep(0.05)
        finally:
            await watch.close()
        assert not running.done()  # (it waits for the edit, blocking no one)
        await editor.fetchval("SELECT 1")  # (the edit's connection is not held up)
        await edit.commit()
        await asyncio.wait_for(running, 30)
        rows = await conn.fetch(
            "SELECT target_id FROM message_mentions WHERE channel_id = $1", channel
        )
        assert [r["target_id"] for r in rows] == [now_named]
    finally:
        await editor.close()
        await conn.close()


async def test_an_alter_table_of_a_file_without_a_transaction_is_bounded_too(
    empty_db_url: str,
) -> None:
    """0033 runs outside a transaction (its CHECK is validated apart) and alters users
    and sessions there: was, no lock bound for it (the bound was set only for a
    transaction's migration), so queued behind a report's long transaction its ALTER
    TABLE users waited without end, and every query of the running servers on users
    (each sign-in, each request's session) waited behind it. Now a statement of such a
    file that builds nothing CONCURRENTLY waits for its locks as a transaction's
    migration does: bounded, tried again, then refused naming the holder."""
    conn = await asyncpg.connect(empty_db_url)
    await Migrator(conn).run()
    await Migrator(conn).revert(len([m for m in discover() if m.version >= 33]), destroy_data=True)
    holder, _held = await hold_users(empty_db_url)
    live = await asyncpg.connect(empty_db_url)
    lines: list[str] = []
    try:
        migrator = Migrator(
            conn, log=lines.append, lock_timeout_s=0.3, lock_attempts=2, lock_pause_s=0.1
        )
        running = asyncio.create_task(migrator.run())
        await until_one_waits_for_a_lock(live, running)
        assert not running.done()  # (its ALTER TABLE users is queued behind the report)
        # (a hang guard: were its wait unbounded, this would wait for the report, which
        # does not end before the refusal below)
        assert await asyncio.wait_for(live.fetchval("SELECT count(*) FROM users"), 30) == 0
        with pytest.raises(MigrationError) as refused:
            await asyncio.wait_for(running, 20)
        message = str(refused.value)
        assert "0033_account_deletion, statement 1 of 3, was not recorded" in message
        assert f"pid {holder.get_server_pid()} (application_name 'report'" in message
        assert any("(attempt 1 of 2)" in line for line in lines)
        await holder.close()
        assert next(m.version for m in await Migrator(conn).run()) == 33  # (then it runs)
    finally:
        await holder.close()
        await live.close()
        await conn.close()


async def test_a_concurrent_index_build_killed_half_way_is_built_again_by_the_next_run(
    empty_db_url: str,
) -> None:
    """`xfchat migrate run` killed (its session gone) while 0040 builds its index
    CONCURRENTLY: the build leaves an INVALID index and 0040 unrecorded; the next run
    drops it and builds it whole, rather than keep an index no query may use."""
    conn = await asyncpg.connect(empty_db_url)
    await Migrator(conn).run()
    await Migrator(conn).revert(len([m for m in discover() if m.version >= 40]), destroy_data=True)
    holder, held = await hold_users(empty_db_url)
    await holder.fetchval("SELECT count(*) FROM messages")
    killed = await asyncpg.connect(empty_db_url)
    try:
        running = asyncio.create_task(Migrator(killed).run())
        await until_one_waits_for_a_lock(conn, running)  # (the build waits for the report)
        index = (
            "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass('messages_live_idx')"
        )
        assert await conn.fetchval(index) is False
        await conn.execute("SELECT pg_terminate_backend($1)", killed.get_server_pid())
        with pytest.raises(
            (MigrationError, asyncpg.PostgresError, asyncpg.InterfaceError, ConnectionError)
        ):
            await asyncio.wait_for(running, 10)
        await held.rollback()
        states = {s.version: s.status for s in await Migrator(conn).status()}
        assert states[40] == "pending" and states[39] == "applied"
        assert await conn.fetchval(index) is False  # (left INVALID)
        assert next(m.version for m in await Migrator(conn).run()) == 40
        assert await conn.fetchval(index) is True
        assert await Migrator(conn).is_current()
    finally:
        await holder.close()
        await killed.close()
        await conn.close()


async def test_a_process_on_a_schema_reverted_under_it_is_unready(
    client: httpx.AsyncClient, db_url: str
) -> None:
    """Rolling back, `xfchat migrate revert` of the new release's migrations leaves its
    processes on a schema older than their code: they say so (503 NOT_READY), and the
    routes that use what was reverted fail, so docs/operations.md has them stopped
    before the revert, not after."""
    assert (await client.get("/ready")).status_code == 200
    conn = await asyncpg.connect(db_url)
    try:
        await Migrator(conn).revert(1, destroy_data=True)
    finally:
        await conn.close()
    response = await client.get("/ready")
    assert response.status_code == 503
    assert response.json()["code"] == "NOT_READY"


async def test_a_concurrent_build_outlasts_the_roles_own_lock_timeout(
    empty_db_url: str, tmp_path: Path
) -> None:
    """docs/operations.md has a PgBouncer installation set `ALTER ROLE xfchat SET
    lock_timeout = '30s'`: the migrations' own connection has it too. Was: a `CREATE
    INDEX CONCURRENTLY` waiting that long for an older transaction (a report) failed the
    start, though the README says such a statement waits without the bound; now it
    waits (blocking nobody) until the report ends. A comment naming CONCURRENTLY does not
    make another statement wait without its bound."""
    up = (
        "-- xfchat: no transaction\n"
        "DROP INDEX CONCURRENTLY IF EXISTS users_extra_idx;\n"
        "-- xfchat: statement break\n"
        "CREATE INDEX CONCURRENTLY users_extra_idx ON users (created_at);\n"
    )
    directory = with_migration(tmp_path, up)
    conn = await asyncpg.connect(empty_db_url, server_settings={"lock_timeout": "200"})
    await Migrator(conn).run()
    holder, held = await hold_users(empty_db_url)
    try:
        running = asyncio.create_task(Migrator(conn, directory).run())
        await until_one_waits_for_a_lock(holder, running)
        await asyncio.sleep(1)  # (five times the role's lock_timeout)
        assert not running.done()
        await held.rollback()
        assert [m.label for m in await asyncio.wait_for(running, 20)] == ["9000_extra"]
        assert await conn.fetchval("SHOW lock_timeout") == "200ms"  # (only its own)
    finally:
        await holder.close()
        await conn.close()
