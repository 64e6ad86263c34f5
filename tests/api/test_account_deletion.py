"""Deleting one's own account (POST /api/users/@me/delete): what goes, what stays, and
what is refused before and after."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx

from tests import factories
from tests.api.test_mutes import put_mute
from tests.api.test_two_factor import code_at, turn_on
from tests.factories import MakeUser, TestUser
from tests.support import logged_pool
from tests.world import PNG
from xfchat.db.pool import init_connection
from xfchat.db.queries.locks import advisory_key
from xfchat.domain.messages import author_json
from xfchat.domain.messages_batch import SendRequest, SendResult
from xfchat.domain.messages_send import write_batch
from xfchat.domain.retention import prune_rows
from xfchat.settings import Settings

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
    assert (profile["display_name"], profile["avatar_url"]) == (None,) * 2
    assert "status_text" not in profile  # (presence, never in a profile: scrubbed, below)
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
        assert row["status_text"] is None
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


async def until_blocked_by(holder: asyncpg.Connection, pending: asyncio.Future[Any]) -> None:
    """Return once some session waits for a lock `holder` holds; fail if `pending` ends
    first or none does within 10 s (the race under test did not happen)."""
    blocked = (
        "SELECT count(*) FROM pg_stat_activity WHERE pg_backend_pid() = ANY(pg_blocking_pids(pid))"
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if await holder.fetchval(blocked):
            return
        if pending.done():
            raise AssertionError("it ended without waiting for the lock held")
        await asyncio.sleep(0.01)
    raise AssertionError("nothing waited for the lock held within 10 s")


async def until_waiting(holder: asyncpg.Connection, count: int) -> None:
    """Return once `count` sessions wait for locks (the deletion and those behind it)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if await holder.fetchval("SELECT count(*) FROM pg_locks WHERE NOT granted") >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"fewer than {count} waiting")


async def held_rows(settings: Settings, sql: str, *args: object) -> asyncpg.Connection:
    """A connection of its own holding rows locked, as a change under way would."""
    holder = await asyncpg.connect(settings.database_url)
    await init_connection(holder)  # (the app's codecs: a send runs on it)
    await holder.execute("BEGIN")
    await holder.execute(sql, *args)
    return holder


