"""Incoming webhooks: who manages them, their token, executing one, its message
everywhere it is shown, and the limits."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import httpx
import pytest

from tests import factories
from tests.factories import Community, MakeUser, TestUser, community, override, role
from xfchat.domain import webhooks
from xfchat.domain.permissions import Permission as P

AppWith = Callable[..., Awaitable[httpx.AsyncClient]]


async def _make(
    client: httpx.AsyncClient, who: TestUser, channel: str, name: str = "CI", **extra: Any
) -> dict[str, Any]:
    made = await client.post(
        f"/api/channels/{channel}/webhooks", headers=who.headers, json={"name": name, **extra}
    )
    assert made.status_code == 201, made.text
    return dict(made.json())


async def _post(client: httpx.AsyncClient, hook: dict[str, Any], **body: Any) -> httpx.Response:
    return await client.post(f"/api/webhooks/{hook['id']}/{hook['token']}", json=body)


async def _setup(
    client: httpx.AsyncClient, make_user: MakeUser
) -> tuple[Community, TestUser, TestUser, TestUser]:
    ann, mod, ben = [await make_user(n) for n in ("ann", "mod", "ben")]
    srv = await community(client, ann, mod, ben)
    await role(client, srv, ann, "hooks", int(P.MANAGE_WEBHOOKS), mod)
    return srv, ann, mod, ben


async def test_managing_webhooks_needs_manage_webhooks_in_the_channel(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    srv, ann, mod, ben = await _setup(client, make_user)
    url = f"/api/channels/{srv.general}/webhooks"
    refused = await client.post(url, headers=ben.headers, json={"name": "CI"})
    assert refused.status_code == 403 and refused.json()["code"] == "MISSING_PERMISSIONS"
    assert (await client.get(url, headers=ben.headers)).status_code == 403
    hook = await _make(client, mod, srv.general)
    assert (await client.get(url, headers=mod.headers)).json()[0]["id"] == hook["id"]
    # An override denying it in the channel takes it away there.
    denied = await override(client, ann, srv.general, "member", mod.id, deny=int(P.MANAGE_WEBHOOKS))
    assert denied.status_code in (200, 204), denied.text
    again = await client.post(url, headers=mod.headers, json={"name": "CI"})
    assert again.status_code == 403 and again.json()["code"] == "MISSING_PERMISSIONS"
    patched = await client.patch(
        f"/api/webhooks/{hook['id']}", headers=mod.headers, json={"name": "x"}
    )
    assert patched.status_code == 403
    assert (await client.get(srv.url("/webhooks"), headers=mod.headers)).json() == []
    assert [
        h["id"] for h in (await client.get(srv.url("/webhooks"), headers=ann.headers)).json()
    ] == [hook["id"]]
    # A channel hidden from you: 404, as elsewhere (its webhooks too).
    secret = (await factories.server_channel(client, srv, ann, "secret"))["id"]
    hidden = await override(
        client, ann, secret, "role", srv.everyone_role, deny=int(P.VIEW_CHANNEL)
    )
    assert hidden.status_code in (200, 204), hidden.text
    in_secret = await _make(client, ann, secret)
    gone = await client.post(
        f"/api/channels/{secret}/webhooks", headers=ben.headers, json={"name": "CI"}
    )
    assert gone.status_code == 404 and gone.json()["code"] == "CHANNEL_NOT_FOUND"
    nothing = await client.delete(f"/api/webhooks/{in_secret['id']}", headers=ben.headers)
    assert nothing.status_code == 404 and nothing.json()["code"] == "WEBHOOK_NOT_FOUND"
    stranger = await make_user("zed")
    assert (await client.get(srv.url("/webhooks"), headers=stranger.headers)).status_code == 404
    # Not a text channel: a clear 400.
    voice = (await factories.server_channel(client, srv, ann, "talk", kind="voice"))["id"]
    not_text = await client.post(
        f"/api/channels/{voice}/webhooks", headers=ann.headers, json={"name": "CI"}
    )
    assert not_text.status_code == 400 and not_text.json()["code"] == "WEBHOOK_CHANNEL_NOT_TEXT"
    dm = await factories.direct(client, ann, ben)
    in_dm = await client.post(
        f"/api/channels/{dm['id']}/webhooks", headers=ann.headers, json={"name": "CI"}
    )
    assert in_dm.status_code == 400 and in_dm.json()["code"] == "WEBHOOK_CHANNEL_NOT_TEXT"
    bad = await client.post(url, headers=ann.headers, json={"name": "x" * 81})
    assert bad.status_code == 400 and bad.json()["code"] == "INVALID_WEBHOOK_NAME"
    # Each change is in the audit log.
    async with pool.acquire() as conn:
        actions = await conn.fetch(
            "SELECT action, diff FROM audit_log WHERE server_id = $1 AND action LIKE 'webhook.%'"
            " ORDER BY created_at",
            uuid.UUID(srv.id),
        )
    assert [a["action"] for a in actions] == ["webhook.created", "webhook.created"]
    renamed = await client.patch(
        f"/api/webhooks/{hook['id']}", headers=ann.headers, json={"name": "Builds"}
    )
    assert renamed.status_code == 200 and renamed.json()["name"] == "Builds"
    async with pool.acquire() as conn:
        diff = await conn.fetchval(
            "SELECT diff FROM audit_log WHERE action = 'webhook.updated' AND target_id = $1",
            uuid.UUID(hook["id"]),
        )
    assert "Builds" in str(diff) and "CI" in str(diff)


async def test_token_shown_once_stored_hashed_and_regenerating_it_stops_the_old(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    srv, _ann, mod, _ben = await _setup(client, make_user)
    hook = await _make(client, mod, srv.general)
    assert len(hook["token"]) >= 43 and hook["url"].endswith(
        f"/api/webhooks/{hook['id']}/{hook['token']}"
    )
    listed = (await client.get(f"/api/channels/{srv.general}/webhooks", headers=mod.headers)).json()
    assert "token" not in listed[0] and "url" not in listed[0]
    async with pool.acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM webhooks WHERE id = $1", uuid.UUID(hook["id"]))
    assert hook["token"].encode() not in bytes(row["token_hash"])
    assert hook["token"] not in str(dict(row))
    assert bytes(row["token_hash"]) != hashlib.sha256(b"").digest()
    assert (await _post(client, hook, content="one")).status_code == 201
    fresh = await client.post(f"/api/webhooks/{hook['id']}/token", headers=mod.headers)
    assert fresh.status_code == 200 and fresh.json()["token"] != hook["token"]
    old = await _post(client, hook, content="two")
    assert old.status_code == 404 and old.json()["code"] == "WEBHOOK_NOT_FOUND"
    assert (
        await _post(client, {**hook, "token": fresh.json()["token"]}, content="3")
    ).status_code == 201


async def test_a_wrong_token_is_the_same_404_as_an_unknown_webhook(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    srv, _ann, mod, ben = await _setup(client, make_user)
    hook = await _make(client, mod, srv.general)
    wrong = await _post(client, {**hook, "token": hook["token"][:-1] + "A"}, content="x")
    unknown = await _post(client, {**hook, "id": str(uuid.uuid4())}, content="x")
    garbage = await _post(client, {**hook, "id": "not-an-id"}, content="x")
    assert wrong.status_code == unknown.status_code == garbage.status_code == 404
    assert wrong.json() == unknown.json() == garbage.json()
    history = await client.get(f"/api/channels/{srv.general}/messages", headers=ben.headers)
    assert history.json() == []


async def test_a_webhook_message_shows_the_webhook_as_its_author_everywhere(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    srv, ann, mod, ben = await _setup(client, make_user)
    hook = await _make(client, mod, srv.general, avatar_url="https://ci.example/a.png")
    posted = await _post(
        client, hook, content=f"build failed <@{ben.id}> needle", username="Nightly"
    )
    assert posted.status_code == 201, posted.text
    message = posted.json()
    author = {
        "id": hook["id"],
        "username": "Nightly",
        "display_name": "Nightly",
        "avatar_url": "https://ci.example/a.png",
        "deleted": False,
        "bot": True,
    }
    assert message["author"] == author and message["webhook_id"] == hook["id"]
    assert message["mentions"] == [str(ben.id)] and message["seq"] == 1
    # Unread counts: it counts for everyone (no author), its mention for ben.
    for who, counts in ((ben, (1, 1)), (ann, (1, 0))):
        state = (await client.get("/api/users/@me/state", headers=who.headers)).json()
        reads = {
            r["channel_id"]: (r["unread"], r["mention_count"])
            for s in state["servers"]
            for r in s["read_states"]
        }
        assert reads[srv.general] == counts
    url = f"/api/channels/{srv.general}/messages"
    one = (await client.get(f"{url}/{message['id']}", headers=ben.headers)).json()
    history = (await client.get(url, headers=ben.headers)).json()
    assert one["author"] == history[0]["author"] == author
    assert one["webhook_id"] == history[0]["webhook_id"] == hook["id"]
    # A reply to it previews it with the same author.
    reply = await factories.say(client, ben, srv.general, "on it", reply_to_id=message["id"])
    assert reply["reply_to"]["author"] == author and reply["webhook_id"] is None
    replies = (await client.get(f"{url}/{reply['id']}", headers=ann.headers)).json()
    assert replies["reply_to"]["author"] == author
    # Pins, search hits and "my mentions".
    assert (
        await client.put(f"/api/channels/{srv.general}/pins/{message['id']}", headers=ann.headers)
    ).status_code == 204
    pins = (await client.get(f"/api/channels/{srv.general}/pins", headers=ben.headers)).json()
    assert pins[0]["author"] == author
    found = (await client.get("/api/search", params={"q": "needle"}, headers=ben.headers)).json()
    assert [r["message"]["author"] for r in found["results"]] == [author]
    mine = (await client.get("/api/users/@me/mentions", headers=ben.headers)).json()
    assert [m["author"] for m in mine] == [author]
    # Its event says so too.
    async with pool.acquire() as conn:
        events = await factories.events_of(conn, "channel", uuid.UUID(srv.general))
    created = [d for t, d in events if t == "message.created" and d["id"] == message["id"]]
    assert created[0]["author"] == author and created[0]["webhook_id"] == hook["id"]
    # Deleting the webhook keeps its messages as they are, with their name, avatar and
    # the webhook's id: not one of them rewritten (was: a foreign key ON DELETE SET NULL
    # rewrote every message the webhook posted, up to 43,200 a day, in the deletion's
    # transaction, and a channel's deletion did the same past the purge's pacing).
    read_xmin = "SELECT xmin::text FROM messages WHERE id = $1"
    async with pool.acquire() as conn:
        before = await conn.fetchval(read_xmin, uuid.UUID(message["id"]))
    assert (
        await client.delete(f"/api/webhooks/{hook['id']}", headers=mod.headers)
    ).status_code == 204
    async with pool.acquire() as conn:
        assert await conn.fetchval(read_xmin, uuid.UUID(message["id"])) == before
    kept = (await client.get(f"{url}/{message['id']}", headers=ben.headers)).json()
    assert kept["author"] == author and kept["webhook_id"] == hook["id"]


async def test_nobody_edits_a_webhook_message_and_managers_delete_it(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    srv, ann, mod, ben = await _setup(client, make_user)
    hook = await _make(client, mod, srv.general)
    message = (await _post(client, hook, content="deploy ok")).json()
    url = f"/api/channels/{srv.general}/messages/{message['id']}"
    for who in (ann, mod, ben):
        edit = await client.patch(url, headers=who.headers, json={"content": "changed"})
        assert edit.status_code == 403 and edit.json()["code"] == "WEBHOOK_MESSAGE"
    assert (await client.delete(url, headers=ben.headers)).status_code == 403
    assert (await client.delete(url, headers=ann.headers)).status_code == 204


async def test_a_webhook_never_pings_everyone(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    srv, ann, _mod, ben = await _setup(client, make_user)
    hook = await _make(client, ann, srv.general)
    loud = (await _post(client, hook, content="@everyone @here deploy")).json()
    assert loud["mention_everyone"] is False
    mine = (await client.get("/api/users/@me/mentions", headers=ben.headers)).json()
    assert mine == []


async def test_execute_is_rate_limited_per_webhook_and_per_address(
    client: httpx.AsyncClient, make_user: MakeUser, app_with: AppWith
) -> None:
    srv, _ann, mod, ben = await _setup(client, make_user)
    hook = await _make(client, mod, srv.general)
    other = await _make(client, mod, srv.general, name="Other")
    limited = await app_with("203.0.113.9", rate_webhook="2/60", rate_webhook_ip="100/60")
    assert (await _post(limited, hook, content="1")).status_code == 201
    assert (await _post(limited, hook, content="2")).status_code == 201
    third = await _post(limited, hook, content="3")
    assert third.status_code == 429 and int(third.headers["retry-after"]) > 0
    # (another webhook has its own budget)
    assert (await _post(limited, other, content="4")).status_code == 201
    by_address = await app_with("203.0.113.10", rate_webhook="100/60", rate_webhook_ip="1/60")
    assert (await _post(by_address, other, content="5")).status_code == 201
    wrong = await _post(by_address, {**other, "token": "x"}, content="6")
    assert wrong.status_code == 429 and int(wrong.headers["retry-after"]) > 0
    history = (
        await client.get(f"/api/channels/{srv.general}/messages", headers=ben.headers)
    ).json()
    assert sorted(m["content"] for m in history) == ["1", "2", "4", "5"]
    assert sorted(m["seq"] for m in history) == [1, 2, 3, 4]


async def test_webhooks_per_channel_are_limited_and_go_with_their_channel(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    srv, ann, mod, _ben = await _setup(client, make_user)
    room = (await factories.server_channel(client, srv, ann, "builds"))["id"]
    hooks = [await _make(client, mod, room, name=f"h{i}") for i in range(15)]
    full = await client.post(
        f"/api/channels/{room}/webhooks", headers=mod.headers, json={"name": "one more"}
    )
    assert full.status_code == 403 and full.json()["code"] == "TOO_MANY_WEBHOOKS"
    assert (await _post(client, hooks[0], content="hi")).status_code == 201
    gone = await client.delete(f"/api/channels/{room}", headers=ann.headers)
    assert gone.status_code == 204, gone.text
    async with pool.acquire() as conn:
        left = await conn.fetchval(
            "SELECT count(*) FROM webhooks WHERE channel_id = $1", uuid.UUID(room)
        )
    assert left == 0
    after = await _post(client, hooks[0], content="again")
    assert after.status_code == 404 and after.json()["code"] == "WEBHOOK_NOT_FOUND"


async def test_a_server_holds_at_most_its_limit_of_webhooks(
    client: httpx.AsyncClient, make_user: MakeUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    srv, ann, _mod, _ben = await _setup(client, make_user)
    room = (await factories.server_channel(client, srv, ann, "builds"))["id"]
    monkeypatch.setattr(webhooks, "MAX_PER_SERVER", 2)
    await _make(client, ann, srv.general)
    await _make(client, ann, room)
    full = await client.post(
        f"/api/channels/{room}/webhooks", headers=ann.headers, json={"name": "third"}
    )
    assert full.status_code == 403 and full.json()["code"] == "TOO_MANY_WEBHOOKS"


async def test_a_full_server_still_moves_a_webhook_between_its_channels(
    client: httpx.AsyncClient, make_user: MakeUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Was: a move counted the server's webhooks as for a new one, the moved one among
    them, and a server at its limit refused it (403 TOO_MANY_WEBHOOKS), though a move
    leaves the server's count as it was. The target channel's own limit still holds."""
    srv, ann, _mod, _ben = await _setup(client, make_user)
    room = (await factories.server_channel(client, srv, ann, "builds"))["id"]
    monkeypatch.setattr(webhooks, "MAX_PER_SERVER", 2)
    hook = await _make(client, ann, srv.general)
    await _make(client, ann, srv.general)
    url = f"/api/webhooks/{hook['id']}"
    moved = await client.patch(url, headers=ann.headers, json={"channel_id": room})
    assert moved.status_code == 200, moved.text
    assert moved.json()["channel_id"] == room
    monkeypatch.setattr(webhooks, "MAX_PER_CHANNEL", 1)
    back = await client.patch(url, headers=ann.headers, json={"channel_id": srv.general})
    assert back.status_code == 403 and back.json()["code"] == "TOO_MANY_WEBHOOKS"


