from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from xfchat.db.queries import many, maybe, one

USER_COLUMNS = (
    "id, username, email, password_hash, display_name, avatar_url, status, status_text, "
    "created_at, updated_at, deleted_at"
)


@dataclass(frozen=True)
class UserRow:
    id: UUID
    username: str
    email: str
    password_hash: str
    display_name: str | None
    avatar_url: str | None
    status: str
    status_text: str | None
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None  # the account was deleted (the row stays, scrubbed)


async def insert_user(
    conn: asyncpg.Connection,
    *,
    username: str,
    email: str,
    email_key: str,
    password_hash: str,
    display_name: str | None = None,
    user_id: UUID | None = None,
) -> UserRow:
    """`email_key`: the email as uniqueness compares it (validation.email_key)."""
    record = await conn.fetchrow(
        f"""
        INSERT INTO users (id, username, email, email_key, password_hash, display_name)
        VALUES (COALESCE($1, gen_random_uuid()), $2, $3, $4, $5, $6)
        RETURNING {USER_COLUMNS}
        """,
        user_id,
        username,
        email,
        email_key,
        password_hash,
        display_name,
    )
    return one(UserRow, record)


async def get_user(conn: asyncpg.Connection, *, user_id: UUID) -> UserRow | None:
    record = await conn.fetchrow(f"SELECT {USER_COLUMNS} FROM users WHERE id = $1", user_id)
    return maybe(UserRow, record)


async def lock_user(conn: asyncpg.Connection, *, user_id: UUID) -> UserRow | None:
    """The user's row, locked until the caller's transaction ends as an update of it
    locks it (FOR NO KEY UPDATE: no update of a user changes a key column, and a write
    that names the user through a foreign key, which takes FOR KEY SHARE, goes on)."""
    record = await conn.fetchrow(
        f"SELECT {USER_COLUMNS} FROM users WHERE id = $1 FOR NO KEY UPDATE", user_id
    )
    return maybe(UserRow, record)


async def list_deleted_user_ids(conn: asyncpg.Connection, *, user_ids: list[UUID]) -> set[UUID]:
    """Those of `user_ids` whose account was deleted."""
    records = await conn.fetch(
        "SELECT id FROM users WHERE id = ANY($1::uuid[]) AND deleted_at IS NOT NULL", user_ids
    )
    return {r["id"] for r in records}


def username_key(name: str) -> str | None:
    """A name to compare with usernames as the unique index does (lower(username) =
    lower($1): both sides folded by the same lower(), in whatever locale the database
    has), if it may be one: a username is ASCII (registration takes nothing else), and
    a name that is not names nobody (None, which `=` matches with no row). Was: any
    name, and under a UTF-8 locale lower() folds U+0130 to `i` and the Kelvin sign to
    `k`, so `alİce` found alice while the login's per-name bucket took it for another
    name (2^n buckets for a name of n i's)."""
    return name if name.isascii() else None


# A username as validation.username_look takes it (usernames are ASCII: translate,
# lower() and replace() fold it alike in every locale, in the same order); indexed by
# migration 0063 (its expression, exactly, for the planner to use the index).
USERNAME_LOOK = "replace(replace(lower(translate(username, 'I0', 'lo')), 'm', 'rn'), 'w', 'vv')"


async def username_look_taken(
    conn: asyncpg.Connection, *, look: str, user_id: UUID | None = None
) -> bool:
    """Whether an account other than `user_id` has a username of this look."""
    return bool(
        await conn.fetchval(
            f"SELECT EXISTS (SELECT 1 FROM users WHERE {USERNAME_LOOK} = $1"
            " AND id IS DISTINCT FROM $2)",
            look,
            user_id,
        )
    )


async def get_user_by_username(conn: asyncpg.Connection, *, username: str) -> UserRow | None:
    record = await conn.fetchrow(
        f"SELECT {USER_COLUMNS} FROM users WHERE lower(username) = lower($1)",
        username_key(username),
    )
    return maybe(UserRow, record)


