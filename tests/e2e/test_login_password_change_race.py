"""A login checks the password it was given against the hash it read before argon2
worked; a password change committing meanwhile must still win: the login with the old
password gets no session (README: a password change revokes every other session), and
it never writes the old password back (a rehash after the hashing cost went up)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import asyncpg
import httpx

from tests.api.test_two_factor import BASE, password_step, second_step, turned_on
from tests.factories import PASSWORD, MakeUser, TestUser
from tests.support import Servers, until_one_waits_for_a_lock
from xfchat.db.queries import locks as locks_q

NEW_PASSWORD = "a brand new passphrase 42"


def change_password(
    client: httpx.AsyncClient, token: str, new: str = NEW_PASSWORD, code: str | None = None
) -> Coroutine[Any, Any, httpx.Response]:
    """The password change of the session of `token`, from PASSWORD to `new` (with
    `code`, for an account with two-factor sign-in)."""
    return client.post(
        "/api/users/@me/password",
        headers={"Authorization": f"Bearer {token}"},
        json={"current_password": PASSWORD, "new_password": new} | ({"code": code} if code else {}),
    )


async def changed_while_it_waits(
    holder: asyncpg.Connection,
    client: httpx.AsyncClient,
    owner: TestUser,
    pending: Callable[[], Awaitable[httpx.Response]],
    code: str | None = None,
) -> httpx.Response:
    """With `holder` holding the owner's sessions lock (in a transaction of its own):
    the owner's password change waits for it, having locked the account's row and
    authenticator; then `pending` starts (its password checked) and waits behind the
    change; the lock let go, the change commits first; `pending`'s answer."""
    tx = holder.transaction()
    await tx.start()
    await locks_q.lock_transaction(holder, key=locks_q.advisory_key(b"sessions", owner.id))
    change = asyncio.ensure_future(change_password(client, owner.access_token, code=code))
    await until_one_waits_for_a_lock(holder, change)
    assert not change.done(), change.result().text
    waiting = asyncio.ensure_future(pending())
    for _ in range(1000):  # (until it waits behind the change)
        if await holder.fetchval("SELECT count(*) FROM pg_locks WHERE NOT granted") >= 2:
            break
        await asyncio.sleep(0.01)
    assert not waiting.done(), waiting.result().text
    await tx.rollback()
    changed = await change
    assert changed.status_code == 204, changed.text
    return await waiting


async def test_a_login_with_the_old_password_racing_a_change_gets_no_session(
    servers: Servers, make_user: MakeUser, db_url: str
) -> None:
    owner = await make_user()
    _, base = servers.start()
    holder = await asyncpg.connect(db_url)
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            # The login waits after its argon2 check, before it writes its session (at
            # the sessions lock, behind the change).
            answer = await changed_while_it_waits(
                holder,
                client,
                owner,
                lambda: client.post(
                    "/api/auth/login", json={"login": owner.username, "password": PASSWORD}
                ),
            )
            # Was: 200 with a session made after the change, which nothing revoked.
            assert answer.status_code == 401, answer.text
            assert answer.json()["code"] == "INVALID_CREDENTIALS"
            sessions = await client.get(
                "/api/users/@me/sessions",
                headers={"Authorization": f"Bearer {owner.access_token}"},
            )
            assert [s["current"] for s in sessions.json()] == [True]
    finally:
        await holder.close()