async def test_nothing_puts_an_account_anywhere_while_its_deletion_is_under_way(
    client: httpx.AsyncClient, make_user: MakeUser, settings: Settings, pool: asyncpg.Pool
) -> None:
    """Was: a server created or joined, a group made or joined, a server handed over,
    racing the deletion, checked once and wrote after it committed (a deleted account
    in servers and groups, owning them); and a kick or a removal from a group between
    the deletion's reads and its locks made it answer 404. Now each such write shares
    the account's lock first, and is refused after the deletion; and the deletion
    passes over a place it was taken out of meanwhile."""
    ann, own, ben, cat, dan = [await make_user(n) for n in ("ann", "own", "ben", "cat", "dan")]
    one, two = [await factories.community(client, own, ann, name=n) for n in ("one", "two")]
    first, second = sorted((one, two), key=lambda s: s.id)  # (locked in id order)
    third = await factories.community(client, own, name="three")
    await factories.befriend(ann, ben, cat)
    g1, g2 = sorted([str((await factories.group(client, ben, ann))["id"]) for _ in range(2)])
    empty = (await factories.group(client, ben, cat))["id"]
    # The deletion waits for the first server's lock (taken as a kick would), then for
    # the first group's.
    servers = await held_rows(
        settings, "SELECT 1 FROM servers WHERE id = $1 FOR UPDATE", UUID(first.id)
    )
    groups = await held_rows(settings, "SELECT 1 FROM channels WHERE id = $1 FOR UPDATE", UUID(g1))
    try:
        gone = asyncio.ensure_future(
            client.post(DELETE, headers=ann.headers, json={"password": ann.password})
        )
        await until_blocked_by(servers, gone)
        racing = {
            "creates a server": client.post(
                "/api/servers", headers=ann.headers, json={"name": "x"}
            ),
            "joins a server": client.post(f"/api/invites/{third.invite}", headers=ann.headers),
            "creates a group": client.post(
                "/api/conversations",
                headers=ann.headers,
                json={"kind": "group", "participant_ids": [str(ben.id), str(cat.id)]},
            ),
            "is added to a group": client.put(
                f"/api/conversations/{empty}/participants/{ann.id}", headers=ben.headers
            ),
            "is put in a new group": client.post(
                "/api/conversations",
                headers=cat.headers,
                json={"kind": "group", "participant_ids": [str(ann.id)]},
            ),
            "is handed a server": client.post(
                first.url("/transfer"), headers=own.headers, json={"owner_id": str(ann.id)}
            ),
            "is asked to be a friend": client.post(
                "/api/users/@me/friend-requests", headers=dan.headers, json={"username": "ann"}
            ),
            "is written to": client.post(
                "/api/conversations",
                headers=dan.headers,
                json={"kind": "direct", "user_id": str(ann.id)},
            ),
        }
        answers = {k: asyncio.ensure_future(v) for k, v in racing.items()}
        await until_waiting(servers, 1 + len(answers))
        # Meanwhile she is kicked from the second server: the deletion passes it over.
        kicked = await client.delete(second.url(f"/members/{ann.id}"), headers=own.headers)
        assert kicked.status_code == 204, kicked.text
        await servers.execute("ROLLBACK")
        await until_blocked_by(groups, gone)
        # ... and taken out of the second group.
        removed = await client.delete(
            f"/api/conversations/{g2}/participants/{ann.id}", headers=ben.headers
        )
        assert removed.status_code == 204, removed.text
        await groups.execute("ROLLBACK")
        assert (await gone).status_code == 204, (await gone).text
        for what, answer in answers.items():
            response = await answer
            own_act = what in ("creates a server", "joins a server", "creates a group")
            expected = (401, "SESSION_REVOKED") if own_act else (403, "USER_DELETED")
            assert (response.status_code, response.json()["code"]) == expected, what
    finally:
        await servers.close()
        await groups.close()
    async with pool.acquire() as conn:
        for table, column in (
            ("server_members", "user_id"),
            ("servers", "owner_id"),
            ("conversation_participants p JOIN channels c ON c.id = p.channel_id", "user_id"),
            ("friend_requests", "to_user_id"),
        ):
            where = f"{column} = $1" + (" AND c.kind = 'group'" if " c " in table else "")
            counted = await conn.fetchval(f"SELECT count(*) FROM {table} WHERE {where}", ann.id)  # noqa: S608
            assert counted == 0, table


async def test_nothing_writes_a_deleted_account_back_or_signs_it_in(
    client: httpx.AsyncClient, make_user: MakeUser, settings: Settings, pool: asyncpg.Pool
) -> None:
    """Was: a profile change, a password change or an avatar waiting for the deletion's
    row lock wrote onto the scrubbed row after it (200), a two-factor setup kept an
    authenticator of the deleted account, a login checked before it got a live session,
    and a send into a direct conversation from another device was written after it;
    later, a status (with its text, told to the direct conversation's other side as
    `user.updated`) or a choice of whom to take direct messages from was still written
    onto the scrubbed row (200), and a block of someone new was made by the deleted
    account (204, kept). Now each is refused once the deletion commits."""
    ann, ben = await make_user("ann", display_name="Ann"), await make_user("ben")
    cat = await make_user("cat")
    dm = str((await factories.direct(client, ann, ben))["id"])
    avatar = await client.put("/api/users/@me/avatar", headers=ann.headers, content=PNG)
    assert avatar.status_code == 200, avatar.text
    # The deletion waits to delete her avatar: past every lock of its own, the row's too.
    held = await held_rows(settings, "SELECT 1 FROM media WHERE owner_id = $1 FOR UPDATE", ann.id)
    try:
        gone = asyncio.ensure_future(
            client.post(DELETE, headers=ann.headers, json={"password": ann.password})
        )
        await until_blocked_by(held, gone)
        racing = {
            "profile": client.patch(
                "/api/users/@me",
                headers=ann.headers,
                json={"display_name": "Ann Again", "status_text": "back"},
            ),
            "avatar": client.put("/api/users/@me/avatar", headers=ann.headers, content=PNG),
            "password": client.post(
                "/api/users/@me/password",
                headers=ann.headers,
                json={"current_password": ann.password, "new_password": "a new long passphrase"},
            ),
            "two-factor": client.post(
                "/api/users/@me/two-factor/setup",
                headers=ann.headers,
                json={"password": ann.password},
            ),
            "login": client.post(
                "/api/auth/login", json={"login": "ann", "password": ann.password}
            ),
            "send": factories.send_message(client, ann, dm, "from my phone"),
            "presence": client.put(
                "/api/users/@me/presence",
                headers=ann.headers,
                json={"status": "online", "status_text": "still around"},
            ),
            "privacy": client.put(
                "/api/users/@me/privacy", headers=ann.headers, json={"direct_messages": "friends"}
            ),
            "block": client.put(f"/api/users/@me/blocks/{cat.id}", headers=ann.headers),
        }
        answers = {k: asyncio.ensure_future(v) for k, v in racing.items()}
        await until_waiting(held, 1 + len(answers))
        await held.execute("ROLLBACK")
        assert (await gone).status_code == 204, (await gone).text
        codes = {
            k: ((r := await a).status_code, r.json().get("code") if r.content else None)
            for k, a in answers.items()
        }
    finally:
        await held.close()
    revoked = (401, "SESSION_REVOKED")
    assert codes == {
        "profile": revoked,
        "avatar": revoked,
        "password": revoked,
        "two-factor": revoked,
        "login": (401, "INVALID_CREDENTIALS"),
        "send": (403, "CANNOT_MESSAGE_USER"),
        "presence": revoked,
        "privacy": revoked,
        "block": revoked,
    }
    async with pool.acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM users WHERE id = $1", ann.id)
        assert (row["display_name"], row["status_text"], row["avatar_url"]) == (None,) * 3
        assert (row["status"], row["dm_policy"]) == ("invisible", "everyone")
        assert row["password_hash"] == "!deleted"
        for table, column in (
            ("user_totp", "user_id"),
            ("media", "owner_id"),
            ("messages", "author_id"),
            ("blocks", "blocker_id"),
        ):
            sql = f"SELECT count(*) FROM {table} WHERE {column} = $1"  # noqa: S608
            counted = await conn.fetchval(sql, ann.id)
            assert counted == 0, table
        live = "SELECT count(*) FROM sessions WHERE user_id = $1 AND revoked_at IS NULL"
        assert await conn.fetchval(live, ann.id) == 0


