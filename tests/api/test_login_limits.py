"""The limits on what costs argon2 work or could tell who has an account: login buckets
keyed by the account and its owner's familiar addresses, password confirmations per
session and per account, and the registration answers that say an email is taken."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx

from tests.api.test_rate_limits import assert_limited
from tests.api.test_two_factor import BASE, password_step, turn_on
from tests.factories import PASSWORD, AppWith, MakeUser
from xfchat.domain.rate_limits import ip_key

WRONG = "wrong-wrong"


async def login(client: httpx.AsyncClient, name: str, password: str = WRONG) -> int:
    response = await client.post("/api/auth/login", json={"login": name, "password": password})
    return response.status_code


async def test_the_account_bucket_counts_the_account_whatever_name_was_typed(
    app_with: AppWith, make_user: MakeUser
) -> None:
    user = await make_user("owner")
    spellings = ["owner", "OWNER@example.com", "Owner", "owner@EXAMPLE.com"]
    statuses = []
    for i, name in enumerate(spellings):
        client = await app_with(ip=f"10.0.0.{i + 1}", rate_login_account="3/300")
        statuses.append(await login(client, name))
    assert statuses == [401, 401, 401, 429]  # main: two buckets (name, email), no 429
    refused = await client.post("/api/auth/login", json={"login": user.email, "password": "x"})
    assert_limited(refused, 3, "auth.login.account")


async def test_someone_elses_guesses_never_lock_the_owner_out_at_home(
    app_with: AppWith, make_user: MakeUser
) -> None:
    owner = await make_user("owner")  # registered from 127.0.0.1: a familiar address
    for i in range(4):
        attacker = await app_with(ip=f"198.51.100.{i + 1}", rate_login_account="3/300")
        await login(attacker, "owner")
    assert await login(attacker, "owner", PASSWORD) == 429  # the account's global bucket
    at_home = await app_with(ip="127.0.0.1", rate_login_account="3/300")
    assert await login(at_home, "owner", owner.password) == 200
    travelling = await app_with(ip="203.0.113.7", rate_login_account="3/300")
    assert await login(travelling, "owner", owner.password) == 429  # a new address waits


async def test_a_familiar_address_is_still_limited_per_account(
    app_with: AppWith, make_user: MakeUser
) -> None:
    owner = await make_user("owner")
    at_home = await app_with(ip="127.0.0.1", rate_login_account_ip="2/300")
    assert [await login(at_home, "owner") for _ in range(2)] == [401, 401]
    refused = await at_home.post(
        "/api/auth/login", json={"login": "owner", "password": owner.password}
    )
    assert_limited(refused, 2, "auth.login.account_ip")


async def test_the_name_as_typed_is_one_bucket_in_every_spelling_that_finds_it(
    app_with: AppWith, make_user: MakeUser
) -> None:
    """A helper session's find: the name's bucket was keyed by its lower case, the
    account found by its caseless form: a long s (U+017F) finds `s`, each spelling a fresh
    bucket, 240 guesses an hour from an address the owner uses instead of 40."""
    await make_user("owner", email="sss@example.com")
    at_home = await app_with(ip="127.0.0.1", rate_login_account_ip="3/300")
    spellings = [
        "sss@example.com",
        "\u017fss@example.com",
        "SS\u017f@EXAMPLE.COM",
        "sss@example.com",
    ]
    assert [await login(at_home, name) for name in spellings] == [401, 401, 401, 429]


async def test_a_login_never_ties_an_email_to_its_username(
    app_with: AppWith, make_user: MakeUser
) -> None:
    """Was: a failed login's X-RateLimit headers showed the account's bucket, shared by
    its username and its email: a wrong password for "victim" and then for an email
    left one fewer, so each guessed email cost one attempt to check (3 a day are
    allowed through registration)."""
    await make_user("victim", email="secret.person@example.com")
    await make_user("other", email="other@example.com")
    client = await app_with(ip="198.51.100.9", rate_login_account_ip="2/300")
    answers = {}
    for name in ("victim", "victim", "Secret.Person@example.com", "other@example.com"):
        response = await client.post("/api/auth/login", json={"login": name, "password": WRONG})
        answers.setdefault(name, []).append(
            (response.status_code, response.headers.get("x-ratelimit-bucket"))
        )
    # The name's bucket per address is used up; its email's answer is any email's.
    assert answers["victim"] == [(401, "auth.login")] * 2
    assert (
        answers["Secret.Person@example.com"]
        == answers["other@example.com"]
        == [(401, "auth.login")]
    )


async def test_password_changes_are_limited_per_account(
    app_with: AppWith, make_user: MakeUser
) -> None:
    user = await make_user()
    client = await app_with(rate_password_user="3/300")
    url = "/api/users/@me/password"
    for _ in range(3):
        wrong = await client.post(
            url,
            headers=user.headers,
            json={"current_password": "a wrong guess", "new_password": "a new pass phrase"},
        )
        assert wrong.status_code == 400 and wrong.json()["code"] == "WRONG_PASSWORD"
    right = await client.post(
        url,
        headers=user.headers,
        json={"current_password": user.password, "new_password": "a new pass phrase"},
    )
    assert_limited(right, 3, "account.password")  # main: 204 (600 guesses a minute)


async def test_registration_tells_an_address_only_so_many_times_that_an_email_is_taken(
    app_with: AppWith, make_user: MakeUser
) -> None:
    await make_user("known", email="known@example.com")
    client = await app_with(rate_register_taken_ip="2/300")

    async def register(name: str, email: str) -> httpx.Response:
        return await client.post(
            "/api/auth/register", json={"username": name, "email": email, "password": PASSWORD}
        )

    for i in range(4):  # usernames are public anyway: saying one is taken costs nothing
        taken_name = await register("known", f"other{i}@example.com")
        assert taken_name.status_code == 409 and taken_name.json()["code"] == "USERNAME_TAKEN"
    for i in range(2):
        taken = await register(f"probe{i}", "KNOWN@example.com")
        assert taken.status_code == 409 and taken.json()["code"] == "EMAIL_TAKEN"
    # Now every registration from that address waits, the taken email or a free one:
    # the answer says nothing more about which emails exist.
    assert_limited(await register("probe3", "known@example.com"), 2, "auth.register.taken")
    assert_limited(await register("fresh", "fresh@example.com"), 2, "auth.register.taken")
    elsewhere = await app_with(ip="10.7.7.7", rate_register_taken_ip="2/300")
    fresh = await elsewhere.post(
        "/api/auth/register",
        json={"username": "fresh", "email": "fresh@example.com", "password": PASSWORD},
    )
    assert fresh.status_code == 201


def test_an_ipv6_client_is_keyed_by_its_64_network() -> None:
    assert ip_key("2001:db8:1:2:aaaa::1") == ip_key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert ip_key("2001:db8:1:3::1") != ip_key("2001:db8:1:2::1")
    assert ip_key("::ffff:192.0.2.7") == ip_key("192.0.2.7") == "192.0.2.7"
    assert ip_key(None) == "unknown"


async def test_a_client_address_that_is_not_an_ip_is_kept_as_none(
    client_from: Callable[[str], httpx.AsyncClient], make_user: MakeUser
) -> None:
    user = await make_user()
    async with client_from("whatever a proxy said") as odd:
        response = await odd.post(
            "/api/auth/login", json={"login": user.username, "password": user.password}
        )
        assert response.status_code == 200, response.text
        token = response.json()["access_token"]
        sessions = await odd.get(
            "/api/users/@me/sessions", headers={"Authorization": f"Bearer {token}"}
        )
    mine = [s for s in sessions.json() if s["current"]]
    assert mine[0]["ip"] is None


async def test_registrations_at_once_are_told_an_email_is_taken_no_more_often(
    app_with: AppWith, make_user: MakeUser
) -> None:
    """The taken-email bucket was peeked before a registration and counted after its
    argon2 work: registrations sent at once all passed the peek, so one address learned
    of as many emails as it sent at once (3 a day became 10 an hour)."""
    await make_user("known", email="known@example.com")
    client = await app_with(rate_register_taken_ip="2/300")

    async def register(i: int) -> httpx.Response:
        return await client.post(
            "/api/auth/register",
            json={"username": f"probe{i}", "email": "known@example.com", "password": PASSWORD},
        )

    answers = await asyncio.gather(*(register(i) for i in range(6)))
    codes = sorted(a.json()["code"] for a in answers)
    assert codes == ["EMAIL_TAKEN"] * 2 + ["RATE_LIMITED"] * 4, codes


async def test_a_free_email_gives_back_its_place_in_the_taken_email_bucket(
    app_with: AppWith, make_user: MakeUser
) -> None:
    await make_user("known", email="known@example.com")
    client = await app_with(rate_register_taken_ip="1/300")
    for i in range(3):  # free emails, a taken username, a weak password: none count
        fresh = await client.post(
            "/api/auth/register",
            json={"username": f"fresh{i}", "email": f"fresh{i}@example.com", "password": PASSWORD},
        )
        assert fresh.status_code == 201, fresh.text
    name = await client.post(
        "/api/auth/register",
        json={"username": "known", "email": "other@example.com", "password": PASSWORD},
    )
    assert name.json()["code"] == "USERNAME_TAKEN"
    taken = await client.post(
        "/api/auth/register",
        json={"username": "probe", "email": "known@example.com", "password": PASSWORD},
    )
    assert taken.json()["code"] == "EMAIL_TAKEN"
    after = await client.post(
        "/api/auth/register",
        json={"username": "probe2", "email": "free@example.com", "password": PASSWORD},
    )
    assert_limited(after, 1, "auth.register.taken")


async def test_an_ipv6_owner_is_at_home_anywhere_in_their_64_network(
    app_with: AppWith, make_user: MakeUser
) -> None:
    """Rate limits take an IPv6 client by its /64, but the owner's familiar addresses
    were matched whole: an owner whose address changes within their network (privacy
    addresses change daily) was locked out by strangers' guesses."""
    owner = await make_user("owner", ip="2001:db8:1:2::17")
    for i in range(4):
        attacker = await app_with(ip=f"198.51.100.{i + 1}", rate_login_account="3/300")
        await login(attacker, "owner")
    assert await login(attacker, "owner", owner.password) == 429
    next_day = await app_with(ip="2001:db8:1:2:a9c3:51ff:fe10:7", rate_login_account="3/300")
    assert await login(next_day, "owner", owner.password) == 200
    mapped = await make_user("mapped", ip="::ffff:192.0.2.7")
    for i in range(4):
        attacker = await app_with(ip=f"198.51.100.{i + 1}", rate_login_account="3/300")
        await login(attacker, "mapped")
    same_host = await app_with(ip="192.0.2.7", rate_login_account="3/300")
    assert await login(same_host, "mapped", mapped.password) == 200
    elsewhere = await app_with(ip="2001:db8:1:3::17", rate_login_account="3/300")
    assert await login(elsewhere, "owner", owner.password) == 429  # another network waits


