"""The startup sequence shared by `xfchat serve` and `xfchat dev`.

settings valid -> connect (bounded retry) -> SELECT 1 -> migrations applied ->
tables verified -> (the caller binds and serves). Each failure raises an exception
whose message is the one line the operator sees.
"""

from __future__ import annotations

from collections.abc import Callable

import asyncpg

from xfchat.db.migrate import DEFAULT_DIR, Migrator
from xfchat.db.pool import DatabaseStartupError, connect_with_retry, describe_target
from xfchat.db.queries.locks import select_one
from xfchat.db.queries.users import count_users
from xfchat.settings import DatabaseSettings

Say = Callable[[str], None]


async def prepare_database(settings: DatabaseSettings, say: Say, *, apply: bool = True) -> int:
    """Bring the database to the code's schema; return the number of users."""
    url = settings.require_database_url()
    say(f"connecting to PostgreSQL at {describe_target(url)}")
    conn = await connect_with_retry(settings, say)
    try:
        if await select_one(conn) != 1:
            raise DatabaseStartupError("the database answered SELECT 1 with something else")
        version = conn.get_server_version()
        say(f"database answered SELECT 1 (PostgreSQL {conn.get_settings().server_version})")
        if version.major < 15:
            raise DatabaseStartupError(
                f"PostgreSQL {version.major} is too old: XFChat needs PostgreSQL 15 or newer"
            )
        migrator = Migrator(conn, settings.migrations_dir, log=say)
        if not migrator.migrations:  # (the schema would be missing, whatever it said)
            raise DatabaseStartupError(
                f"no migrations in {settings.migrations_dir or DEFAULT_DIR}: unset "
                "XFCHAT_MIGRATIONS_DIR, or point it at the migrations directory"
            )
        if apply:
            done = await migrator.run()
            latest = migrator.migrations[-1].label if migrator.migrations else "none"
            say(f"migrations applied ({len(done)} new; schema at {latest})")
        else:
            pending = await migrator.pending()
            if pending:
                raise DatabaseStartupError(
                    f"{len(pending)} migration(s) pending ({pending[0].label} first): run "
                    "`xfchat migrate run`"
                )
            say("migrations current")
        users = await count_users(conn)
        say(f"tables verified: {users} users")
        return users
    except asyncpg.InsufficientPrivilegeError as exc:
        raise DatabaseStartupError(
            f"the user in DATABASE_URL may not use the schema ({str(exc).splitlines()[0]}): "
            "the tables must be its own (restore a dump as that user, or grant it rights)"
        ) from None
    finally:
        await conn.close()