async def test_sends_under_way_from_another_device_and_the_deletion_both_go_through(
    client: httpx.AsyncClient, make_user: MakeUser, settings: Settings, pool: asyncpg.Pool
) -> None:
    """Was: 503 DATABASE_CONFLICT, a deadlock: a send holds its channel's lock, then its
    message's foreign key waits for the author's row, which the deletion held FOR
    UPDATE while it waited for that channel; and a send's message.created waited for a
    conversation's stream the deletion had written to before locking it. Now the
    deletion holds the row FOR NO KEY UPDATE and locks every place before it emits."""
    ann, own, ben = [await make_user(n) for n in ("ann", "own", "ben")]
    srv = await factories.community(client, own, ann)
    dm = UUID(str((await factories.direct(client, ann, ben))["id"]))
    author = author_json(ann.id, ann.username, None, None, False)
    assert author is not None
    senders = []
    try:
        for channel in (dm, UUID(srv.general)):  # each as a send's first statement locks it
            senders.append(
                await held_rows(
                    settings, "SELECT 1 FROM channels WHERE id = $1 FOR KEY SHARE", channel
                )
            )
        gone = asyncio.ensure_future(
            client.post(DELETE, headers=ann.headers, json={"password": ann.password})
        )
        await until_blocked_by(senders[1], gone)  # (a server's channels are locked first)
        for sender, channel in zip(senders, (dm, UUID(srv.general)), strict=True):
            request = SendRequest(ann.actor, author, channel, uuid4(), "still here", False)
            (sent,) = await asyncio.wait_for(write_batch(sender, channel, [request]), 10)
            assert isinstance(sent, SendResult), sent
            await sender.execute("COMMIT")
        assert (await gone).status_code == 204, (await gone).text
    finally:
        for sender in senders:
            await sender.close()
    # The messages stay, and their author shows deleted, as her profile does.
    for channel, reader in ((dm, ben), (UUID(srv.general), own)):
        (message,) = (
            await client.get(f"/api/channels/{channel}/messages", headers=reader.headers)
        ).json()
        assert message["author"]["deleted"] is True, message
        assert message["author"]["username"].startswith("deleted_user_")


