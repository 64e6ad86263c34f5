"""`xfchat dev`: the newcomer's one command.

Starts (or reuses) a local PostgreSQL whose data lives in `./.xfchat/` (an explicit
DATABASE_URL wins), applies migrations, loads the demo data on the first run, serves on
127.0.0.1:3000 and prints the URL and the demo logins. Ctrl-C stops the server, then
the database.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import signal
import tempfile
from pathlib import Path

from xfchat.cli import (
    EXIT_DATABASE,
    EXIT_OTHER,
    EXIT_SETTINGS,
    configure_logging,
    fatal,
    guarded,
    name_unknown_variables,
    refuse_settings,
    say,
    serve_http,
    warn,
)
from xfchat.db.embedded import (
    EmbeddedPostgres,
    EmbeddedPostgresError,
    can_reach,
    find_binaries,
    server_os_user,
)
from xfchat.settings import Settings, SettingsError, load_settings

DEV_DATABASE = "xfchat"


def data_root() -> Path:
    return Path(os.environ.get("XFCHAT_DATA_DIR") or Path.cwd() / ".xfchat").resolve()


def _pg_data_dir(root: Path, major: int) -> Path:
    """`<root>/pg<major>`; if the PostgreSQL account cannot reach `root` (a project
    inside a 0700 home, under root), a per-project directory in the temp dir instead."""
    user = server_os_user()
    if user is None or can_reach(root, user):
        return root / f"pg{major}"
    key = hashlib.sha256(str(root).encode()).hexdigest()[:8]
    fallback = Path(tempfile.gettempdir()) / f"xfchat-dev-{key}"
    fallback.mkdir(mode=0o755, exist_ok=True)
    os.chmod(fallback, 0o755)
    say(f"the {user.name} account cannot reach {root}; keeping PostgreSQL data in {fallback}")
    return fallback / f"pg{major}"


def _dev_secret(root: Path) -> str:
    """A random secret made once per checkout and kept in .xfchat/secret (never in git)."""
    path = root / "secret"
    if path.exists():
        return path.read_text().strip()
    value = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    return value


def start_local_postgres(root: Path) -> EmbeddedPostgres:
    binaries = find_binaries()
    data_dir = _pg_data_dir(root, binaries.major)
    reused = (data_dir / "PG_VERSION").exists()
    pg = EmbeddedPostgres(data_dir, binaries, durable=True)
    say(
        f"{'reusing' if reused else 'creating'} local PostgreSQL {binaries.major} "
        f"({binaries.source} binaries {binaries.bindir}) in {data_dir}"
    )
    if not reused:  # (the binaries found changed: a system PostgreSQL installed, say)
        source = {"system": "wheel", "wheel": "system"}.get(binaries.source, "system|wheel")
        for other in sorted(data_dir.parent.glob("pg[0-9]*/PG_VERSION")):
            warn(
                f"{other.parent} holds an earlier run's data (PostgreSQL "
                f"{other.read_text().strip()}), which this run does not use: it starts an "
                f"empty database; XFCHAT_PG_SOURCE={source} (or XFCHAT_PG_BINDIR) runs "
                "the earlier one"
            )
    pg.start()
    say(f"local PostgreSQL listening on 127.0.0.1:{pg.port} (pid {pg.pid})")
    return pg


async def _ensure_database(pg: EmbeddedPostgres) -> str:
    import asyncpg

    from xfchat.db.queries.admin import create_database, database_exists

    conn = await asyncpg.connect(pg.url)
    try:
        if not await database_exists(conn, name=DEV_DATABASE):
            await create_database(conn, name=DEV_DATABASE)
    finally:
        await conn.close()
    return pg.socket_url_for(DEV_DATABASE)


def dev_defaults(root: Path) -> None:
    """Listen on 127.0.0.1 and use the checkout's secret unless told otherwise; empty is
    not telling (was: setdefault kept XFCHAT_HOST="", which binds every interface)."""
    if not os.environ.get("XFCHAT_HOST", "").strip():
        os.environ["XFCHAT_HOST"] = "127.0.0.1"
    if not os.environ.get("XFCHAT_SECRET", "").strip():
        os.environ["XFCHAT_SECRET"] = _dev_secret(root)


def own_origins(settings: Settings) -> list[str]:
    return [f"http://{host}:{settings.port}" for host in ("127.0.0.1", "localhost")]


def with_own_origins(settings: Settings) -> Settings:
    """Unless XFCHAT_CORS_ORIGINS says otherwise, the client served here is allowed however
    it is reached (127.0.0.1 or localhost), on the port bound (XFCHAT_PORT=0: the one the
    system chose, which is why this runs after binding)."""
    if settings.cors_origins:
        return settings
    return settings.model_copy(update={"cors_origins": own_origins(settings)})


def run_dev() -> int:
    root = data_root()
    try:
        root.mkdir(parents=True, exist_ok=True)
        os.chmod(root, 0o755)
    except OSError as exc:  # (was: a traceback, for a file there or a parent not writable)
        fatal(
            f"cannot use {root} as the data directory: {exc.strerror or exc}"
            " (set XFCHAT_DATA_DIR to a directory that can be created and written)",
            EXIT_SETTINGS,
        )
    dev_defaults(root)
    try:  # (was: initdb, or the start of the database, then this refusal)
        load_settings()  # as main() loads them, before the database is touched
    except SettingsError as exc:
        refuse_settings(exc)
    pg: EmbeddedPostgres | None = None
    try:
        if not os.environ.get("DATABASE_URL"):
            try:
                pg = start_local_postgres(root)
            except EmbeddedPostgresError as exc:
                fatal(str(exc), EXIT_DATABASE)

        async def main() -> int:
            from xfchat.db.pool import without_password
            from xfchat.db.startup import prepare_database
            from xfchat.domain.demo import DEMO_PASSWORD, DEMO_USERS
            from xfchat.domain.email_keys import rekey_emails_at_start
            from xfchat.domain.sealed_secrets import seal_at_start
            from xfchat.file_limit import raise_file_limit

            if pg is not None:
                os.environ["DATABASE_URL"] = await _ensure_database(pg)
            settings = load_settings()
            configure_logging(settings.log_level, settings.log_format, settings.access_log)
            say("settings valid")
            name_unknown_variables()
            say(raise_file_limit())
            await _refuse_real_accounts(settings)  # (before migrating: it is not ours)
            await prepare_database(settings, say)
            say(await seal_at_start(settings))
            say(await rekey_emails_at_start(settings))
            await _seed_once(settings)

            def banner(url: str, bound: str) -> None:
                print(
                    f"\n  XFChat is running at {url} (listening on {bound})\n"
                    f"  Database: {without_password(settings.require_database_url())}\n"
                    f"  Demo logins (password {DEMO_PASSWORD}): {', '.join(DEMO_USERS)}\n\n"
                    f"  open {url} and log in as {DEMO_USERS[0]} / {DEMO_PASSWORD}\n\n"
                    "  Press Ctrl-C to stop.\n",
                    flush=True,
                )

            return await serve_http(settings, banner=banner, settle=with_own_origins)

        return guarded(main)
    except KeyboardInterrupt:
        return 130
    except EmbeddedPostgresError as exc:
        fatal(str(exc), EXIT_OTHER)
    finally:
        if pg is not None:
            # A second SIGINT (Ctrl-C twice, or one sent to the process group, which uv
            # forwards again) must not abandon the database half stopped: the postmaster
            # would get PR_SET_PDEATHSIG's SIGQUIT and the socket directory would stay.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            pg.stop()
            say("local PostgreSQL stopped")


async def _seed_once(settings: Settings) -> None:
    """The demo data, unless the database has it already; a database with accounts of
    its own is refused (see _refuse)."""
    from xfchat.db.pool import connect
    from xfchat.db.queries import users as users_q
    from xfchat.domain.demo import is_seeded, seed_demo

    conn = await connect(settings)
    try:
        if await is_seeded(conn):
            say("demo data present (reusing it)")
        elif users := await users_q.count_users(conn):
            _refuse(settings, users)
        else:
            summary = await seed_demo(conn)
            say(
                f"demo data loaded: {summary.users} users, {summary.channels} channels, "
                f"{summary.messages} messages"
            )
    finally:
        await conn.close()


def _refuse(settings: Settings, users: int) -> None:
    """An exported DATABASE_URL of a real database: five accounts with a published
    password must never be added to it."""
    from xfchat.db.pool import describe_target

    fatal(
        f"{describe_target(settings.require_database_url())} holds {users} "
        "account(s) and no demo data: `xfchat dev` adds demo accounts with "
        "a known password, so it runs only on its own database or an empty "
        "one (unset DATABASE_URL, or use `xfchat serve`)",
        EXIT_DATABASE,
    )


async def _refuse_real_accounts(settings: Settings) -> None:
    """The refusal above before anything is written, migrations included (was: a real
    database of an older release was migrated under it, then refused). A database that
    cannot be reached, or has no tables yet, is left to the start's own checks."""
    import asyncpg

    from xfchat.db.pool import DATABASE_ERRORS, connect
    from xfchat.db.queries import servers as servers_q
    from xfchat.db.queries import users as users_q
    from xfchat.domain.demo import DEMO_SERVER_ID

    try:
        conn = await connect(settings, requests=False)
    except DATABASE_ERRORS:
        return
    try:
        users = await users_q.count_users(conn)
        seeded = users and await servers_q.server_exists(conn, server_id=DEMO_SERVER_ID)
    except asyncpg.UndefinedTableError:
        return
    finally:
        await conn.close()
    if users and not seeded:
        _refuse(settings, users)
