"""Deleting one's own account (POST /api/users/@me/delete): what goes, what stays, and
what is refused before and after."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx

from tests import factories
from tests.api.test_two_factor import turn_on
from tests.factories import MakeUser, TestUser
from tests.world import PNG

DELETE = "/api/users/@me/delete"


def refused(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["code"] == code, response.text


async def test_delete_account_erases_the_person_and_keeps_their_messages(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    ann = await make_user("ann", display_name="Ann")
    ben, cat, dan, eve, fay = [await make_user(n) for n in ("ben", "cat", "dan", "eve", "fay")]
    # Her world: an avatar and a status, a server of ben's with a role and a read
    # position, a group she owns, a direct conversation with a file she sent, a
    # friend, requests both ways, a block each way, two-factor sign-in on.
    avatar = await client.put("/api/users/@me/avatar", headers=ann.headers, content=PNG)
    avatar_url = avatar.json()["avatar_url"]
    await client.patch("/api/users/@me", headers=ann.headers, json={"status_text": "here"})
    srv = await factories.community(client, ben, ann)
    await factories.role(client, srv, ben, "crew", 0, ann)
    said = await factories.say(client, ann, srv.general, "in the server")
    await client.put(f"/api/channels/{srv.general}/ack", headers=ann.headers, json={"seq": 1})
    crew = await factories.group(client, ann, ben, cat)
    await factories.befriend(ben, ann)  # (group() befriended ann with them already)
    dm = str((await factories.direct(client, ben, ann))["id"])
    sent = await client.post(
        f"/api/channels/{dm}/messages",
        headers=ann.headers,
        data={"content": "a file for you"},
        files=[("file", ("note.txt", b"hello ben", "text/plain"))],
    )
    assert sent.status_code == 201, sent.text
    attachment = sent.json()["attachments"][0]["url"]
    for asker, asked in ((ann, dan), (eve, ann)):
        made = await client.post(
            "/api/users/@me/friend-requests",
            headers=asker.headers,
            json={"username": asked.username},
        )
        assert made.status_code == 201, made.text
    await client.put(f"/api/users/@me/blocks/{fay.id}", headers=ann.headers)
    await client.put(f"/api/users/@me/blocks/{ann.id}", headers=fay.headers)
    _, codes = await turn_on(client, ann)

    gone = await client.post(
        DELETE, headers=ann.headers, json={"password": ann.password, "code": codes[0]}
    )
    assert gone.status_code == 204, gone.text

    # Her profile is a placeholder, shown wherever she is named.
    profile = (await client.get(f"/api/users/{ann.id}", headers=ben.headers)).json()
    assert profile["username"].startswith("deleted_user_") and profile["deleted"] is True
    assert (profile["display_name"], profile["avatar_url"], profile["status_text"]) == (None,) * 3
    assert (await client.get(avatar_url)).status_code == 404
    # No way back in, and no oracle: her names fail as a wrong password does.
    for login in (ann.username, ann.email, profile["username"]):
        answer = await client.post(
            "/api/auth/login", json={"login": login, "password": ann.password}
        )
        refused(answer, 401, "INVALID_CREDENTIALS")
    refused(await client.get("/api/users/@me", headers=ann.headers), 401, "SESSION_REVOKED")
    again = await client.post("/api/auth/refresh", json={"refresh_token": ann.refresh_token})
    assert again.status_code == 401, again.text
    # Her messages stay, files and all; the others' views of her are gone.
    kept = await client.get(
        f"/api/channels/{srv.general}/messages/{said['id']}", headers=ben.headers
    )
    assert kept.json()["author"] == {
        **kept.json()["author"],
        "username": profile["username"],
        "deleted": True,
    }
    assert (await client.get(attachment, headers=ben.headers)).status_code == 200
    members = (await client.get(srv.url("/members"), headers=ben.headers)).json()
    assert str(ann.id) not in {m["user"]["id"] for m in members}
    group = (await client.get(f"/api/conversations/{crew['id']}", headers=ben.headers)).json()
    # (ben and cat joined together: the first listed is the longest-standing)
    assert set(group["participant_ids"]) == {str(ben.id), str(cat.id)}
    assert str(ann.id) not in group["participant_ids"]
    assert group["owner_id"] == group["participant_ids"][0]
    assert (await client.get("/api/users/@me/friends", headers=ben.headers)).json() == []
    for who, side in ((dan, "incoming"), (eve, "outgoing")):
        requests = await client.get("/api/users/@me/friend-requests", headers=who.headers)
        assert requests.json()[side] == []
    assert (await client.get("/api/users/@me/blocks", headers=fay.headers)).json() == []
    found = await client.get("/api/users/search", headers=ben.headers, params={"q": "deleted"})
    assert found.json() == []
    # Nothing can be sent to her; her direct conversation stays readable.
    history = await client.get(f"/api/channels/{dm}/messages", headers=ben.headers)
    assert [m["content"] for m in history.json()] == ["a file for you"]
    refused(await factories.send_message(client, ben, dm, "hello?"), 403, "USER_DELETED")
    opened = await client.post(
        "/api/conversations", headers=cat.headers, json={"kind": "direct", "user_id": str(ann.id)}
    )
    refused(opened, 403, "USER_DELETED")
    asked = await client.post(
        "/api/users/@me/friend-requests",
        headers=cat.headers,
        json={"username": profile["username"]},
    )
    refused(asked, 403, "USER_DELETED")
    heir = ben if group["owner_id"] == str(ben.id) else cat
    added = await client.put(
        f"/api/conversations/{crew['id']}/participants/{ann.id}", headers=heir.headers
    )
    refused(added, 403, "USER_DELETED")
    # Her address and name are free again; the placeholder's form is nobody's.
    for username, code in ((ann.username, 201), ("deleted_user_0123456789abcdef", 400)):
        registered = await client.post(
            "/api/auth/register",
            json={"username": username, "email": ann.email, "password": "a new pass phrase"},
        )
        assert registered.status_code == code, registered.text
    # What else named her is gone in the database.
    async with pool.acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM users WHERE id = $1", ann.id)
        assert row["deleted_at"] is not None and row["email"].endswith("@deleted.invalid")
        for table, column in (
            ("user_totp", "user_id"),
            ("recovery_codes", "user_id"),
            ("read_states", "user_id"),
            ("member_roles", "user_id"),
            ("server_members", "user_id"),
            ("friendships", "user_low = $1 OR user_high"),
            ("friend_requests", "from_user_id = $1 OR to_user_id"),
            ("blocks", "blocker_id = $1 OR blocked_id"),
            ("media", "owner_id"),
        ):
            assert (
                await conn.fetchval(f"SELECT count(*) FROM {table} WHERE {column} = $1", ann.id)  # noqa: S608
                == 0
            ), table
        sessions = await conn.fetch("SELECT * FROM sessions WHERE user_id = $1", ann.id)
        assert {(s["revoked_reason"], s["ip"], s["user_agent"]) for s in sessions} == {
            ("account_deleted", None, None)
        }


async def test_delete_account_is_refused_without_the_password_a_code_or_while_owning(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """Each refusal changes nothing; the tries count in `account.password`."""
    owner, ann = await make_user("owner"), await make_user("ann")
    srv = await factories.community(client, owner, ann)

    async def attempt(who: TestUser, **body: Any) -> httpx.Response:
        return await client.post(
            DELETE, headers=who.headers, json={"password": who.password, **body}
        )

    refused(await attempt(owner, password="not it"), 400, "WRONG_PASSWORD")
    owning = await attempt(owner)
    refused(owning, 409, "OWNS_SERVERS")
    assert "1 server" in owning.json()["message"]
    _, codes = await turn_on(client, ann)
    refused(await attempt(ann), 400, "WRONG_TWO_FACTOR_CODE")
    refused(await attempt(ann, code="000000"), 400, "WRONG_TWO_FACTOR_CODE")
    assert (await client.get("/api/users/@me", headers=ann.headers)).json()["username"] == "ann"
    assert (await client.get(srv.url("/members/@me"), headers=ann.headers)).status_code == 200
    # A server handed to her stops her in turn, and the recovery code she gave is not
    # spent by the refusal; his tries are spent: 5 in 15 minutes, the right password too.
    handed = await client.post(
        srv.url("/transfer"), headers=owner.headers, json={"owner_id": str(ann.id)}
    )
    assert handed.status_code == 200, handed.text
    refused(await attempt(ann, code=codes[0]), 409, "OWNS_SERVERS")
    status = await client.get("/api/users/@me/two-factor", headers=ann.headers)
    assert status.json()["recovery_codes_left"] == 10
    for _ in range(3):
        refused(await attempt(owner, password="not it either"), 400, "WRONG_PASSWORD")
    limited = await attempt(owner)
    refused(limited, 429, "RATE_LIMITED")
    assert limited.json()["bucket"] == "account.password"
    assert (await client.get("/api/users/@me", headers=owner.headers)).status_code == 200
