from __future__ import annotations

import asyncio
import base64
import secrets
import time
from collections.abc import Callable
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx
import jwt
import pytest

from tests import factories
from tests.factories import PASSWORD, AppWith, MakeUser
from xfchat.domain import accounts
from xfchat.domain import login as sign_in
from xfchat.domain.tokens import hash_refresh_token, issue_access_token
from xfchat.settings import Settings


def register_body(**overrides: Any) -> dict[str, Any]:
    body = {"username": "newbie", "email": "newbie@example.com", "password": PASSWORD}
    body.update(overrides)
    return body


async def test_register_creates_an_account_and_a_session(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    response = await client.post(
        "/api/auth/register",
        json=register_body(display_name="New"),
        headers={"user-agent": "ExampleBrowser/1.0"},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900
    assert body["user"]["username"] == "newbie" and body["user"]["email"] == "newbie@example.com"
    assert body["user"]["display_name"] == "New"
    stored = await conn.fetchrow("SELECT password_hash FROM users WHERE username = 'newbie'")
    assert stored["password_hash"].startswith("$argon2id$")
    assert PASSWORD not in stored["password_hash"]
    session = await conn.fetchrow("SELECT user_agent, host(ip) AS ip FROM sessions")
    assert (session["user_agent"], session["ip"]) == ("ExampleBrowser/1.0", "127.0.0.1")
    stored_hashes = await conn.fetch("SELECT token_hash FROM refresh_tokens")
    # only the hash is stored, and it is the hash of the token we were given
    assert [r["token_hash"] for r in stored_hashes] == [hash_refresh_token(body["refresh_token"])]
    me = await client.get(
        "/api/users/@me", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert me.status_code == 200 and me.json()["id"] == body["user"]["id"]


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("username", "a", "INVALID_USERNAME"),
        ("username", "x" * 33, "INVALID_USERNAME"),
        ("username", "with space", "INVALID_USERNAME"),
        ("username", "dots..twice", "INVALID_USERNAME"),
        ("username", "everyone", "INVALID_USERNAME"),
        ("email", "not-an-email", "INVALID_EMAIL"),
        ("email", "a@b", "INVALID_EMAIL"),
        ("password", "short", "INVALID_PASSWORD"),
        ("password", "password123", "INVALID_PASSWORD"),
        ("password", "qwertyuiop", "INVALID_PASSWORD"),
        ("password", "newbie", "INVALID_PASSWORD"),
    ],
)
async def test_register_rejects_bad_fields_naming_the_field(
    client: httpx.AsyncClient, conn: asyncpg.Connection, field: str, value: str, code: str
) -> None:
    response = await client.post("/api/auth/register", json=register_body(**{field: value}))
    assert response.status_code == 400, response.text
    assert response.json()["code"] == code and response.json()["field"] == field
    assert await conn.fetchval("SELECT count(*) FROM users") == 0


async def test_register_missing_field_is_400_naming_it(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/auth/register", json={"username": "x1", "password": PASSWORD}
    )
    assert response.status_code == 400
    assert response.json()["code"] == "VALIDATION_ERROR" and response.json()["field"] == "email"


@pytest.mark.parametrize(
    ("overrides", "code", "field"),
    [
        ({"username": "TAKEN"}, "USERNAME_TAKEN", "username"),
        ({"username": "other", "email": "Taken@Example.COM"}, "EMAIL_TAKEN", "email"),
    ],
)
async def test_register_duplicates_are_409(
    client: httpx.AsyncClient, make_user: MakeUser, overrides: dict[str, str], code: str, field: str
) -> None:
    await make_user("taken", email="taken@example.com")
    response = await client.post("/api/auth/register", json=register_body(**overrides))
    assert response.status_code == 409
    assert response.json()["code"] == code and response.json()["field"] == field


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("Émile@ex.com", "émile@ex.com"),
        ("Émile@ex.com", "E\u0301mile@ex.com"),  # (decomposed: E and a combining accent)
        ("émile@ex.com", "ÉMILE@EX.COM"),
        ("ΣΑΣ@ex.com", "σας@ex.com"),  # (a final sigma folds as any other)
        ("\u212aate@ex.com", "kate@ex.com"),  # (the Kelvin sign)
    ],
)
async def test_an_email_is_taken_ignoring_case_in_every_script_and_its_form(
    client: httpx.AsyncClient, first: str, second: str
) -> None:
    """Was: every one of these made a second account (lower() under the C locale folds
    only A-Z), and a login picked one of them."""
    made = await client.post(
        "/api/auth/register", json=register_body(username="first", email=first)
    )
    assert made.status_code == 201, made.text
    again = await client.post(
        "/api/auth/register", json=register_body(username="second", email=second)
    )
    assert again.status_code == 409 and again.json()["code"] == "EMAIL_TAKEN", again.text
    assert again.json()["field"] == "email"
    for login in (first, second, second.upper()):
        found = await client.post("/api/auth/login", json={"login": login, "password": PASSWORD})
        assert found.status_code == 200, (login, found.text)
        assert found.json()["user"]["id"] == made.json()["user"]["id"]
        assert found.json()["user"]["email"] == first  # (stored as given)


