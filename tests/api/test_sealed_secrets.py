"""Two-factor secrets sealed at rest: bound to their user, opened under any listed key,
sealed again under the first at the start and on use, recovery codes working when a
secret does not open, and a missing key refusing the start instead of locking anyone
out."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import NamedTuple
from uuid import UUID

import asyncpg
import httpx
import pyotp
import pytest
from pydantic import SecretStr, ValidationError

from tests.api.test_two_factor import code_at, password_step, second_step, turn_on
from tests.conftest import make_settings
from tests.factories import MakeUser, TestUser
from tests.support import random_secret
from xfchat.db.queries import two_factor as q
from xfchat.domain.sealed_secrets import Keyring, SealError, keyring, seal_at_start
from xfchat.settings import Settings, SettingsError

AppWith = Callable[..., Awaitable[httpx.AsyncClient]]
SEALED = re.compile(r"v1\.[0-9a-f]{8}\.[A-Za-z0-9_-]{80}")


class Enrolled(NamedTuple):
    user: TestUser
    secret: str
    recovery_codes: list[str]


@pytest.fixture
async def enrolled(client: httpx.AsyncClient, make_user: MakeUser) -> Enrolled:
    """A user with an authenticator on, sealed under XFCHAT_SECRET."""
    user = await make_user()
    return Enrolled(user, *await turn_on(client, user))


async def stored(conn: asyncpg.Connection, user_id: UUID) -> str | None:
    found = await conn.fetchval("SELECT secret FROM user_totp WHERE user_id = $1", user_id)
    return None if found is None else str(found)


async def insert_secret(
    conn: asyncpg.Connection, user_id: UUID, secret: str, *, confirmed: bool = True
) -> None:
    await conn.execute(
        "INSERT INTO user_totp (user_id, secret, confirmed_at)"
        " VALUES ($1, $2, CASE WHEN $3 THEN now() END)",
        user_id,
        secret,
        confirmed,
    )


def altered(sealed: str) -> str:
    """`sealed` with one character of its ciphertext changed."""
    return sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]


def with_keys(settings: Settings, *keys: str) -> Settings:
    return settings.model_copy(update={"totp_keys": [SecretStr(k) for k in keys]})


async def log_in(client: httpx.AsyncClient, user: TestUser, code: str) -> httpx.Response:
    return await second_step(client, await password_step(client, user), code)


async def test_a_secret_is_stored_sealed_and_opens_only_for_its_user(
    enrolled: Enrolled,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    conn: asyncpg.Connection,
    settings: Settings,
) -> None:
    user, secret, _ = enrolled
    other = await make_user()
    sealed = await stored(conn, user.id)
    assert sealed is not None and SEALED.fullmatch(sealed) and secret not in sealed
    keys = keyring(settings)  # XFCHAT_TOTP_KEYS empty: sealed under XFCHAT_SECRET
    assert keys.is_current(sealed) and keys.open(user.id, sealed) == secret
    with pytest.raises(SealError):
        keys.open(other.id, sealed)
    with pytest.raises(SealError):
        keys.open(user.id, altered(sealed))
    # Copied into another user's row, it opens for nobody: that login cannot be checked
    # (503 and an error in the log, not a wrong code).
    _, other_codes = await turn_on(client, other)
    await conn.execute("UPDATE user_totp SET secret = $1 WHERE user_id = $2", sealed, other.id)
    refused = await log_in(client, other, code_at(secret, 1))
    assert refused.status_code == 503, refused.text
    assert refused.json()["code"] == "TWO_FACTOR_UNAVAILABLE"
    # A recovery code still works: what they are for.
    ok = await log_in(client, other, other_codes[0])
    assert ok.status_code == 200, ok.text


async def test_rotating_the_key_keeps_every_authenticator(
    enrolled: Enrolled,
    make_user: MakeUser,
    conn: asyncpg.Connection,
    settings: Settings,
    app_with: AppWith,
) -> None:
    user, secret, _ = enrolled
    old, new = settings.secret.get_secret_value(), random_secret()
    # Step 1 (the new key second) opens the old seals and seals nothing under the new key.
    first = await app_with(totp_keys=f"{old},{new}")
    fresh = await make_user()
    fresh_secret, _ = await turn_on(first, fresh)
    assert keyring(settings).is_current(str(await stored(conn, fresh.id)))
    # Step 2 (the new key first): a login opens the old seal and seals it again.
    both = await app_with(totp_keys=f"{new},{old}")
    current = keyring(with_keys(settings, new)).current
    ok = await log_in(both, user, code_at(secret, 1))
    assert ok.status_code == 200, ok.text
    assert str(await stored(conn, user.id)).startswith(f"v1.{current}.")
    line = await seal_at_start(with_keys(settings, new, old))  # and the start, the rest
    assert line == f"two-factor secrets: 1 sealed again, under key {current}"
    assert str(await stored(conn, fresh.id)).startswith(f"v1.{current}.")
    # Step 3: the old key can go.
    assert "0 sealed again" in await seal_at_start(with_keys(settings, new))
    only_new = await app_with(totp_keys=new)
    ok = await log_in(only_new, fresh, code_at(fresh_secret, 1))
    assert ok.status_code == 200, ok.text


async def test_secrets_stored_in_the_clear_work_and_are_sealed_at_the_start_or_on_use(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection, settings: Settings
) -> None:
    used, idle = await make_user(), await make_user()
    plain = {u.id: pyotp.random_base32() for u in (used, idle)}  # as 0024's code stored them
    for user_id, secret in plain.items():
        await insert_secret(conn, user_id, secret)
    assert "2 to seal again" in await seal_at_start(settings, write=False)
    assert await stored(conn, idle.id) == plain[idle.id]  # (counting writes nothing)
    ok = await log_in(client, used, code_at(plain[used.id]))
    assert ok.status_code == 200, ok.text
    assert "1 sealed again" in await seal_at_start(settings)
    for user_id, secret in plain.items():
        sealed = str(await stored(conn, user_id))
        assert SEALED.fullmatch(sealed) and keyring(settings).open(user_id, sealed) == secret


async def test_a_missing_key_refuses_the_start_and_its_codes_are_not_wrong_codes(
    enrolled: Enrolled, conn: asyncpg.Connection, settings: Settings, app_with: AppWith
) -> None:
    user, secret, _ = enrolled
    sealed = await stored(conn, user.id)
    other_key = random_secret()
    elsewhere = await app_with(totp_keys=other_key)
    refused = await log_in(elsewhere, user, code_at(secret, 1))
    assert refused.status_code == 503 and refused.json()["code"] == "TWO_FACTOR_UNAVAILABLE"
    with pytest.raises(SettingsError) as caught:
        await seal_at_start(with_keys(settings, other_key))
    (problem,) = caught.value.problems
    assert f"sealed under key {keyring(settings).current}" in problem
    assert "XFCHAT_TOTP_KEYS" in problem
    assert await stored(conn, user.id) == sealed


async def test_an_altered_seal_refuses_the_start_and_a_lost_set_up_is_dropped(
    make_user: MakeUser, conn: asyncpg.Connection, settings: Settings
) -> None:
    altered_one, pending = await make_user(), await make_user()
    old = random_secret()
    sealed = Keyring([old]).seal(altered_one.id, pyotp.random_base32())
    await insert_secret(conn, altered_one.id, altered(sealed))
    lost = Keyring([random_secret()]).seal(pending.id, pyotp.random_base32())
    await insert_secret(conn, pending.id, lost, confirmed=False)
    listed = with_keys(settings, random_secret(), old)
    with pytest.raises(SettingsError, match=r"1 two-factor secret\(s\) do not open"):
        await seal_at_start(listed)
    assert await stored(conn, pending.id) == lost  # a refused start writes nothing
    await conn.execute("DELETE FROM user_totp WHERE user_id = $1", altered_one.id)
    assert "(1 unconfirmed set-ups to drop)" in await seal_at_start(listed, write=False)
    assert await stored(conn, pending.id) == lost
    assert "0 sealed again" in (line := await seal_at_start(listed))
    assert "(1 unconfirmed set-ups dropped)" in line
    assert await stored(conn, pending.id) is None


async def test_a_secret_changed_meanwhile_is_left_as_its_writer_made_it(
    enrolled: Enrolled, conn: asyncpg.Connection, settings: Settings
) -> None:
    user, secret, _ = enrolled
    now = str(await stored(conn, user.id))
    earlier = Keyring([random_secret()]).seal(user.id, secret)
    newer = keyring(settings).seal(user.id, secret)
    stale = q.SecretChange(user.id, earlier, newer)
    assert await q.update_secrets(conn, changes=[stale]) == 0
    assert await stored(conn, user.id) == now
    assert await q.update_secrets(conn, changes=[q.SecretChange(user.id, now, newer)]) == 1


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("changeme", "well-known default"),
        (f"{random_secret()},short", "at least 32 characters"),
        (",".join(random_secret() for _ in range(9)), "at most 8 keys"),
    ],
    ids=["default", "short", "too_many"],  # (the same names in every collection)
)
def test_weak_or_too_many_keys_are_refused(value: str, why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        make_settings("postgresql://localhost/x", totp_keys=value)


async def test_sealing_at_the_start_is_not_bound_by_the_request_statement_timeout(
    make_user: MakeUser, conn: asyncpg.Connection, db_url: str
) -> None:
    """Was: with XFCHAT_DB_STATEMENT_TIMEOUT short (0.001 passes the settings), the
    start's reseal was cancelled and `xfchat serve` died with a QueryCanceledError
    traceback. The start's work is no request: it waits as long as it must."""
    user = await make_user()
    await insert_secret(conn, user.id, pyotp.random_base32())
    short = make_settings(db_url, statement_timeout_s=0.1)
    holder = await asyncpg.connect(db_url)
    try:
        held = holder.transaction()
        await held.start()
        await holder.execute("LOCK TABLE user_totp IN ACCESS EXCLUSIVE MODE")
        sealing = asyncio.create_task(seal_at_start(short))
        await asyncio.sleep(0.6)  # six of the request timeouts
        assert not sealing.done()
        await held.rollback()
        assert "1 sealed again" in await asyncio.wait_for(sealing, 30)
    finally:
        await holder.close()
    assert SEALED.fullmatch(str(await stored(conn, user.id)))