async def test_an_ipv6_site_cannot_multiply_the_limits_by_its_64_networks(
    app_with: AppWith,
) -> None:
    """main: every /64 had a whole per-address limit, and one site has 65,536 of them
    (a tunnel broker gives anyone a /48 for free): 10 registrations an hour became
    655,360, three taken emails a day 196,608. Now a /48 takes 16 times the rule."""
    statuses = []
    for i in range(17):
        client = await app_with(ip=f"2001:db8:7:{i:x}::1", rate_register_ip="1/300")
        answer = await client.post(
            "/api/auth/register",
            json={"username": f"site{i}", "email": f"site{i}@example.com", "password": PASSWORD},
        )
        statuses.append(answer.status_code)
    assert statuses == [201] * 16 + [429]  # main: 17 times 201
    assert_limited(answer, 16, "auth.register")
    neighbour = await app_with(ip="2001:db8:8::1", rate_register_ip="1/300")
    fresh = await neighbour.post(
        "/api/auth/register",
        json={"username": "next", "email": "next@example.com", "password": PASSWORD},
    )
    assert fresh.status_code == 201


async def test_registrations_refused_as_invalid_input_do_not_use_up_the_address(
    app_with: AppWith,
) -> None:
    """A sign-up form's typos (a short password, a username of the wrong form, a common
    password) used up the address's registrations for the hour, each counted before
    the body was even read; now only a well-formed registration counts."""
    client = await app_with(rate_register_ip="2/300")

    async def register(name: str, password: str = PASSWORD) -> httpx.Response:
        body = {"username": name, "email": f"{name}@example.com", "password": password}
        return await client.post("/api/auth/register", json=body)

    typos = [await register("a"), await register("ok.", "short"), await register("fine", "")]
    typos.append(await register("fine", "password123"))
    assert [t.status_code for t in typos] == [400] * 4, [t.text for t in typos]
    assert (await client.post("/api/auth/register", content=b"{")).status_code == 400
    first = await register("first")
    assert first.status_code == 201, first.text
    assert first.headers["x-ratelimit-remaining"] == "1"
    assert (await register("second")).status_code == 201
    assert_limited(await register("third"), 2, "auth.register")


