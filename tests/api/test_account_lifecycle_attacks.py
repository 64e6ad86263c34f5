"""Attacks on an account's life (registration, login, renames, deletion) where the
database runs under a UTF-8 locale, as most production clusters do (the Docker image's
en_US.utf8, Debian's C.UTF-8): there PostgreSQL's lower() folds far more than A-Z, and
the tests' own cluster (the C locale) would hide what that changes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import httpx
import pytest

from tests.conftest import Cluster, remove_database
from tests.factories import PASSWORD, AppWith, MakeUser
from xfchat.db.migrate import Migrator
from xfchat.db.queries.admin import create_database

UTF8_LOCALE = "C.utf8"


@pytest.fixture(scope="module")
def utf8_template(pg_cluster: Cluster) -> Iterator[str]:
    """A migrated database whose collation and character classes are UTF-8's."""
    name = f"xfchat_tpl_utf8_{uuid.uuid4().hex[:12]}"

    async def build() -> None:
        admin = await asyncpg.connect(pg_cluster.admin_url)
        try:
            await admin.execute(
                f"CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8'"
                f" LC_COLLATE '{UTF8_LOCALE}' LC_CTYPE '{UTF8_LOCALE}'"
            )
        finally:
            await admin.close()
        conn = await asyncpg.connect(pg_cluster.url(name))
        try:
            assert await conn.fetchval("SELECT lower('\u0130')") == "i"  # (the locale folds)
            await Migrator(conn).run()
        finally:
            await conn.close()

    asyncio.run(build())
    yield name
    asyncio.run(remove_database(pg_cluster, name))


@pytest.fixture
async def db_url(pg_cluster: Cluster, utf8_template: str) -> AsyncIterator[str]:
    """Every test here gets a clone of the UTF-8 template instead of the usual one."""
    name = f"xfchat_t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(pg_cluster.admin_url)
    try:
        await create_database(admin, name=name, template=utf8_template)
    finally:
        await admin.close()
    yield pg_cluster.url(name)
    await remove_database(pg_cluster, name)


async def test_a_username_with_a_dotted_capital_i_names_no_account(
    app_with: AppWith, make_user: MakeUser
) -> None:
    """Was: under a UTF-8 locale lower('alİce') is 'alice', so a login typed with U+0130
    found alice's account, while its per-name bucket was another name's (Python folds
    U+0130 to i and U+0307): each spelling got ten more guesses an hour from one
    address, 2^n of them for a name with n i's. A username is ASCII (registration refuses
    U+0130), so no name written with it is anyone's, for a login or a friend request."""
    owner = await make_user("iris_miri", email="iris@example.com")
    client = await app_with(
        "203.0.113.7", rate_login_account_ip="2/900", rate_login_account="1000/3600"
    )
    for _ in range(2):
        wrong = await client.post(
            "/api/auth/login", json={"login": "iris_miri", "password": "wrong-wrong"}
        )
        assert wrong.status_code == 401
    spent = await client.post("/api/auth/login", json={"login": "iris_miri", "password": PASSWORD})
    assert spent.status_code == 429, spent.text
    for spelling in ("\u0130ris_miri", "ir\u0130s_miri", "IRIS_M\u0130RI"):
        other = await client.post("/api/auth/login", json={"login": spelling, "password": PASSWORD})
        assert other.status_code == 401, (spelling, other.text)  # (no account has that name)
    asked = await client.post(
        "/api/users/@me/friend-requests",
        headers=(await make_user("asker")).headers,
        json={"username": "\u0130ris_miri"},
    )
    assert asked.status_code == 400 and asked.json()["code"] == "FRIEND_REQUEST_REFUSED"
    assert owner.username == "iris_miri"


