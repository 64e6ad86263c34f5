"""A squatter's look-alike names under the username fold (validation.username_look):
the reserved names, which no account holds, are judged by their look as taken names are;
and the fold agrees with the index's SQL expression for every name of the alphabet."""

from __future__ import annotations

import asyncio
import itertools
import random

import asyncpg
import httpx
import pytest

from tests.factories import PASSWORD, MakeUser
from tests.support import until_one_waits_for_a_lock
from xfchat.db.queries import locks as locks_q
from xfchat.db.queries import users as users_q
from xfchat.domain import validation

# Each reads as a reserved name (or the deleted placeholder's prefix) in the client's
# sans-serif face under the very fold that refuses `rnallory` beside `mallory`.
LOOK_ALIKES = ["adrnin", "Adrnin", "r00t", "R0OT", "systern", "_adrnin.", "deIeted_user1"]


@pytest.mark.parametrize("name", LOOK_ALIKES)
async def test_a_username_that_looks_like_a_reserved_one_is_refused(
    client: httpx.AsyncClient, make_user: MakeUser, name: str
) -> None:
    body = {"username": name, "email": "x@example.com", "password": PASSWORD}
    made = await client.post("/api/auth/register", json=body)
    assert made.status_code == 400 and made.json()["code"] == "INVALID_USERNAME", made.text
    me = await make_user("someone")
    changed = await client.patch(
        "/api/users/@me", headers=me.headers, json={"username": name, "password": PASSWORD}
    )
    assert changed.status_code == 400 and changed.json()["code"] == "INVALID_USERNAME"


ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_."


def _names() -> list[str]:
    """Every name of one and two characters, and many longer random ones (seeded)."""
    short = ["".join(p) for n in (1, 2) for p in itertools.product(ALPHABET, repeat=n)]
    rng = random.Random(63)
    longer = ["".join(rng.choices(ALPHABET, k=rng.randint(3, 32))) for _ in range(20_000)]
    tricky = ["mw0I" * 8, "rnvvOl" * 5, "MWmwIi0Oo", "IIII", "wwww", "mmmm", "MmWw"]
    return short + longer + tricky


async def test_the_fold_agrees_with_the_index_expression_for_every_name(
    conn: asyncpg.Connection,
) -> None:
    names = _names()
    look = users_q.USERNAME_LOOK  # (the module's constant)
    query = f"SELECT username, {look} FROM unnest($1::text[]) AS t(username)"  # noqa: S608
    rows = await conn.fetch(query, names)
    folded = {r[0]: r[1] for r in rows}
    wrong = [n for n in names if folded[n] != validation.username_look(n)]
    assert wrong == []


async def test_a_rename_to_the_look_of_ones_own_name_is_not_refused_by_an_older_look_alike(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    """`bob` and `B0B`, both taken before the fold counted a zero as O, both stay: then
    bob writing his name `Bob` or `BOB` adds no name that reads as another's (it reads
    as bob's own, as it did), and is not `USERNAME_TAKEN`; a third account still cannot
    take that look."""
    bob = await make_user("bob")
    await conn.execute(
        "INSERT INTO users (username, email, email_key, password_hash)"
        " VALUES ('B0B', 'b0b@x.org', 'b0b@x.org', 'h')"
    )
    for name in ("Bob", "BOB"):
        renamed = await client.patch(
            "/api/users/@me", headers=bob.headers, json={"username": name, "password": PASSWORD}
        )
        assert renamed.status_code == 200, renamed.text
        assert renamed.json()["username"] == name
    eve = await make_user("eve")
    taken = await client.patch(
        "/api/users/@me", headers=eve.headers, json={"username": "bob", "password": PASSWORD}
    )
    assert taken.status_code == 409 and taken.json()["code"] == "USERNAME_TAKEN"


async def test_a_rename_to_its_own_look_sees_a_rename_that_let_the_look_go_meanwhile(
    client: httpx.AsyncClient, make_user: MakeUser, db_url: str
) -> None:
    """bob asks to be `Bob` (his own look) while the look's lock is held; meanwhile a
    rename of his to `bobby` commits and `b0b` is registered by another. Once the lock
    is his, `Bob` reads as b0b's, not as his own name (bobby's): refused."""
    bob = await make_user("bob")
    holder = await asyncpg.connect(db_url)
    other = await asyncpg.connect(db_url)
    try:
        held = holder.transaction()
        await held.start()
        look_key = locks_q.name_key(b"username-look", validation.username_look("Bob"))
        await holder.execute("SELECT pg_advisory_xact_lock($1)", look_key)
        renaming = asyncio.create_task(
            client.patch(
                "/api/users/@me",
                headers=bob.headers,
                json={"username": "Bob", "password": PASSWORD},
            )
        )
        await until_one_waits_for_a_lock(other, renaming)
        assert not renaming.done()
        await other.execute("UPDATE users SET username = 'bobby' WHERE id = $1", bob.id)
        await other.execute(
            "INSERT INTO users (username, email, email_key, password_hash)"
            " VALUES ('b0b', 'b0b@x.org', 'b0b@x.org', 'h')"
        )
        await held.rollback()
        renamed = await renaming
        assert renamed.status_code == 409 and renamed.json()["code"] == "USERNAME_TAKEN", (
            renamed.text
        )
    finally:
        await holder.close()
        await other.close()