async def test_a_registration_held_back_by_the_taken_bucket_is_not_counted_as_tried(
    app_with: AppWith, make_user: MakeUser
) -> None:
    """Was: a registration refused for the address's EMAIL_TAKEN answers (nothing tried)
    used up one of its registrations too."""
    await make_user("known", email="known@example.com")
    client = await app_with(rate_register_ip="3/300", rate_register_taken_ip="1/2")

    async def register(name: str, email: str) -> httpx.Response:
        return await client.post(
            "/api/auth/register", json={"username": name, "email": email, "password": PASSWORD}
        )

    assert (await register("probe", "known@example.com")).json()["code"] == "EMAIL_TAKEN"
    for i in range(3):  # held back: the address was told an email is taken
        held = await register(f"held{i}", f"held{i}@example.com")
        assert held.status_code == 429 and held.json()["bucket"] == "auth.register.taken"
    await asyncio.sleep(2.1)  # (the taken bucket's window ends)
    first = await register("fresh", "fresh@example.com")
    assert first.status_code == 201, first.text  # main: 429, the three held back counted
    assert first.headers["x-ratelimit-remaining"] == "1"


async def test_a_stolen_sessions_password_tries_leave_the_owners_other_session_its_own(
    app_with: AppWith, make_user: MakeUser
) -> None:
    """Was: one bucket per account, so a thief holding an access token spent its five
    tries and the owner could not change the password for 15 minutes."""
    owner = await make_user()
    # (the default counts, 5 a session and 20 an account, in assert_limited's windows)
    client = await app_with(rate_password_user="5/300", rate_password_account="20/300")
    url = "/api/users/@me/password"
    thief = await client.post(
        "/api/auth/login", json={"login": owner.username, "password": PASSWORD}
    )
    assert thief.status_code == 200, thief.text
    stolen = {"Authorization": f"Bearer {thief.json()['access_token']}"}
    guess = {"current_password": "a wrong guess", "new_password": "the thief's pass 7"}
    for _ in range(5):
        wrong = await client.post(url, headers=stolen, json=guess)
        assert wrong.status_code == 400 and wrong.json()["code"] == "WRONG_PASSWORD", wrong.text
    refused = await client.post(url, headers=stolen, json=guess)
    assert_limited(refused, 5, "account.password")  # (a thief's guesses stay bounded)
    # A refresh keeps the session, and its spent budget.
    refreshed = await client.post(
        "/api/auth/refresh", json={"refresh_token": thief.json()["refresh_token"]}
    )
    assert refreshed.status_code == 200, refreshed.text
    again = {"Authorization": f"Bearer {refreshed.json()['access_token']}"}
    assert_limited(await client.post(url, headers=again, json=guess), 5, "account.password")
    mine = await client.post(
        url,
        headers=owner.headers,
        json={"current_password": PASSWORD, "new_password": "the owner's new pass 8"},
    )
    assert mine.status_code == 204, mine.text  # main: 429 account.password
    # ... which ended the thief's session.
    assert (await client.post(url, headers=again, json=guess)).status_code == 401