async def test_moving_a_webhook_needs_manage_webhooks_in_both_channels(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    srv, ann, mod, _ben = await _setup(client, make_user)
    room = (await factories.server_channel(client, srv, ann, "builds"))["id"]
    denied = await override(client, ann, room, "member", mod.id, deny=int(P.MANAGE_WEBHOOKS))
    assert denied.status_code in (200, 204), denied.text
    hook = await _make(client, mod, srv.general)
    url = f"/api/webhooks/{hook['id']}"
    refused = await client.patch(url, headers=mod.headers, json={"channel_id": room})
    assert refused.status_code == 403 and refused.json()["code"] == "MISSING_PERMISSIONS"
    moved = await client.patch(url, headers=ann.headers, json={"channel_id": room})
    assert moved.status_code == 200 and moved.json()["channel_id"] == room
    posted = (await _post(client, hook, content="now here")).json()
    assert posted["channel_id"] == room
    async with pool.acquire() as conn:
        diff = await conn.fetchval(
            "SELECT diff FROM audit_log WHERE action = 'webhook.updated' AND target_id = $1",
            uuid.UUID(hook["id"]),
        )
    assert srv.general in str(diff) and room in str(diff)
    # (nor can mod touch it any more: it is in a channel where they lack the permission)
    gone = await client.delete(url, headers=mod.headers)
    assert gone.status_code == 403


async def test_the_audit_log_shows_webhook_entries_but_not_of_hidden_channels(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    srv, ann, _mod, ben = await _setup(client, make_user)
    await role(client, srv, ann, "auditors", int(P.VIEW_AUDIT_LOG), ben)
    secret = (await factories.server_channel(client, srv, ann, "secret"))["id"]
    hidden = await override(client, ann, secret, "member", ben.id, deny=int(P.VIEW_CHANNEL))
    assert hidden.status_code in (200, 204), hidden.text
    seen_hook = await _make(client, ann, srv.general)
    moved = await _make(client, ann, secret)
    patched = await client.patch(
        f"/api/webhooks/{moved['id']}", headers=ann.headers, json={"channel_id": srv.general}
    )
    assert patched.status_code == 200, patched.text

    async def entries(who: TestUser, action: str) -> list[str]:
        got = await client.get(
            srv.url("/audit-log"), params={"action": action}, headers=who.headers
        )
        assert got.status_code == 200, got.text
        return [e["target_id"] for e in got.json()]

    assert await entries(ann, "webhook.created") == [moved["id"], seen_hook["id"]]
    assert await entries(ben, "webhook.created") == [seen_hook["id"]]
    assert await entries(ann, "webhook.updated") == [moved["id"]]
    assert await entries(ben, "webhook.updated") == []  # (its diff names the hidden channel)