async def test_two_factor_login_and_enable_racing_the_deletion_wait_for_it_and_are_refused(
    client: httpx.AsyncClient, make_user: MakeUser, settings: Settings, pool: asyncpg.Pool
) -> None:
    """Was: 503 DATABASE_CONFLICT, a deadlock: the deletion held the sessions' lock and
    waited for the authenticator's row, which the login's two-factor step held while it
    waited for the sessions' lock. And an enable did not wait for the deletion: its
    recovery codes could outlive the account. Now the deletion locks the authenticator
    before the sessions, and an enable shares the account's lock first."""
    ann, ben, cat = [await make_user(n) for n in ("ann", "ben", "cat")]
    _secret, codes = await turn_on(client, ann)
    pending = await client.post(
        "/api/users/@me/two-factor/setup", headers=cat.headers, json={"password": cat.password}
    )
    assert pending.status_code == 200, pending.text
    ticket = (
        await client.post("/api/auth/login", json={"login": "ann", "password": ann.password})
    ).json()["ticket"]
    dms = [UUID(str((await factories.direct(client, u, ben))["id"])) for u in (ann, cat)]
    for user, dm, racing in (
        (ann, dms[0], {"ticket": ticket, "code": codes[1]}),
        (cat, dms[1], {"code": code_at(pending.json()["secret"])}),
    ):
        # (a send under way in its direct conversation holds the deletion there)
        sender = await held_rows(settings, "SELECT 1 FROM channels WHERE id = $1 FOR KEY SHARE", dm)
        try:
            code = codes[0] if user is ann else None
            gone = asyncio.ensure_future(
                client.post(
                    DELETE, headers=user.headers, json={"password": user.password, "code": code}
                )
            )
            await until_blocked_by(sender, gone)
            path = (
                "/api/auth/login/two-factor" if user is ann else "/api/users/@me/two-factor/enable"
            )
            headers = {} if user is ann else user.headers
            answer = asyncio.ensure_future(client.post(path, headers=headers, json=racing))
            await until_waiting(sender, 2)
            await sender.execute("ROLLBACK")
            assert (await gone).status_code == 204, (await gone).text
            if user is ann:
                refused(await answer, 401, "INVALID_TICKET")
            else:
                refused(await answer, 401, "SESSION_REVOKED")
        finally:
            await sender.close()
    async with pool.acquire() as conn:
        for left in (
            "SELECT count(*) FROM user_totp WHERE user_id = ANY($1::uuid[])",
            "SELECT count(*) FROM recovery_codes WHERE user_id = ANY($1::uuid[])",
        ):
            assert await conn.fetchval(left, [ann.id, cat.id]) == 0, left


async def test_a_refresh_under_way_and_the_deletion_both_go_through(
    client: httpx.AsyncClient, make_user: MakeUser, settings: Settings
) -> None:
    """Was: 503 DATABASE_CONFLICT, a deadlock: the deletion revoked the sessions' rows,
    then waited for a refresh token's row, which a refresh held while it waited for its
    session's row. Now the deletion locks the tokens' rows first, as a refresh does."""
    ann = await make_user("ann")
    # (a second tab refreshing the same token at that moment holds its row)
    tab = await held_rows(
        settings,
        "SELECT 1 FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id"
        " WHERE s.user_id = $1 FOR UPDATE OF t",
        ann.id,
    )
    try:
        refresh = asyncio.ensure_future(
            client.post("/api/auth/refresh", json={"refresh_token": ann.refresh_token})
        )
        await until_blocked_by(tab, refresh)
        gone = asyncio.ensure_future(
            client.post(DELETE, headers=ann.headers, json={"password": ann.password})
        )
        await until_waiting(tab, 2)
        await tab.execute("ROLLBACK")
        assert (await refresh).status_code == 200, (await refresh).text
        assert (await gone).status_code == 204, (await gone).text
    finally:
        await tab.close()
    again = await client.post("/api/auth/refresh", json={"refresh_token": ann.refresh_token})
    assert again.status_code == 401, again.text


