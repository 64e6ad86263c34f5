"""`xfchat admin`: an operator's changes to an account, with the same environment as
`xfchat serve` (DATABASE_URL, XFCHAT_SECRET, the argon2 settings), while servers run.

A new password is read from standard input (never from the command line, which other
users of the machine see in `ps` and the shell keeps in its history)."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

from xfchat.cli import EXIT_DATABASE, EXIT_OTHER, fatal, guarded, say
from xfchat.db.migrate import Migrator
from xfchat.db.pool import connect_with_retry, create_pool
from xfchat.domain import account_export, admin_accounts, admin_messages
from xfchat.errors import XFChatError
from xfchat.settings import load_settings

TAG = "ADMIN"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    admin = sub.add_parser("admin", help="an operator's changes to an account")
    actions = admin.add_subparsers(dest="action", required=True)
    help_user = "the account's id, username or email"
    revoke = actions.add_parser(
        "revoke-sessions", help="end every session of the account (its streams close at once)"
    )
    revoke.add_argument("user", help=help_user)
    lock = actions.add_parser(
        "lock",
        help="lock the account out: a password nobody knows, every session ended"
        " (`set-password` lets it in again)",
    )
    lock.add_argument("user", help=help_user)
    password = actions.add_parser(
        "set-password",
        help="set the account's password, read from standard input; every session ends",
    )
    password.add_argument("user", help=help_user)
    purge = actions.add_parser(
        "delete-messages",
        help="delete the account's messages everywhere (spam), as its author would",
    )
    purge.add_argument("user", help=help_user)
    purge.add_argument(
        "--since",
        type=_moment,
        metavar="TIME",
        help="only those sent at TIME or later (ISO 8601 with a zone: 2026-11-25T10:00:00Z)",
    )
    export = actions.add_parser(
        "export",
        help="write the account's data (profile, messages, reactions, files) to a new"
        " directory, for its owner",
    )
    export.add_argument("user", help=help_user)
    export.add_argument(
        "--out", required=True, type=Path, metavar="DIR", help="a directory to create"
    )
    password.add_argument(
        "--turn-off-two-factor",
        action="store_true",
        help="also delete its authenticator and recovery codes (a lost phone)",
    )


def cmd_admin(args: argparse.Namespace) -> int:
    new_password = _read_password() if args.action == "set-password" else ""

    if args.action == "export":
        _check_out(args.out)

    async def main() -> int:
        settings = load_settings(require_database=True)
        # First a connection as `xfchat serve` and `xfchat seed` make theirs: a database
        # that does not answer (or refuses the login) is said as they say it (was: the
        # pool's, blaming XFCHAT_DB_POOL_MIN and max_connections for a refused connect).
        conn = await connect_with_retry(settings, lambda line: say(line, TAG))
        try:  # (was: `relation "users" does not exist`)
            if await Migrator(conn, settings.migrations_dir).pending():
                fatal(
                    "the schema is not current: run `xfchat migrate run` first",
                    EXIT_DATABASE,
                    tag=TAG,
                )
        finally:
            await conn.close()
        pool = await create_pool(settings, min_size=1)
        try:
            if args.action == "export":
                try:
                    made = await account_export.export_account(pool, args.user, args.out)
                except OSError as exc:  # (a full disk, a directory not writable, ...)
                    fatal(_export_failed(args.out, exc), EXIT_OTHER, tag=TAG)
                print(
                    f"{made.user.username} ({made.user.id}): {made.messages} message(s),"
                    f" {made.reactions} reaction(s), {made.files} file(s)"
                    f" ({made.file_bytes} bytes) written to {made.directory}"
                )
                return 0
            if args.action == "delete-messages":
                purged = await admin_messages.delete_messages_of(pool, args.user, args.since)
                print(
                    f"{purged.user.username} ({purged.user.id}): {purged.messages} "
                    f"message(s) deleted in {purged.channels} channel(s)"
                )
                return 0
            if args.action == "revoke-sessions":
                ended = await admin_accounts.revoke_all_sessions(pool, args.user)
            elif args.action == "lock":
                ended = await admin_accounts.lock_account(pool, settings, args.user)
            else:
                ended = await admin_accounts.set_password(
                    pool,
                    settings,
                    args.user,
                    new_password,
                    turn_off_two_factor=args.turn_off_two_factor,
                )
        except XFChatError as exc:
            fatal(f"{exc.code}: {exc.message}", EXIT_OTHER, tag=TAG)
        finally:
            await pool.close()
        done = {
            "revoke-sessions": "sessions ended",
            "lock": "locked out (a password nobody knows)",
            "set-password": "password set",
        }[args.action]
        print(
            f"{ended.user.username} ({ended.user.id}): {done}; "
            f"{len(ended.sessions)} session(s) ended"
            + ("; two-factor sign-in turned off" if ended.two_factor_off else "")
        )
        return 0

    return guarded(main, TAG)


def _check_out(out: Path) -> None:
    """The export's directory: a new one, in a directory that is there (never written
    into one that holds anything, another's export say)."""
    if out.exists() or out.is_symlink():
        fatal(f"{out} is there already: name a new directory", EXIT_OTHER, tag=TAG)
    if not out.parent.is_dir():
        fatal(f"{out.parent} is not a directory", EXIT_OTHER, tag=TAG)


def _export_failed(out: Path, exc: OSError) -> str:
    """One line for an export that a file system refused: before its directory was made
    (there already since the check, a parent not writable), or part way."""
    why = exc.strerror or str(exc)
    if exc.filename is not None and Path(exc.filename) == out:
        return f"cannot make {out}: {why}"
    where = f" ({exc.filename})" if exc.filename else ""
    return (
        f"the export to {out} did not end: {why}{where}; a directory without"
        " account.json is incomplete: delete it"
    )


def _read_password() -> str:
    """The new password: one line of standard input, without its line break (typed at a
    terminal, unechoed)."""
    if sys.stdin.isatty():
        import getpass

        first = getpass.getpass("new password: ")
        if getpass.getpass("again: ") != first:
            fatal("the two passwords differ", EXIT_OTHER, tag=TAG)
        return first
    line = sys.stdin.readline()
    if not line:
        fatal("no password on standard input", EXIT_OTHER, tag=TAG)
    return line.removesuffix("\n").removesuffix("\r")


def _moment(text: str) -> datetime:
    """An ISO 8601 time with its zone (a time without one would be read in the
    machine's, which an operator seldom means)."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        value = None
    if value is None or value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time with a zone")
    return value
