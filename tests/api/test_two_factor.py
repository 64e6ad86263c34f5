"""Two-factor sign-in: an authenticator (TOTP) and recovery codes, required for a
session to be created, with its own rate limit."""

from __future__ import annotations

import time

import asyncpg
import httpx
import jwt
import pyotp

from tests.api.test_rate_limits import assert_limited
from tests.factories import AppWith, MakeUser, TestUser
from xfchat.settings import Settings

BASE = "/api/users/@me/two-factor"


def code_at(secret: str, offset_steps: int = 0) -> str:
    return pyotp.TOTP(secret).at(time.time() + 30 * offset_steps)


async def turn_on(client: httpx.AsyncClient, user: TestUser) -> tuple[str, list[str]]:
    """Set up and enable an authenticator for `user`: its secret and recovery codes."""
    secret, codes, _ = await turned_on(client, user)
    return secret, codes


async def turned_on(client: httpx.AsyncClient, user: TestUser) -> tuple[str, list[str], str]:
    """turn_on's, and the code enable took."""
    setup = await client.post(
        f"{BASE}/setup", headers=user.headers, json={"password": user.password}
    )
    assert setup.status_code == 200, setup.text
    secret = setup.json()["secret"]
    assert setup.json()["otpauth_uri"].startswith("otpauth://totp/XFChat:")
    taken = code_at(secret)
    enabled = await client.post(f"{BASE}/enable", headers=user.headers, json={"code": taken})
    assert enabled.status_code == 200, enabled.text
    return secret, enabled.json()["recovery_codes"], taken


