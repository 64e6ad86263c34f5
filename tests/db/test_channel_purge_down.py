"""0055's down with orphans present (a deleted channel's messages not purged yet)."""

from __future__ import annotations

import asyncpg

from xfchat.db.migrate import Migrator


async def test_reverting_0055_with_orphans_deletes_them_and_restores_the_keys(
    db_url: str,
) -> None:
    conn = await asyncpg.connect(db_url)
    try:
        user = await conn.fetchval(
            "INSERT INTO users (username, email, email_key, password_hash)"
            " VALUES ('ann', 'a@x.org', 'a@x.org', 'h') RETURNING id"
        )
        ch = await conn.fetchval(
            "INSERT INTO channels (kind, name, owner_id) VALUES ('group', 'g', $1) RETURNING id",
            user,
        )
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
        reverted = await Migrator(conn).revert(1, destroy_data=True)
        assert [m.version for m in reverted] == [55]
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
