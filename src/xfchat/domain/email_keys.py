"""Email keys made before migration 0032, made exact at the start.

0032 gave every existing account the old rule's key, lower(email), which the old unique
index had made unique (so the migration cannot fail): exact for ASCII emails, but under
the C locale "Émile@" kept its capital. SQL has no casefold, so `xfchat serve` (and
`xfchat dev`) recompute here, before serving, the key of every account whose email is
not ASCII (or whose key is not its ASCII letters in small: a Turkish locale's lower()),
oldest account first. Where the exact key is already another account's (two accounts
made before 0032 whose emails differ only in a non-ASCII letter's case or form: the one
whose key it already was, else the older, has it), the other keeps its old key: it still
logs in by its username, or by its email typed exactly as registered
(users_q.get_user_by_login), and no new account can take the email. Rows with exact keys
are read and left alone: the pass is one scan of users once nothing is left to do.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from xfchat.db.pool import connect
from xfchat.db.queries import users as users_q
from xfchat.domain.validation import email_key
from xfchat.settings import DatabaseSettings


@dataclass(frozen=True)
class Rekeyed:
    changed: int  # keys made exact (or, without writing, to make exact)
    kept: int  # old keys kept: the exact one is another account's


async def rekey_emails(conn: asyncpg.Connection, *, write: bool = True) -> Rekeyed:
    changed = kept = 0
    taken: set[str] = set()  # (without writing: the keys this pass would have taken)
    for row in await users_q.list_email_keys_to_check(conn):
        exact = email_key(row.email)
        if exact == row.email_key:
            continue
        if not write:
            holder = await users_q.get_user_by_email_key(conn, email_key=exact)
            if holder is None and exact not in taken:
                taken.add(exact)
                changed += 1
            else:
                kept += 1
            continue
        try:  # (one statement each: a registration racing for the key just wins it)
            await users_q.update_email_key(conn, user_id=row.id, email_key=exact)
        except asyncpg.UniqueViolationError:
            kept += 1
        else:
            changed += 1
    return Rekeyed(changed, kept)


async def rekey_emails_at_start(settings: DatabaseSettings, *, write: bool = True) -> str:
    """Make the email keys made before migration 0032 exact; the line to log."""
    conn = await connect(settings, requests=False)  # (start-up work, not a request)
    try:
        done = await rekey_emails(conn, write=write)
    finally:
        await conn.close()
    line = f"email keys: {done.changed} {'made exact' if write else 'to make exact'}"
    if done.kept:
        line += (
            f" ({done.kept} kept as before 0032: another account's email is the same "
            "ignoring case; they log in by username, or by the email typed exactly as registered)"
        )
    return line
