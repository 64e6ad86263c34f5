"""Logging in: which account a login names, its rate-limit buckets, and a session for the
right password (for an account with two-factor sign-in, a ticket first, then a session
for the right code).

The buckets are the account's, whatever was typed (its username, its email, in any
case): `auth.login.account_ip` per account and client address, and `auth.login.account`
per account from every address together, slower, which an address the account has
logged in from before skips. So someone guessing from many addresses can run the
account's global bucket dry, and its owner still logs in from home; only a login from
a new address waits for the window to end. A name no account has is counted the same
way under the name itself (so the buckets do not tell which names exist).
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

import asyncpg

from xfchat.db.queries import sessions as sessions_q
from xfchat.db.queries import two_factor as two_factor_q
from xfchat.db.queries import users as users_q
from xfchat.domain import two_factor, validation
from xfchat.domain.accounts import (
    ClientInfo,
    IssuedTokens,
    credentials_moved,
    dummy_hash,
    password_hasher,
    start_session,
)
from xfchat.domain.passwords import hash_password_async, verify_password_async
from xfchat.domain.rate_limits import client_networks, ip_key
from xfchat.domain.tokens import (
    TICKET_TTL_S,
    TicketClaims,
    issue_two_factor_ticket,
    ticket_stamp,
    verify_two_factor_ticket,
)
from xfchat.errors import Unauthorized
from xfchat.settings import RateLimit, Settings


@dataclass(frozen=True)
class LoginTarget:
    user: users_q.UserRow | None  # None: no account has that name or email
    key: str  # the account's rate-limit key
    familiar: bool  # the client's address logged in to this account before
    typed: str  # the rate-limit key of the name as typed (any case)


@dataclass(frozen=True)
class TwoFactorRequired:
    """The password was right; a code is needed too (with this ticket)."""

    ticket: str
    expires_in: int


async def find_account(
    pool: asyncpg.Pool, settings: Settings, *, login: str, ip: str | None
) -> LoginTarget:
    """The account a login (username or email, any case) names, and whether the client's
    address is one it logged in from within the refresh tokens' lifetime (an address as
    rate limits take it: an IPv6 one by its /64, whose privacy addresses change daily)."""
    async with pool.acquire() as conn:
        user = await users_q.get_user_by_login(
            conn, login=login.strip(), email_key=validation.email_key(login)
        )
        familiar = user is not None and await _familiar(conn, settings, user.id, ip)
    # (as the account is found: a long s (U+017F) and an s are one name, and one bucket)
    typed = f"name:{validation.email_key(login)}"
    return LoginTarget(user, f"user:{user.id}" if user is not None else typed, familiar, typed)


async def _familiar(
    conn: asyncpg.Connection, settings: Settings, user_id: UUID, ip: str | None
) -> bool:
    return ip is not None and await sessions_q.has_familiar_session(
        conn,
        user_id=user_id,
        networks=client_networks(ip),
        within_days=settings.refresh_token_ttl_days,
    )


def login_limits(
    settings: Settings, target: LoginTarget, ip: str | None
) -> list[tuple[str, str, RateLimit]]:
    """The buckets a login attempt counts in (besides `auth.login` per address): per
    name as typed and address, and per account from unfamiliar addresses. Only the
    second joins a username to its email, and only a refusal shows it (the caller keeps
    both out of the response's headers), so an email is tied to its account only by
    someone who has first used up the account's attempts for the window."""
    checks = [
        ("auth.login.account_ip", f"{target.typed} {ip_key(ip)}", settings.rate_login_account_ip)
    ]
    if not target.familiar:
        checks.append(("auth.login.account", target.key, settings.rate_login_account))
    return checks


async def two_factor_limits(
    pool: asyncpg.Pool, settings: Settings, user_id: UUID, ip: str | None
) -> list[tuple[str, str, RateLimit]]:
    """The buckets a code tried at the login's second step counts in: per account and
    address, and per account from every address (`auth.two_factor`) except the account's
    familiar ones, as for the password. So someone who has the password cannot spend the
    owner's codes (nor those of the signed-in routes: `auth.two_factor.signed_in`)."""
    async with pool.acquire() as conn:
        familiar = await _familiar(conn, settings, user_id, ip)
    rule = settings.rate_two_factor_account
    checks = [("auth.two_factor.account_ip", f"user:{user_id} {ip_key(ip)}", rule)]
    if not familiar:
        checks.append(("auth.two_factor", str(user_id), rule))
    return checks


def invalid_credentials() -> Unauthorized:
    return Unauthorized(
        "wrong username, email or password", code="INVALID_CREDENTIALS", token_error=False
    )


async def log_in(
    pool: asyncpg.Pool,
    settings: Settings,
    *,
    target: LoginTarget,
    password: str,
    client: ClientInfo,
) -> IssuedTokens | TwoFactorRequired:
    """A new session for the right password; for an account with two-factor sign-in,
    a ticket to complete with a code instead (no session yet).

    Raises:
        Unauthorized: INVALID_CREDENTIALS, the same for an unknown user and a wrong
            password, after the same argon2 work.
    """
    ph = password_hasher(settings)
    user = target.user
    ok = await verify_password_async(user.password_hash if user else dummy_hash(ph), password, ph)
    if user is None or not ok:
        raise invalid_credentials()
    new_hash = None
    if ph.check_needs_rehash(user.password_hash):  # the hashing cost settings went up
        new_hash = await hash_password_async(password, ph)
    async with pool.acquire() as conn, conn.transaction():
        # (only over the hash just checked: a password changed meanwhile stays changed)
        if new_hash and not await users_q.replace_password_hash(
            conn, user_id=user.id, old_hash=user.password_hash, new_hash=new_hash
        ):
            raise invalid_credentials()  # (deleted or its password changed since)
        # Under the sessions lock, which turning two-factor sign-in on and a change of
        # the password, the email or the username hold until they commit (having ended
        # every other session, but a rename): each is either seen here, and the login
        # refused as a wrong password is (the account it checked is not the account
        # now), or it comes after and ends what is made here: a session, or a ticket
        # (whose stamp the change's spent code moves).
        checked = users_q.Credentials(new_hash or user.password_hash, user.email, user.username)
        if await credentials_moved(conn, user.id, checked):
            raise invalid_credentials()
        totp = await two_factor_q.get_totp(conn, user_id=user.id)
        if totp is not None and totp.confirmed_at is not None:
            left = await two_factor_q.unused_recovery_codes(conn, user_id=user.id)
            ticket = issue_two_factor_ticket(
                settings.secret.get_secret_value(),
                user_id=user.id,
                stamp=ticket_stamp(new_hash or user.password_hash, totp.last_step, left),
            )
            return TwoFactorRequired(ticket, TICKET_TTL_S)
        return await start_session(
            conn, settings, user, client, password_hash=new_hash or user.password_hash
        )


def read_ticket(settings: Settings, ticket: str) -> TicketClaims:
    """Raises Unauthorized (INVALID_TICKET)."""
    return verify_two_factor_ticket(settings.secret.get_secret_value(), ticket)


async def complete_two_factor(
    pool: asyncpg.Pool,
    settings: Settings,
    *,
    claims: TicketClaims,
    code: str,
    client: ClientInfo,
) -> IssuedTokens:
    """The session a ticket and a code earn: a current authenticator code (each once)
    or an unused recovery code (spent).

    Raises:
        Unauthorized: INVALID_TICKET (also once the password changed, or a code was
            accepted since it was issued: the login it completed), INVALID_TWO_FACTOR_CODE.
    """
    async with pool.acquire() as conn, conn.transaction():
        user = await users_q.get_user(conn, user_id=claims.user_id)
        totp = await two_factor_q.lock_totp(conn, user_id=claims.user_id)
        left = await two_factor_q.unused_recovery_codes(conn, user_id=claims.user_id)
        if (
            user is None
            or totp is None
            or ticket_stamp(user.password_hash, totp.last_step, left) != claims.stamp
        ):
            raise Unauthorized(
                "the two-factor ticket is invalid or expired: log in again",
                code="INVALID_TICKET",
                token_error=False,
            )
        if not await two_factor.spend_code(conn, settings, user.id, code):
            raise Unauthorized(
                "that is not a current code of your authenticator, nor an unused recovery code",
                code="INVALID_TWO_FACTOR_CODE",
                token_error=False,
            )
        return await start_session(conn, settings, user, client)
