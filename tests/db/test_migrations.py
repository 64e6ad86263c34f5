from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from tests.support import clean_env, run_cli, until_one_waits_for_a_lock, xfchat
from xfchat.db.migrate import (
    DEFAULT_DIR,
    LOCK_KEY,
    LOCK_POLL_S,
    NO_TRANSACTION,
    STATEMENT_BREAK,
    MigrationError,
    Migrator,
    _describe,
    _statements,
    add,
    discover,
)
from xfchat.db.queries import messages as messages_q
from xfchat.db.queries import users as users_q
from xfchat.domain import validation
from xfchat.domain.email_keys import Rekeyed, rekey_emails

EXPECTED_TABLES = {
    "users",
    "webhooks",
    "media",
    "files",
    "file_chunks",
    "presence_processes",
    "presence_connections",
    "sessions",
    "refresh_tokens",
    "user_totp",
    "recovery_codes",
    "friend_requests",
    "friendships",
    "blocks",
    "usage_tracking",
    "servers",
    "server_members",
    "lingering_timeouts",
    "channel_purges",
    "search_reindexes",
    "channels",
    "conversation_participants",
    "roles",
    "member_roles",
    "channel_permission_overrides",
    "invites",
    "bans",
    "audit_log",
    "messages",
    "message_mentions",
    "message_edits",
    "reaction_counts",
    "reactions",
    "attachments",
    "read_states",
    "mutes",
    "notification_settings",
    "voice_states",
    "event_streams",
    "events",
    "rate_limits",
    "event_clock",
    "event_commits",
    "event_retention",
    "periodic_runs",
}


async def tables(conn: asyncpg.Connection) -> set[str]:
    rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {r["tablename"] for r in rows}


async def ann(conn: asyncpg.Connection) -> uuid.UUID:
    """A user, ann, written straight into the tables (as a migration finds one)."""
    user: uuid.UUID = await conn.fetchval(
        "INSERT INTO users (username, email, email_key, password_hash)"
        " VALUES ('ann', 'a@x.org', 'a@x.org', 'h') RETURNING id"
    )
    return user


async def test_migrations_apply_revert_all_and_apply_again(empty_db_url: str) -> None:
    conn = await asyncpg.connect(empty_db_url)
    try:
        migrator = Migrator(conn)
        applied = await migrator.run()
        assert [m.version for m in applied] == [m.version for m in discover()]
        assert await tables(conn) == EXPECTED_TABLES | {"schema_migrations"}
        assert await migrator.is_current()

        with pytest.raises(MigrationError, match=f"{len(applied)} migration.s. applied, not"):
            await migrator.revert(len(applied) + 4, destroy_data=True)  # (was: all, silently)
        assert await migrator.is_current()
        reverted = await migrator.revert(len(applied), destroy_data=True)
        assert [m.version for m in reverted] == sorted((m.version for m in applied), reverse=True)
        assert await tables(conn) == {"schema_migrations"}
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == 0
        # Nothing left behind: no types, sequences, functions or views of ours.
        leftovers = await conn.fetchval(
            """
            SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'public' AND c.relname <> 'schema_migrations'
              AND c.relname NOT LIKE 'schema_migrations%'
            """
        )
        assert leftovers == 0

        with pytest.raises(MigrationError, match="no migration is applied"):
            await migrator.revert(1)
        again = await migrator.run()
        assert len(again) == len(applied)
        assert await tables(conn) == EXPECTED_TABLES | {"schema_migrations"}
    finally:
        await conn.close()


async def test_revert_one_removes_only_the_newest(empty_db_url: str) -> None:
    conn = await asyncpg.connect(empty_db_url)
    try:
        migrator = Migrator(conn)
        await migrator.run()
        newest = discover()[-1]
        (reverted,) = await migrator.revert(destroy_data=True)
        assert reverted.version == newest.version
        states = {s.version: s.status for s in await migrator.status()}
        assert states[newest.version] == "pending"
        assert all(v == "applied" for k, v in states.items() if k != newest.version)
    finally:
        await conn.close()


async def test_events_older_than_the_commit_order_are_never_replayed(empty_db_url: str) -> None:
    # Events from before migration 0008 get commits numbered by when their transaction
    # began, which may disagree with their order in the stream: 0009 marks them pruned.
    conn = await asyncpg.connect(empty_db_url)
    try:
        migrator = Migrator(conn)
        await migrator.run()
        await migrator.revert(
            len(discover()) - 7, destroy_data=True
        )  # back to 0007, before the commit order
        stream = await conn.fetchval(
            "INSERT INTO event_streams (kind, entity_id, last_pos)"
            " VALUES ('channel', gen_random_uuid(), 2) RETURNING id"
        )
        await conn.execute(  # position 2 "began" before position 1
            """
            INSERT INTO events (stream_id, pos, type, data, created_at) VALUES
                ($1, 1, 'message.created', '{}', now() - interval '1 minute'),
                ($1, 2, 'message.created', '{}', now() - interval '2 minutes')
            """,
            stream,
        )
        await migrator.run()
        assert await conn.fetchval("SELECT g FROM event_clock") == 2
        assert await conn.fetchval("SELECT pruned_g FROM event_retention") == 2
    finally:
        await conn.close()


async def test_edited_applied_migration_is_refused(empty_db_url: str) -> None:
    conn = await asyncpg.connect(empty_db_url)
    try:
        await Migrator(conn).run()
        await conn.execute("UPDATE schema_migrations SET checksum = 'x' WHERE version = 1")
        with pytest.raises(MigrationError, match="edited after it was applied"):
            await Migrator(conn).run()
    finally:
        await conn.close()


async def test_unknown_newer_migration_is_refused(empty_db_url: str) -> None:
    conn = await asyncpg.connect(empty_db_url)
    try:
        await Migrator(conn).run()
        await conn.execute(
            "INSERT INTO schema_migrations (version, name, checksum) VALUES (9999, 'future', 'x')"
        )
        with pytest.raises(MigrationError, match="schema is newer than the code"):
            await Migrator(conn).run()
    finally:
        await conn.close()