async def test_the_accounts_password_tries_from_every_session_are_bounded(
    app_with: AppWith, make_user: MakeUser
) -> None:
    owner = await make_user()
    client = await app_with(rate_password_user="2/300", rate_password_account="3/300")
    url = "/api/users/@me/password"
    guess = {"current_password": "a wrong guess", "new_password": "another pass 9"}
    sessions = []
    for _ in range(2):
        other = await client.post(
            "/api/auth/login", json={"login": owner.username, "password": PASSWORD}
        )
        sessions.append({"Authorization": f"Bearer {other.json()['access_token']}"})
    for headers in (sessions[0], sessions[0], sessions[1]):
        wrong = await client.post(url, headers=headers, json=guess)
        assert wrong.status_code == 400, wrong.text
    assert_limited(
        await client.post(url, headers=sessions[1], json=guess), 3, "account.password.all"
    )
    # ... a fresh session of the owner's too: the account's bucket is every session's.
    refused = await client.post(url, headers=owner.headers, json=guess)
    assert_limited(refused, 3, "account.password.all")


async def test_a_stolen_sessions_code_tries_leave_the_owner_a_password_change(
    app_with: AppWith, make_user: MakeUser
) -> None:
    """Was: the codes a signed-in user tries counted per account alone, and turning
    two-factor sign-in on (already on: 409) asks no password, so a thief holding an
    access token spent the account's ten in ten requests, and the owner, whose password
    change needs a code, was 429 for 15 minutes: the lockout the per-session password
    budget ended, back through the code."""
    owner = await make_user()
    client = await app_with()
    _, codes = await turn_on(client, owner)
    ticket = await password_step(client, owner)
    second = await client.post(
        "/api/auth/login/two-factor", json={"ticket": ticket, "code": codes[0]}
    )
    assert second.status_code == 200, second.text
    stolen = {"Authorization": f"Bearer {second.json()['access_token']}"}
    for _ in range(10):
        tried = await client.post(f"{BASE}/enable", headers=stolen, json={"code": "000000"})
        assert tried.status_code == 409, tried.text
    refused = await client.post(f"{BASE}/enable", headers=stolen, json={"code": "000000"})
    assert refused.status_code == 429  # (a thief's guesses stay bounded)
    change = {"current_password": PASSWORD, "new_password": "the owner's new pass 8"}
    mine = await client.post(
        "/api/users/@me/password", headers=owner.headers, json={**change, "code": codes[1]}
    )
    assert mine.status_code == 204, mine.text  # main: 429 auth.two_factor.signed_in


async def test_a_code_refused_by_the_accounts_bucket_gives_back_on_the_routes_connection(
    app_with: AppWith, make_user: MakeUser
) -> None:
    """Turning two-factor sign-in on counts its code on the connection the route holds;
    the try the account's bucket refuses is given back to the session's on that one too,
    not on a second connection taken while the first is held (the pool refuses that:
    NestedAcquire, as under load every such request could wait for the others)."""
    owner = await make_user()
    client = await app_with(
        rate_two_factor_account="5/300", rate_two_factor_signed_in_account="1/300"
    )
    url = f"{BASE}/enable"
    first = await client.post(url, headers=owner.headers, json={"code": "000000"})
    assert first.status_code == 400, first.text  # (TWO_FACTOR_NOT_SET_UP)
    refused = await client.post(url, headers=owner.headers, json={"code": "000000"})
    assert_limited(refused, 1, "auth.two_factor.signed_in.all")