async def count_users(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM users"))


async def get_user_by_login(
    conn: asyncpg.Connection, *, login: str, email_key: str
) -> UserRow | None:
    """By username (ASCII, folded as username_key folds it) or email key,
    case-insensitively. An account
    whose key is still the old rule's lower(email) (two accounts made before migration
    0032 whose emails differ only in a non-ASCII letter's case) is found by its email
    typed exactly as it was registered, before the account holding the exact key. (Not
    by lower() alone: under a UTF-8 locale lower('İvan@') is 'ivan@', the exact key of
    whoever registers that since, who would be found for the owner of 'İvan@'.)"""
    record = await conn.fetchrow(
        f"""
        SELECT {USER_COLUMNS} FROM users
        WHERE (lower(username) = lower($3) OR email_key = $2
               OR (email_key = lower($1) AND email = $1))
          AND deleted_at IS NULL
        ORDER BY email = $1 DESC
        LIMIT 1
        """,
        login,
        email_key,
        username_key(login),
    )
    return maybe(UserRow, record)


@dataclass(frozen=True)
class EmailKeyRow:
    id: UUID
    email: str
    email_key: str


async def list_email_keys_to_check(conn: asyncpg.Connection) -> list[EmailKeyRow]:
    """Accounts whose email key may not be the exact one (migration 0032 gave every
    account the old rule's lower(email)): a non-ASCII email, or a key that is not the
    email's ASCII letters in small (a Turkish locale's lower()). Oldest first."""
    records = await conn.fetch(
        r"""
        SELECT id, email, email_key FROM users
        WHERE email ~ '[^\x01-\x7f]' OR email_key <> lower(email COLLATE "C")
        ORDER BY created_at, id
        """
    )
    return many(EmailKeyRow, records)


async def get_user_by_email_key(conn: asyncpg.Connection, *, email_key: str) -> UUID | None:
    """The live account holding that email key, if any."""
    value = await conn.fetchval(
        "SELECT id FROM users WHERE email_key = $1 AND deleted_at IS NULL", email_key
    )
    return None if value is None else UUID(str(value))


async def update_email_key(conn: asyncpg.Connection, *, user_id: UUID, email_key: str) -> None:
    """Raises: asyncpg.UniqueViolationError when another account holds that key."""
    await conn.execute("UPDATE users SET email_key = $2 WHERE id = $1", user_id, email_key)


async def update_user_profile(
    conn: asyncpg.Connection,
    *,
    user_id: UUID,
    username: str | None = None,
    email: str | None = None,
    email_key: str | None = None,
    display_name: str | None = None,
    clear_display_name: bool = False,
    status_text: str | None = None,
    clear_status_text: bool = False,
    avatar_url: str | None = None,
    clear_avatar_url: bool = False,
) -> UserRow | None:
    """Change the given fields; a field left None is kept unless its clear flag is set
    (`email` and `email_key` go together). None if the account was deleted (its
    scrubbed row is never written again)."""
    record = await conn.fetchrow(
        f"""
        UPDATE users SET
            username = COALESCE($2, username),
            display_name = CASE WHEN $4 THEN NULL ELSE COALESCE($3, display_name) END,
            status_text = CASE WHEN $6 THEN NULL ELSE COALESCE($5, status_text) END,
            avatar_url = CASE WHEN $8 THEN NULL ELSE COALESCE($7, avatar_url) END,
            email = COALESCE($9, email),
            email_key = COALESCE($10, email_key),
            updated_at = now()
        WHERE id = $1 AND deleted_at IS NULL
        RETURNING {USER_COLUMNS}
        """,
        user_id,
        username,
        display_name,
        clear_display_name,
        status_text,
        clear_status_text,
        avatar_url,
        clear_avatar_url,
        email,
        email_key,
    )
    return maybe(UserRow, record)


async def replace_password_hash(
    conn: asyncpg.Connection, *, user_id: UUID, old_hash: str, new_hash: str
) -> bool:
    """Set `new_hash` only where the password hash is still `old_hash` (a rehash of the
    same password): False if the account was deleted or its password changed since."""
    status = await conn.execute(
        "UPDATE users SET password_hash = $3, updated_at = now()"
        " WHERE id = $1 AND password_hash = $2 AND deleted_at IS NULL",
        user_id,
        old_hash,
        new_hash,
    )
    return bool(status != "UPDATE 0")


async def get_password_hash(conn: asyncpg.Connection, *, user_id: UUID) -> str | None:
    """The password hash of a live (not deleted) account."""
    found: str | None = await conn.fetchval(
        "SELECT password_hash FROM users WHERE id = $1 AND deleted_at IS NULL", user_id
    )
    return found


@dataclass(frozen=True)
class Credentials:
    """What a login is checked against: the password hash, and the names it may give."""

    password_hash: str
    email: str
    username: str


async def get_credentials(conn: asyncpg.Connection, *, user_id: UUID) -> Credentials | None:
    """The credentials of a live (not deleted) account."""
    row = await conn.fetchrow(
        "SELECT password_hash, email, username FROM users WHERE id = $1 AND deleted_at IS NULL",
        user_id,
    )
    return Credentials(**dict(row)) if row is not None else None


# What anyone may see of another user: never the email or the password hash, nor the
# custom status (status_text), which is presence: shown only to those who see the
# user's presence, and to nobody while they are invisible or offline (domain/presence.py).
PUBLIC_USER_FIELDS = (
    "id",
    "username",
    "display_name",
    "avatar_url",
    "created_at",
    "deleted_at",
)
PUBLIC_USER_COLUMNS = ", ".join(PUBLIC_USER_FIELDS)
# For joins: the user's columns as u_id, u_username, ... from a table aliased `u`.
PUBLIC_USER_COLUMNS_U = ", ".join(f"u.{f} AS u_{f}" for f in PUBLIC_USER_FIELDS)


@dataclass(frozen=True)
class PublicUserRow:
    id: UUID
    username: str
    display_name: str | None
    avatar_url: str | None
    created_at: datetime
    deleted_at: datetime | None


def public_user_from(record: Any) -> PublicUserRow:
    """A PublicUserRow from a joined record selected with PUBLIC_USER_COLUMNS_U."""
    return PublicUserRow(**{f: record[f"u_{f}"] for f in PUBLIC_USER_FIELDS})


async def get_public_user(conn: asyncpg.Connection, *, user_id: UUID) -> PublicUserRow | None:
    record = await conn.fetchrow(f"SELECT {PUBLIC_USER_COLUMNS} FROM users WHERE id = $1", user_id)
    return maybe(PublicUserRow, record)


async def list_public_users(
    conn: asyncpg.Connection, *, user_ids: list[UUID]
) -> list[PublicUserRow]:
    """These users' public profiles, in the order given (unknown ids are left out)."""
    records = await conn.fetch(
        f"""
        SELECT {PUBLIC_USER_COLUMNS} FROM users u
        JOIN unnest($1::uuid[]) WITH ORDINALITY AS i(id, ord) USING (id)
        ORDER BY i.ord
        """,
        user_ids,
    )
    return many(PublicUserRow, records)


async def get_public_user_by_username(
    conn: asyncpg.Connection, *, username: str
) -> PublicUserRow | None:
    record = await conn.fetchrow(
        f"SELECT {PUBLIC_USER_COLUMNS} FROM users WHERE lower(username) = lower($1)",
        username_key(username),
    )
    return maybe(PublicUserRow, record)


async def search_users(
    conn: asyncpg.Connection, *, user_id: UUID, folded: str, limit: int
) -> list[PublicUserRow]:
    """Users whose username or display name starts with `folded`, a prefix as
    search_text.fold leaves it (the twin of xf_fold: case in every script the fold
    knows, Latin accents): the searcher's friends first, then people they share a
    conversation with, then anyone; by username within each. Never matches on email."""
    # Byte-wise ranges (text_pattern_ops, migrations 0012 and 0032): usable by a generic
    # plan, which a LIKE with a parameter is not. Usernames are ASCII, which lower()
    # folds as xf_fold does.
    high = folded + "\U0010ffff"
    # The usernames of deleted accounts (placeholders no live account may take) are
    # read around, and the searcher's own name passed over, inside each LIMIT: left to
    # the final filter, they filled the LIMIT ("de" found ten deleted_user_... and no
    # live "dennis"). The prefix's range less the placeholders' is two ranges, one or
    # both empty.
    before, after = deleted_gap(folded, high)
    records = await conn.fetch(
        f"""
        WITH related AS (
            SELECT CASE WHEN f.user_low = $1 THEN f.user_high ELSE f.user_low END AS id, 0 AS rank
            FROM friendships f WHERE f.user_low = $1 OR f.user_high = $1
            UNION ALL
            SELECT p2.user_id, 1 FROM conversation_participants p1
            JOIN conversation_participants p2 ON p2.channel_id = p1.channel_id
            WHERE p1.user_id = $1 AND p2.user_id <> $1
        ), matched AS (
            -- (each in its index's own order, byte-wise: in the collation's, a generic
            -- plan walked users_username_lower_key from the start, every user's name
            -- tested, 20,000 of them for a prefix nobody has; or sorted every display
            -- name that matched, folding each again)
            (SELECT id FROM users
             WHERE lower(username) ~>=~ $2 AND lower(username) ~<~ $5 AND id <> $1
             ORDER BY lower(username) USING ~<~ LIMIT $4)
            UNION
            (SELECT id FROM users
             WHERE lower(username) ~>=~ $6 AND lower(username) ~<~ $3 AND id <> $1
             ORDER BY lower(username) USING ~<~ LIMIT $4)
            UNION
            (SELECT id FROM users
             WHERE xf_fold_name(display_name) ~>=~ $2 AND xf_fold_name(display_name) ~<~ $3
               AND id <> $1
             ORDER BY xf_fold_name(display_name) USING ~<~ LIMIT $4)
            UNION
            SELECT u.id FROM related r JOIN users u ON u.id = r.id
            WHERE (lower(u.username) ~>=~ $2 AND lower(u.username) ~<~ $3)
               OR (xf_fold_name(u.display_name) ~>=~ $2 AND xf_fold_name(u.display_name) ~<~ $3)
        )
        SELECT {PUBLIC_USER_COLUMNS_U}
        FROM matched m JOIN users u ON u.id = m.id
        LEFT JOIN (SELECT id, min(rank) AS rank FROM related GROUP BY id) r ON r.id = u.id
        WHERE u.id <> $1 AND u.deleted_at IS NULL
        ORDER BY COALESCE(r.rank, 2), lower(u.username)
        LIMIT $4
        """,
        user_id,
        folded,
        high,
        limit,
        before,
        after,
    )
    return [public_user_from(r) for r in records]


# The range of deleted accounts' usernames (account_deletion.placeholder_username's,
# which validation.username refuses to anyone else), lower-cased.
DELETED_NAMES = ("deleted_user", "deleted_user\U0010ffff")


def deleted_gap(low: str, high: str) -> tuple[str, str]:
    """For the range [low, high): where its part before DELETED_NAMES ends and its
    part after them starts (each part empty when there is none: [low, end) and
    [start, high))."""
    first, last = DELETED_NAMES
    end = min(high, first) if low < first else low
    start = max(low, last) if high > last else high
    return end, start


async def get_dm_policy(conn: asyncpg.Connection, *, user_id: UUID) -> str | None:
    """Whom the user takes direct messages from: 'everyone' or 'friends'."""
    value = await conn.fetchval("SELECT dm_policy FROM users WHERE id = $1", user_id)
    return None if value is None else str(value)


async def update_dm_policy(conn: asyncpg.Connection, *, user_id: UUID, policy: str) -> bool:
    """False if the account was deleted (its scrubbed row is never written again)."""
    status = await conn.execute(
        "UPDATE users SET dm_policy = $2 WHERE id = $1 AND deleted_at IS NULL", user_id, policy
    )
    return bool(status != "UPDATE 0")


async def count_owned_servers(conn: asyncpg.Connection, *, user_id: UUID) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM servers WHERE owner_id = $1", user_id))


async def scrub_deleted_user(
    conn: asyncpg.Connection, *, user_id: UUID, username: str, email: str, password_hash: str
) -> UserRow | None:
    """Mark the account deleted and keep nothing of its person: the placeholder
    `username` and `email` (its key alike, so the address may register again), a
    password hash no password matches, no display name, status text or avatar, the
    choices reset."""
    record = await conn.fetchrow(
        f"""
        UPDATE users SET
            username = $2, email = $3, email_key = lower($3), password_hash = $4,
            display_name = NULL, status_text = NULL, avatar_url = NULL,
            status = 'invisible', dm_policy = 'everyone',
            deleted_at = now(), updated_at = now()
        WHERE id = $1 AND deleted_at IS NULL
        RETURNING {USER_COLUMNS}
        """,
        user_id,
        username,
        email,
        password_hash,
    )
    return maybe(UserRow, record)


async def delete_personal_rows(conn: asyncpg.Connection, *, user_id: UUID) -> None:
    """What a deleted account leaves behind that names it and nobody needs: its
    authenticator and recovery codes, read positions, usage days, mutes, notification
    settings, kept timeouts of servers it left."""
    await conn.execute(
        """
        WITH totp AS (DELETE FROM user_totp WHERE user_id = $1),
             codes AS (DELETE FROM recovery_codes WHERE user_id = $1),
             reads AS (DELETE FROM read_states WHERE user_id = $1),
             usage AS (DELETE FROM usage_tracking WHERE user_id = $1),
             mutes AS (DELETE FROM mutes WHERE user_id = $1),
             notify AS (DELETE FROM notification_settings WHERE user_id = $1)
        DELETE FROM lingering_timeouts WHERE user_id = $1
        """,
        user_id,
    )