async def test_a_read_position_written_behind_the_deletion_is_refused_and_swept(
    client: httpx.AsyncClient, make_user: MakeUser, settings: Settings, pool: asyncpg.Pool
) -> None:
    """Was: another session's acknowledgement in a direct conversation, queued behind
    the deletion on its row, wrote a read position and read_state.updated for the
    deleted account after it committed (it stays a participant, and acknowledging needs
    only to see). Now a write judged under its channel's lock refuses a deleted actor
    (401 SESSION_REVOKED); and the retention job deletes such rows should one slip by."""
    ann, ben = await make_user("ann"), await make_user("ben")
    dm = UUID(str((await factories.direct(client, ann, ben))["id"]))
    await factories.say(client, ben, str(dm), "hello")
    login = await client.post("/api/auth/login", json={"login": "ann", "password": ann.password})
    phone = {"Authorization": f"Bearer {login.json()['access_token']}"}
    # (a change of who may see it, a block say, under way holds its row)
    sender = await held_rows(settings, "SELECT 1 FROM channels WHERE id = $1 FOR UPDATE", dm)
    try:
        gone = asyncio.ensure_future(
            client.post(DELETE, headers=ann.headers, json={"password": ann.password})
        )
        await until_blocked_by(sender, gone)
        ack = asyncio.ensure_future(
            client.put(f"/api/channels/{dm}/ack", headers=phone, json={"seq": 1})
        )
        await until_waiting(sender, 2)
        await sender.execute("ROLLBACK")
        assert (await gone).status_code == 204, (await gone).text
        refused(await ack, 401, "SESSION_REVOKED")
    finally:
        await sender.close()
    async with pool.acquire() as conn:
        mine = "SELECT count(*) FROM read_states WHERE user_id = $1"
        assert await conn.fetchval(mine, ann.id) == 0
        # The backstop: rows naming a deleted account, however written, are swept.
        await conn.execute(
            "INSERT INTO read_states (user_id, channel_id, last_read_seq) VALUES ($1, $2, 1)",
            ann.id,
            dm,
        )
        await conn.execute(
            "INSERT INTO recovery_codes (user_id, code_hash) VALUES ($1, sha256('x'))", ann.id
        )
    removed = await prune_rows(pool, settings)
    assert removed["deleted_accounts"] == 2
    async with pool.acquire() as conn:
        assert await conn.fetchval(mine, ann.id) == 0
        codes = "SELECT count(*) FROM recovery_codes WHERE user_id = $1"
        assert await conn.fetchval(codes, ann.id) == 0


GROUPS = """
WITH made AS (
    INSERT INTO channels (kind, name, owner_id)
    SELECT 'group', 'g' || i, $1::uuid FROM generate_series(1, $3::int) i RETURNING id
)
INSERT INTO conversation_participants (channel_id, user_id, joined_at)
SELECT made.id, p.user_id, now() - make_interval(secs => p.n)
FROM made, unnest($2::uuid[]) WITH ORDINALITY AS p(user_id, n)
"""


async def statements_of_deletions(
    client: httpx.AsyncClient, app: Any, db_url: str, leavers: list[TestUser]
) -> list[int]:
    """The statements each one's deletion sends, one after the other (the first pays
    the pool's first use: it reads types)."""
    own_pool = app.state.pool
    counted: list[int] = []
    async with logged_pool(db_url, size=4) as (logged, seen):
        app.state.pool = logged
        try:
            for leaver in leavers:
                seen.take()
                gone = await client.post(
                    DELETE, headers=leaver.headers, json={"password": leaver.password}
                )
                assert gone.status_code == 204, gone.text
                counted.append(len(seen.take()))
        finally:
            app.state.pool = own_pool
    return counted


