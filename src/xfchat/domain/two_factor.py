"""Two-factor sign-in: a TOTP authenticator (RFC 6238, pyotp) and recovery codes.

An account with an authenticator gets no session for its password alone: the login
answers with a ticket (domain/tokens.py), traded with a code for tokens (domain/login.py).
A code is one of the authenticator's (30 s steps; the one before and after are taken
too, for clocks that drift; each step is accepted once) or one of ten recovery codes
(50 random bits each, kept as SHA-256, each spent when used). Setting up needs the password;
turning off and new recovery codes need the password and a code. The secrets are
stored sealed (domain/sealed_secrets.py).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from dataclasses import dataclass
from uuid import UUID

import asyncpg
import pyotp

from xfchat.db.queries import sessions as sessions_q
from xfchat.db.queries import two_factor as q
from xfchat.db.queries import users as users_q
from xfchat.domain.account_lock import hold_accounts
from xfchat.domain.accounts import (
    Actor,
    lock_sessions,
    password_hasher,
    password_moved,
    session_revoked,
)
from xfchat.domain.events import emit_many
from xfchat.domain.passwords import verify_password_async
from xfchat.domain.sealed_secrets import SealError, keyring, seal_again
from xfchat.errors import BadRequest, Conflict, NotFound, ServiceUnavailable
from xfchat.settings import Settings

log = logging.getLogger("xfchat.two_factor")

ISSUER = "XFChat"
PERIOD_S = 30
DRIFT_STEPS = 1  # steps either side of now that are accepted
RECOVERY_CODES = 10
_CODE_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i


@dataclass(frozen=True)
class Setup:
    secret: str  # base32, for entering by hand
    uri: str  # otpauth:// (a QR code of it is what authenticator apps scan)


@dataclass(frozen=True)
class Status:
    enabled: bool
    recovery_codes_left: int


def new_recovery_code() -> str:
    """`xxxxx-xxxxx` from a 31-letter alphabet: about 50 random bits."""
    letters = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(10))
    return f"{letters[:5]}-{letters[5:]}"


def recovery_code_hash(code: str) -> bytes:
    """The stored form of a code, ignoring case, spaces and dashes as typed."""
    normal = "".join(ch for ch in code.lower() if ch.isalnum())
    return hashlib.sha256(b"xfchat recovery code\0" + normal.encode()).digest()


def matching_step(secret: str, code: str, at: float | None = None) -> int | None:
    """The time step whose TOTP code `code` is (now, or one step either side)."""
    digits = "".join(code.split())
    if len(digits) != 6 or not (digits.isascii() and digits.isdigit()):
        return None  # (isdigit alone takes Arabic-Indic and fullwidth digits too, which
        # hmac.compare_digest refuses to compare: a 500)
    totp = pyotp.TOTP(secret, interval=PERIOD_S)
    now = int((at if at is not None else time.time()) // PERIOD_S)
    found = None
    for step in range(now - DRIFT_STEPS, now + DRIFT_STEPS + 1):  # no early exit
        if hmac.compare_digest(totp.generate_otp(step), digits):
            found = step
    return found


def _opened(settings: Settings, totp: q.TotpRow) -> str | None:
    """The authenticator's secret, opened; None (logged) when it does not open: sealed
    under a key this process was not given, or altered. `xfchat serve` refuses to start
    with such a secret confirmed, so only a process with other keys writing it since,
    or a row changed in the database, gets here."""
    try:
        return keyring(settings).open(totp.user_id, totp.secret)
    except SealError as exc:
        log.error("the two-factor secret of user %s: %s", totp.user_id, exc)
        return None


def unavailable() -> ServiceUnavailable:
    return ServiceUnavailable(
        "two-factor codes cannot be checked now: the server is misconfigured",
        code="TWO_FACTOR_UNAVAILABLE",
    )


async def confirm_password(
    pool: asyncpg.Pool, settings: Settings, actor: Actor, password: str, field: str = "password"
) -> users_q.UserRow:
    """The actor's user if `password` is theirs (no connection is held while argon2
    works). `field`: the request's name for it, which a refusal names.

    Raises: BadRequest (WRONG_PASSWORD); NotFound (USER_NOT_FOUND)."""
    async with pool.acquire() as conn:
        user = await users_q.get_user(conn, user_id=actor.user_id)
    if user is None:
        raise NotFound("no such user", code="USER_NOT_FOUND")
    if not await verify_password_async(user.password_hash, password, password_hasher(settings)):
        raise wrong_password(field)
    return user


async def password_unchanged(conn: asyncpg.Connection, user: users_q.UserRow) -> None:
    """Refuse, in the caller's transaction, if the password `confirm_password` checked
    has changed since (`password_moved`).

    Raises: BadRequest (WRONG_PASSWORD)."""
    if await password_moved(conn, user.id, user.password_hash):
        raise wrong_password()


def wrong_password(field: str = "password") -> BadRequest:
    return BadRequest("the password is wrong", code="WRONG_PASSWORD", field=field)


async def status(conn: asyncpg.Connection, actor: Actor) -> Status:
    totp = await q.get_totp(conn, user_id=actor.user_id)
    enabled = totp is not None and totp.confirmed_at is not None
    left = await q.count_unused_recovery_codes(conn, user_id=actor.user_id) if enabled else 0
    return Status(enabled, left)


async def start_setup(pool: asyncpg.Pool, settings: Settings, actor: Actor, password: str) -> Setup:
    """A new authenticator secret, pending until `enable` proves a code of it.

    Raises: BadRequest (WRONG_PASSWORD); Conflict (TWO_FACTOR_ENABLED); Unauthorized
    (SESSION_REVOKED: the account deleted meanwhile)."""
    user = await confirm_password(pool, settings, actor, password)
    secret = pyotp.random_base32()
    async with pool.acquire() as conn, conn.transaction():
        # (after a deletion under way, the account has no authenticator to keep)
        await hold_accounts(conn, actor)
        sealed = keyring(settings).seal(actor.user_id, secret)
        pending = await q.upsert_pending_totp(conn, user_id=actor.user_id, secret=sealed)
    if not pending:
        raise Conflict("two-factor sign-in is on already", code="TWO_FACTOR_ENABLED")
    uri = pyotp.TOTP(secret, interval=PERIOD_S).provisioning_uri(
        name=user.username, issuer_name=ISSUER
    )
    return Setup(secret, uri)


async def _new_recovery_codes(conn: asyncpg.Connection, actor: Actor) -> list[str]:
    codes = [new_recovery_code() for _ in range(RECOVERY_CODES)]
    await q.replace_recovery_codes(
        conn, user_id=actor.user_id, code_hashes=[recovery_code_hash(c) for c in codes]
    )
    return codes


@dataclass(frozen=True)
class Enabled:
    recovery_codes: list[str]  # shown this once
    ended: list[UUID]  # the other sessions it ended (for the caller's cache)


async def enable(conn: asyncpg.Connection, settings: Settings, actor: Actor, code: str) -> Enabled:
    """Turn two-factor sign-in on with a code of the pending authenticator; the new
    recovery codes (shown this once). Every other session of the account ends
    (`session.revoked`, reason `revoked`), as a password change ends them: one made
    with the password alone (a thief's, the reason it is turned on) would outlive it.

    Raises: BadRequest (TWO_FACTOR_NOT_SET_UP, WRONG_TWO_FACTOR_CODE); Conflict
    (TWO_FACTOR_ENABLED); ServiceUnavailable (TWO_FACTOR_UNAVAILABLE); Unauthorized
    (SESSION_REVOKED: the account deleted meanwhile)."""
    async with conn.transaction():
        # (as setup: a deletion under way deletes the codes this writes, or refuses it)
        await hold_accounts(conn, actor)
        # Locked: a setup under way (which replaces the pending secret) comes wholly
        # before, and the code is judged against its secret, or after, and is refused;
        # never the code of one secret turning on another.
        totp = await q.lock_totp(conn, user_id=actor.user_id)
        if totp is not None and totp.confirmed_at is not None:
            raise Conflict("two-factor sign-in is on already", code="TWO_FACTOR_ENABLED")
        if totp is None:
            raise BadRequest(
                "set up an authenticator first (POST .../two-factor/setup)",
                code="TWO_FACTOR_NOT_SET_UP",
            )
        secret = _opened(settings, totp)
        if secret is None:
            raise unavailable()
        step = matching_step(secret, code)
        if step is None or not await q.confirm_totp(conn, user_id=actor.user_id, step=step):
            raise wrong_code()
        await seal_again(conn, keyring(settings), actor.user_id, totp.secret, secret)
        codes = await _new_recovery_codes(conn, actor)
        # (after the authenticator's row, as the login's two-factor step takes them)
        await lock_sessions(conn, actor.user_id)
        ended = await sessions_q.revoke_other_sessions(
            conn, user_id=actor.user_id, keep=actor.session_id, reason="revoked"
        )
        await emit_many(conn, [session_revoked(actor.user_id, s, "revoked") for s in ended])
        return Enabled(codes, ended)


def wrong_code() -> BadRequest:
    return BadRequest(
        "that is not a current code of your authenticator, nor an unused recovery code",
        code="WRONG_TWO_FACTOR_CODE",
        field="code",
    )


async def require_code(
    conn: asyncpg.Connection, settings: Settings, actor: Actor, code: str | None
) -> None:
    """With two-factor sign-in on, spend `code` (an authenticator code or a recovery
    code), in the caller's transaction, as a password change and an account's deletion
    ask; with it off, nothing.

    Raises: BadRequest (WRONG_TWO_FACTOR_CODE: missing, not current nor an unused
    recovery code); ServiceUnavailable (TWO_FACTOR_UNAVAILABLE)."""
    if (await status(conn, actor)).enabled and not (
        code is not None and await spend_code(conn, settings, actor.user_id, code)
    ):
        raise wrong_code()


async def reauthenticate(
    conn: asyncpg.Connection,
    settings: Settings,
    actor: Actor,
    code: str | None,
    checked: users_q.UserRow | None = None,
) -> None:
    """The second half of confirming it is the owner (after `confirm_password`, or the
    password change's own check), in the caller's transaction, after it wrote the
    account's row: the authenticator's row, then the sessions lock (the order of the
    login's second step, of turning two-factor sign-in on or off and of the account's
    deletion: the other deadlocked with a login spending a code); with `checked`
    (the user `confirm_password` answered), refused if the password changed since (a
    change meanwhile ended this session); and `code` spent under both (`require_code`),
    with the change: a change refused spends none.

    Raises: BadRequest (WRONG_PASSWORD, WRONG_TWO_FACTOR_CODE); ServiceUnavailable
    (TWO_FACTOR_UNAVAILABLE)."""
    await q.lock_totp(conn, user_id=actor.user_id)
    if checked is not None:
        await password_unchanged(conn, checked)  # (takes the sessions lock)
    else:
        await lock_sessions(conn, actor.user_id)
    await require_code(conn, settings, actor, code)


async def spend_code(
    conn: asyncpg.Connection, settings: Settings, user_id: UUID, code: str
) -> bool:
    """Whether `code` is a current authenticator code of the user's (each step once) or
    an unused recovery code, which is then spent. Call inside a transaction.

    Raises: ServiceUnavailable (TWO_FACTOR_UNAVAILABLE: the secret does not open and
    the code is no recovery code, which still work then)."""
    totp = await q.get_totp(conn, user_id=user_id)
    if totp is None or totp.confirmed_at is None:
        return False
    secret = _opened(settings, totp)
    step = matching_step(secret, code) if secret is not None else None
    if secret is not None and step is not None:
        if not await q.spend_totp_step(conn, user_id=totp.user_id, step=step):
            return False
        await seal_again(conn, keyring(settings), totp.user_id, totp.secret, secret)
        return True
    if await q.spend_recovery_code(conn, user_id=totp.user_id, code_hash=recovery_code_hash(code)):
        return True
    if secret is None:
        raise unavailable()
    return False


async def disable(
    pool: asyncpg.Pool, settings: Settings, actor: Actor, password: str, code: str
) -> None:
    """Turn two-factor sign-in off (the authenticator and recovery codes are deleted).

    Raises: BadRequest (WRONG_PASSWORD, WRONG_TWO_FACTOR_CODE, TWO_FACTOR_NOT_ENABLED)."""
    user = await confirm_password(pool, settings, actor, password)
    async with pool.acquire() as conn, conn.transaction():
        # The authenticator's row before the sessions lock (`password_unchanged`), as
        # the login's second step, turning it on and deleting the account take them:
        # the other order deadlocked with a login spending a code.
        await q.lock_totp(conn, user_id=actor.user_id)
        if not (await status(conn, actor)).enabled:
            raise BadRequest("two-factor sign-in is off", code="TWO_FACTOR_NOT_ENABLED")
        await password_unchanged(conn, user)  # (a change meanwhile ended this session)
        if not await spend_code(conn, settings, actor.user_id, code):
            raise wrong_code()
        await q.delete_totp(conn, user_id=actor.user_id)
        await q.delete_recovery_codes(conn, user_id=actor.user_id)


async def regenerate_recovery_codes(
    pool: asyncpg.Pool, settings: Settings, actor: Actor, password: str, code: str
) -> list[str]:
    """Ten new recovery codes, for the password and a code (an authenticator code or a
    recovery code, spent); the earlier ones stop working. The code, as for `disable`:
    a recovery code turns two-factor sign-in off, so new ones for the password alone
    would turn it off without the authenticator.

    Raises: BadRequest (WRONG_PASSWORD, WRONG_TWO_FACTOR_CODE, TWO_FACTOR_NOT_ENABLED);
    Unauthorized (SESSION_REVOKED: the account deleted meanwhile); ServiceUnavailable
    (TWO_FACTOR_UNAVAILABLE)."""
    user = await confirm_password(pool, settings, actor, password)
    async with pool.acquire() as conn, conn.transaction():
        await hold_accounts(conn, actor)
        await q.lock_totp(conn, user_id=actor.user_id)  # (before the sessions lock: `disable`)
        if not (await status(conn, actor)).enabled:
            raise BadRequest("two-factor sign-in is off", code="TWO_FACTOR_NOT_ENABLED")
        await password_unchanged(conn, user)
        if not await spend_code(conn, settings, actor.user_id, code):
            raise wrong_code()
        return await _new_recovery_codes(conn, actor)