async def test_a_username_is_found_in_any_ascii_case_under_a_utf8_locale(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """What the fix keeps: a login and a friend request find a name in any ASCII case."""
    owner = await make_user("iris_miri")
    found = await client.post("/api/auth/login", json={"login": "IRIS_Miri", "password": PASSWORD})
    assert found.status_code == 200 and found.json()["user"]["id"] == str(owner.id)
    asker = await make_user("asker")
    asked = await client.post(
        "/api/users/@me/friend-requests", headers=asker.headers, json={"username": "Iris_MIRI"}
    )
    assert asked.status_code == 201, asked.text


async def test_a_username_that_a_sans_serif_face_draws_as_a_taken_one_is_taken(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """Was: `aIice` (a capital i) registered beside `alice` (unique ignoring case only),
    and the browser client's sans-serif face draws the two alike: a mention, a friend
    request or a member list showed the impostor as alice. Discord makes usernames
    lowercase; here a capital I counts as the l it looks like, at registration and at a
    rename (a lowercase i, which looks like neither, stays a letter of its own)."""
    await make_user("alice9", email="alice9@example.com")
    await make_user("lan7", email="lan7@example.com")
    for name in ("aIice9", "AIice9", "Ian7"):
        made = await client.post(
            "/api/auth/register",
            json={"username": name, "email": f"{name}x@example.com", "password": PASSWORD},
        )
        assert made.status_code == 409, (name, made.text)
        assert made.json()["code"] == "USERNAME_TAKEN" and made.json()["field"] == "username"
    other = await make_user("mallory")
    renamed = await client.patch(
        "/api/users/@me", headers=other.headers, json={"username": "aIice9", "password": PASSWORD}
    )
    assert renamed.status_code == 409 and renamed.json()["code"] == "USERNAME_TAKEN"
    kept = await client.get("/api/users/@me", headers=other.headers)
    assert kept.json()["username"] == "mallory"
    # (an i that is no look-alike is a name of its own; one's own look-alike is one's own)
    ian = await client.post(
        "/api/auth/register",
        json={"username": "ian7", "email": "ian7@example.com", "password": PASSWORD},
    )
    assert ian.status_code == 201, ian.text
    lan = await client.post("/api/auth/login", json={"login": "lan7", "password": PASSWORD})
    own = await client.patch(
        "/api/users/@me",
        headers={"Authorization": f"Bearer {lan.json()['access_token']}"},
        json={"username": "Lan7", "password": PASSWORD},
    )
    assert own.status_code == 200, own.text


async def test_look_alike_usernames_registered_at_once_give_one_account(
    client: httpx.AsyncClient,
) -> None:
    """Without the look's lock, both registrations found no look-alike before either
    committed (the unique index tells `aIice` and `alice` apart), and both were made."""
    names = ["alice5", "aIice5", "AIice5"]  # (three: the taken-answers bucket holds three)
    made = await asyncio.gather(
        *(
            client.post(
                "/api/auth/register",
                json={"username": n, "email": f"{n}{i}@example.com", "password": PASSWORD},
            )
            for i, n in enumerate(names)
        )
    )
    statuses = sorted(r.status_code for r in made)
    assert statuses == [201, 409, 409], [r.text for r in made]


@pytest.mark.parametrize(
    ("taken", "look_alike"),
    [
        ("bob0", "B0B0"),  # (a zero as the O of BOBO, which is bobo's, case aside)
        ("b0b1", "bob1"),  # (and the other way: an o drawn where a zero is)
        ("b0b2", "BOB2"),
        ("mallory3", "rnallory3"),  # (rn as m)
        ("rnallory4", "mallory4"),
        ("mm5", "rnrn5"),  # (every mix of rn and m is one look)
        ("mrn6", "rnm6"),
        ("wendy7", "vvendy7"),  # (vv as w)
        ("vvendy8", "Wendy8"),
        ("vvv9", "wv9"),  # (every mix of vv and w)
        ("alice10", "aIice10"),  # (a capital I as l, as before)
        ("lrn0o", "IM00"),  # (all at once)
    ],
)
async def test_a_username_drawn_as_a_taken_one_by_any_sans_serif_confusion_is_taken(
    client: httpx.AsyncClient, make_user: MakeUser, taken: str, look_alike: str
) -> None:
    """Was: 201 for each but the capital I's: `rnallory` beside `mallory`, `vvendy`
    beside `wendy` and `B0B0` beside `bobo` read alike in the browser client's face."""
    await make_user(taken, email=f"{taken}@example.com")
    made = await client.post(
        "/api/auth/register",
        json={"username": look_alike, "email": f"{look_alike}x@example.com", "password": PASSWORD},
    )
    assert made.status_code == 409, made.text
    assert made.json()["code"] == "USERNAME_TAKEN" and made.json()["field"] == "username"
    other = await make_user(f"other_{taken}", email=f"other_{taken}@example.com")
    renamed = await client.patch(
        "/api/users/@me", headers=other.headers, json={"username": look_alike, "password": PASSWORD}
    )
    assert renamed.status_code == 409, renamed.text
    assert renamed.json()["code"] == "USERNAME_TAKEN"


@pytest.mark.parametrize(
    ("taken", "told_apart"),
    [
        ("lola1", "1ola1"),  # (a 1 has its flag)
        ("ilya2", "1lya2"),
        ("sam3", "5am3"),  # (a 5 its flat top and corner)
        ("nnoe4", "moe4"),  # (nn is four stems, m three)
        ("dan5", "clan5"),  # (an open c and a taller l are no d)
        ("ian6", "lan6"),  # (a lower i has its dot)
        ("vw7", "ww7"),  # (vw is three V's, ww four)
        ("rnm8", "rnrnrn8"),  # (three m's are not two)
    ],
)
async def test_a_username_a_reader_tells_apart_from_a_taken_one_is_free(
    client: httpx.AsyncClient, make_user: MakeUser, taken: str, told_apart: str
) -> None:
    await make_user(taken, email=f"{taken}@example.com")
    made = await client.post(
        "/api/auth/register",
        json={"username": told_apart, "email": f"{told_apart}x@example.com", "password": PASSWORD},
    )
    assert made.status_code == 201, made.text


@pytest.mark.parametrize(
    "email",
    [
        "alice@example.com\u200b",  # (a zero-width space: reads as alice@example.com)
        "al\u200dice@example.com",
        "\ufeffalice@example.com",
        "alice@\u202emoc.elpmaxe",  # (a bidi override: drawn as alice@example.com)
        "ali\x1b[8mce@example.com",  # (ESC: a terminal's control sequence)
        "a\x01b@example.com",
        "a\x7fb@example.com",
    ],
)
async def test_an_email_with_a_control_or_format_character_is_invalid(
    client: httpx.AsyncClient, make_user: MakeUser, email: str
) -> None:
    """Was: 201, an account whose address reads as another's (alice's, registered
    already: `alice@example.com` and a zero-width space is another email key)."""
    await make_user("alice3", email="alice@example.com")
    made = await client.post(
        "/api/auth/register",
        json={"username": "mallory3", "email": email, "password": PASSWORD},
    )
    assert made.status_code == 400, made.text
    assert made.json()["code"] == "INVALID_EMAIL" and made.json()["field"] == "email"