async def test_an_account_leaves_its_groups_in_as_many_statements_for_three_as_for_thirty(
    client: httpx.AsyncClient, make_user: MakeUser, app: Any, db_url: str, pool: asyncpg.Pool
) -> None:
    """Was: the deletion left its groups one at a time, about ten statements each, every
    group's row held meanwhile: 4.9 s for 1,000 (`bench.deletion`), others' sends there
    waiting as long. Now all at once: the same statements for three groups as for thirty,
    of every kind (owned and handed to the longest-standing participant, another's, its
    own alone, muted), each left as a participant's leaving leaves it."""
    names = ("ben", "cat", "warm", "few", "many")
    ben, cat, warm, few, many_ = [await make_user(n) for n in names]
    async with pool.acquire() as conn:
        # (each group's participants joined in the order listed, its owner first)
        for leaver, times in ((warm, 1), (few, 1), (many_, 10)):
            for owner, people in (
                (leaver.id, [leaver.id, cat.id, ben.id]),  # handed to cat
                (ben.id, [ben.id, leaver.id, cat.id]),
                (leaver.id, [leaver.id]),  # deleted with it
            ):
                await conn.execute(GROUPS, owner, people[::-1], times)
    for leaver in (warm, few, many_):  # (each one's first group muted)
        async with pool.acquire() as conn:
            muted = await conn.fetchval(
                "SELECT min(channel_id::text) FROM conversation_participants WHERE user_id = $1",
                leaver.id,
            )
        muting = await put_mute(client, leaver, "channel", muted)
        assert muting.status_code == 200, muting.text
    async with pool.acquire() as conn:
        groups = {
            r["channel_id"]: r["owner_id"]
            for r in await conn.fetch(
                "SELECT channel_id, owner_id FROM conversation_participants"
                " JOIN channels ON id = channel_id WHERE user_id = $1",
                many_.id,
            )
        }
    assert len(groups) == 30
    counted = await statements_of_deletions(client, app, db_url, [warm, few, many_])
    assert counted[1] == counted[2], counted
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT c.id, c.owner_id, array_agg(p.user_id ORDER BY p.joined_at) AS people"
            " FROM channels c JOIN conversation_participants p ON p.channel_id = c.id"
            " WHERE c.id = ANY($1::uuid[]) GROUP BY c.id",
            list(groups),
        )
        left = {r["id"]: (r["owner_id"], r["people"]) for r in rows}
        for group, owner in groups.items():
            if owner == many_.id and group not in left:  # (its own alone: deleted)
                continue
            expected = [cat.id, ben.id] if owner == many_.id else [ben.id, cat.id]
            assert left[group] == (expected[0] if owner == many_.id else ben.id, expected)
        assert len(left) == 20
        events = await conn.fetch(
            "SELECT s.entity_id, e.type, e.data FROM events e JOIN event_streams s"
            " ON s.id = e.stream_id WHERE s.entity_id = ANY($1::uuid[]) ORDER BY s.entity_id, e.pos",
            list(left),
        )
        by_group: dict[UUID, list[tuple[str, Any]]] = {}
        for e in events:
            by_group.setdefault(e["entity_id"], []).append((e["type"], e["data"]))
        for group, (owner, _) in left.items():
            told = [t for t, _ in by_group[group]][-2:]
            if owner == cat.id:
                assert told == ["participant.removed", "conversation.updated"], group
                updated = by_group[group][-1][1]
                assert updated["owner_id"] == str(cat.id)
                assert updated["participant_ids"] == [str(cat.id), str(ben.id)]
            else:
                assert told[-1] == "participant.removed", group
        assert not await conn.fetchval("SELECT count(*) FROM mutes WHERE user_id = $1", many_.id)
        removed = await conn.fetchval(
            "SELECT count(*) FROM events e JOIN event_streams s ON s.id = e.stream_id"
            " WHERE s.entity_id = $1 AND e.type = 'conversation.removed'",
            many_.id,
        )
        assert removed == 30


