"""The other commands: seed, check."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from tests.support import clean_env, fatal_lines, random_secret, run_cli
from xfchat.cli import main
from xfchat.db.migrate import DEFAULT_DIR, discover


def test_seed_loads_the_demo_once_and_refuses_a_second_time(db_url: str) -> None:
    env = clean_env(DATABASE_URL=db_url)
    first = run_cli("seed", env=env)
    assert first.returncode == 0, first.stderr
    assert "demo data loaded: 5 users" in first.stdout
    second = run_cli("seed", env=env)
    assert second.returncode == 1
    assert fatal_lines(second.stderr) == [
        "[STARTUP] FATAL: the demo data is already in this database; seeding twice is refused"
    ]


async def test_seed_refuses_a_database_without_the_schema(empty_db_url: str) -> None:
    result = run_cli("seed", env=clean_env(DATABASE_URL=empty_db_url))
    assert result.returncode == 3 and "migrate run" in result.stderr
    conn = await asyncpg.connect(empty_db_url)
    assert await conn.fetchval("SELECT to_regclass('users')") is None
    await conn.close()


async def test_seeded_passwords_are_argon2id(db_url: str) -> None:
    assert run_cli("seed", env=clean_env(DATABASE_URL=db_url)).returncode == 0
    conn = await asyncpg.connect(db_url)
    hashes = [r["password_hash"] for r in await conn.fetch("SELECT password_hash FROM users")]
    await conn.close()
    assert len(hashes) == 5 and len(set(hashes)) == 5  # salted: all different
    assert all(h.startswith("$argon2id$") for h in hashes)


def test_check_passes_on_a_current_schema_and_fails_on_a_pending_one(
    db_url: str, empty_db_url: str
) -> None:
    ok = run_cli("check", env=clean_env(DATABASE_URL=db_url, XFCHAT_SECRET=random_secret()))
    assert ok.returncode == 0, ok.stderr
    pending = run_cli(
        "check", env=clean_env(DATABASE_URL=empty_db_url, XFCHAT_SECRET=random_secret())
    )
    assert pending.returncode == 3 and "migration(s) pending" in pending.stderr


def test_check_names_a_misspelt_variable_as_serve_does(db_url: str) -> None:
    """Was: `xfchat check`, the command meant to validate settings, said nothing of a
    misspelt XFCHAT_ variable (only `serve` did)."""
    env = clean_env(DATABASE_URL=db_url, XFCHAT_SECRET=random_secret(), XFCHAT_PORTT="3009")
    result = run_cli("check", env=env)
    assert result.returncode == 0, result.stderr
    assert (
        "[STARTUP] WARNING: XFCHAT_PORTT is no setting of XFChat's and is ignored"
        " (did you mean XFCHAT_PORT?)"
    ) in result.stdout + result.stderr


async def test_revert_takes_only_a_count_of_one_or_more(db_url: str) -> None:
    """Was: `migrate revert -1` sliced [:-1] and reverted every migration but the first,
    dropping the messages with their tables, and said so with exit 0."""
    env = clean_env(DATABASE_URL=db_url)
    for count in ("-1", "0", "x"):
        refused = run_cli("migrate", "revert", count, env=env)
        assert refused.returncode == 2 and "count of 1 or more" in refused.stderr, refused
    conn = await asyncpg.connect(db_url)
    try:
        assert await conn.fetchval("SELECT to_regclass('messages')") is not None
    finally:
        await conn.close()


async def test_dev_and_seed_add_no_demo_accounts_to_a_database_with_real_ones(
    db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Was: with DATABASE_URL exported (a real database), `xfchat dev` added five
    accounts with the published password, and printed the URL's password; `xfchat seed`
    still adds them."""
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute(
            "INSERT INTO users (username, email, email_key, password_hash)"
            " VALUES ('ann', 'a@x.org', 'a@x.org', 'h')"
        )
    finally:
        await conn.close()
    user, rest = db_url.split("://", 1)[1].split("@", 1)
    with_password = f"postgresql://{user}:not-this-one@{rest}"  # (trusted: any is taken)
    # Its schema one release behind: refused before it is migrated (was: migrated, then
    # refused, under the release still running on it).
    back = run_cli("migrate", "revert", "1", "--destroy-data", env=clean_env(DATABASE_URL=db_url))
    assert back.returncode == 0, back.stderr
    conn = await asyncpg.connect(db_url)
    try:
        behind = await conn.fetchval("SELECT max(version) FROM schema_migrations")
        refused = run_cli("dev", env=clean_env(DATABASE_URL=with_password, XFCHAT_PORT="0"))
        assert refused.returncode == 3, refused
        (line,) = fatal_lines(refused.stderr)
        assert "holds 1 account(s) and no demo data" in line and "not-this-one" not in line
        assert "applied" not in refused.stdout + refused.stderr
        assert await conn.fetchval("SELECT max(version) FROM schema_migrations") == behind
    finally:
        await conn.close()
    assert run_cli("migrate", "run", env=clean_env(DATABASE_URL=db_url)).returncode == 0

    monkeypatch.setenv("DATABASE_URL", with_password)  # (in this process: quicker)
    with pytest.raises(SystemExit) as seeding:
        await asyncio.to_thread(main, ["seed"])
    (line,) = fatal_lines(capsys.readouterr().err)
    assert seeding.value.code == 3 and "holds 1 account(s)" in line and "--with-accounts" in line
    conn = await asyncpg.connect(db_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM users") == 1
        assert await asyncio.to_thread(main, ["seed", "--with-accounts"]) == 0
        assert await conn.fetchval("SELECT count(*) FROM users") == 6
    finally:
        await conn.close()


def test_migrate_add_writes_only_where_it_is_told_and_takes_a_name_not_a_path(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Was: written into the installed package's migrations (site-packages), and
    `migrate add ../../../tmp/x` made src/xfchat/migrations/0034_tmp_x.*."""
    monkeypatch.delenv("XFCHAT_MIGRATIONS_DIR", raising=False)
    before = sorted(DEFAULT_DIR.iterdir())
    for argv in (["migrate", "add", "pins"], ["migrate", "add", "../../../tmp/x"]):
        monkeypatch.delenv("XFCHAT_MIGRATIONS_DIR", raising=False)
        with pytest.raises(SystemExit) as refused:
            main(argv)
        assert refused.value.code == 2
        monkeypatch.setenv("XFCHAT_MIGRATIONS_DIR", str(tmp_path))
    err = capsys.readouterr().err
    assert "[MIGRATE] FATAL: `xfchat migrate add` writes where XFCHAT_MIGRATIONS_DIR" in err
    assert "'../../../tmp/x' is a path" in err
    assert sorted(DEFAULT_DIR.iterdir()) == before and list(tmp_path.iterdir()) == []
    assert main(["migrate", "add", "pins"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0001_pins.down.sql", "0001_pins.up.sql"]


async def test_a_revert_that_destroys_data_needs_destroy_data(db_url: str) -> None:
    """Was: `xfchat migrate revert 5` reset every user's direct-message policy (0025's
    down drops the column), exit 0, not a word; and a refusal said [STARTUP]."""
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute(
            "INSERT INTO users (username, email, email_key, password_hash, dm_policy)"
            " VALUES ('ann', 'a@x.org', 'a@x.org', 'h', 'friends')"
        )
        applied = await conn.fetchval("SELECT count(*) FROM schema_migrations")
        back = str(len([m for m in discover() if m.version >= 25]))  # (0025 the oldest)
        env = clean_env(DATABASE_URL=db_url)
        refused = run_cli("migrate", "revert", back, env=env)
        assert refused.returncode == 4, refused
        (line,) = fatal_lines(refused.stderr)
        assert line.startswith("[MIGRATE] FATAL: nothing reverted: ")
        assert "0025_direct_message_policy destroys" in line  # (among the later ones that do)
        assert "direct-message policy" in line and "--destroy-data" in line
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == applied
        assert await conn.fetchval("SELECT dm_policy FROM users") == "friends"

        done = run_cli("migrate", "revert", back, "--destroy-data", env=env)
        assert done.returncode == 0 and f"{back} migration(s) reverted" in done.stdout, done
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == applied - int(back)
    finally:
        await conn.close()


async def test_a_statement_the_database_refuses_is_one_fatal_line(db_url: str) -> None:
    """A database error outside the known ones (here a trigger refusing the demo's
    users) ends in one FATAL line and exit 3, not a traceback."""
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute(
            """
            CREATE FUNCTION no_users() RETURNS trigger LANGUAGE plpgsql AS
            $$ BEGIN RAISE EXCEPTION 'no new users today'; END $$;
            CREATE TRIGGER no_users BEFORE INSERT ON users
                FOR EACH ROW EXECUTE FUNCTION no_users();
            """
        )
    finally:
        await conn.close()
    result = run_cli("seed", env=clean_env(DATABASE_URL=db_url))
    assert result.returncode == 3 and "Traceback" not in result.stderr, result
    assert fatal_lines(result.stderr) == [
        "[STARTUP] FATAL: the database refused a statement: no new users today"
    ]