async def test_a_rehashing_login_racing_a_change_does_not_restore_the_old_password(
    servers: Servers, make_user: MakeUser, db_url: str
) -> None:
    owner = await make_user()  # hashed at the tests' cost (time 2)
    # A server whose hashing cost went up: a login rehashes the password it checked.
    _, base = servers.start(XFCHAT_ARGON2_TIME_COST="3")
    holder = await asyncpg.connect(db_url)
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            tx = holder.transaction()
            await tx.start()
            await holder.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", owner.id)
            change = asyncio.ensure_future(change_password(client, owner.access_token))
            await until_one_waits_for_a_lock(holder, change)
            login = asyncio.ensure_future(
                client.post("/api/auth/login", json={"login": owner.username, "password": PASSWORD})
            )
            for _ in range(1000):  # (the login waits behind the change for the row)
                waiting = await holder.fetchval("SELECT count(*) FROM pg_locks WHERE NOT granted")
                if waiting >= 2 or login.done():
                    break
                await asyncio.sleep(0.01)
            await tx.rollback()
            assert (await change).status_code == 204
            answer = await login
            assert answer.status_code == 401, answer.text
            old = await client.post(
                "/api/auth/login", json={"login": owner.username, "password": PASSWORD}
            )
            # Was: 200: the login's rehash of the old password overwrote the new one.
            assert old.status_code == 401, old.text
            new = await client.post(
                "/api/auth/login", json={"login": owner.username, "password": NEW_PASSWORD}
            )
            assert new.status_code == 200, new.text
    finally:
        await holder.close()


async def test_two_password_changes_at_once_the_later_one_checked_the_old_password(
    servers: Servers, make_user: MakeUser, db_url: str
) -> None:
    """The owner changes the password while someone holding another session and the old
    password changes it too: the owner's change revokes that session, and the other
    change, whose current password was checked against the hash from before, must not
    then set its own password (and revoke the owner's session)."""
    owner = await make_user()
    _, base = servers.start()
    holder = await asyncpg.connect(db_url)
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            other = await client.post(
                "/api/auth/login", json={"login": owner.username, "password": PASSWORD}
            )
            thief = other.json()["access_token"]
            tx = holder.transaction()
            await tx.start()
            await holder.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", owner.id)
            mine = asyncio.ensure_future(change_password(client, owner.access_token))
            await until_one_waits_for_a_lock(holder, mine)
            theirs = asyncio.ensure_future(change_password(client, thief, "the thief's own pass 7"))
            for _ in range(1000):  # (it waits behind the owner's change for the row)
                waiting = await holder.fetchval("SELECT count(*) FROM pg_locks WHERE NOT granted")
                if waiting >= 2 or theirs.done():
                    break
                await asyncio.sleep(0.01)
            await tx.rollback()
            assert (await mine).status_code == 204
            # Was: 204: the thief's password replaced the owner's, the owner's session revoked.
            assert (await theirs).status_code == 400
            me = await client.get(
                "/api/users/@me", headers={"Authorization": f"Bearer {owner.access_token}"}
            )
            assert me.status_code == 200, me.text
            new = await client.post(
                "/api/auth/login", json={"login": owner.username, "password": NEW_PASSWORD}
            )
            assert new.status_code == 200, new.text
    finally:
        await holder.close()


async def test_turning_two_factor_off_racing_a_password_change_is_refused(
    servers: Servers, make_user: MakeUser, db_url: str
) -> None:
    """Was: a session with the password and a code (a thief's, say) turned two-factor
    sign-in off after the owner's password change had committed and revoked it: the
    password was checked before the change, and the authenticator deleted after it."""
    owner = await make_user()
    _, base = servers.start()
    holder = await asyncpg.connect(db_url)
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            _, codes, _ = await turned_on(client, owner)
            second = await second_step(client, await password_step(client, owner), codes[0])
            assert second.status_code == 200, second.text
            other = {"Authorization": f"Bearer {second.json()['access_token']}"}
            # The disable waits after its password check, at the authenticator's row
            # (behind the change, which holds it).
            answer = await changed_while_it_waits(
                holder,
                client,
                owner,
                lambda: client.post(
                    f"{BASE}/disable", headers=other, json={"password": PASSWORD, "code": codes[1]}
                ),
                code=codes[2],
            )
            assert answer.status_code == 400, answer.text  # (was: 204, and it was off)
            assert answer.json()["code"] == "WRONG_PASSWORD"
            still = await client.get(BASE, headers=owner.headers)
            assert still.json()["enabled"] is True, still.text
    finally:
        await holder.close()