async def test_an_account_leaves_its_servers_in_as_many_statements_for_one_as_for_ten(
    client: httpx.AsyncClient, make_user: MakeUser, app: Any, db_url: str, pool: asyncpg.Pool
) -> None:
    """Was: the deletion left its servers one at a time, seventeen or eighteen statements
    each, every channel of theirs locked meanwhile (200 servers: 1.3 s of the deletion's
    1.7-1.9 s with 1,000 groups, `bench.deletion`). Now all at once: the same statements
    for one server as for ten, its own overrides on a category in each (the channels
    following it are found among those read, where a helper session's attack found one
    more read a server), each left as leaving leaves it, its own overrides (and the
    denies lingering in a server it had left) gone with it."""
    names = ("ben", "warm", "few", "many")
    ben, warm, few, many_ = [await make_user(n) for n in names]
    joined: dict[UUID, list[Any]] = {}
    kids: list[str] = []
    shown: dict[str, set[str]] = {}  # a server's id: the channels the leaver saw
    for leaver, times in ((warm, 1), (few, 1), (many_, 10)):
        joined[leaver.id] = [await factories.community(client, ben, leaver) for _ in range(times)]
        for srv in joined[leaver.id]:  # (a category of its own override, a channel synced)
            cat = await factories.server_channel(client, srv, ben, "cat", kind="category")
            kid = await factories.server_channel(client, srv, ben, "kid", parent_id=cat["id"])
            kids.append(kid["id"])
            shown[srv.id] = {srv.general, cat["id"], kid["id"]}
            set_ = await factories.override(client, ben, cat["id"], "member", leaver.id, 1, 2)
            assert set_.status_code == 200, set_.text
        first = joined[leaver.id][0]
        set_ = await factories.override(client, ben, first.general, "member", leaver.id, 1024, 2048)
        assert set_.status_code == 200, set_.text
        # A server it left with a deny of its own lingering for its rejoin.
        gone_from = await factories.community(client, ben, leaver, name="left")
        denied = await factories.override(
            client, ben, gone_from.general, "member", leaver.id, 0, 2048
        )
        assert denied.status_code == 200, denied.text
        out = await client.delete(gone_from.url("/members/@me"), headers=leaver.headers)
        assert out.status_code == 204, out.text
        joined[leaver.id].append(gone_from)
    counted = await statements_of_deletions(client, app, db_url, [warm, few, many_])
    assert counted[1] == counted[2], counted
    servers = joined[many_.id]
    async with pool.acquire() as conn:
        for table in ("server_members", "channel_permission_overrides"):
            left = await conn.fetchval(f"SELECT count(*) FROM {table} WHERE user_id = $1", many_.id)  # noqa: S608
            assert left == 0, table
        events = await conn.fetch(
            "SELECT s.entity_id, e.type, e.data FROM events e JOIN event_streams s"
            " ON s.id = e.stream_id WHERE s.entity_id = ANY($1::uuid[]) ORDER BY s.entity_id, e.pos",
            [UUID(s.id) for s in servers] + [UUID(s.general) for s in servers] + [many_.id],
        )
    told: dict[str, list[tuple[str, Any]]] = {}
    for e in events:
        told.setdefault(str(e["entity_id"]), []).append((e["type"], e["data"]))
    # (the last server's `server.left` came when it left, before)
    left_events = [d for t, d in told[str(many_.id)] if t == "server.left"][1:]
    assert sorted(d["id"] for d in left_events) == sorted(s.id for s in servers[:-1])
    for left_event in left_events:
        assert left_event["reason"] == "left"
        assert set(left_event["channel_ids"]) == shown[left_event["id"]]
    for srv in servers[:-1]:
        assert told[srv.id][-1] == (
            "member.removed",
            {"server_id": srv.id, "user_id": str(many_.id), "reason": "left"},
        )
    # (its overrides' channels, the one it had left too, shown without them)
    for srv in (servers[0], servers[-1]):
        kind, channel = told[srv.general][-1]
        assert kind == "channel.updated", srv.general
        assert channel["overrides"] == [], channel
    async with pool.acquire() as conn:  # (and those following its categories)
        for kid in kids[-10:]:
            kind, channel = (await stream_of(conn, UUID(kid)))[-1]
            assert kind == "channel.updated", kid
            assert channel["category_overrides"] == [], channel


async def stream_of(conn: asyncpg.Connection, channel_id: UUID) -> list[tuple[str, Any]]:
    """The channel's events in the log: (type, data) each, in order."""
    rows = await conn.fetch(
        "SELECT e.type, e.data FROM events e JOIN event_streams s ON s.id = e.stream_id"
        " WHERE s.kind = 'channel' AND s.entity_id = $1 ORDER BY e.pos",
        channel_id,
    )
    return [(r["type"], r["data"]) for r in rows]


async def test_a_group_left_while_the_deletion_waited_is_not_told_its_profile(
    client: httpx.AsyncClient, make_user: MakeUser, settings: Settings, pool: asyncpg.Pool
) -> None:
    """Was (found by an attack on the groups left at once): the deletion read its groups
    before their locks and told each the scrubbed profile (`user.updated`), one it was
    removed from meanwhile, or one that ended meanwhile, too. Now it reads them again
    under the locks."""
    ann, ben = await make_user("ann"), await make_user("ben")
    await factories.befriend(ann, ben)
    g1, g2, g3 = sorted([str((await factories.group(client, ben, ann))["id"]) for _ in range(3)])
    holder = await held_rows(settings, "SELECT 1 FROM channels WHERE id = $1 FOR UPDATE", UUID(g1))
    try:
        gone = asyncio.ensure_future(
            client.post(DELETE, headers=ann.headers, json={"password": ann.password})
        )
        await until_blocked_by(holder, gone)
        # Meanwhile ann is removed from g2, and g3 ends (ben removes her, then leaves).
        for group, who in ((g2, ann), (g3, ann), (g3, ben)):
            removed = await client.delete(
                f"/api/conversations/{group}/participants/{who.id}", headers=ben.headers
            )
            assert removed.status_code == 204, removed.text
        await holder.execute("ROLLBACK")
        assert (await gone).status_code == 204, (await gone).text
    finally:
        await holder.close()
    async with pool.acquire() as conn:
        for group in (g2, g3):
            told = [t for t, _ in await stream_of(conn, UUID(group))]
            assert "user.updated" not in told[told.index("participant.removed") :], told
        assert "user.updated" in [t for t, _ in await stream_of(conn, UUID(g1))]  # (hers then)


