from __future__ import annotations

import asyncio

import asyncpg
import httpx
import pytest

from tests import factories
from tests.factories import PASSWORD, AppWith, MakeUser
from tests.support import listening
from xfchat.domain import accounts
from xfchat.errors import Unauthorized
from xfchat.settings import Settings


async def test_me_shows_my_email(client: httpx.AsyncClient, make_user: MakeUser) -> None:
    user = await make_user("carol", display_name="Carol")
    body = (await client.get("/api/users/@me", headers=user.headers)).json()
    assert body["email"] == "carol@example.com" and body["display_name"] == "Carol"
    assert "password_hash" not in body


async def test_another_users_profile_never_shows_their_email(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    me, other = await make_user(), await make_user("dave")
    response = await client.get(f"/api/users/{other.id}", headers=me.headers)
    assert response.status_code == 200
    body = response.json()
    assert body["username"] == "dave" and "email" not in body
    assert "dave@example.com" not in response.text


async def test_an_unknown_user_is_404(client: httpx.AsyncClient, make_user: MakeUser) -> None:
    me = await make_user()
    response = await client.get(
        "/api/users/00000000-0000-0000-0000-00000000abcd", headers=me.headers
    )
    assert response.status_code == 404 and response.json()["code"] == "USER_NOT_FOUND"


async def test_a_malformed_user_id_is_400(client: httpx.AsyncClient, make_user: MakeUser) -> None:
    me = await make_user()
    response = await client.get("/api/users/not-a-uuid", headers=me.headers)
    assert response.status_code == 400 and response.json()["field"] == "user_id"


async def test_patch_me_changes_and_clears_fields(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    user = await make_user()
    changed = await client.patch(
        "/api/users/@me",
        headers=user.headers,
        json={
            "display_name": "Zed",
            "status_text": "afk",
            "avatar_url": "https://img.example/z.png",
            "username": "zed_01",
            "password": PASSWORD,
        },
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["username"] == "zed_01" and changed.json()["status_text"] == "afk"
    cleared = await client.patch("/api/users/@me", headers=user.headers, json={"status_text": None})
    assert cleared.json()["status_text"] is None and cleared.json()["display_name"] == "Zed"
    # The custom status is presence, not profile: its change alone is no user.updated
    # (and the one of the profile does not carry it).
    events = await factories.events_of(conn, "user", user.id)
    assert [t for t, _ in events] == ["user.updated"]
    assert events[0][1]["display_name"] == "Zed" and "status_text" not in events[0][1]


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"username": "bad name"}, "INVALID_USERNAME", "username"),
        ({"avatar_url": "javascript:alert(1)"}, "INVALID_AVATAR_URL", "avatar_url"),
        ({"display_name": "  "}, "INVALID_DISPLAY_NAME", "display_name"),
        ({"status_text": "x" * 129}, "INVALID_STATUS_TEXT", "status_text"),
    ],
)
async def test_patch_me_rejects_bad_fields(
    client: httpx.AsyncClient, make_user: MakeUser, body: dict[str, str], code: str, field: str
) -> None:
    user = await make_user()
    response = await client.patch("/api/users/@me", headers=user.headers, json=body)
    assert response.status_code == 400
    assert (response.json()["code"], response.json()["field"]) == (code, field)


