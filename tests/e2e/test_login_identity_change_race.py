"""A login checks the password against the account as it read it before argon2 worked;
an email change (which ends every other session, reason `revoked`) or a username change
committing meanwhile must win as a password change does
(test_login_password_change_race.py): the login made from the check before it gets no
session, answered as a wrong password would be."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import asyncpg
import httpx
import pytest

from tests.api.test_two_factor import turned_on
from tests.factories import PASSWORD, MakeUser, TestUser
from tests.support import Servers, until_one_waits_for_a_lock
from xfchat.db.queries import locks as locks_q


async def login_racing(
    holder: asyncpg.Connection,
    client: httpx.AsyncClient,
    owner: TestUser,
    change: Coroutine[Any, Any, httpx.Response],
    login: str,
) -> httpx.Response:
    """With `holder` holding the owner's sessions lock: `change` (a guarded profile
    change) waits for it, having written the account's row; then a login naming the
    account by `login` checks the password and waits behind the change at that lock;
    the lock let go, the change commits first (the lock's queue order); the login's
    answer."""
    tx = holder.transaction()
    await tx.start()
    await locks_q.lock_transaction(holder, key=locks_q.advisory_key(b"sessions", owner.id))
    changing = asyncio.ensure_future(change)
    await until_one_waits_for_a_lock(holder, changing)
    assert not changing.done(), changing.result().text
    logging_in = asyncio.ensure_future(
        client.post("/api/auth/login", json={"login": login, "password": PASSWORD})
    )
    for _ in range(1000):  # (until its argon2 check is done and it waits behind the change)
        if await holder.fetchval("SELECT count(*) FROM pg_locks WHERE NOT granted") >= 2:
            break
        await asyncio.sleep(0.01)
    assert not logging_in.done(), logging_in.result().text
    await tx.rollback()
    changed = await changing
    assert changed.status_code == 200, changed.text
    return await logging_in


def patch_me(client: httpx.AsyncClient, owner: TestUser, **fields: str) -> Any:
    """A guarded change of the owner's profile (`code` among `fields` with two-factor
    sign-in on)."""
    return client.patch(
        "/api/users/@me", headers=owner.headers, json={"password": PASSWORD, **fields}
    )


async def only_the_changers_session(client: httpx.AsyncClient, owner: TestUser) -> None:
    sessions = await client.get("/api/users/@me/sessions", headers=owner.headers)
    assert sessions.status_code == 200, sessions.text
    assert [s["current"] for s in sessions.json()] == [True]


def refused_as_a_wrong_password(answer: httpx.Response) -> None:
    assert answer.status_code == 401, answer.text
    assert answer.json() == {
        "code": "INVALID_CREDENTIALS",
        "message": "wrong username, email or password",
    }


# (what changes, and what the login names the account by: its username, kept; its old
# email; its old username)
RACES = {
    "email change, login by username": ("email", "username"),
    "email change, login by the old email": ("email", "email"),
    "rename, login by the old username": ("username", "username"),
}


@pytest.mark.parametrize("race", RACES)
async def test_a_login_racing_a_change_of_what_it_checked_gets_no_session(
    servers: Servers, make_user: MakeUser, db_url: str, race: str
) -> None:
    """Was: 200, a session made after the change, which ended the account's other
    sessions (an email change) or took the name it was asked by (a rename), never
    ended; now refused as a wrong password is, and the account's credentials now are
    what logs in."""
    changed, by = RACES[race]
    owner = await make_user()
    _, base = servers.start()
    new = (
        {"email": f"moved.{owner.username}@example.org"}
        if changed == "email"
        else {"username": f"{owner.username}_renamed"[:32]}
    )
    holder = await asyncpg.connect(db_url)
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            answer = await login_racing(
                holder, client, owner, patch_me(client, owner, **new), getattr(owner, by)
            )
            refused_as_a_wrong_password(answer)
            await only_the_changers_session(client, owner)
            again = await client.post(
                "/api/auth/login", json={"login": next(iter(new.values())), "password": PASSWORD}
            )
            assert again.status_code == 200, again.text
    finally:
        await holder.close()


async def test_a_login_racing_an_email_change_gets_no_ticket_with_two_factor_on(
    servers: Servers, make_user: MakeUser, db_url: str
) -> None:
    """Was: the password's step read the authenticator only after the change had
    committed (here: its rehash waited for the account's row, which the change held),
    so the ticket's stamp was the one after the change's spent code, and the second
    step turned it into a session, from a password check made before the change."""
    owner = await make_user()  # hashed at the tests' cost (time 2)
    # A server whose hashing cost went up: a login rehashes, writing the account's row.
    _, base = servers.start(XFCHAT_ARGON2_TIME_COST="3")
    holder = await asyncpg.connect(db_url)
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            _, codes, _ = await turned_on(client, owner)
            tx = holder.transaction()
            await tx.start()
            await holder.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", owner.id)
            moved = f"moved.{owner.username}@example.org"
            change = asyncio.ensure_future(patch_me(client, owner, email=moved, code=codes[0]))
            await until_one_waits_for_a_lock(holder, change)
            login = asyncio.ensure_future(
                client.post("/api/auth/login", json={"login": owner.username, "password": PASSWORD})
            )
            for _ in range(1000):  # (its password checked, it waits behind the change)
                waiting = await holder.fetchval("SELECT count(*) FROM pg_locks WHERE NOT granted")
                if waiting >= 2 or login.done():
                    break
                await asyncio.sleep(0.01)
            assert not login.done(), login.result().text
            await tx.rollback()
            changed = await change
            assert changed.status_code == 200, changed.text
            answer = await login
            if answer.status_code == 200:  # (the ticket it was given, spent as it was)
                second = await client.post(
                    "/api/auth/login/two-factor",
                    json={"ticket": answer.json()["ticket"], "code": codes[1]},
                )
                assert second.status_code != 200, second.text  # was: 200, a session
            refused_as_a_wrong_password(answer)
            await only_the_changers_session(client, owner)
    finally:
        await holder.close()