async def test_delete_account_tells_each_stream_each_change_once(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    """Was: a synced channel with the account's own override, in a category with one of
    its own too, was told `channel.updated` twice by the deletion (once as a channel
    whose overrides changed, once as a follower of a category whose overrides changed:
    two identical events in the one append). Now every stream the deletion writes to
    gets each change once: the account in a server (with those overrides), a group and
    a direct conversation, with two friends."""
    ann, ben, cat, dan = [await make_user(n) for n in ("ann", "ben", "cat", "dan")]
    srv = await factories.community(client, ben, ann, cat)
    category = await factories.server_channel(client, srv, ben, "cat", kind="category")
    kid = await factories.server_channel(client, srv, ben, "kid", parent_id=category["id"])
    for channel in (category["id"], kid["id"]):  # (kid follows the category: synced)
        set_ = await factories.override(client, ben, channel, "member", ann.id, 1024, 2048)
        assert set_.status_code == 200, set_.text
    crew = await factories.group(client, ben, ann, cat)  # (befriends ben and ann)
    await factories.befriend(ann, dan)
    dm = await factories.direct(client, ben, ann)
    async with pool.acquire() as conn:
        before = await conn.fetchval("SELECT g FROM event_clock")
    gone = await client.post(DELETE, headers=ann.headers, json={"password": ann.password})
    assert gone.status_code == 204, gone.text
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT s.entity_id, e.type, e.data FROM event_commits c"
            " JOIN event_streams s ON s.id = c.stream_id JOIN events e ON e.stream_id = s.id"
            " AND e.pos BETWEEN c.first_pos AND c.last_pos WHERE c.g > $1 ORDER BY c.g, e.pos",
            before,
        )
    told: dict[str, list[tuple[str, str]]] = {}
    for r in rows:
        told.setdefault(str(r["entity_id"]), []).append((r["type"], json.dumps(r["data"])))
    for stream, events in told.items():
        assert len(events) == len(set(events)), (stream, events)
    kinds = {stream: [t for t, _ in events] for stream, events in told.items()}
    assert kinds == {
        str(ann.id): ["session.revoked", "user.updated", "server.left", "conversation.removed"],
        srv.id: ["user.updated", "member.removed"],
        str(crew["id"]): ["user.updated", "participant.removed"],
        str(dm["id"]): ["user.updated"],
        category["id"]: ["channel.updated"],
        kid["id"]: ["channel.updated"],
        str(ben.id): ["friend.removed"],
        str(dan.id): ["friend.removed"],
    }


async def test_a_status_waiting_while_the_account_is_deleted_is_refused(
    client: httpx.AsyncClient, make_user: MakeUser, settings: Settings
) -> None:
    """A status chosen from another device (`invisible`, its custom status cleared) that
    waited for the presence lock while the account was deleted found the scrubbed row
    (invisible, no custom status) as asked and answered 200 with it, where the README
    has a status change waiting for a deletion refused (401 SESSION_REVOKED); now it is
    refused, as any other change of status is."""
    ann = await make_user("ann")
    key = advisory_key(b"presence", ann.id)
    held = await held_rows(settings, "SELECT pg_advisory_xact_lock($1)", key)
    try:
        chosen = asyncio.ensure_future(
            client.put(
                "/api/users/@me/presence",
                headers=ann.headers,
                json={"status": "invisible", "status_text": None},
            )
        )
        await until_blocked_by(held, chosen)
        gone = await client.post(DELETE, headers=ann.headers, json={"password": ann.password})
        assert gone.status_code == 204, gone.text
        await held.execute("ROLLBACK")
        answer = await chosen
    finally:
        await held.close()
    assert (answer.status_code, answer.json().get("code")) == (401, "SESSION_REVOKED"), answer.text
