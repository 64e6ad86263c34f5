"""Changing one's username or email (PATCH /api/users/@me): as Discord asks, with the
password, and a code when two-factor sign-in is on, the way a password change asks
and spends them; so a stolen access token alone can neither rename the account nor
move its email away."""

from __future__ import annotations

import asyncio

import asyncpg
import httpx
import pytest

from tests import factories
from tests.api.test_rate_limits import assert_limited
from tests.api.test_two_factor import BASE, code_at, turn_on
from tests.factories import PASSWORD, AppWith, MakeUser
from xfchat.settings import Settings

ME = "/api/users/@me"


async def test_a_rename_without_the_password_is_refused_as_a_wrong_password(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    user = await make_user("ann")
    for body in ({"username": "thief"}, {"username": "thief", "password": "not it"}):
        refused = await client.patch(ME, headers=user.headers, json=body)
        assert refused.status_code == 400, refused.text
        assert (refused.json()["code"], refused.json()["field"]) == ("WRONG_PASSWORD", "password")
    assert (await client.get(ME, headers=user.headers)).json()["username"] == "ann"
    renamed = await client.patch(
        ME, headers=user.headers, json={"username": "ann_2", "password": PASSWORD}
    )
    assert renamed.status_code == 200 and renamed.json()["username"] == "ann_2", renamed.text
    # (the rest of the profile needs none, and the password is not read with it)
    named = await client.patch(
        ME, headers=user.headers, json={"display_name": "Ann", "password": "not it"}
    )
    assert named.status_code == 200 and named.json()["display_name"] == "Ann", named.text


async def test_an_email_change_without_the_password_is_refused(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    user = await make_user("ann")
    for body in ({"email": "thief@example.org"}, {"email": "thief@example.org", "password": "x"}):
        refused = await client.patch(ME, headers=user.headers, json=body)
        assert refused.status_code == 400, refused.text
        assert refused.json()["code"] == "WRONG_PASSWORD"
    assert (await client.get(ME, headers=user.headers)).json()["email"] == "ann@example.com"


async def test_an_email_change_is_normalised_kept_private_and_ends_the_other_sessions(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    pool: asyncpg.Pool,
    settings: Settings,
    conn: asyncpg.Connection,
) -> None:
    user = await make_user("ann")
    other = await factories.login(pool, settings, user, user_agent="Other/1")
    changed = await client.patch(
        ME, headers=user.headers, json={"email": "  Ann.New@Example.org ", "password": PASSWORD}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["email"] == "Ann.New@Example.org"  # trimmed, stored as given
    assert (await client.get(ME, headers=user.headers)).json()["email"] == "Ann.New@Example.org"
    denied = await client.get(ME, headers=other.headers)
    assert denied.status_code == 401 and denied.json()["code"] == "SESSION_REVOKED"
    # Logs in by the new address in any case (its key, as registration makes it), not the old.
    new = await client.post(
        "/api/auth/login", json={"login": "ann.new@EXAMPLE.org", "password": PASSWORD}
    )
    old = await client.post(
        "/api/auth/login", json={"login": "ann@example.com", "password": PASSWORD}
    )
    assert (new.status_code, old.status_code) == (200, 401), (new.text, old.text)
    # Told to the user's own stream alone: no user.updated, no copy anywhere else.
    events = await factories.events_of(conn, "user", user.id)
    assert ("email.updated", {"email": "Ann.New@Example.org"}) in events
    assert ("session.revoked", {"session_id": str(other.session_id), "reason": "revoked"}) in events
    assert "user.updated" not in [t for t, _ in events]
    elsewhere = await conn.fetchval(
        "SELECT count(*) FROM events e JOIN event_streams s ON s.id = e.stream_id"
        " WHERE e.data::text ILIKE '%ann.new@%' AND NOT (s.kind = 'user' AND s.entity_id = $1)",
        user.id,
    )
    assert elsewhere == 0


async def test_a_taken_email_is_email_taken_as_at_registration(
    app_with: AppWith, make_user: MakeUser
) -> None:
    await make_user("erin", email="Émile@example.org")
    user = await make_user("ann")
    # (each EMAIL_TAKEN, here and at registration, counts in the address's bucket)
    client = await app_with(rate_register_taken_ip="4/300")
    # Another case, another Unicode form (E + U+0301): the same email, as registration judges.
    for taken in ("ÉMILE@example.org", "E\u0301mile@example.org"):
        refused = await client.patch(
            ME, headers=user.headers, json={"email": taken, "password": PASSWORD}
        )
        assert refused.status_code == 409, refused.text
        assert (refused.json()["code"], refused.json()["field"]) == ("EMAIL_TAKEN", "email")
        registered = await client.post(
            "/api/auth/register",
            json={"username": "newcomer", "email": taken, "password": PASSWORD},
        )
        assert registered.json()["code"] == "EMAIL_TAKEN"
    assert (await client.get(ME, headers=user.headers)).json()["email"] == "ann@example.com"


@pytest.mark.parametrize(
    ("email", "code"),
    [
        ("not an email", "INVALID_EMAIL"),
        ("ann\u200b@example.org", "INVALID_EMAIL"),
        ("a\x00b@example.org", "VALIDATION_ERROR"),  # (Text refuses NUL, as at registration)
        ("a" * 250 + "@example.org", "INVALID_EMAIL"),
        ("a" * 2000 + "@example.org", "VALIDATION_ERROR"),
        (5, "VALIDATION_ERROR"),
        (["ann@example.org"], "VALIDATION_ERROR"),
    ],
)
async def test_a_bad_email_is_a_plain_400(
    client: httpx.AsyncClient, make_user: MakeUser, email: object, code: str
) -> None:
    user = await make_user()
    refused = await client.patch(
        ME, headers=user.headers, json={"email": email, "password": PASSWORD}
    )
    assert 400 <= refused.status_code < 500, refused.text
    assert refused.json()["code"] == code and refused.json()["message"]


async def test_with_two_factor_on_a_rename_or_an_email_change_spends_a_code(
    app_with: AppWith, make_user: MakeUser, pool: asyncpg.Pool, settings: Settings
) -> None:
    user = await make_user("ann")
    client = await app_with(rate_password_user="20/300")
    secret, codes = await turn_on(client, user)
    rename = {"username": "ann_2", "password": PASSWORD}
    alone = await client.patch(ME, headers=user.headers, json=rename)
    assert alone.status_code == 400 and alone.json()["code"] == "WRONG_TWO_FACTOR_CODE"
    wrong = await client.patch(
        ME, headers=user.headers, json={**rename, "code": code_at(secret, 7)}
    )
    assert wrong.status_code == 400 and wrong.json()["code"] == "WRONG_TWO_FACTOR_CODE"
    bad_password = {**rename, "password": "not it", "code": codes[0]}
    refused = await client.patch(ME, headers=user.headers, json=bad_password)
    assert refused.status_code == 400 and refused.json()["code"] == "WRONG_PASSWORD"
    status = await client.get(BASE, headers=user.headers)
    assert status.json() == {"enabled": True, "recovery_codes_left": 10}  # none spent
    assert (await client.get(ME, headers=user.headers)).json()["username"] == "ann"
    done = await client.patch(ME, headers=user.headers, json={**rename, "code": codes[0]})
    assert done.status_code == 200 and done.json()["username"] == "ann_2", done.text
    status = await client.get(BASE, headers=user.headers)
    assert status.json()["recovery_codes_left"] == 9
    move = {"email": "ann.2@example.org", "password": PASSWORD}
    spent = await client.patch(ME, headers=user.headers, json={**move, "code": codes[0]})
    assert spent.status_code == 400 and spent.json()["code"] == "WRONG_TWO_FACTOR_CODE"
    by_app = await client.patch(ME, headers=user.headers, json={**move, "code": code_at(secret, 1)})
    assert by_app.status_code == 200 and by_app.json()["email"] == "ann.2@example.org"


async def test_wrong_passwords_on_a_rename_count_in_the_password_changes_limit(
    app_with: AppWith, make_user: MakeUser
) -> None:
    user = await make_user("ann")
    client = await app_with(rate_password_user="2/300")
    for body in ({"username": "ann_2"}, {"email": "ann.2@example.org"}):
        wrong = await client.patch(ME, headers=user.headers, json={**body, "password": "x"})
        assert wrong.status_code == 400 and wrong.json()["code"] == "WRONG_PASSWORD"
    right = await client.patch(
        ME, headers=user.headers, json={"username": "ann_2", "password": PASSWORD}
    )
    assert_limited(right, 2, "account.password")
    change = await client.post(
        "/api/users/@me/password",
        headers=user.headers,
        json={"current_password": PASSWORD, "new_password": "another long phrase"},
    )
    assert_limited(change, 2, "account.password")  # one bucket for every password try
    assert (await client.get(ME, headers=user.headers)).json()["username"] == "ann"


async def test_an_email_change_counts_in_the_profile_limit(
    app_with: AppWith, make_user: MakeUser
) -> None:
    user = await make_user("ann")
    client = await app_with(rate_profile_user="1/300")
    first = await client.patch(
        ME, headers=user.headers, json={"email": "ann.2@example.org", "password": PASSWORD}
    )
    assert first.status_code == 200, first.text
    same = await client.patch(
        ME, headers=user.headers, json={"email": "ann.2@example.org", "password": PASSWORD}
    )
    assert same.status_code == 200  # the email it has: nothing changes, nothing counted
    second = await client.patch(
        ME, headers=user.headers, json={"email": "ann.3@example.org", "password": PASSWORD}
    )
    assert_limited(second, 1, "profile")
    assert (await client.get(ME, headers=user.headers)).json()["email"] == "ann.2@example.org"


async def test_a_username_and_email_sent_back_as_they_are_need_no_password(
    app_with: AppWith, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    """A client that sends its whole profile back (a settings form, a bot) changes its
    display name without the password: only a change of the username or the email
    needs it. And what is sent back as it is is not written again, so a rename
    committed meanwhile is not undone by it."""
    user = await make_user("ann")
    client = await app_with(rate_profile_user="10/300")
    me = (await client.get(ME, headers=user.headers)).json()
    whole = {"username": me["username"], "email": me["email"], "display_name": "Ann A."}
    kept = await client.patch(ME, headers=user.headers, json=whole)
    assert kept.status_code == 200 and kept.json()["display_name"] == "Ann A.", kept.text
    # A rename committed between this request's reading of the account (the name as it
    # was) and its write (which waits for the row).
    async with pool.acquire() as other, other.transaction():
        await other.execute("UPDATE users SET username = 'ann_new' WHERE id = $1", user.id)
        late = asyncio.create_task(
            client.patch(ME, headers=user.headers, json={**whole, "display_name": "Ann B."})
        )
        await factories.lock_waiters(pool)
    answered = await asyncio.wait_for(late, 10)
    assert answered.status_code == 200, answered.text
    assert (answered.json()["username"], answered.json()["display_name"]) == ("ann_new", "Ann B.")


async def test_a_profile_change_racing_an_email_change_ends_no_session(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    pool: asyncpg.Pool,
    settings: Settings,
    conn: asyncpg.Connection,
) -> None:
    """Only the request that moves the email ends the other sessions and tells it: a
    display name changed while another request's email change waits to commit (its
    write waiting on the row, then seeing the new address) is no email change, so the
    session that moved the email is not logged out by it, nor told twice."""
    user = await make_user("ann")
    mover = await factories.login(pool, settings, user, user_agent="Mover/1")
    async with pool.acquire() as other, other.transaction():
        await other.execute(
            "UPDATE users SET email = 'ann.2@example.org', email_key = 'ann.2@example.org'"
            " WHERE id = $1",
            user.id,
        )
        late = asyncio.create_task(
            client.patch(ME, headers=user.headers, json={"display_name": "Ann"})
        )
        await factories.lock_waiters(pool)
    answered = await asyncio.wait_for(late, 10)
    assert answered.status_code == 200, answered.text
    assert answered.json()["email"] == "ann.2@example.org"
    alive = await client.get(ME, headers=mover.headers)
    assert alive.status_code == 200, alive.text
    events = [t for t, _ in await factories.events_of(conn, "user", user.id)]
    assert "email.updated" not in events and "session.revoked" not in events


async def test_an_email_change_tells_an_address_only_so_many_times_that_an_email_is_taken(
    app_with: AppWith, make_user: MakeUser
) -> None:
    """EMAIL_TAKEN says an email is registered: registration tells an address so only
    `XFCHAT_RATE_REGISTER_TAKEN_IP` times a day, and an email change (for the password
    of one's own account) counts in that bucket too; else an account of one's own
    checked a list of emails at the `profile` and `account.password` rates."""
    await make_user("known", email="known@example.com")
    user = await make_user("ann")
    client = await app_with(
        rate_register_taken_ip="2/300", rate_password_user="20/300", rate_profile_user="20/300"
    )

    async def move(email: str) -> httpx.Response:
        return await client.patch(
            ME, headers=user.headers, json={"email": email, "password": PASSWORD}
        )

    moved = await move("ann.2@example.org")  # (a free one gives its place back)
    assert moved.status_code == 200, moved.text
    for taken in ("known@example.com", "KNOWN@example.com"):
        refused = await move(taken)
        assert refused.status_code == 409 and refused.json()["code"] == "EMAIL_TAKEN"
    # Now the address waits, for the taken email or a free one, here and at registration.
    assert_limited(await move("known@example.com"), 2, "auth.register.taken")
    assert_limited(await move("ann.3@example.org"), 2, "auth.register.taken")
    registered = await client.post(
        "/api/auth/register",
        json={"username": "probe", "email": "known@example.com", "password": PASSWORD},
    )
    assert_limited(registered, 2, "auth.register.taken")
    assert (await client.get(ME, headers=user.headers)).json()["email"] == "ann.2@example.org"


async def test_an_account_deleted_leaves_its_emails_nowhere_in_the_event_log(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    """email.updated carries the address into the user's own stream of the event log,
    which is kept for XFCHAT_EVENT_RETENTION_DAYS: the account's deletion, which scrubs
    its email from its row, scrubs it there too (nobody reads that stream any more)."""
    user = await make_user("ann")
    for email in ("ann.new@example.org", "ann.newer@example.org"):
        moved = await client.patch(
            ME, headers=user.headers, json={"email": email, "password": PASSWORD}
        )
        assert moved.status_code == 200, moved.text
    gone = await client.post(
        "/api/users/@me/delete", headers=user.headers, json={"password": PASSWORD}
    )
    assert gone.status_code == 204, gone.text
    kept = await conn.fetchval(
        "SELECT count(*) FROM events WHERE data::text ILIKE '%ann.new%@example.org%'"
    )
    assert kept == 0
    events = await factories.events_of(conn, "user", user.id)
    assert [t for t, _ in events].count("email.updated") == 2  # (they keep their places)


async def test_an_email_stored_before_its_rule_sent_back_as_it_is_changes_nothing(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    """An address stored before the rule that now refuses it (a U+200B in it: such
    accounts stay, and log in) is the account's as it is: a client sending its whole
    profile back with a new display name is not refused INVALID_EMAIL for it."""
    user = await make_user("ann")
    legacy = "ann@example.com\u200b"
    await conn.execute("UPDATE users SET email = $2, email_key = $2 WHERE id = $1", user.id, legacy)
    me = (await client.get(ME, headers=user.headers)).json()
    assert me["email"] == legacy
    whole = {"username": me["username"], "email": me["email"], "display_name": "Ann A."}
    kept = await client.patch(ME, headers=user.headers, json=whole)
    assert kept.status_code == 200, kept.text
    assert (kept.json()["email"], kept.json()["display_name"]) == (legacy, "Ann A.")
    # (a change of it is judged by the rule, as ever)
    moved = await client.patch(
        ME, headers=user.headers, json={"email": "ann\u200b@example.org", "password": PASSWORD}
    )
    assert moved.status_code == 400 and moved.json()["code"] == "INVALID_EMAIL"
