"""The other commands: seed, check."""

from __future__ import annotations

import asyncpg

from tests.support import clean_env, fatal_lines, random_secret, run_cli


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
    assert result.returncode == 4 and "migrate run" in result.stderr
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