async def test_failing_migration_is_rolled_back(empty_db_url: str, tmp_path: Path) -> None:
    directory = tmp_path / "migrations"
    shutil.copytree(DEFAULT_DIR, directory)
    (directory / "9000_broken.up.sql").write_text(
        "CREATE TABLE half_done (id int);\nSELECT no_such_function();\n"
    )
    (directory / "9000_broken.down.sql").write_text("DROP TABLE half_done;\n")
    conn = await asyncpg.connect(empty_db_url)
    try:
        with pytest.raises(MigrationError, match="9000_broken failed and was rolled back"):
            await Migrator(conn, directory).run()
        assert "half_done" not in await tables(conn)
        versions = [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")]
        assert 9000 not in versions
        assert len(versions) == len(discover())  # the good ones before it stay applied
    finally:
        await conn.close()


def test_up_without_down_is_refused(tmp_path: Path) -> None:
    (tmp_path / "0001_lonely.up.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="no matching .down.sql"):
        discover(tmp_path)


def test_add_creates_the_next_pair(tmp_path: Path) -> None:
    shutil.copytree(DEFAULT_DIR, tmp_path / "m")
    up, down = add("Message pins!", tmp_path / "m")
    next_version = discover()[-1].version + 1
    assert up.name == f"{next_version:04d}_message_pins.up.sql"
    assert down.name == f"{next_version:04d}_message_pins.down.sql"
    assert discover(tmp_path / "m")[-1].name == "message_pins"


async def test_two_concurrent_migrate_runs_apply_each_migration_once(empty_db_url: str) -> None:
    env = clean_env(DATABASE_URL=empty_db_url)
    procs = [
        await asyncio.create_subprocess_exec(
            *xfchat("migrate", "run"),
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(2)
    ]
    outputs = [await p.communicate() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    stdout = "".join(out.decode() for out, _ in outputs)
    for mig in discover():
        assert stdout.count(f"applied {mig.label}") == 1, stdout
    conn = await asyncpg.connect(empty_db_url)
    try:
        rows = await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")
        assert [r["version"] for r in rows] == [m.version for m in discover()]
    finally:
        await conn.close()


async def test_migrate_info_shows_applied_and_pending(empty_db_url: str) -> None:
    env = clean_env(DATABASE_URL=empty_db_url)
    first = discover()[0]
    before = await asyncio.to_thread(run_cli, "migrate", "info", env=env)
    assert before.returncode == 0, before.stderr
    assert f"{first.version:04d}     {first.name}" in before.stdout
    states = [line.split()[2] for line in before.stdout.splitlines() if line[:4].isdigit()]
    assert states == ["pending"] * len(discover())

    run = await asyncio.to_thread(run_cli, "migrate", "run", env=env)
    assert run.returncode == 0, run.stderr
    reverted = await asyncio.to_thread(run_cli, "migrate", "revert", "--destroy-data", env=env)
    assert reverted.returncode == 0 and "1 migration(s) reverted" in reverted.stdout

    after = await asyncio.to_thread(run_cli, "migrate", "info", env=env)
    lines = [line for line in after.stdout.splitlines() if line[:4].isdigit()]
    assert [line.split()[2] for line in lines] == ["applied"] * (len(discover()) - 1) + ["pending"]


async def test_stored_images_keep_their_bytes_across_the_files_migration(
    empty_db_url: str,
) -> None:
    """0019 moves avatars' bytes into the shared file storage, and back when reverted."""
    conn = await asyncpg.connect(empty_db_url)
    try:
        migrator = Migrator(conn)
        await migrator.run()
        data = os.urandom(300 * 1024)  # two chunks
        user = await ann(conn)
        file_id = await conn.fetchval(
            "INSERT INTO files (owner_id, size_bytes, sha256) VALUES ($1, $2, $3) RETURNING id",
            user,
            len(data),
            hashlib.sha256(data).digest(),
        )
        await conn.executemany(
            "INSERT INTO file_chunks (file_id, n, data) VALUES ($1, $2, $3)",
            [(file_id, 0, data[:262144]), (file_id, 1, data[262144:])],
        )
        await conn.execute(
            "INSERT INTO media (id, owner_id, purpose, content_type, size_bytes, sha256, width, "
            "height, file_id) VALUES ($1, $2, 'avatar', 'image/png', $3, $4, 1, 1, $1)",
            file_id,
            user,
            len(data),
            hashlib.sha256(data).digest(),
        )
        newer = [m for m in discover() if m.version >= 19]
        await migrator.revert(len(newer), destroy_data=True)
        assert await conn.fetchval("SELECT data FROM media WHERE id = $1", file_id) == data
        await migrator.run()
        chunks = await conn.fetch(
            "SELECT n, data FROM file_chunks WHERE file_id = $1 ORDER BY n", file_id
        )
        assert [r["n"] for r in chunks] == [0, 1]
        assert b"".join(r["data"] for r in chunks) == data
        # Deleting the image deletes its file, bytes and all.
        await conn.execute("DELETE FROM media WHERE id = $1", file_id)
        assert await conn.fetchval("SELECT count(*) FROM file_chunks") == 0
    finally:
        await conn.close()


async def test_sealed_two_factor_secrets_are_not_reverted_into_the_clear(
    empty_db_url: str,
) -> None:
    """0029 lets secrets be stored sealed; reverting it refuses while any is, rather than
    leave the older code secrets it cannot read."""
    conn = await asyncpg.connect(empty_db_url)
    try:
        migrator = Migrator(conn)
        await migrator.run()
        user = await ann(conn)
        sealed = "v1.0123abcd." + "A" * 80
        await conn.execute("INSERT INTO user_totp (user_id, secret) VALUES ($1, $2)", user, sealed)
        with pytest.raises(asyncpg.CheckViolationError):  # the form is checked
            await conn.execute("UPDATE user_totp SET secret = 'v1.xyz.abc'")
        later = [m for m in discover() if m.version > 29]
        if later:
            await migrator.revert(len(later), destroy_data=True)
        with pytest.raises(MigrationError, match="two-factor secrets are sealed: see 0029"):
            await migrator.revert()
        assert await conn.fetchval("SELECT secret FROM user_totp") == sealed
        await conn.execute("DELETE FROM user_totp")
        await migrator.revert()
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(
                "INSERT INTO user_totp (user_id, secret) VALUES ($1, $2)", user, sealed
            )
        await migrator.run()
    finally:
        await conn.close()


async def test_email_keys_made_before_0032_are_made_exact_where_no_other_account_has_it(
    empty_db_url: str,
) -> None:
    """0032 cannot fail on accounts the old rule (lower(email), ASCII only under the C
    locale) let in side by side; the start then makes every key it can exact, and an
    account left with its old key still logs in by its email, as before."""
    conn = await asyncpg.connect(empty_db_url)
    try:
        migrator = Migrator(conn)
        await migrator.run()
        # (0033's down destroys which accounts were deleted: none here.)
        await migrator.revert(len([m for m in discover() if m.version >= 32]), destroy_data=True)
        emails = [
            "Ann@X.org",  # ASCII: its old key is exact
            "Émile@ex.com",  # older, but its exact key is the next one's key already
            "émile@ex.com",
            "ΣΑΣ@ex.com",
            "E\u0301va@ex.com",  # (decomposed)
            "ÉVA@ex.com",  # the same as the one before, ignoring case and form
        ]
        for n, email in enumerate(emails):
            await conn.execute(
                "INSERT INTO users (username, email, password_hash, created_at) "
                "VALUES ($1, $2, 'h', now() - make_interval(days => 10 - $3))",
                f"user{n}",
                email,
                n,
            )
        await migrator.run()
        keys = "SELECT email, email_key FROM users ORDER BY created_at"
        assert [r["email_key"] for r in await conn.fetch(keys)] == [
            "ann@x.org",
            "Émile@ex.com",
            "émile@ex.com",
            "ΣΑΣ@ex.com",
            "e\u0301va@ex.com",
            "Éva@ex.com",
        ]
        assert await rekey_emails(conn, write=False) == Rekeyed(changed=2, kept=2)
        assert await rekey_emails(conn) == Rekeyed(changed=2, kept=2)
        assert [r["email_key"] for r in await conn.fetch(keys)] == [
            "ann@x.org",
            "Émile@ex.com",  # kept
            "émile@ex.com",
            "σασ@ex.com",
            "éva@ex.com",  # the older of the two
            "Éva@ex.com",  # kept
        ]
        assert await rekey_emails(conn) == Rekeyed(changed=0, kept=2)  # (and again, alike)

        async def login(typed: str) -> str:
            user = await users_q.get_user_by_login(
                conn, login=typed, email_key=validation.email_key(typed)
            )
            assert user is not None, typed
            return user.username

        assert await login("ANN@x.ORG") == "user0"
        assert await login("Émile@ex.com") == "user1"  # (by the old rule, as before)
        assert await login("émile@EX.com") == "user2"
        assert await login("σας@ex.com") == "user3"
        assert await login("éva@ex.com") == "user4"
        assert await login("ÉVA@ex.com") == "user5"  # (by the old rule, as before)
        # Only typed exactly as registered: the old rule alone, lower(), found user1 for
        # this too, and under a UTF-8 locale (lower('İvan@') is 'ivan@') it found for one
        # account's owner whoever registered the other's lower() since.
        assert await login("ÉMILE@EX.COM") == "user2"
        with pytest.raises(asyncpg.UniqueViolationError, match="users_email_key"):
            await users_q.insert_user(
                conn,
                username="late",
                email="σας@ex.com",
                email_key=validation.email_key("σας@ex.com"),
                password_hash="h",
            )
        # (No account was deleted: 0033's down destroys nothing here.)
        await migrator.revert(len([m for m in discover() if m.version >= 32]), destroy_data=True)
        assert await conn.fetchval("SELECT count(*) FROM users") == len(emails)
    finally:
        await conn.close()


async def test_a_migration_marked_so_runs_outside_a_transaction_statement_by_statement(
    empty_db_url: str, tmp_path: Path
) -> None:
    # CREATE INDEX CONCURRENTLY (an index built without blocking writes) cannot run in a
    # transaction: a file marked NO_TRANSACTION runs its statements one by one.
    directory = tmp_path / "migrations"
    shutil.copytree(DEFAULT_DIR, directory)
    up, down = directory / "9000_concurrently.up.sql", directory / "9000_concurrently.down.sql"
    body = (
        f"{NO_TRANSACTION}\nCREATE TABLE IF NOT EXISTS big (id int);\n{STATEMENT_BREAK}\n"
        f"DROP INDEX CONCURRENTLY IF EXISTS big_idx;\n{STATEMENT_BREAK}\n"
    )
    up.write_text(body + "CREATE INDEX CONCURRENTLY big_idx ON big (no_such_column);\n")
    down.write_text(
        f"\ufeff{NO_TRANSACTION}\r\nDROP INDEX CONCURRENTLY IF EXISTS big_idx;\r\n"
        f"{STATEMENT_BREAK}  \r\nDROP TABLE IF EXISTS big;\r\n"
    )
    conn = await asyncpg.connect(empty_db_url)
    try:
        # A failure leaves the statements before it done, and the migration pending.
        with pytest.raises(MigrationError, match="9000_concurrently failed at statement 3 of 3"):
            await Migrator(conn, directory).run()
        assert "big" in await tables(conn)
        assert 9000 not in [
            r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")
        ]
        # Mended, it runs again whole (each statement safe to run twice) and is recorded.
        up.write_text(body + "CREATE INDEX CONCURRENTLY big_idx ON big (id);\n")
        assert [m.label for m in await Migrator(conn, directory).run()] == ["9000_concurrently"]
        valid = "SELECT indisvalid FROM pg_index WHERE indexrelid = 'big_idx'::regclass"
        assert await conn.fetchval(valid) is True
        assert [m.label for m in await Migrator(conn, directory).revert()] == ["9000_concurrently"]
        assert await conn.fetchval("SELECT to_regclass('big_idx')") is None
        assert "big" not in await tables(conn)
        # Unmarked, the same statement is refused inside the migration's transaction.
        up.write_text("CREATE INDEX CONCURRENTLY big_idx ON big (id);\n")
        with pytest.raises(MigrationError, match="cannot run inside a transaction block"):
            await Migrator(conn, directory).run()
    finally:
        await conn.close()


@pytest.mark.parametrize(
    "text",
    [
        f"-- a comment first\n{NO_TRANSACTION}\nSELECT 1;\n",  # the mark not on line 1
        f"SELECT 1;\n{STATEMENT_BREAK}\nSELECT 2;\n",  # a break in a transactional file
    ],
)
def test_a_misplaced_mark_is_refused_rather_than_ignored(text: str) -> None:
    with pytest.raises(MigrationError, match="counts only in a file whose first line"):
        _statements(text)


async def test_a_process_waiting_for_the_migration_lock_holds_no_snapshot(
    empty_db_url: str, tmp_path: Path
) -> None:
    # While one process builds an index concurrently under the migration lock, another
    # that starts waits for that lock between statements: a statement waiting on it
    # would hold a snapshot the build waits for, and one of the two would deadlock.
    directory = tmp_path / "migrations"
    shutil.copytree(DEFAULT_DIR, directory)
    holder, waiter = await asyncpg.connect(empty_db_url), await asyncpg.connect(empty_db_url)
    try:
        await Migrator(holder, directory).run()
        (directory / "9000_slow.up.sql").write_text(
            f"{NO_TRANSACTION}\nCREATE TABLE IF NOT EXISTS slow (id int);\n{STATEMENT_BREAK}\n"
            "DROP INDEX CONCURRENTLY IF EXISTS slow_idx;\n{STATEMENT_BREAK}\n"
            "CREATE INDEX CONCURRENTLY slow_idx ON slow (id);\n".replace(
                "{STATEMENT_BREAK}", STATEMENT_BREAK
            )
        )
        (directory / "9000_slow.down.sql").write_text("DROP TABLE slow;\n")
        await holder.execute(f"SELECT pg_advisory_lock({LOCK_KEY})")  # as a running migrate
        waiting = asyncio.create_task(Migrator(waiter, directory).run())
        await asyncio.sleep(3 * LOCK_POLL_S)
        assert not waiting.done()
        in_flight = await holder.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock'",
            waiter.get_server_pid(),
        )
        assert in_flight == 0  # waiting between statements, not in one
        await holder.execute(f"SELECT pg_advisory_unlock({LOCK_KEY})")
        applied = await asyncio.wait_for(waiting, 30)
        assert [m.label for m in applied] == ["9000_slow"]
    finally:
        await holder.close()
        await waiter.close()


async def test_a_current_schema_does_not_wait_for_the_migration_lock(db_url: str) -> None:
    """Was: `xfchat serve` waited, silently and for ever, for a lock held by another
    session even with nothing to apply. Checksums are still checked without it."""
    holder, conn = await asyncpg.connect(db_url), await asyncpg.connect(db_url)
    try:
        await holder.execute(f"SELECT pg_advisory_lock({LOCK_KEY})")  # as a running migrate
        assert await asyncio.wait_for(Migrator(conn).run(), 5) == []
        await conn.execute("UPDATE schema_migrations SET checksum = 'x' WHERE version = 1")
        with pytest.raises(MigrationError, match="edited after it was applied"):
            await asyncio.wait_for(Migrator(conn).run(), 5)
    finally:
        await holder.close()
        await conn.close()


async def test_a_wait_for_the_migration_lock_names_its_holder_and_ends(
    empty_db_url: str,
) -> None:
    holder = await asyncpg.connect(empty_db_url, server_settings={"application_name": "mig-x"})
    conn = await asyncpg.connect(empty_db_url)
    named = f"pid {holder.get_server_pid()} (application_name 'mig-x'"
    lines: list[str] = []
    try:
        await holder.execute(f"SELECT pg_advisory_lock({LOCK_KEY})")
        # (a report every 0.3 s of a 1.5 s wait: a busy box's stall of a second still
        # leaves the first report in)
        migrator = Migrator(conn, log=lines.append, lock_wait_s=1.5, lock_report_s=0.3)
        with pytest.raises(MigrationError) as refused:
            await asyncio.wait_for(migrator.run(), 10)
    finally:
        await holder.close()
        await conn.close()
    assert 2 <= len(lines) <= 6 and all(named in line for line in lines), lines
    assert lines[0].startswith("waiting for the migration lock, held by " + named), lines
    assert " s waiting for the migration lock" in lines[1], lines
    message = str(refused.value)
    assert "gave up waiting 1.5 s for the migration lock" in message and named in message


def with_migration(tmp_path: Path, up: str, down: str = "SELECT 1;\n") -> Path:
    directory = tmp_path / "migrations"
    shutil.copytree(DEFAULT_DIR, directory)
    (directory / "9000_extra.up.sql").write_text(up)
    (directory / "9000_extra.down.sql").write_text(down)
    return directory


async def test_a_migration_runs_without_the_request_statement_timeout(
    empty_db_url: str, tmp_path: Path
) -> None:
    """Was: a migration in a transaction kept the session's statement_timeout (the
    request bound, 30 s), so 0021 on a database of 500k messages failed every start."""
    directory = with_migration(tmp_path, "SELECT pg_sleep(0.5);\n")
    conn = await asyncpg.connect(empty_db_url, server_settings={"statement_timeout": "100"})
    try:
        applied = await Migrator(conn, directory).run()
        assert applied[-1].label == "9000_extra"
        assert await conn.fetchval("SHOW statement_timeout") == "100ms"  # (only its own)
    finally:
        await conn.close()


async def hold_users(url: str) -> tuple[asyncpg.Connection, asyncpg.transaction.Transaction]:
    """A long read transaction on users, as a report query left open."""
    holder = await asyncpg.connect(url, server_settings={"application_name": "report"})
    held = holder.transaction()
    await held.start()
    await holder.fetchval("SELECT count(*) FROM users")
    return holder, held


async def test_a_migration_that_cannot_get_its_lock_gives_up_and_names_the_holder(
    empty_db_url: str, tmp_path: Path
) -> None:
    """Was: no lock_timeout: ALTER TABLE users queued behind a long transaction waited
    without end, and every query of the running servers on users waited behind it."""
    conn = await asyncpg.connect(empty_db_url)
    await Migrator(conn).run()
    directory = with_migration(tmp_path, "ALTER TABLE users ADD COLUMN extra int;\n")
    holder, _held = await hold_users(empty_db_url)
    lines: list[str] = []
    try:
        migrator = Migrator(
            conn, directory, lines.append, lock_timeout_s=0.3, lock_attempts=2, lock_pause_s=0.1
        )
        running = asyncio.create_task(migrator.run())
        # A live server's read of users, queued behind the migration's lock request,
        # waits for no more than that request does.
        live = await asyncpg.connect(empty_db_url)
        try:
            await until_one_waits_for_a_lock(live, running)
            assert not running.done()  # (the migration's request is queued now)
            assert await asyncio.wait_for(live.fetchval("SELECT count(*) FROM users"), 5) == 0
        finally:
            await live.close()
        with pytest.raises(MigrationError) as refused:
            await asyncio.wait_for(running, 20)
        message = str(refused.value)
        assert "9000_extra was rolled back, the schema as it was" in message
        assert "waited 2 times 0.3 s for a lock held by another session" in message
        assert f"pid {holder.get_server_pid()} (application_name 'report'" in message
        assert len(lines) == 1 and "(attempt 1 of 2)" in lines[0]
        columns = "SELECT count(*) FROM information_schema.columns WHERE column_name = 'extra'"
        assert await conn.fetchval(columns) == 0
        recorded = "SELECT count(*) FROM schema_migrations WHERE version = 9000"
        assert await conn.fetchval(recorded) == 0
    finally:
        await holder.close()
        await conn.close()


def as_role(url: str, role: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{role}:pw@{parts.hostname}:{parts.port}"))


async def test_a_lock_held_by_another_roles_session_is_named_too(
    empty_db_url: str, tmp_path: Path
) -> None:
    """Was: a role that may not see other roles' activity (no pg_read_all_stats: the
    usual owner of an application's database) read no transaction start for the
    session holding the lock, and named nobody; a wait for the migration lock named
    neither its role nor that its state was hidden."""
    conn = await asyncpg.connect(empty_db_url)
    await Migrator(conn).run()
    app, report = (f"app_{uuid.uuid4().hex[:8]}", f"report_{uuid.uuid4().hex[:8]}")
    for role in (app, report):
        await conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'pw'")
    await conn.execute(f"GRANT USAGE ON SCHEMA public TO {app}, {report}")
    await conn.execute(f"GRANT CREATE ON SCHEMA public TO {app}")
    await conn.execute(f"GRANT SELECT ON users TO {report}")
    await conn.execute(f"GRANT SELECT, INSERT ON schema_migrations TO {app}")
    await conn.execute(f"GRANT SELECT, UPDATE ON users TO {app}")  # (to LOCK it)
    holder = await asyncpg.connect(as_role(empty_db_url, report))
    migrating = await asyncpg.connect(as_role(empty_db_url, app))
    try:
        held = holder.transaction()
        await held.start()
        await holder.fetchval("SELECT count(*) FROM users")
        directory = with_migration(tmp_path, "LOCK TABLE users IN ACCESS EXCLUSIVE MODE;\n")
        migrator = Migrator(migrating, directory, lock_timeout_s=0.2, lock_attempts=1)
        with pytest.raises(MigrationError) as refused:
            await asyncio.wait_for(migrator.run(), 20)
        message = str(refused.value)
        assert f"pid {holder.get_server_pid()} (application_name '', role '{report}';" in message
        assert "hidden from this role" in message, message
        # The migration lock held by that role's session is named the same way (was: "state
        # unknown, connected since ?", the role not said).
        await held.rollback()
        await holder.execute(f"SELECT pg_advisory_lock({LOCK_KEY})")
        lines: list[str] = []
        waiting = Migrator(migrating, directory, lines.append, lock_wait_s=0.6, lock_report_s=5)
        with pytest.raises(MigrationError) as refused:
            await asyncio.wait_for(waiting.run(), 20)
        named = f"pid {holder.get_server_pid()} (application_name '', role '{report}'; its state"
        assert named in str(refused.value) and named in lines[0], (refused.value, lines)
    finally:
        await holder.close()
        await migrating.close()
        for role in (app, report):
            await conn.execute(f"DROP OWNED BY {role}")
            await conn.execute(f"DROP ROLE {role}")
        await conn.close()


async def test_a_migration_rides_out_a_short_transaction(empty_db_url: str, tmp_path: Path) -> None:
    conn = await asyncpg.connect(empty_db_url)
    await Migrator(conn).run()
    directory = with_migration(tmp_path, "ALTER TABLE users ADD COLUMN extra int;\n")
    holder, held = await hold_users(empty_db_url)
    lines: list[str] = []
    try:
        migrator = Migrator(
            conn, directory, lines.append, lock_timeout_s=0.3, lock_attempts=20, lock_pause_s=0.1
        )
        running = asyncio.create_task(migrator.run())
        async with asyncio.timeout(10):
            while not lines:  # (an attempt has given up on the lock, and it tries again)
                await asyncio.sleep(0.02)
        await held.rollback()
        applied = await asyncio.wait_for(running, 20)
        assert applied[-1].label == "9000_extra" and lines, lines
    finally:
        await holder.close()
        await conn.close()


async def test_a_revert_that_destroys_data_is_refused_unless_told_so(db_url: str) -> None:
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute(
            "INSERT INTO users (username, email, email_key, password_hash, dm_policy)"
            " VALUES ('ann', 'a@x.org', 'a@x.org', 'h', 'friends')"
        )
        migrator = Migrator(conn)
        newer = [m for m in discover() if m.version >= 25]
        assert [m.label for m in newer if m.destroys] == [
            "0025_direct_message_policy",
            "0031_session_limit_and_token_rows",
            "0033_account_deletion",
            "0038_mutes",
            "0042_direct_opened_by",
            "0060_audit_log_diff",
            "0062_notification_settings",
            "0064_webhooks",
            "0065_server_default_notifications",
        ]
        with pytest.raises(MigrationError, match="nothing reverted: .*0025_direct_message_policy"):
            await migrator.revert(len(newer))
        assert await migrator.is_current()
        assert await conn.fetchval("SELECT dm_policy FROM users") == "friends"
        reverted = await migrator.revert(len(newer), destroy_data=True)
        assert [m.version for m in reverted] == sorted((m.version for m in newer), reverse=True)
    finally:
        await conn.close()


async def test_reverting_the_session_limit_keeps_the_sessions_it_ended_as_revoked(
    db_url: str,
) -> None:
    """0031's down maps the reason the code before it does not know to `revoked` (the
    session stays ended), and drops the refresh tokens' form flag; up again, both work."""
    conn = await asyncpg.connect(db_url)
    try:
        user = await ann(conn)
        ended = await conn.fetchval(
            "INSERT INTO sessions (user_id, expires_at, revoked_at, revoked_reason)"
            " VALUES ($1, now() + interval '1 day', now(), 'session_limit') RETURNING id",
            user,
        )
        migrator = Migrator(conn)
        later = [m for m in discover() if m.version >= 31]
        await migrator.revert(len(later), destroy_data=True)
        row = await conn.fetchrow(
            "SELECT revoked_at IS NOT NULL AS ended, revoked_reason FROM sessions WHERE id = $1",
            ended,
        )
        assert (row["ended"], row["revoked_reason"]) == (True, "revoked")
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute("UPDATE sessions SET revoked_reason = 'session_limit'")
        columns = "SELECT count(*) FROM pg_attribute WHERE attrelid = 'refresh_tokens'::regclass"
        flag = columns + " AND attname = 'self_describing'"
        assert await conn.fetchval(flag) == 0
        await migrator.run()
        await conn.execute("UPDATE sessions SET revoked_reason = 'session_limit'")
        assert await conn.fetchval(flag) == 1
    finally:
        await conn.close()


async def test_deleted_emails_index_is_built_while_users_stay_readable_and_writable(
    empty_db_url: str,
) -> None:
    """Was: 0034 dropped and built users_email_key in one transaction, under ACCESS
    EXCLUSIVE on users: queued behind a long transaction, and then for the whole build,
    every read of users waited. Now it builds the new index CONCURRENTLY and swaps it
    in; 0033's CHECK is added NOT VALID and validated apart (both outside a transaction)."""
    conn = await asyncpg.connect(empty_db_url)
    await Migrator(conn).run()
    later = [m for m in discover() if m.version >= 34]  # 0034 and those after it
    # (0038's down destroys the mutes: there are none here)
    reverted = await Migrator(conn).revert(len(later), destroy_data=True)
    assert [m.label for m in reverted][-1] == "0034_deleted_emails_unkeyed"
    holder, held = await hold_users(empty_db_url)
    live = await asyncpg.connect(empty_db_url)
    try:
        running = asyncio.create_task(Migrator(conn, lock_timeout_s=60).run())
        await until_one_waits_for_a_lock(live, running)
        assert not running.done()  # (its build waits for the long transaction)
        insert = (
            "INSERT INTO users (username, email, email_key, password_hash)"
            " VALUES ('ann', 'a@x.org', 'a@x.org', 'h')"
        )
        await asyncio.wait_for(live.execute(insert), 3)
        assert await asyncio.wait_for(live.fetchval("SELECT count(*) FROM users"), 3) == 1
        await held.rollback()
        assert [m.version for m in await asyncio.wait_for(running, 20)] == [
            m.version for m in later
        ]
        index = await conn.fetchrow(
            "SELECT i.indisunique, i.indisvalid, pg_get_expr(i.indpred, i.indrelid) AS pred"
            " FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
            " WHERE c.relname = 'users_email_key'"
        )
        assert index is not None and index["indisunique"] and index["indisvalid"]
        assert index["pred"] == "(deleted_at IS NULL)"
        assert not await conn.fetchval("SELECT to_regclass('users_email_key_live') IS NOT NULL")
        validated = "SELECT convalidated FROM pg_constraint WHERE conname = $1"
        assert await conn.fetchval(validated, "sessions_revoked_reason_known")
        with pytest.raises(asyncpg.UniqueViolationError, match="users_email_key"):
            await live.execute(insert.replace("'ann'", "'ann2'"))
    finally:
        await holder.close()
        await live.close()
        await conn.close()


async def a_group_before_0041(conn: asyncpg.Connection) -> tuple[uuid.UUID, uuid.UUID]:
    """Every migration run, then those from 0041 on reverted; a user and a group
    conversation made there: (user id, channel id)."""
    await Migrator(conn).run()
    await Migrator(conn).revert(len([m for m in discover() if m.version >= 41]), destroy_data=True)
    user = await ann(conn)
    channel = await conn.fetchval(
        "INSERT INTO channels (kind, name) VALUES ('group', 'g') RETURNING id"
    )
    return user, channel


async def test_mentions_made_before_0041_are_kept_by_whom_they_name(empty_db_url: str) -> None:
    """0041 writes the rows of the live messages already there that name someone or a
    role (once each), none of a deleted one's, and its triggers keep them from then on."""
    conn = await asyncpg.connect(empty_db_url)
    try:
        user, channel = await a_group_before_0041(conn)
        named, role = uuid.uuid4(), uuid.uuid4()
        await conn.execute(
            """
            INSERT INTO messages (id, channel_id, seq, author_id, content, mentions,
                                  mention_roles, deleted_at)
            VALUES (gen_random_uuid(), $1, 1, $2, 'a', ARRAY[$3, $3]::uuid[], ARRAY[$4]::uuid[], NULL),
                   (gen_random_uuid(), $1, 2, $2, '', ARRAY[$3]::uuid[], '{}', now()),
                   (gen_random_uuid(), $1, 3, $2, 'c', '{}', '{}', NULL)
            """,
            channel,
            user,
            named,
            role,
        )
        await Migrator(conn).run()
        rows = await conn.fetch("SELECT target_id, seq FROM message_mentions ORDER BY seq")
        assert sorted((r["target_id"], r["seq"]) for r in rows) == sorted([(named, 1), (role, 1)])
        await conn.execute(
            "UPDATE messages SET mentions = ARRAY[$2]::uuid[] WHERE channel_id = $1 AND seq = 3",
            channel,
            named,
        )
        assert await conn.fetchval("SELECT count(*) FROM message_mentions WHERE seq = 3") == 1
    finally:
        await conn.close()


def test_a_failures_detail_stays_on_its_one_line() -> None:
    """A migration's failure is one line ([MIGRATE] FATAL), its DETAIL with it: one of
    several lines (a function's body, say) does not break it."""
    exc = asyncpg.exceptions.UniqueViolationError('could not create unique index "x"\nmore')
    exc.detail = "Key (email)=(a@b)\nis duplicated."
    assert _describe(exc) == (
        'could not create unique index "x" (Key (email)=(a@b) is duplicated.)'
    )


async def reverted_down_to(conn: asyncpg.Connection, version: int) -> list[int]:
    """Revert from the newest migration down to `version` (any later one goes first):
    the versions reverted, in order. (Told it may destroy data: a later migration's
    down may, 0060's does, and what is tested is `version`'s own.)"""
    newer = [m for m in discover() if m.version >= version]
    return [m.version for m in await Migrator(conn).revert(len(newer), destroy_data=True)]


async def group_of(conn: asyncpg.Connection, owner: uuid.UUID, *, last_seq: int = 0) -> uuid.UUID:
    """A group conversation owned by `owner`, its counter at `last_seq`."""
    made: uuid.UUID = await conn.fetchval(
        "INSERT INTO channels (kind, name, owner_id, last_seq) VALUES ('group', 'g', $1, $2)"
        " RETURNING id",
        owner,
        last_seq,
    )
    return made


async def test_reverting_0055_with_orphans_deletes_them_and_restores_the_keys(
    db_url: str,
) -> None:
    """0055's down with a deleted channel's messages not purged yet: not refused (no route
    shows them), it deletes them and restores the foreign keys; up again, the queue."""
    conn = await asyncpg.connect(db_url)
    try:
        user = await ann(conn)
        ch = await group_of(conn, user)
        for _ in range(3):
            await conn.execute(
                """
                WITH c AS (UPDATE channels SET last_seq = last_seq + 1 WHERE id = $1
                           RETURNING last_seq)
                INSERT INTO messages (id, channel_id, seq, author_id, content)
                SELECT gen_random_uuid(), $1, c.last_seq, $2, 'x' FROM c
                """,
                ch,
                user,
            )
        await conn.execute("DELETE FROM channels WHERE id = $1", ch)
        assert await conn.fetchval("SELECT count(*) FROM messages") == 3
        assert (await reverted_down_to(conn, 55))[-2:] == [56, 55]
        assert await conn.fetchval("SELECT count(*) FROM messages") == 0
        fks = await conn.fetch(
            "SELECT conname FROM pg_constraint WHERE conname IN"
            " ('messages_channel_id_fkey', 'attachments_channel_id_fkey')"
        )
        assert len(fks) == 2
        assert await Migrator(conn).run()  # and up again
        assert await conn.fetchval("SELECT to_regclass('channel_purges')") is not None
    finally:
        await conn.close()


async def test_reverting_0056_re_indexes_what_is_still_queued(db_url: str) -> None:
    """0056's down with a channel queued for re-indexing: its messages up to the queued
    end are indexed in their server's language (a conversation's: English), one after
    it is not touched (it was written in the language of its time), and the queue goes."""
    conn = await asyncpg.connect(db_url)
    try:
        user = await ann(conn)
        ch = await group_of(conn, user, last_seq=3)
        await conn.execute(
            "INSERT INTO messages (id, channel_id, seq, author_id, content, search_config)"
            " SELECT gen_random_uuid(), $1, n, $2, 'les chevaux', 'french'"
            " FROM generate_series(1, 3) AS n",
            ch,
            user,
        )
        await conn.execute(
            "INSERT INTO search_reindexes (channel_id, done_seq, through_seq) VALUES ($1, 0, 2)",
            ch,
        )
        assert (await reverted_down_to(conn, 56))[-1] == 56
        configs = await conn.fetch(
            "SELECT search_config::text AS c FROM messages WHERE channel_id = $1 ORDER BY seq", ch
        )
        assert [r["c"] for r in configs] == ["english", "english", "french"]
        assert await conn.fetchval("SELECT to_regclass('search_reindexes')") is None
    finally:
        await conn.close()


async def test_0057_keeps_the_earlier_languages_of_a_queued_channel_and_reverts(
    db_url: str,
) -> None:
    """0057's column: a channel queued before it has none (its searches read as before);
    its revert drops the column and keeps the queue."""
    conn = await asyncpg.connect(db_url)
    try:
        ch = await group_of(conn, await ann(conn), last_seq=3)
        await conn.execute(
            "INSERT INTO search_reindexes (channel_id, through_seq, earlier)"
            " VALUES ($1, 3, '{french}')",
            ch,
        )
        assert (await reverted_down_to(conn, 57))[-1] == 57
        assert await conn.fetchval("SELECT through_seq FROM search_reindexes") == 3
        assert await Migrator(conn).run()
        assert await conn.fetchval("SELECT earlier::text[] FROM search_reindexes") == []
    finally:
        await conn.close()


async def test_0058_starts_each_receipt_at_its_read_position_and_reverts(db_url: str) -> None:
    """0058's columns: a read state written before it shows the others its read position
    (its highest, reached when it last moved); its revert drops them and keeps the
    position."""
    conn = await asyncpg.connect(db_url)
    try:
        user = await ann(conn)
        ch = await group_of(conn, user, last_seq=5)
        assert (await reverted_down_to(conn, 58))[-1] == 58
        at = await conn.fetchval(
            "INSERT INTO read_states (user_id, channel_id, last_read_seq) VALUES ($1, $2, 4)"
            " RETURNING updated_at",
            user,
            ch,
        )
        assert await Migrator(conn).run()
        (row,) = await messages_q.list_read_states(conn, channel_id=ch, limit=10)
        assert (row.last_read_seq, row.receipt_seq, row.receipt_at) == (4, 4, at)
        state, changed, raised = await messages_q.upsert_read_state(
            conn, user_id=user, channel_id=ch, seq=2
        )
        assert changed and not raised and (state.receipt_seq, state.receipt_at) == (4, at)
        assert (await reverted_down_to(conn, 58))[-1] == 58
        assert await conn.fetchval("SELECT last_read_seq FROM read_states") == 2
        assert await Migrator(conn).run()
    finally:
        await conn.close()


async def test_0063_keeps_names_that_look_alike_under_its_fold_and_reverts(db_url: str) -> None:
    """0063 rebuilds the looks' index with the wider fold over the rows there: two names
    taken before it that now look alike (`mallory`, `rnallory`) both stay, and it
    applies; each is found by the new look, and a third of that look is refused."""
    conn = await asyncpg.connect(db_url)
    try:
        assert (await reverted_down_to(conn, 63))[-1] == 63
        for name in ("mallory", "rnallory", "B0B"):
            await conn.execute(
                "INSERT INTO users (username, email, email_key, password_hash)"
                " VALUES ($1, $2, $2, 'h')",
                name,
                f"{name.lower()}@x.org",
            )
        assert await Migrator(conn).run()
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM users WHERE username IN ('mallory', 'rnallory', 'B0B')"
            )
            == 3
        )
        for name in ("rnalIory", "bob"):
            look = validation.username_look(name)
            assert await users_q.username_look_taken(conn, look=look)
        assert not await users_q.username_look_taken(conn, look=validation.username_look("bab"))
        assert (await reverted_down_to(conn, 63))[-1] == 63
        assert await Migrator(conn).run()
    finally:
        await conn.close()


async def _users_stay_readable_and_writable_while(
    db_url: str, step: Callable[[asyncpg.Connection], Awaitable[object]], table: str = "users"
) -> None:
    """Run `step` (a migration run or revert) while a long read transaction on `table` is
    open, and, once it waits, ask for a reader's and a writer's lock of it without
    waiting: both are granted (nothing of `step`'s is queued ahead of them)."""
    read = {"users": "SELECT count(*) FROM users", "messages": "SELECT count(*) FROM messages"}
    conn = await asyncpg.connect(db_url)
    holder = await asyncpg.connect(db_url, server_settings={"application_name": "report"})
    held = holder.transaction()
    await held.start()
    await holder.fetchval(read[table])
    live = await asyncpg.connect(db_url)
    try:
        running = asyncio.create_task(step(conn))
        await until_one_waits_for_a_lock(live, running)
        assert not running.done()  # (its build waits for the long transaction)
        for mode in ("ACCESS SHARE", "ROW EXCLUSIVE"):  # (a read; a send's or rename's write)
            async with live.transaction():
                await live.execute(f"LOCK TABLE {table} IN {mode} MODE NOWAIT")
        await held.rollback()
        await running
    finally:
        await holder.close()
        await live.close()
        await conn.close()


async def test_0063_rebuilds_the_looks_index_while_users_stay_readable_and_writable(
    db_url: str, tmp_path: Path
) -> None:
    """Was: 0063 (and its revert) dropped and built users_username_look_idx in one
    transaction: the DROP's ACCESS EXCLUSIVE on users, queued behind a long transaction
    and then held for the whole build, stopped every login and every read of users. Now
    the new index is built CONCURRENTLY beside the old one and takes its name, both ways."""
    conn = await asyncpg.connect(db_url)
    try:
        assert (await reverted_down_to(conn, 63))[-1] == 63
    finally:
        await conn.close()

    def index_of(c: asyncpg.Connection) -> Awaitable[str | None]:
        return c.fetchval(
            "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i"
            " WHERE i.indexrelid = to_regclass('users_username_look_idx') AND i.indisvalid"
        )

    # (0063 alone: a later migration may lock users for reasons of its own, as 0064's
    # foreign key to it does)
    upto = tmp_path / "upto-0063"
    upto.mkdir()
    for m in DEFAULT_DIR.glob("*.sql"):
        if int(m.name.split("_", 1)[0]) <= 63:
            shutil.copy(m, upto / m.name)
    newer = len([m for m in discover(upto) if m.version >= 63])
    await _users_stay_readable_and_writable_while(
        db_url, lambda c: Migrator(c, upto, lock_timeout_s=60).run()
    )
    conn = await asyncpg.connect(db_url)
    try:
        indexdef = await index_of(conn)
        assert indexdef is not None and "'rn'" in indexdef and "'vv'" in indexdef
    finally:
        await conn.close()
    await _users_stay_readable_and_writable_while(
        db_url, lambda c: Migrator(c, upto, lock_timeout_s=60).revert(newer, destroy_data=True)
    )
    conn = await asyncpg.connect(db_url)
    try:
        indexdef = await index_of(conn)
        assert indexdef is not None and "'rn'" not in indexdef and "translate" in indexdef
        looks = "SELECT count(*) FROM pg_indexes WHERE indexname LIKE 'users_username_look%'"
        assert await conn.fetchval(looks) == 1
    finally:
        await conn.close()