async def password_step(client: httpx.AsyncClient, user: TestUser) -> str:
    """Log in with the password alone: the ticket that comes back instead of tokens."""
    response = await client.post(
        "/api/auth/login", json={"login": user.username, "password": user.password}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["two_factor_required"] is True and "access_token" not in body
    assert body["expires_in"] == 300
    return str(body["ticket"])


async def second_step(client: httpx.AsyncClient, ticket: str, code: str) -> httpx.Response:
    return await client.post("/api/auth/login/two-factor", json={"ticket": ticket, "code": code})


async def test_setting_up_needs_the_password_and_enabling_a_current_code(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    user = await make_user()
    wrong = await client.post(f"{BASE}/setup", headers=user.headers, json={"password": "nope"})
    assert wrong.status_code == 400 and wrong.json()["code"] == "WRONG_PASSWORD"
    early = await client.post(f"{BASE}/enable", headers=user.headers, json={"code": "123456"})
    assert early.json()["code"] == "TWO_FACTOR_NOT_SET_UP"
    setup = await client.post(
        f"{BASE}/setup", headers=user.headers, json={"password": user.password}
    )
    secret = setup.json()["secret"]
    bad = await client.post(
        f"{BASE}/enable", headers=user.headers, json={"code": code_at(secret, 5)}
    )
    assert bad.status_code == 400 and bad.json()["code"] == "WRONG_TWO_FACTOR_CODE"
    assert (await client.get(BASE, headers=user.headers)).json() == {
        "enabled": False,
        "recovery_codes_left": 0,
    }
    # Until it is enabled, the password alone still logs in.
    plain = await client.post(
        "/api/auth/login", json={"login": user.username, "password": user.password}
    )
    assert "access_token" in plain.json()
    ok = await client.post(f"{BASE}/enable", headers=user.headers, json={"code": code_at(secret)})
    codes = ok.json()["recovery_codes"]
    assert len(codes) == len(set(codes)) == 10
    assert (await client.get(BASE, headers=user.headers)).json() == {
        "enabled": True,
        "recovery_codes_left": 10,
    }
    again = await client.post(
        f"{BASE}/setup", headers=user.headers, json={"password": user.password}
    )
    assert again.status_code == 409 and again.json()["code"] == "TWO_FACTOR_ENABLED"
    # Recovery codes are stored hashed, never as themselves.
    stored = await conn.fetch("SELECT code_hash FROM recovery_codes")
    assert len(stored) == 10
    dump = " ".join(r["code_hash"].hex() for r in stored)
    assert not any(code.replace("-", "") in dump for code in codes)


async def test_no_session_is_created_without_the_second_factor(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    user = await make_user()
    secret, _, taken = await turned_on(client, user)
    sessions = await conn.fetchval("SELECT count(*) FROM sessions")
    ticket = await password_step(client, user)
    assert await conn.fetchval("SELECT count(*) FROM sessions") == sessions
    # The ticket is no access token.
    me = await client.get("/api/users/@me", headers={"Authorization": f"Bearer {ticket}"})
    assert me.status_code == 401
    wrong = await second_step(client, ticket, code_at(secret, 7))
    assert wrong.status_code == 401 and wrong.json()["code"] == "INVALID_TWO_FACTOR_CODE"
    # The code enable took (computed again, it was the next step's across a step's end).
    replay = await second_step(client, ticket, taken)
    assert replay.status_code == 401 and replay.json()["code"] == "INVALID_TWO_FACTOR_CODE"
    ok = await second_step(client, ticket, code_at(secret, 1))
    assert ok.status_code == 200, ok.text
    assert ok.json()["user"]["id"] == str(user.id)
    assert await conn.fetchval("SELECT count(*) FROM sessions") == sessions + 1
    me = await client.get(
        "/api/users/@me", headers={"Authorization": f"Bearer {ok.json()['access_token']}"}
    )
    assert me.status_code == 200
    # A wrong password still gets the one answer for every failed login.
    bad = await client.post("/api/auth/login", json={"login": user.username, "password": "x"})
    assert bad.status_code == 401 and bad.json()["code"] == "INVALID_CREDENTIALS"


async def test_a_recovery_code_works_once(client: httpx.AsyncClient, make_user: MakeUser) -> None:
    user = await make_user()
    _, codes = await turn_on(client, user)
    first = await second_step(client, await password_step(client, user), codes[3].upper())
    assert first.status_code == 200, first.text
    spent = await second_step(client, await password_step(client, user), codes[3])
    assert spent.status_code == 401 and spent.json()["code"] == "INVALID_TWO_FACTOR_CODE"
    status = await client.get(BASE, headers=user.headers)
    assert status.json()["recovery_codes_left"] == 9
    fresh = await client.post(
        f"{BASE}/recovery-codes",
        headers=user.headers,
        json={"password": user.password, "code": codes[5]},
    )
    new_codes = fresh.json()["recovery_codes"]
    old = await second_step(client, await password_step(client, user), codes[4])
    assert old.status_code == 401  # the earlier codes stopped working
    new = await second_step(client, await password_step(client, user), new_codes[0])
    assert new.status_code == 200


async def test_tickets_are_signed_short_lived_and_die_with_a_password_change(
    client: httpx.AsyncClient, make_user: MakeUser, settings: Settings
) -> None:
    user = await make_user()
    _, codes = await turn_on(client, user)
    ticket = await password_step(client, user)
    claims = jwt.decode(ticket, options={"verify_signature": False})
    forged = jwt.encode(
        {**claims, "exp": int(time.time()) + 3600},
        "not the server secret, but long enough",
        "HS256",
    )
    expired = jwt.encode(
        {**claims, "exp": int(time.time()) - 60}, settings.secret.get_secret_value(), "HS256"
    )
    for bad in (forged, expired, user.access_token, "nonsense"):
        refused = await second_step(client, bad, codes[0])
        assert refused.status_code == 401 and refused.json()["code"] == "INVALID_TICKET"
    changed = await client.post(
        "/api/users/@me/password",
        headers=user.headers,
        json={
            "current_password": user.password,
            "new_password": "another long phrase",
            "code": codes[1],
        },
    )
    assert changed.status_code == 204
    stale = await second_step(client, ticket, codes[0])
    assert stale.status_code == 401 and stale.json()["code"] == "INVALID_TICKET"


async def test_codes_have_their_own_rate_limit_per_account(
    app_with: AppWith, make_user: MakeUser
) -> None:
    user = await make_user()
    client = await app_with(rate_two_factor_account="3/300")
    _, codes = await turn_on(client, user)  # (enabling counted in auth.two_factor.signed_in)
    ticket = await password_step(client, user)
    away = await app_with(ip="10.2.2.2", rate_two_factor_account="3/300")
    for guess in ("000000", "111111", "222222"):
        assert (await second_step(away, ticket, guess)).status_code == 401
    elsewhere = await app_with(ip="10.3.3.3", rate_two_factor_account="3/300")
    assert_limited(await second_step(elsewhere, ticket, codes[0]), 3, "auth.two_factor")


async def test_guesses_with_the_password_alone_never_keep_the_owner_from_turning_it_off(
    app_with: AppWith, make_user: MakeUser
) -> None:
    """main: the signed-in routes counted their codes in `auth.two_factor`, the bucket the
    login's codes from unfamiliar addresses spend; so whoever had the password could keep
    the owner from turning two-factor sign-in off (or deleting the account) by guessing
    codes every 15 minutes. The signed-in routes have their own bucket, limited too."""
    owner = await make_user("owner")
    rule = {"rate_two_factor_account": "2/300"}
    home = await app_with(**rule)
    _, codes = await turn_on(home, owner)  # (1 of the signed-in 2)
    thief = await app_with(ip="198.51.100.9", **rule)
    stolen = await password_step(thief, owner)
    for guess in ("000000", "111111"):
        assert (await second_step(thief, stolen, guess)).status_code == 401
    thief_too = await app_with(ip="198.51.100.10", **rule)
    assert_limited(await second_step(thief_too, stolen, "222222"), 2, "auth.two_factor")
    off = {"password": owner.password, "code": "999999"}
    wrong = await home.post(f"{BASE}/disable", headers=owner.headers, json=off)
    assert wrong.status_code == 400 and wrong.json()["code"] == "WRONG_TWO_FACTOR_CODE"
    off["code"] = codes[0]
    limited = await home.post(f"{BASE}/disable", headers=owner.headers, json=off)
    assert_limited(limited, 2, "auth.two_factor.signed_in")  # (guessing stays bounded)
    fresh = await make_user("fresh")
    _, fresh_codes = await turn_on(home, fresh)
    stolen = await password_step(thief, fresh)
    for guess in ("000000", "111111"):
        assert (await second_step(thief, stolen, guess)).status_code == 401
    off = {"password": fresh.password, "code": fresh_codes[0]}
    assert (await home.post(f"{BASE}/disable", headers=fresh.headers, json=off)).status_code == 204


async def test_turning_it_off_needs_the_password_and_a_code(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    user = await make_user()
    _, codes = await turn_on(client, user)
    url = f"{BASE}/disable"
    no_password = await client.post(
        url, headers=user.headers, json={"password": "wrong", "code": codes[0]}
    )
    assert no_password.status_code == 400 and no_password.json()["code"] == "WRONG_PASSWORD"
    no_code = await client.post(
        url, headers=user.headers, json={"password": user.password, "code": "12345"}
    )
    assert no_code.status_code == 400 and no_code.json()["code"] == "WRONG_TWO_FACTOR_CODE"
    off = await client.post(
        url, headers=user.headers, json={"password": user.password, "code": codes[0]}
    )
    assert off.status_code == 204
    plain = await client.post(
        "/api/auth/login", json={"login": user.username, "password": user.password}
    )
    assert plain.status_code == 200 and "access_token" in plain.json()
    again = await client.post(
        url, headers=user.headers, json={"password": user.password, "code": codes[1]}
    )
    assert again.status_code == 400 and again.json()["code"] == "TWO_FACTOR_NOT_ENABLED"


async def test_the_routes_confirming_the_password_share_its_limit(
    app_with: AppWith, make_user: MakeUser
) -> None:
    user = await make_user()
    client = await app_with(rate_password_user="2/300")
    for _ in range(2):
        wrong = await client.post(f"{BASE}/setup", headers=user.headers, json={"password": "x"})
        assert wrong.json()["code"] == "WRONG_PASSWORD"
    right = await client.post(
        f"{BASE}/setup", headers=user.headers, json={"password": user.password}
    )
    assert_limited(right, 2, "account.password")
    change = await client.post(
        "/api/users/@me/password",
        headers=user.headers,
        json={"current_password": user.password, "new_password": "another long phrase"},
    )
    assert_limited(change, 2, "account.password")  # one bucket for every password try


async def test_guesses_from_elsewhere_never_lock_the_owner_out_at_home(
    app_with: AppWith, make_user: MakeUser
) -> None:
    """main: the codes' bucket was the account's alone, so anyone who had the password
    (a leaked one: two-factor sign-in is for exactly that) could spend it every 15
    minutes and keep the owner from logging in anywhere. Now it is per account and
    address, and per account from every address except those it logged in from before,
    as for the password step."""
    owner = await make_user("owner")  # registered from 127.0.0.1: a familiar address
    rule = {"rate_two_factor_account": "3/300"}
    home = await app_with(**rule)
    secret, _ = await turn_on(home, owner)
    thief = await app_with(ip="198.51.100.9", **rule)
    stolen = await password_step(thief, owner)
    answers = [(await second_step(thief, stolen, "000000")).status_code for _ in range(4)]
    assert answers[-1] == 429 and set(answers[:-1]) <= {401, 429}
    ticket = await password_step(home, owner)
    assert (await second_step(home, ticket, code_at(secret, 1))).status_code == 200
    travelling = await app_with(ip="203.0.113.7", **rule)
    far = await password_step(travelling, owner)
    assert_limited(await second_step(travelling, far, "123456"), 3, "auth.two_factor")
    for _ in range(2):  # at home too, codes are limited (per account and address: 3)
        assert (await second_step(home, ticket, "000000")).status_code == 401
    assert_limited(await second_step(home, ticket, "000000"), 3, "auth.two_factor.account_ip")


async def test_codes_in_other_digits_are_wrong_codes_not_errors(
    app_with: AppWith, make_user: MakeUser
) -> None:
    """main: 500 INTERNAL_ERROR. str.isdigit() takes Arabic-Indic and fullwidth digits,
    and hmac.compare_digest raises on text that is not ASCII."""
    user = await make_user()
    client = await app_with()
    setup = await client.post(
        f"{BASE}/setup", headers=user.headers, json={"password": user.password}
    )
    assert setup.status_code == 200
    for code in ("١٢٣٤٥٦", "１２３４５６"):
        enable = await client.post(f"{BASE}/enable", headers=user.headers, json={"code": code})
        assert enable.status_code == 400 and enable.json()["code"] == "WRONG_TWO_FACTOR_CODE"
    secret = setup.json()["secret"]
    await client.post(f"{BASE}/enable", headers=user.headers, json={"code": code_at(secret)})
    ticket = await password_step(client, user)
    wrong = await second_step(client, ticket, "٠٠٠٠٠٠")
    assert wrong.status_code == 401 and wrong.json()["code"] == "INVALID_TWO_FACTOR_CODE"


async def test_a_ticket_is_spent_by_the_login_it_completes(
    app_with: AppWith, make_user: MakeUser
) -> None:
    """main: a ticket stayed good for its 300 s after its login was completed, so
    whoever saw it (and a later code, over a shoulder) had a session without the
    password. Now any code accepted since the ticket was issued voids it."""
    user = await make_user()
    client = await app_with()
    secret, codes = await turn_on(client, user)
    ticket = await password_step(client, user)
    assert (await second_step(client, ticket, code_at(secret, 1))).status_code == 200
    again = await second_step(client, ticket, codes[0])
    assert again.status_code == 401 and again.json()["code"] == "INVALID_TICKET"
    by_recovery = await password_step(client, user)
    assert (await second_step(client, by_recovery, codes[1])).status_code == 200
    replayed = await second_step(client, by_recovery, codes[2])
    assert replayed.status_code == 401 and replayed.json()["code"] == "INVALID_TICKET"
    wrong_then_right = await password_step(client, user)  # a wrong code spends nothing
    assert (await second_step(client, wrong_then_right, "000000")).status_code == 401
    assert (await second_step(client, wrong_then_right, codes[3])).status_code == 200


async def test_a_spent_ticket_stays_spent_after_new_recovery_codes(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """A helper session's find: a ticket was stamped with the count of recovery codes
    left, and new codes bring that count back to ten: the ticket a recovery code had
    spent made a second session after the user made new codes."""
    user = await make_user()
    _secret, codes = await turn_on(client, user)
    ticket = await password_step(client, user)
    first = await second_step(client, ticket, codes[0])
    assert first.status_code == 200, first.text
    tokens = {"Authorization": f"Bearer {first.json()['access_token']}"}
    made = await client.post(
        f"{BASE}/recovery-codes", headers=tokens, json={"password": user.password, "code": codes[1]}
    )
    assert made.status_code == 200, made.text
    again = await second_step(client, ticket, made.json()["recovery_codes"][0])
    assert again.status_code == 401 and again.json()["code"] == "INVALID_TICKET", again.text


async def test_turning_it_on_ends_every_other_session(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """An attacker's review: a session made with a stolen password before its owner
    turned two-factor sign-in on stayed live (its access token, its refresh token, its
    streams), so turning it on did not shut out the one it was turned on against. Now,
    as a password change does, it ends every session but the one that turned it on."""
    user = await make_user()
    thief = await client.post(
        "/api/auth/login", json={"login": user.username, "password": user.password}
    )
    assert thief.status_code == 200, thief.text
    stolen = {"Authorization": f"Bearer {thief.json()['access_token']}"}
    await turn_on(client, user)
    me = await client.get("/api/users/@me", headers=stolen)
    assert me.status_code == 401 and me.json()["code"] == "SESSION_REVOKED", me.text
    refreshed = await client.post(
        "/api/auth/refresh", json={"refresh_token": thief.json()["refresh_token"]}
    )
    assert refreshed.status_code == 401 and refreshed.json()["code"] == "SESSION_REVOKED"
    assert (await client.get("/api/users/@me", headers=user.headers)).status_code == 200


async def test_new_recovery_codes_need_a_code_too(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """An attacker's review: new recovery codes needed the password alone, and one of
    them turns two-factor sign-in off, so a session with the password (a stolen token,
    a phished password) turned it off without ever holding the authenticator, the very
    thing /disable's code is there to refuse. Now they need a code too."""
    user = await make_user()
    secret, codes = await turn_on(client, user)
    url = f"{BASE}/recovery-codes"
    alone = await client.post(url, headers=user.headers, json={"password": user.password})
    assert alone.status_code == 400, alone.text
    assert alone.json()["field"] == "code"
    wrong = await client.post(
        url, headers=user.headers, json={"password": user.password, "code": code_at(secret, 7)}
    )
    assert wrong.status_code == 400 and wrong.json()["code"] == "WRONG_TWO_FACTOR_CODE"
    status = await client.get(BASE, headers=user.headers)
    assert status.json() == {"enabled": True, "recovery_codes_left": 10}
    by_app = await client.post(
        url, headers=user.headers, json={"password": user.password, "code": code_at(secret, 1)}
    )
    assert by_app.status_code == 200, by_app.text
    fresh = by_app.json()["recovery_codes"]
    by_recovery = await client.post(
        url, headers=user.headers, json={"password": user.password, "code": fresh[0]}
    )
    assert by_recovery.status_code == 200, by_recovery.text
    spent = await client.post(
        url, headers=user.headers, json={"password": user.password, "code": codes[0]}
    )
    assert spent.status_code == 400 and spent.json()["code"] == "WRONG_TWO_FACTOR_CODE"


async def test_a_password_change_needs_a_code_too(app_with: AppWith, make_user: MakeUser) -> None:
    """An attacker's review: with a session and the password alone (a stolen token, a
    phished password) the password could be changed, which ends the owner's sessions
    and locks them out, where turning two-factor sign-in off or deleting the account
    needs a code. Now a change needs one too (spent), and a refused change spends none."""
    user = await make_user()
    client = await app_with(rate_password_user="20/300")  # (six tries of the password)
    secret, codes = await turn_on(client, user)
    url = "/api/users/@me/password"
    change = {"current_password": user.password, "new_password": "another long phrase"}
    alone = await client.post(url, headers=user.headers, json=change)
    assert alone.status_code == 400 and alone.json()["code"] == "WRONG_TWO_FACTOR_CODE"
    wrong = await client.post(
        url, headers=user.headers, json={**change, "code": code_at(secret, 7)}
    )
    assert wrong.status_code == 400 and wrong.json()["code"] == "WRONG_TWO_FACTOR_CODE"
    bad_password = {**change, "current_password": "not it", "code": codes[0]}
    refused = await client.post(url, headers=user.headers, json=bad_password)
    assert refused.status_code == 400 and refused.json()["code"] == "WRONG_PASSWORD"
    status = await client.get(BASE, headers=user.headers)
    assert status.json() == {"enabled": True, "recovery_codes_left": 10}  # none spent
    done = await client.post(url, headers=user.headers, json={**change, "code": codes[0]})
    assert done.status_code == 204, done.text
    back = {"current_password": "another long phrase", "new_password": user.password}
    spent = await client.post(url, headers=user.headers, json={**back, "code": codes[0]})
    assert spent.status_code == 400 and spent.json()["code"] == "WRONG_TWO_FACTOR_CODE"
    by_app = await client.post(url, headers=user.headers, json={**back, "code": code_at(secret, 1)})
    assert by_app.status_code == 204, by_app.text