@pytest.mark.parametrize(
    "body",
    [
        {"login": "Alice1"},
        {"login": "ALICE1@example.com"},
        {"username": "alice1"},
        {"email": "alice1@example.com"},
    ],
)
async def test_login_by_username_or_email(
    client: httpx.AsyncClient, make_user: MakeUser, body: dict[str, str]
) -> None:
    user = await make_user("alice1")
    response = await client.post("/api/auth/login", json={**body, "password": PASSWORD})
    assert response.status_code == 200, response.text
    assert response.json()["user"]["id"] == str(user.id)
    assert response.json()["session_id"] != str(user.session_id)  # a new session


async def test_login_takes_one_name_not_two(client: httpx.AsyncClient, make_user: MakeUser) -> None:
    """Was: `login` won over `username` silently, whichever the client meant."""
    ann, ben = await make_user("ann"), await make_user("ben")
    both = await client.post(
        "/api/auth/login",
        json={"login": ann.username, "username": ben.username, "password": ann.password},
    )
    assert both.status_code == 400 and both.json()["code"] == "VALIDATION_ERROR", both.text


async def test_wrong_password_and_unknown_user_get_the_same_401(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    await make_user("alice1")
    wrong = await client.post(
        "/api/auth/login", json={"login": "alice1", "password": "nope-nope-nope"}
    )
    unknown = await client.post(
        "/api/auth/login", json={"login": "nobody9", "password": "nope-nope-nope"}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert (
        wrong.json()
        == unknown.json()
        == {"code": "INVALID_CREDENTIALS", "message": "wrong username, email or password"}
    )
    assert wrong.headers["www-authenticate"] == unknown.headers["www-authenticate"]


async def test_unknown_user_still_pays_for_a_password_check(
    pool: asyncpg.Pool, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The unknown-user path verifies against a dummy argon2 hash, so it costs what a
    wrong password costs (bench/rate_limits.py prints both times)."""
    verified: list[str] = []
    real = sign_in.verify_password_async

    async def spy(password_hash: str, password: str, ph: Any = None) -> bool:
        verified.append(password_hash)
        return await real(password_hash, password, ph)

    monkeypatch.setattr(sign_in, "verify_password_async", spy)
    target = await sign_in.find_account(pool, settings, login="ghost", ip=None)
    with pytest.raises(accounts.Unauthorized):
        await sign_in.log_in(
            pool,
            settings,
            target=target,
            password="whatever-123",
            client=accounts.ClientInfo(None, None),
        )
    assert len(verified) == 1 and verified[0].startswith("$argon2id$")


async def test_missing_token_is_401_with_a_challenge(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/users/@me")
    assert response.status_code == 401 and response.json()["code"] == "MISSING_TOKEN"
    assert response.headers["www-authenticate"] == 'Bearer realm="xfchat"'


@pytest.mark.parametrize(
    ("header", "code"),
    [
        ("Bearer not.a.jwt", "INVALID_TOKEN"),
        ("Basic abc", "INVALID_TOKEN"),
        ("Bearer ", "INVALID_TOKEN"),
    ],
)
async def test_malformed_token_is_401(client: httpx.AsyncClient, header: str, code: str) -> None:
    response = await client.get("/api/users/@me", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json()["code"] == code
    # (RFC 6750 3.1: a token that is no bearer token is no token: no error is named)
    error = ', error="invalid_token"' if header.startswith("Bearer ") and header[7:] else ""
    assert response.headers["www-authenticate"] == f'Bearer realm="xfchat"{error}'


async def test_expired_access_token_is_401(
    client: httpx.AsyncClient, make_user: MakeUser, settings: Settings
) -> None:
    user = await make_user()
    stale = issue_access_token(
        settings.secret.get_secret_value(),
        user_id=user.id,
        session_id=user.session_id,
        ttl_s=900,
        now=time.time() - 3600,
    )
    response = await client.get("/api/users/@me", headers={"Authorization": f"Bearer {stale}"})
    assert response.status_code == 401 and response.json()["code"] == "TOKEN_EXPIRED"
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_a_token_signed_with_another_secret_is_401(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    user = await make_user()
    forged = issue_access_token(
        "another-secret-of-at-least-thirty-two-chars",
        user_id=user.id,
        session_id=user.session_id,
        ttl_s=900,
    )
    response = await client.get("/api/users/@me", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401 and response.json()["code"] == "INVALID_TOKEN"


async def refresh(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post("/api/auth/refresh", json={"refresh_token": token})


async def test_refresh_rotates_the_refresh_token(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    user = await make_user()
    first = await refresh(client, user.refresh_token)
    assert first.status_code == 200, first.text
    second = await refresh(client, first.json()["refresh_token"])
    assert second.status_code == 200
    tokens = {user.refresh_token, first.json()["refresh_token"], second.json()["refresh_token"]}
    assert len(tokens) == 3
    assert first.json()["session_id"] == second.json()["session_id"] == str(user.session_id)
    me = await client.get(
        "/api/users/@me", headers={"Authorization": f"Bearer {second.json()['access_token']}"}
    )
    assert me.status_code == 200


async def test_two_concurrent_refreshes_of_one_session_both_succeed_with_one_pair(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    user = await make_user()
    first, second = await asyncio.gather(
        refresh(client, user.refresh_token), refresh(client, user.refresh_token)
    )
    assert (first.status_code, second.status_code) == (200, 200), (first.text, second.text)
    assert first.json()["refresh_token"] == second.json()["refresh_token"]
    assert first.json()["access_token"] == second.json()["access_token"]
    late = await refresh(client, user.refresh_token)  # a third tab, still in the window
    assert late.json()["refresh_token"] == first.json()["refresh_token"]
    onward = await refresh(client, first.json()["refresh_token"])  # the chain goes on
    assert onward.status_code == 200
    me = await client.get(
        "/api/users/@me", headers={"Authorization": f"Bearer {onward.json()['access_token']}"}
    )
    assert me.status_code == 200


async def test_reusing_a_rotated_refresh_token_revokes_the_whole_session(
    app_with: AppWith, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    client = await app_with(refresh_reuse_window_s=0)  # every reuse is past the window
    user = await make_user()
    other_session = await make_user()  # another user, untouched
    rotated = (await refresh(client, user.refresh_token)).json()

    stolen = await refresh(client, user.refresh_token)  # the old token, presented again
    assert stolen.status_code == 401 and stolen.json()["code"] == "REFRESH_TOKEN_REUSED"

    after = await refresh(client, rotated["refresh_token"])  # the legitimate newest token
    assert after.status_code == 401 and after.json()["code"] == "SESSION_REVOKED"
    me = await client.get(
        "/api/users/@me", headers={"Authorization": f"Bearer {rotated['access_token']}"}
    )
    assert me.status_code == 401 and me.json()["code"] == "SESSION_REVOKED"
    assert (
        await conn.fetchval("SELECT revoked_reason FROM sessions WHERE id = $1", user.session_id)
        == "token_reuse"
    )
    assert (await client.get("/api/users/@me", headers=other_session.headers)).status_code == 200


async def test_an_unknown_refresh_token_is_401(client: httpx.AsyncClient) -> None:
    response = await refresh(client, "not-a-token")
    assert response.status_code == 401 and response.json()["code"] == "INVALID_REFRESH_TOKEN"


async def test_logout_ends_the_session_at_once(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    user = await make_user()
    assert (await client.post("/api/auth/logout", headers=user.headers)).status_code == 204
    me = await client.get("/api/users/@me", headers=user.headers)
    assert me.status_code == 401 and me.json()["code"] == "SESSION_REVOKED"
    again = await refresh(client, user.refresh_token)
    assert again.status_code == 401 and again.json()["code"] == "SESSION_REVOKED"


async def test_a_repeat_after_its_successor_was_used_revokes_the_session(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    ann = await make_user("ann")
    first = await client.post("/api/auth/refresh", json={"refresh_token": ann.refresh_token})
    t1 = first.json()["refresh_token"]
    second = await client.post("/api/auth/refresh", json={"refresh_token": t1})
    assert second.status_code == 200
    # Within the window, but the pair it got was used since: a copy, not a second tab.
    stale = await client.post("/api/auth/refresh", json={"refresh_token": ann.refresh_token})
    assert stale.status_code == 401 and stale.json()["code"] == "REFRESH_TOKEN_REUSED"
    me = await client.get(
        "/api/users/@me", headers={"Authorization": f"Bearer {second.json()['access_token']}"}
    )
    assert me.status_code == 401


async def refresh_times(client: httpx.AsyncClient, token: str, times: int) -> list[str]:
    """The refresh tokens of `times` refreshes one after another, starting from `token`."""
    tokens = [token]
    for _ in range(times):
        response = await refresh(client, tokens[-1])
        assert response.status_code == 200, response.text
        tokens.append(response.json()["refresh_token"])
    return tokens


async def token_rows(conn: asyncpg.Connection, session_id: object) -> list[int]:
    rows = await conn.fetch(
        "SELECT generation FROM refresh_tokens WHERE session_id = $1 ORDER BY generation",
        session_id,
    )
    return [r["generation"] for r in rows]


async def test_a_live_session_keeps_only_its_two_newest_refresh_tokens(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    """Was: a row per refresh, kept while the session lived (96 a day per client that
    refreshes every 15 minutes)."""
    user = await make_user()
    tokens = await refresh_times(client, user.refresh_token, 6)
    assert await token_rows(conn, user.session_id) == [6, 7]  # the one used, the next
    assert len(set(tokens)) == 7 and all(len(t) < 512 for t in tokens)
    assert (await refresh(client, tokens[-1])).status_code == 200


async def test_replaying_the_first_refresh_token_after_several_refreshes_revokes_the_session(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    """A copy of an old token whose row is gone is still told from a forgery."""
    user = await make_user()
    tokens = await refresh_times(client, user.refresh_token, 5)
    stolen = await refresh(client, tokens[0])
    assert stolen.status_code == 401 and stolen.json()["code"] == "REFRESH_TOKEN_REUSED"
    newest = await refresh(client, tokens[-1])
    assert newest.status_code == 401 and newest.json()["code"] == "SESSION_REVOKED"
    assert (
        await conn.fetchval("SELECT revoked_reason FROM sessions WHERE id = $1", user.session_id)
        == "token_reuse"
    )
    events = await factories.events_of(conn, "user", user.id)
    assert ("session.revoked", {"session_id": str(user.session_id), "reason": "token_reuse"}) in (
        events
    )
    again = await refresh(client, tokens[1])  # any old one of a revoked session
    assert again.status_code == 401 and again.json()["code"] == "SESSION_REVOKED"


def forged(session_id: UUID, generation: str, chain: str | None = None) -> str:
    """A token of the issued form, made up: a random chain part and tag."""
    part = base64.urlsafe_b64encode(session_id.bytes).decode().rstrip("=")
    tag = secrets.token_urlsafe(16)
    return f"{part}.{generation}.{chain or secrets.token_urlsafe(32)}.{tag}"


@pytest.mark.parametrize(
    "generation",
    ["1", "2", "4", "5", "6", "99", "0", "01", "-1", "+1", " 1", "1e3", "9" * 40, ""],
)
async def test_a_forged_refresh_token_of_a_real_session_changes_nothing(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection, generation: str
) -> None:
    """A real session id, a wrong chain part (or a generation that is not below the
    newest's, or no number): INVALID_REFRESH_TOKEN, and the session lives on."""
    user = await make_user()
    tokens = await refresh_times(client, user.refresh_token, 4)  # the newest is the 5th
    response = await refresh(client, forged(user.session_id, generation))
    assert response.status_code == 401 and response.json()["code"] == "INVALID_REFRESH_TOKEN"
    assert await conn.fetchval(
        "SELECT revoked_at IS NULL FROM sessions WHERE id = $1", user.session_id
    )
    assert (await refresh(client, tokens[-1])).status_code == 200


async def test_malformed_or_unknown_refresh_tokens_are_invalid(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    user = await make_user()
    real = user.refresh_token
    for token in [
        forged(uuid4(), "1"),  # no such session
        real + ".1",
        real.replace(".", "..", 1),
        real[:-1],
        real[:-1] + ("A" if real[-1] != "A" else "B"),
        real.split(".", 1)[1],
        "." * 2,
        "x" * 512,
    ]:
        response = await refresh(client, token)
        assert response.status_code == 401, token
        assert response.json()["code"] == "INVALID_REFRESH_TOKEN", token
    assert (await refresh(client, real)).status_code == 200


async def test_a_replay_from_beyond_the_walk_limit_is_invalid_and_long_walks_leave_the_loop(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    conn: asyncpg.Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    walks: list[int] = []

    async def to_thread(fn: Callable[..., bytes], *args: Any) -> bytes:
        walks.append(args[-1])
        return fn(*args)

    monkeypatch.setattr(accounts, "MAX_REFRESH_WALK", 3)
    monkeypatch.setattr(accounts, "WALK_INLINE", 2)
    monkeypatch.setattr(accounts, "to_thread", to_thread)
    user = await make_user()
    tokens = await refresh_times(client, user.refresh_token, 4)  # the newest is the 5th
    far = await refresh(client, tokens[0])  # 4 generations back: not walked
    assert far.status_code == 401 and far.json()["code"] == "INVALID_REFRESH_TOKEN"
    assert walks == []
    assert await conn.fetchval(
        "SELECT revoked_at IS NULL FROM sessions WHERE id = $1", user.session_id
    )
    near = await refresh(client, tokens[1])  # 3 back: walked, in a thread
    assert near.status_code == 401 and near.json()["code"] == "REFRESH_TOKEN_REUSED"
    assert walks == [3]


async def test_a_made_up_refresh_token_is_never_walked(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    conn: asyncpg.Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Was: any token of the issued shape naming a live session was walked along the
    chain to its newest (an account's own session id, generation 1 and 43 random
    characters: up to 200,000 HMACs, half a second of a core, for each made-up token,
    nothing revoked, again and again). Its tag is refused first: one HMAC."""
    walks: list[int] = []

    async def to_thread(fn: Callable[..., bytes], *args: Any) -> bytes:
        walks.append(args[-1])
        return fn(*args)

    monkeypatch.setattr(accounts, "WALK_INLINE", 0)  # every walk through to_thread
    monkeypatch.setattr(accounts, "to_thread", to_thread)
    user = await make_user()
    tokens = await refresh_times(client, user.refresh_token, 4)  # the newest is the 5th
    untagged = forged(user.session_id, "1").rsplit(".", 1)[0]  # (the form before tags)
    for token in (untagged, forged(user.session_id, "1"), tokens[0][:-22] + tokens[1][-22:]):
        response = await refresh(client, token)
        assert response.status_code == 401 and response.json()["code"] == "INVALID_REFRESH_TOKEN"
    assert walks == []
    genuine = await refresh(client, tokens[0])  # an earlier one of ours: walked, revoked
    assert genuine.status_code == 401 and genuine.json()["code"] == "REFRESH_TOKEN_REUSED"
    assert walks == [4]


async def test_a_refresh_token_issued_before_the_self_describing_form_still_works(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    """Tokens handed out before (43 characters, no dots) work by their hash; their
    successors have the new form; their own rows are kept, so a replay is still seen."""
    user = await make_user()
    old = secrets.token_urlsafe(32)  # as new_refresh_token made them
    await conn.execute(
        "UPDATE refresh_tokens SET token_hash = $2, self_describing = false WHERE session_id = $1",
        user.session_id,
        hash_refresh_token(old),
    )
    tokens = await refresh_times(client, old, 4)
    following = tokens[1].split(".")
    assert len(following) == 4 and following[1] == "2"
    assert base64.urlsafe_b64decode(following[0] + "==") == user.session_id.bytes
    assert await token_rows(conn, user.session_id) == [1, 4, 5]
    stale = await refresh(client, old)
    assert stale.status_code == 401 and stale.json()["code"] == "REFRESH_TOKEN_REUSED"


async def test_two_tabs_refreshing_at_once_after_pruning_get_one_pair(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    user = await make_user()
    tokens = await refresh_times(client, user.refresh_token, 3)
    first, second = await asyncio.gather(refresh(client, tokens[-1]), refresh(client, tokens[-1]))
    assert (first.status_code, second.status_code) == (200, 200), (first.text, second.text)
    # One pair; a repeat's expires_in is what its token has left, so the two answers may
    # straddle a second.
    one, two = first.json(), second.json()
    assert abs(one.pop("expires_in") - two.pop("expires_in")) <= 1
    assert one == two
    assert await token_rows(conn, user.session_id) == [4, 5]
    onward = await refresh(client, first.json()["refresh_token"])
    assert onward.status_code == 200
    assert await token_rows(conn, user.session_id) == [5, 6]


async def test_a_refresh_repeated_in_the_window_says_how_long_its_token_has_left(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    user = await make_user()
    first = (await refresh(client, user.refresh_token)).json()
    await asyncio.sleep(1.1)
    again = (await refresh(client, user.refresh_token)).json()
    assert again["access_token"] == first["access_token"]
    claims = jwt.decode(again["access_token"], options={"verify_signature": False})
    assert again["expires_in"] < first["expires_in"] <= 900
    assert abs(claims["exp"] - time.time() - again["expires_in"]) <= 1