async def test_patch_me_to_a_taken_username_is_409(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    user = await make_user()
    await make_user("erin")
    response = await client.patch(
        "/api/users/@me", headers=user.headers, json={"username": "ERIN", "password": PASSWORD}
    )
    assert response.status_code == 409 and response.json()["code"] == "USERNAME_TAKEN"


async def test_sessions_list_the_devices_and_one_can_be_revoked(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool, settings: Settings
) -> None:
    laptop = await make_user(user_agent="Laptop/1")
    phone = await factories.login(pool, settings, laptop, user_agent="Phone/2", ip="10.1.2.3")
    listed = (await client.get("/api/users/@me/sessions", headers=laptop.headers)).json()
    assert {(s["user_agent"], s["ip"], s["current"]) for s in listed} == {
        ("Laptop/1", "127.0.0.1", True),
        ("Phone/2", "10.1.2.3", False),
    }
    assert all(s["created_at"] and s["last_used_at"] for s in listed)

    gone = await client.delete(
        f"/api/users/@me/sessions/{phone.session_id}", headers=laptop.headers
    )
    assert gone.status_code == 204
    denied = await client.get("/api/users/@me", headers=phone.headers)
    assert denied.status_code == 401 and denied.json()["code"] == "SESSION_REVOKED"
    assert (await client.get("/api/users/@me", headers=laptop.headers)).status_code == 200
    listed = (await client.get("/api/users/@me/sessions", headers=laptop.headers)).json()
    assert [s["user_agent"] for s in listed] == ["Laptop/1"]


async def test_log_out_everywhere_else_revokes_every_other_session_at_once(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool, settings: Settings
) -> None:
    """Was: no such route; the browser client revoked the sessions it had listed one
    by one, so one started meanwhile (a thief's new login) stayed, and a 404 half-way
    left the rest."""
    laptop = await make_user(user_agent="Laptop/1")
    phone = await factories.login(pool, settings, laptop, user_agent="Phone/2")
    tablet = await factories.login(pool, settings, laptop, user_agent="Tablet/3")
    other = await make_user()
    gone = await client.delete("/api/users/@me/sessions", headers=laptop.headers)
    assert gone.status_code == 204
    for ended in (phone, tablet):
        denied = await client.get("/api/users/@me", headers=ended.headers)
        assert denied.status_code == 401 and denied.json()["code"] == "SESSION_REVOKED"
    assert (await client.get("/api/users/@me", headers=other.headers)).status_code == 200
    listed = (await client.get("/api/users/@me/sessions", headers=laptop.headers)).json()
    assert [(s["user_agent"], s["current"]) for s in listed] == [("Laptop/1", True)]
    async with pool.acquire() as conn:
        reasons = await conn.fetch(
            "SELECT revoked_reason FROM sessions WHERE id = ANY($1::uuid[])",
            [phone.session_id, tablet.session_id],
        )
        told = await conn.fetchval(
            "SELECT count(*) FROM events WHERE type = 'session.revoked'"
            " AND data->>'session_id' = ANY($1::text[])",
            [str(phone.session_id), str(tablet.session_id)],
        )
    assert [r[0] for r in reasons] == ["revoked", "revoked"] and told == 2
    again = await client.delete("/api/users/@me/sessions", headers=laptop.headers)
    assert again.status_code == 204  # (nothing left to end: nothing told)


async def test_log_out_everywhere_else_from_a_session_ended_meanwhile_ends_nothing(
    make_user: MakeUser, pool: asyncpg.Pool, settings: Settings
) -> None:
    """A thief's session that the owner ended while its own "log out everywhere else"
    waited does not end the owner's sessions in turn (its token passed before)."""
    owner = await make_user()
    thief = await factories.login(pool, settings, owner)
    async with pool.acquire() as conn:
        await accounts.revoke_session(conn, owner.actor, thief.session_id)
        with pytest.raises(Unauthorized) as refused:
            await accounts.revoke_other_sessions(conn, thief.actor)
        assert refused.value.code == "SESSION_REVOKED"
        live = await conn.fetchval(
            "SELECT revoked_at IS NULL FROM sessions WHERE id = $1", owner.session_id
        )
    assert live


async def test_another_users_session_cannot_be_revoked(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    me, other = await make_user(), await make_user()
    response = await client.delete(
        f"/api/users/@me/sessions/{other.session_id}", headers=me.headers
    )
    assert response.status_code == 404 and response.json()["code"] == "SESSION_NOT_FOUND"
    assert (await client.get("/api/users/@me", headers=other.headers)).status_code == 200


async def test_a_login_past_the_session_limit_revokes_the_least_recently_used(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    pool: asyncpg.Pool,
    settings: Settings,
    conn: asyncpg.Connection,
) -> None:
    """Was: no limit, so one account could pile up live sessions (a login every 45 s
    from one address, each kept 30 days by its refreshes) and the sessions list answered
    all of them: 75 MB at 100,000."""
    assert accounts.MAX_LIVE_SESSIONS == 100
    first = await make_user()
    more = await factories.more_sessions(pool, settings, first, 99)
    # The first session refreshes: it is the most recently used now, the second least.
    refreshed = await client.post("/api/auth/refresh", json={"refresh_token": first.refresh_token})
    assert refreshed.status_code == 200
    fresh = {"Authorization": f"Bearer {refreshed.json()['access_token']}"}
    listed = (await client.get("/api/users/@me/sessions", headers=fresh)).json()
    assert len(listed) == 100

    login = await client.post(
        "/api/auth/login", json={"login": first.username, "password": PASSWORD}
    )
    assert login.status_code == 200, login.text
    oldest = more[0]
    denied = await client.get(
        "/api/users/@me", headers={"Authorization": f"Bearer {oldest.access_token}"}
    )
    assert denied.status_code == 401 and denied.json()["code"] == "SESSION_REVOKED"
    gone = await client.post("/api/auth/refresh", json={"refresh_token": oldest.refresh_token})
    assert gone.status_code == 401 and gone.json()["code"] == "SESSION_REVOKED"
    assert (await client.get("/api/users/@me", headers=fresh)).status_code == 200
    listed = (await client.get("/api/users/@me/sessions", headers=fresh)).json()
    assert len(listed) == 100
    ids = {s["id"] for s in listed}
    assert str(oldest.session_id) not in ids
    assert {str(first.session_id), login.json()["session_id"]} <= ids
    assert (
        await conn.fetchval("SELECT revoked_reason FROM sessions WHERE id = $1", oldest.session_id)
        == "session_limit"
    )
    events = await factories.events_of(conn, "user", first.id)
    revoked = [data for kind, data in events if kind == "session.revoked"]
    assert revoked == [{"session_id": str(oldest.session_id), "reason": "session_limit"}]


async def test_the_session_limit_holds_for_logins_at_once(
    make_user: MakeUser, pool: asyncpg.Pool, settings: Settings, conn: asyncpg.Connection
) -> None:
    """Logins at once would each see room for one more unless they took turns."""
    user = await make_user()
    await factories.more_sessions(pool, settings, user, 98)
    await asyncio.gather(*(factories.more_sessions(pool, settings, user, 3) for _ in range(8)))
    live = "SELECT count(*) FROM sessions WHERE user_id = $1 AND revoked_at IS NULL"
    assert await conn.fetchval(live, user.id) == 100


@pytest.mark.parametrize(
    ("current", "new", "code", "field"),
    [
        ("wrong-wrong", "a new long passphrase", "WRONG_PASSWORD", "current_password"),
        (PASSWORD, "12345678", "INVALID_PASSWORD", "new_password"),
    ],
)
async def test_password_change_refuses_a_wrong_current_or_weak_new_password(
    client: httpx.AsyncClient, make_user: MakeUser, current: str, new: str, code: str, field: str
) -> None:
    user = await make_user()
    response = await client.post(
        "/api/users/@me/password",
        headers=user.headers,
        json={"current_password": current, "new_password": new},
    )
    assert response.status_code == 400
    assert (response.json()["code"], response.json()["field"]) == (code, field)


async def test_password_change_revokes_every_other_session(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    pool: asyncpg.Pool,
    settings: Settings,
    conn: asyncpg.Connection,
) -> None:
    user = await make_user()
    other = await factories.login(pool, settings, user, user_agent="Other/1")
    response = await client.post(
        "/api/users/@me/password",
        headers=user.headers,
        json={"current_password": PASSWORD, "new_password": "a new long passphrase"},
    )
    assert response.status_code == 204, response.text
    assert (await client.get("/api/users/@me", headers=user.headers)).status_code == 200
    denied = await client.get("/api/users/@me", headers=other.headers)
    assert denied.status_code == 401 and denied.json()["code"] == "SESSION_REVOKED"
    refreshed = await client.post("/api/auth/refresh", json={"refresh_token": other.refresh_token})
    assert refreshed.status_code == 401
    old = await client.post("/api/auth/login", json={"login": user.username, "password": PASSWORD})
    new = await client.post(
        "/api/auth/login", json={"login": user.username, "password": "a new long passphrase"}
    )
    assert (old.status_code, new.status_code) == (401, 200)
    events = await factories.events_of(conn, "user", user.id)
    assert (
        "session.revoked",
        {"session_id": str(other.session_id), "reason": "password_changed"},
    ) in events


async def test_usage_counts_requests_per_day(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    user = await make_user()
    for _ in range(4):
        await client.get("/api/users/@me", headers=user.headers)
    usage = (await client.get("/api/users/@me/usage", headers=user.headers)).json()
    assert len(usage) == 1
    assert usage[0]["requests"] == 5  # four GETs and this one
    assert usage[0]["messages_sent"] == 0 and usage[0]["bytes_uploaded"] == 0


async def test_a_name_with_a_final_newline_is_refused_plainly(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """Was: "victim\\n" passed the username pattern (`match` and `$`), and the database's
    check answered 500 after the password's hash was made."""
    made = await client.post(
        "/api/auth/register",
        json={"username": "victim\n", "email": "imp@example.org", "password": PASSWORD},
    )
    assert made.status_code == 400 and made.json()["code"] == "INVALID_USERNAME"
    user = await make_user("victim")
    for body, code in (
        ({"username": "Victim\n"}, "INVALID_USERNAME"),
        ({"avatar_url": "https://example.com/a.png\n"}, "INVALID_AVATAR_URL"),
    ):
        changed = await client.patch("/api/users/@me", headers=user.headers, json=body)
        assert changed.status_code == 400 and changed.json()["code"] == code, changed.text


async def test_every_time_is_written_one_way(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """Was: the routes answering through a pydantic model wrote times with "Z", the rest
    of the API and every event with "+00:00": one user's created_at differed from one
    route to the next, and an edit's replaced_at never equalled the message's edited_at."""
    ann, ben, dm = await factories.pair(client, make_user)
    me = (await client.get("/api/users/@me", headers=ann.headers)).json()
    seen = (await client.get(f"/api/users/{ann.id}", headers=ben.headers)).json()
    message = await factories.say(client, ann, dm, "first")
    assert me["created_at"] == seen["created_at"], (me, seen)
    assert message["created_at"].endswith("+00:00") and me["created_at"].endswith("+00:00")
    url = f"/api/channels/{dm}/messages/{message['id']}"
    edited = (await client.patch(url, headers=ann.headers, json={"content": "second"})).json()
    edits = (await client.get(f"{url}/edits", headers=ann.headers)).json()
    assert edits[0]["replaced_at"] == edited["edited_at"], (edits, edited)
    sessions = (await client.get("/api/users/@me/sessions", headers=ann.headers)).json()
    assert all(s["created_at"].endswith("+00:00") for s in sessions)


async def test_a_trailing_slash_is_a_plain_404(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """Was: a bare 307 (no JSON body) to the URL without the slash."""
    user = await make_user()
    for method in ("GET", "PATCH"):
        answer = await client.request(method, "/api/users/@me/", headers=user.headers, json={})
        assert answer.status_code == 404 and answer.json()["code"] == "NOT_FOUND", answer.text


async def test_profile_changes_are_limited_per_user_by_default(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """Each change writes an event to every conversation and server of the user (about
    1,200 rows at most): 10 in 10 minutes (XFCHAT_RATE_PROFILE_USER), not the API's 600
    a minute."""
    ann, ben = await make_user("ann"), await make_user("ben")
    for n in range(10):
        changed = await client.patch(
            "/api/users/@me", headers=ann.headers, json={"status_text": f"take {n}"}
        )
        assert changed.status_code == 200, changed.text
    refused = await client.patch("/api/users/@me", headers=ann.headers, json={"status_text": "x"})
    assert refused.status_code == 429 and refused.json()["bucket"] == "profile"
    assert "retry-after" in refused.headers
    mine = await client.get("/api/users/@me", headers=ann.headers)
    assert mine.json()["status_text"] == "take 9"  # (the refused one changed nothing)
    other = await client.patch("/api/users/@me", headers=ben.headers, json={"status_text": "y"})
    assert other.status_code == 200  # per user


async def test_presence_changes_are_limited_per_user_by_default(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """A presence change is announced to the same people as a profile change: 5 a
    minute (XFCHAT_RATE_PRESENCE_USER). Each answer is your own presence, as the API
    document says (invisible included: only others see you offline)."""
    ann = await make_user("ann")
    for status in ("idle", "online", "dnd", "invisible", "idle"):
        put = await client.put(
            "/api/users/@me/presence", headers=ann.headers, json={"status": status}
        )
        assert put.status_code == 200, put.text
        assert put.json()["status"] == status
    refused = await client.put(
        "/api/users/@me/presence", headers=ann.headers, json={"status": "online"}
    )
    assert refused.status_code == 429 and refused.json()["bucket"] == "presence"


async def test_the_profile_and_presence_limits_are_settings(
    app_with: AppWith, make_user: MakeUser
) -> None:
    client = await app_with(rate_profile_user="1/600", rate_presence_user="1/60")
    ann = await make_user("ann")
    first = await client.patch("/api/users/@me", headers=ann.headers, json={"status_text": "a"})
    assert first.status_code == 200
    again = await client.patch("/api/users/@me", headers=ann.headers, json={"status_text": "b"})
    assert again.status_code == 429 and again.headers["x-ratelimit-limit"] == "1"
    body = {"status": "dnd"}
    assert (
        await client.put("/api/users/@me/presence", headers=ann.headers, json=body)
    ).status_code == 200
    other = {"status": "idle"}  # (a change: one of nothing is not counted)
    again = await client.put("/api/users/@me/presence", headers=ann.headers, json=other)
    assert again.status_code == 429 and again.json()["bucket"] == "presence"


async def test_user_search_ignores_case_beyond_ascii(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """Was: "É", "é", "Émile", "ÉMILE" found no "Émile Zola" (lower() under the C locale
    folds only A-Z)."""
    me = await make_user("searcher")
    emile = await make_user("ezola", display_name="Émile Zola")
    olaf = await make_user("oz", display_name="Ölaf")
    sigma = await make_user("sigma", display_name="ΣΩΚΡΆΤΗΣ")
    for q, who in [
        *((q, emile) for q in ("É", "é", "Émile", "émile", "ÉMILE", "emile", "émile z")),
        *((q, olaf) for q in ("Ö", "ö", "ölaf", "Ölaf", "OLAF")),
        *((q, sigma) for q in ("σωκ", "ΣΩΚ", "Σωκράτ")),
        ("EZO", emile),  # (usernames as before)
    ]:
        found = await client.get("/api/users/search", params={"q": q}, headers=me.headers)
        assert found.status_code == 200, (q, found.text)
        assert [u["id"] for u in found.json()] == [str(who.id)], q


async def test_user_search_is_not_crowded_out_by_deleted_accounts_or_oneself(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """Each name's range was read up to `limit` before deleted accounts and the
    searcher were left out: three deleted accounts (deleted_user_...) filled "de" at
    limit 3 and nobody was found, though dennis is; daisy's own name filled "d" at
    limit 1. The README promises the users (not deleted ones) whose name starts so."""
    daisy = await make_user("daisy")
    await make_user("dennis")
    for i in range(3):
        gone = await make_user(f"gone{i}")
        deleted = await client.post(
            "/api/users/@me/delete", headers=gone.headers, json={"password": gone.password}
        )
        assert deleted.status_code == 204, deleted.text

    async def found(q: str, limit: int) -> list[str]:
        got = await client.get(f"/api/users/search?q={q}&limit={limit}", headers=daisy.headers)
        assert got.status_code == 200, got.text
        return [u["username"] for u in got.json()]

    assert await found("de", 3) == ["dennis"]
    assert await found("d", 1) == ["dennis"]
    assert await found("deleted", 5) == []


async def test_user_search_with_a_nul_is_invalid_query(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    me = await make_user()
    found = await client.get("/api/users/search", params={"q": "a\x00"}, headers=me.headers)
    assert found.status_code == 400 and found.json()["code"] == "INVALID_QUERY", found.text
    assert found.json()["field"] == "q"


async def test_a_custom_status_is_in_no_profile_that_others_read(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """The custom status is presence, not profile: a stranger who shares a server and a
    direct conversation with ann, asked for her friendship, reads her reactions and
    blocked her, and a friend of hers, read her profile everywhere it is shown, and her
    custom status nowhere (they see it only in her presence, while she is visible).
    She reads her own. (Was: in every public profile, readable by anyone.)"""
    ann, ben, zed = await make_user("ann"), await make_user("ben"), await make_user("zed")
    secret = "at the clinic until 5"
    await factories.befriend(ann, ben)
    srv = await factories.community(client, ann, zed)
    dm = await factories.direct(client, zed, ann)
    said = await factories.say(client, zed, srv.general, "hello")
    reacted = f"/api/channels/{srv.general}/messages/{said['id']}/reactions/%F0%9F%91%8D"
    assert (await client.put(f"{reacted}/@me", headers=ann.headers)).status_code == 204
    asked = await client.post(
        "/api/users/@me/friend-requests", headers=zed.headers, json={"username": "ann"}
    )
    assert asked.status_code == 201, asked.text
    put = await client.put(
        "/api/users/@me/presence", headers=ann.headers, json={"status_text": secret}
    )
    assert put.status_code == 200 and put.json()["status_text"] == secret
    patched = await client.patch(
        "/api/users/@me", headers=ann.headers, json={"display_name": "Ann", "status_text": secret}
    )
    assert patched.status_code == 200 and patched.json()["status_text"] == secret

    profiles = [
        f"/api/users/{ann.id}",
        f"/api/users?ids={ann.id},{zed.id}",
        "/api/users/search?q=ann",
    ]
    embedded = [
        f"/api/conversations/{dm['id']}",
        "/api/conversations",
        "/api/users/@me/friend-requests",
        f"/api/servers/{srv.id}/members",
        f"/api/servers/{srv.id}/members/{ann.id}",
        reacted,
        "/api/users/@me/state",
    ]
    for who, urls in ((zed, profiles + embedded), (ben, [*profiles, "/api/users/@me/friends"])):
        for url in urls:
            answer = await client.get(url, headers=who.headers)
            assert answer.status_code == 200, (url, answer.text)
            assert "Ann" in answer.text or str(ann.id) in answer.text, url  # she is there
            assert secret not in answer.text, (who.username, url)
    shown = (await client.get(f"/api/users/{ann.id}", headers=zed.headers)).json()
    assert "status_text" not in shown and shown["display_name"] == "Ann"
    assert (await client.put(f"/api/users/@me/blocks/{ann.id}", headers=zed.headers)).is_success
    blocks = await client.get("/api/users/@me/blocks", headers=zed.headers)
    assert str(ann.id) in blocks.text and secret not in blocks.text
    # Her own account says it.
    mine = await client.get("/api/users/@me", headers=ann.headers)
    assert mine.json()["status_text"] == secret
    state = (await client.get("/api/users/@me/state", headers=ann.headers)).json()
    assert state["user"]["status_text"] == secret


async def test_a_presence_change_of_nothing_writes_tells_and_counts_nothing(
    app_with: AppWith, make_user: MakeUser, conn: asyncpg.Connection, db_url: str
) -> None:
    # Was: a status (or custom status) as it already was was written again (updated_at
    # moved), sent to the user's own connections as `presence.updated` and counted in
    # `presence`; now it answers as it stands, as a PATCH of the profile of nothing does.
    client = await app_with(rate_presence_user="2/60")
    ann = await make_user("ann")
    url = "/api/users/@me/presence"
    set_ = await client.put(url, headers=ann.headers, json={"status": "dnd", "status_text": "x"})
    assert set_.status_code == 200, set_.text
    stamp = "SELECT updated_at FROM users WHERE id = $1"
    written = await conn.fetchval(stamp, ann.id)
    async with listening(db_url) as heard:
        for body in (
            {"status": "dnd"},
            {"status_text": "x"},
            {"status": "dnd", "status_text": "x"},
            {},
        ):
            same = await client.put(url, headers=ann.headers, json=body)
            assert same.status_code == 200, (body, same.text)
            assert same.json() == set_.json(), body
        await heard.settled()
        told = [h for h in heard if '"presence.updated"' in h]
    assert told == [] and await conn.fetchval(stamp, ann.id) == written
    # None of them was counted: the limit's second change still goes through.
    cleared = await client.put(url, headers=ann.headers, json={"status_text": None})
    assert cleared.status_code == 200 and cleared.json()["status_text"] is None, cleared.text
    again = await client.put(url, headers=ann.headers, json={"status_text": None})
    assert again.status_code == 200, again.text  # (cleared already: nothing)
    refused = await client.put(url, headers=ann.headers, json={"status": "idle"})
    assert refused.status_code == 429 and refused.json()["bucket"] == "presence"


async def test_a_custom_status_sent_untrimmed_as_it_is_is_not_counted(
    app_with: AppWith, make_user: MakeUser
) -> None:
    # Was: the check before the count compared the custom status as sent, untrimmed,
    # with the stored (trimmed) one, so " brb " over "brb" was counted in `presence`
    # though set_presence, trimming it, found it as it was and changed nothing.
    client = await app_with(rate_presence_user="1/60")
    ann = await make_user("ann")
    url = "/api/users/@me/presence"
    set_ = await client.put(url, headers=ann.headers, json={"status_text": "brb"})
    assert set_.status_code == 200, set_.text
    for body in ({"status_text": " brb "}, {"status_text": "brb\t"}):
        same = await client.put(url, headers=ann.headers, json=body)
        assert same.status_code == 200, (body, same.text)
        assert same.json() == set_.json()
    refused = await client.put(url, headers=ann.headers, json={"status": "idle"})
    assert refused.status_code == 429 and refused.json()["bucket"] == "presence"
