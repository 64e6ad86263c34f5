"""Roles, the hierarchy, channels and per-channel overrides through the API."""

from __future__ import annotations

import uuid

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from tests import factories
from tests.factories import (
    MakeUser,
    community,
    override,
    role,
    server_channel,
)
from tests.support import logged_pool
from xfchat.domain import roles as roles_domain
from xfchat.domain import server_views
from xfchat.domain.permissions import Permission as P


async def test_roles_are_made_changed_reordered_and_deleted_within_the_hierarchy(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    ann, mod, ben = [await make_user(n) for n in ("ann", "mod", "ben")]
    srv = await community(client, ann, mod, ben)
    admin_role = await role(client, srv, ann, "admin", int(P.MANAGE_ROLES | P.KICK_MEMBERS), mod)
    # mod's highest role is "admin" (position 1): new roles go just above @everyone,
    # pushing admin up.
    helper = await role(client, srv, mod, "helper", int(P.KICK_MEMBERS), ben)
    roles = (await client.get(srv.url("/roles"), headers=ben.headers)).json()
    assert [(r["name"], r["position"]) for r in roles] == [
        ("admin", 2),
        ("helper", 1),
        ("@everyone", 0),
    ]
    # Nobody grants what they lack, or manages a role at or above their own.
    escalate = await client.post(
        srv.url("/roles"),
        headers=mod.headers,
        json={"name": "x", "permissions": str(int(P.ADMINISTRATOR))},
    )
    assert escalate.status_code == 403 and escalate.json()["code"] == "MISSING_PERMISSIONS"
    own = await client.patch(
        srv.url(f"/roles/{admin_role}"), headers=mod.headers, json={"name": "boss"}
    )
    assert own.status_code == 403 and own.json()["code"] == "ROLE_HIERARCHY"
    above = await client.patch(
        srv.url("/roles"), headers=mod.headers, json=[{"id": helper, "position": 2}]
    )
    assert above.status_code == 403 and above.json()["code"] == "ROLE_HIERARCHY"
    take_own = await client.delete(
        srv.url(f"/members/{mod.id}/roles/{admin_role}"), headers=mod.headers
    )
    assert take_own.status_code == 403
    renamed = await client.patch(
        srv.url(f"/roles/{helper}"), headers=mod.headers, json={"name": "helpers", "color": 255}
    )
    assert renamed.status_code == 200 and renamed.json()["color"] == 255
    for body, code in (
        ({"permissions": "-1"}, "INVALID_PERMISSIONS"),
        ({"permissions": "abc"}, "INVALID_PERMISSIONS"),
        ({"permissions": str(1 << 63)}, "INVALID_PERMISSIONS"),
        ({"color": 1 << 24}, "INVALID_COLOR"),
        ({"name": ""}, "INVALID_ROLE_NAME"),
        # Was accepted: they read as mentions of everyone (a Cyrillic e, Greek capital
        # eta and epsilon, a combining accent), where full-width forms were refused.
        ({"name": "@\u0435veryone"}, "INVALID_ROLE_NAME"),
        ({"name": "@\u0397\u0395R\u0395"}, "INVALID_ROLE_NAME"),
        ({"name": "@everyone\u0301"}, "INVALID_ROLE_NAME"),
    ):
        bad = await client.patch(srv.url(f"/roles/{helper}"), headers=mod.headers, json=body)
        assert bad.status_code == 400 and bad.json()["code"] == code, body
    everyone = await client.delete(srv.url(f"/roles/{srv.everyone_role}"), headers=ann.headers)
    assert everyone.status_code == 400 and everyone.json()["code"] == "CANNOT_DELETE_EVERYONE"
    assert (
        await client.patch(srv.url(f"/roles/{helper}"), headers=ben.headers, json={})
    ).status_code == 403
    assert (await client.delete(srv.url(f"/roles/{uuid.uuid4()}"), headers=ann.headers)).json()[
        "code"
    ] == "ROLE_NOT_FOUND"
    # The owner manages every role.
    reordered = await client.patch(
        srv.url("/roles"), headers=ann.headers, json=[{"id": helper, "position": 5}]
    )
    assert [r["name"] for r in reordered.json()][:2] == ["helpers", "admin"]
    overridden = await client.put(
        f"/api/channels/{srv.general}/overrides/role/{helper}",
        headers=ann.headers,
        json={"allow": str(int(P.MANAGE_MESSAGES)), "deny": "0"},
    )
    assert overridden.status_code == 200
    assert (
        await client.delete(srv.url(f"/roles/{helper}"), headers=ann.headers)
    ).status_code == 204
    # Its overrides went with it, and those who see the channel are told.
    async with pool.acquire() as conn:
        events = await factories.events_of(conn, "channel", uuid.UUID(srv.general))
    kind, last = events[-1]
    assert kind == "channel.updated" and last["overrides"] == []
    member = (await client.get(srv.url(f"/members/{ben.id}"), headers=ann.headers)).json()
    assert member["role_ids"] == []
    # The hierarchy applies to members too: mod (admin, 2) cannot kick the owner, and a
    # peer with an equal role cannot be kicked.
    await client.put(srv.url(f"/members/{ben.id}/roles/{admin_role}"), headers=ann.headers)
    peer = await client.delete(srv.url(f"/members/{ben.id}"), headers=mod.headers)
    assert peer.status_code == 403 and peer.json()["code"] == "ROLE_HIERARCHY"


async def test_a_new_role_keeps_every_position_within_1_to_10000(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """Was: a new role moved the others up one, a role at 10000 to 10001."""
    ann = await make_user("ann")
    srv = await community(client, ann)
    low, mid, top = [await role(client, srv, ann, n, 0) for n in ("low", "mid", "top")]
    placed = [
        {"id": top, "position": 10_000},
        {"id": mid, "position": 40},
        {"id": low, "position": 40},
    ]
    assert (await client.patch(srv.url("/roles"), headers=ann.headers, json=placed)).is_success
    await role(client, srv, ann, "new", 0)
    roles = (await client.get(srv.url("/roles"), headers=ann.headers)).json()
    # renumbered in their order (equal positions stay equal), the new one just above @everyone
    assert {r["name"]: r["position"] for r in roles} == {
        "top": 3, "mid": 2, "low": 2, "new": 1, "@everyone": 0
    }  # fmt: skip


async def test_a_channel_hidden_by_an_override_is_404_and_absent_everywhere(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    ann, mod, ben = [await make_user(n) for n in ("ann", "mod", "ben")]
    srv = await community(client, ann, mod, ben)
    mods = await role(client, srv, ann, "mods", 0, mod)
    staff = await server_channel(client, srv, ann, "staff")
    await factories.say(client, ann, staff["id"], "secret plans")
    hide = await override(
        client, ann, staff["id"], "role", srv.everyone_role, deny=int(P.VIEW_CHANNEL)
    )
    assert hide.status_code == 200
    show = await override(client, ann, staff["id"], "role", mods, allow=int(P.VIEW_CHANNEL))
    assert show.status_code == 200 and len(show.json()["overrides"]) == 2
    for method, url in (
        ("GET", f"/api/channels/{staff['id']}/messages"),
        ("POST", f"/api/channels/{staff['id']}/messages"),
        ("PATCH", f"/api/channels/{staff['id']}"),
        ("DELETE", f"/api/channels/{staff['id']}"),
        ("GET", f"/api/channels/{staff['id']}/read-states"),
    ):
        response = await client.request(method, url, headers=ben.headers, json={"content": "x"})
        assert response.status_code == 404 and response.json()["code"] == "CHANNEL_NOT_FOUND", url
    ben_sees = (await client.get(srv.url("/channels"), headers=ben.headers)).json()
    assert [c["name"] for c in ben_sees] == ["general"]
    mod_sees = (await client.get(srv.url("/channels"), headers=mod.headers)).json()
    assert [c["name"] for c in mod_sees] == ["general", "staff"]
    state = (await client.get("/api/users/@me/state", headers=ben.headers)).json()
    server = next(s for s in state["servers"] if s["id"] == srv.id)
    assert [c["name"] for c in server["channels"]] == ["general"]
    assert staff["id"] not in str(state)
    # A member override beats the role overrides; the owner bypasses them all.
    await override(client, ann, staff["id"], "member", mod.id, deny=int(P.VIEW_CHANNEL))
    assert (
        await client.get(f"/api/channels/{staff['id']}/messages", headers=mod.headers)
    ).status_code == 404
    await override(client, ann, staff["id"], "member", ben.id, allow=int(P.VIEW_CHANNEL))
    assert (
        await client.get(f"/api/channels/{staff['id']}/messages", headers=ben.headers)
    ).status_code == 200
    own = await override(client, ann, staff["id"], "member", ann.id, deny=int(P.VIEW_CHANNEL))
    assert own.status_code == 200, own.text
    assert (
        await client.get(f"/api/channels/{staff['id']}/messages", headers=ann.headers)
    ).status_code == 200
    # ADMINISTRATOR bypasses them too.
    await role(client, srv, ann, "admins", int(P.ADMINISTRATOR), mod)
    assert (
        await client.get(f"/api/channels/{staff['id']}/messages", headers=mod.headers)
    ).status_code == 200


async def test_an_override_removed_is_audited_with_what_it_allowed_and_denied(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """Was: override.deleted recorded `allow` and `deny` as "0", what the override
    became rather than what it was: the log could not say what was taken away (Discord's
    overwrite deletion keeps the old values)."""
    ann, ben = [await make_user(n) for n in ("ann", "ben")]
    srv = await community(client, ann, ben)
    allow, deny = int(P.MENTION_EVERYONE), int(P.ATTACH_FILES)
    ch = f"/api/channels/{srv.general}/overrides/member/{ben.id}"
    assert (
        await override(client, ann, srv.general, "member", ben.id, allow=allow, deny=deny)
    ).status_code == 200
    removed = await client.delete(ch, headers={**ann.headers, "X-Audit-Log-Reason": "done"})
    assert removed.status_code == 200
    log = await client.get(srv.url("/audit-log?action=override.deleted"), headers=ann.headers)
    [entry] = log.json()
    assert (entry["target_type"], entry["target_id"], entry["reason"]) == (
        "channel",
        srv.general,
        "done",
    )
    assert entry["changes"] == {
        "kind": "member",
        "id": str(ben.id),
        "allow": str(allow),
        "deny": str(deny),
    }
    # A setting is still recorded as what it is now.
    assert (
        await override(client, ann, srv.general, "role", srv.everyone_role, deny=deny)
    ).status_code == 200
    log = await client.get(
        srv.url("/audit-log?action=override.updated&limit=1"), headers=ann.headers
    )
    assert log.json()[0]["changes"] == {
        "kind": "role",
        "id": srv.everyone_role,
        "allow": "0",
        "deny": str(deny),
    }


async def test_channels_are_made_changed_reordered_and_deleted(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await community(client, ann, ben)
    cat = await server_channel(client, srv, ann, "Text", kind="category")
    voice = await server_channel(
        client, srv, ann, "Lounge", kind="voice", user_limit=5, parent_id=cat["id"]
    )
    assert (
        voice["parent_id"] == cat["id"] and voice["permissions_synced"] and voice["user_limit"] == 5
    )
    for body, code in (
        ({"name": "x", "kind": "forum"}, 400),
        ({"name": ""}, 400),
        ({"name": "x", "parent_id": srv.general}, 400),  # not a category
        ({"name": "x", "parent_id": str(uuid.uuid4())}, 400),
        ({"name": "x", "kind": "voice", "rate_limit_per_user": 5}, 400),
        ({"name": "x", "user_limit": 5}, 400),
        ({"name": "x", "rate_limit_per_user": True}, 400),  # JSON true is not a number
        ({"name": "x", "kind": "category", "parent_id": cat["id"]}, 400),
    ):
        bad = await client.post(srv.url("/channels"), headers=ann.headers, json=body)
        assert bad.status_code == code, (body, bad.text)
    denied = await client.post(srv.url("/channels"), headers=ben.headers, json={"name": "mine"})
    assert denied.status_code == 403
    topic = await client.patch(
        f"/api/channels/{srv.general}", headers=ann.headers, json={"topic": "hi"}
    )
    assert topic.status_code == 200 and topic.json()["topic"] == "hi"
    assert (
        await client.patch(f"/api/channels/{srv.general}", headers=ben.headers, json={"topic": "x"})
    ).status_code == 403
    order = await client.patch(
        srv.url("/channels"),
        headers=ann.headers,
        json=[{"id": voice["id"], "position": 0}, {"id": srv.general, "position": 9}],
    )
    assert order.status_code == 200
    assert [c["name"] for c in order.json()][-1] == "general"
    stranger = await client.patch(
        srv.url("/channels"), headers=ann.headers, json=[{"id": str(uuid.uuid4()), "position": 1}]
    )
    assert stranger.status_code == 404
    assert (
        await client.delete(f"/api/channels/{cat['id']}", headers=ben.headers)
    ).status_code == 403
    assert (
        await client.delete(f"/api/channels/{cat['id']}", headers=ann.headers)
    ).status_code == 204
    left = (await client.get(srv.url("/channels"), headers=ann.headers)).json()
    assert {c["name"]: c["parent_id"] for c in left} == {"Lounge": None, "general": None}
    log = (await client.get(srv.url("/audit-log"), headers=ann.headers)).json()
    assert [e["action"] for e in log][:3] == [
        "channel.deleted",
        "channel.reordered",
        "channel.updated",
    ]
    convo = await factories.direct(client, ann, ben)
    not_server = await client.patch(
        f"/api/channels/{convo['id']}", headers=ann.headers, json={"name": "x"}
    )
    assert not_server.status_code == 400 and not_server.json()["code"] == "NOT_A_SERVER_CHANNEL"


async def test_a_synced_channel_follows_its_categorys_overrides(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await community(client, ann, ben)
    cat = await server_channel(client, srv, ann, "Staff", kind="category")
    synced = await server_channel(client, srv, ann, "plans", parent_id=cat["id"])
    own = await server_channel(
        client, srv, ann, "open", parent_id=cat["id"], permissions_synced=False
    )
    await override(client, ann, cat["id"], "role", srv.everyone_role, deny=int(P.VIEW_CHANNEL))
    names = [
        c["name"] for c in (await client.get(srv.url("/channels"), headers=ben.headers)).json()
    ]
    assert names == ["general", "open"]
    await client.patch(
        f"/api/channels/{synced['id']}", headers=ann.headers, json={"permissions_synced": False}
    )
    names = [
        c["name"] for c in (await client.get(srv.url("/channels"), headers=ben.headers)).json()
    ]
    assert sorted(names) == ["general", "open", "plans"]
    assert own["permissions_synced"] is False


async def test_a_synced_channel_shows_the_overrides_of_a_category_one_cannot_see(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    """Was: a synced channel under a category hidden from you showed only its own
    overrides, so your permissions there could not be computed, and a change of the
    category's told you nothing (README's "known gap")."""
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await community(client, ann, ben)
    cat = await server_channel(client, srv, ann, "Staff", kind="category")
    child = await server_channel(client, srv, ann, "lobby", parent_id=cat["id"])
    hidden = int(P.VIEW_CHANNEL | P.SEND_MESSAGES)
    closed = await override(client, ann, cat["id"], "role", srv.everyone_role, deny=hidden)
    assert closed.status_code == 200, closed.text
    opened = await override(
        client, ann, child["id"], "role", srv.everyone_role, allow=int(P.VIEW_CHANNEL)
    )
    assert opened.status_code == 200, opened.text

    async def lobby() -> dict[str, object]:
        seen = (await client.get(srv.url("/channels"), headers=ben.headers)).json()
        assert [c["name"] for c in seen] == ["general", "lobby"]  # (not the category)
        return dict(seen[1])

    everyone = {"kind": "role", "id": str(srv.everyone_role)}
    shown = await lobby()
    assert shown["category_overrides"] == [{**everyone, "allow": "0", "deny": str(hidden)}]
    refused = await client.post(
        f"/api/channels/{child['id']}/messages", headers=ben.headers, json={"content": "hi"}
    )
    assert refused.status_code == 403  # (what the shown overrides compute)
    async with pool.acquire() as conn:
        before = len(await factories.events_of(conn, "channel", uuid.UUID(child["id"])))
    lifted = await override(
        client, ann, cat["id"], "role", srv.everyone_role, deny=int(P.VIEW_CHANNEL)
    )
    assert lifted.status_code == 200, lifted.text
    assert lifted.json()["category_overrides"] == []  # (a category follows none)
    async with pool.acquire() as conn:
        told = (await factories.events_of(conn, "channel", uuid.UUID(child["id"])))[before:]
    now = [{**everyone, "allow": "0", "deny": str(int(P.VIEW_CHANNEL))}]
    assert [(t, d["category_overrides"]) for t, d in told] == [("channel.updated", now)]
    assert (await lobby())["category_overrides"] == now
    sent = await client.post(
        f"/api/channels/{child['id']}/messages", headers=ben.headers, json={"content": "hi"}
    )
    assert sent.status_code == 201, sent.text


async def test_what_an_outside_attack_found_stays_fixed(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    ann, mod, ben, cid = [await make_user(n) for n in ("ann", "mod", "ben", "cid")]
    srv = await community(client, ann, mod, ben, cid)
    boss = await role(client, srv, ann, "boss", 0, cid)  # position 1, then pushed up
    mods = await role(
        client,
        srv,
        ann,
        "mods",
        int(P.MANAGE_ROLES | P.MANAGE_CHANNELS | P.VIEW_AUDIT_LOG | P.MANAGE_MESSAGES),
        mod,
    )
    await client.patch(srv.url("/roles"), headers=ann.headers, json=[{"id": boss, "position": 9}])
    cat = await server_channel(client, srv, ann, "Staff", kind="category")
    secret = await server_channel(client, srv, ann, "salaries", parent_id=cat["id"])
    await override(client, ann, cat["id"], "role", srv.everyone_role, deny=int(P.VIEW_CHANNEL))
    # MANAGE_CHANNELS alone cannot take a channel out of its category's overrides.
    for body in ({"parent_id": None}, {"permissions_synced": False}):
        moved = await client.patch(f"/api/channels/{secret['id']}", headers=mod.headers, json=body)
        assert moved.status_code == 404  # mod cannot even see it
    await override(client, ann, cat["id"], "role", mods, allow=int(P.VIEW_CHANNEL))
    unsync = await client.patch(
        f"/api/channels/{secret['id']}", headers=mod.headers, json={"permissions_synced": False}
    )
    assert unsync.status_code == 200  # mod holds MANAGE_ROLES too: allowed
    # The audit log says nothing about channels its reader cannot see.
    log = (await client.get(srv.url("/audit-log"), headers=mod.headers)).json()
    assert log and "salaries" in str(log)
    await override(client, ann, secret["id"], "member", mod.id, deny=int(P.VIEW_CHANNEL))
    log = (await client.get(srv.url("/audit-log"), headers=mod.headers)).json()
    assert "salaries" not in str(log) and secret["id"] not in str(log)
    # Nobody lifts their own member override or gives roles to someone above them.
    own = await client.delete(
        f"/api/channels/{secret['id']}/overrides/member/{mod.id}", headers=mod.headers
    )
    assert own.status_code == 404  # (hidden from mod by that very override)
    general_own = await override(
        client, ann, srv.general, "member", mod.id, deny=int(P.ADD_REACTIONS)
    )
    assert general_own.status_code == 200
    lift = await client.delete(
        f"/api/channels/{srv.general}/overrides/member/{mod.id}", headers=mod.headers
    )
    assert lift.status_code == 403 and lift.json()["code"] == "ROLE_HIERARCHY"
    muted = await role(client, srv, mod, "muted", 0)
    above = await client.put(srv.url(f"/members/{cid.id}/roles/{muted}"), headers=mod.headers)
    assert above.status_code == 403 and above.json()["code"] == "ROLE_HIERARCHY"
    # A moderator's deletion of someone's message is audited.
    said = await factories.say(client, ben, srv.general, "oops")
    gone = await client.delete(
        f"/api/channels/{srv.general}/messages/{said['id']}", headers=mod.headers
    )
    assert gone.status_code == 204
    deleted = (
        await client.get(srv.url("/audit-log?action=message.deleted"), headers=ann.headers)
    ).json()
    assert [(e["actor_id"], e["target_id"]) for e in deleted] == [(str(mod.id), said["id"])]
    # A member cannot fill the server's invites; icons are images or http(s) URLs.
    made = [
        (await client.post(srv.url("/invites"), headers=ben.headers, json={})).status_code
        for _ in range(21)
    ]
    assert made[:20] == [201] * 20 and made[20] == 403
    assert (await client.post(srv.url("/invites"), headers=ann.headers, json={})).status_code == 201
    icon = await client.patch(srv.url(), headers=ann.headers, json={"icon_url": "javascript:x"})
    assert icon.status_code == 400 and icon.json()["code"] == "INVALID_ICON_URL"


async def test_a_transfer_changes_who_sees_what_at_once(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await community(client, ann, ben)
    staff = await server_channel(client, srv, ann, "staff")
    await override(client, ann, staff["id"], "role", srv.everyone_role, deny=int(P.VIEW_CHANNEL))
    moved = await client.post(
        srv.url("/transfer"), headers=ann.headers, json={"owner_id": str(ben.id)}
    )
    assert moved.status_code == 200
    async with pool.acquire() as conn:
        to_ann = await factories.events_of(conn, "user", ann.id)
        to_ben = await factories.events_of(conn, "user", ben.id)
    assert ("channel.hidden", [staff["id"]]) in [(t, d.get("channel_ids")) for t, d in to_ann]
    revealed = [d for t, d in to_ben if t == "channel.revealed" and d["reason"] == "permissions"]
    assert [c["id"] for d in revealed for c in d["channels"]] == [staff["id"]]


async def test_losing_read_message_history_is_told_to_exactly_who_loses_it(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    """Was: nothing told a member they may no longer read a channel's history they
    still see, so their Braid subscription to it went on (tests/realtime)."""
    ann, ben, cid = await make_user("ann"), await make_user("ben"), await make_user("cid")
    srv = await community(client, ann, ben, cid)
    staff = await server_channel(client, srv, ann, "staff")
    await override(client, ann, staff["id"], "member", ben.id, deny=int(P.VIEW_CHANNEL))
    await role(client, srv, ann, "readers", int(P.READ_MESSAGE_HISTORY), cid)
    roles = (await client.get(srv.url("/roles"), headers=ann.headers)).json()
    everyone = next(r for r in roles if r["is_default"])

    async def told() -> dict[str, list[tuple[str, list[str]]]]:
        async with pool.acquire() as conn:
            return {
                who.username: [
                    (t, d["channel_ids"])
                    for t, d in await factories.events_of(conn, "user", who.id)
                    if t in ("channel.hidden", "channel.history_hidden")
                ]
                for who in (ann, ben, cid)
            }

    before = await told()
    changed = await client.patch(
        srv.url(f"/roles/{everyone['id']}"),
        headers=ann.headers,
        json={"permissions": str(int(everyone["permissions"]) & ~P.READ_MESSAGE_HISTORY)},
    )
    assert changed.status_code == 200, changed.text
    after = await told()
    told_now = {name: after[name][len(before[name]) :] for name in after}
    # ben still sees #general (not #staff, hidden before); cid reads through his role.
    assert told_now == {
        "ann": [],
        "ben": [("channel.history_hidden", [srv.general])],
        "cid": [],
    }
    refused = await client.get(f"/api/channels/{srv.general}/messages", headers=ben.headers)
    assert refused.status_code == 403


async def test_only_channels_with_a_history_are_told_as_hidden_history(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    """Was: a category's override denying READ_MESSAGE_HISTORY listed the category
    itself (and its voice channels) in channel.history_hidden: they have no history."""
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await community(client, ann, ben)
    category = await server_channel(client, srv, ann, "cat", kind="category")
    text = await server_channel(client, srv, ann, "inside", parent_id=category["id"])
    await server_channel(client, srv, ann, "talk", kind="voice", parent_id=category["id"])
    denied = await override(
        client, ann, category["id"], "role", srv.everyone_role, deny=int(P.READ_MESSAGE_HISTORY)
    )
    assert denied.status_code in (200, 204), denied.text
    async with pool.acquire() as conn:
        told = [
            d["channel_ids"]
            for t, d in await factories.events_of(conn, "user", ben.id)
            if t == "channel.history_hidden"
        ]
    assert told == [[text["id"]]]


async def test_a_channel_holds_a_bounded_number_of_overrides(
    client: httpx.AsyncClient, make_user: MakeUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    ann, ben = [await make_user(n) for n in ("ann", "ben")]
    srv = await community(client, ann, ben)
    roles = [await role(client, srv, ann, f"r{i}", 0) for i in range(3)]
    monkeypatch.setattr(roles_domain, "MAX_OVERRIDES", 2)
    for target in roles[:2]:
        made = await override(client, ann, srv.general, "role", target, deny=int(P.SEND_MESSAGES))
        assert made.status_code == 200
    for kind, target in (("role", roles[2]), ("member", ben.id)):
        full = await override(client, ann, srv.general, kind, target, deny=int(P.SEND_MESSAGES))
        assert full.status_code == 403 and full.json()["code"] == "TOO_MANY_OVERRIDES", kind
    # One it holds may still change or go, and then another fits.
    changed = await override(client, ann, srv.general, "role", roles[0], allow=int(P.ADD_REACTIONS))
    assert changed.status_code == 200
    gone = await client.delete(
        f"/api/channels/{srv.general}/overrides/role/{roles[1]}", headers=ann.headers
    )
    assert gone.status_code == 200 and len(gone.json()["overrides"]) == 1
    fits = await override(client, ann, srv.general, "member", ben.id, deny=int(P.SEND_MESSAGES))
    assert fits.status_code == 200 and len(fits.json()["overrides"]) == 2


async def test_a_server_holds_a_bounded_number_of_overrides(
    client: httpx.AsyncClient, make_user: MakeUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    """100 a channel times 500 channels made a server's payload 4.9 MB (its GET, `ready`,
    a join): the server's channels hold a bounded number all together."""
    ann = await make_user("ann")
    srv = await community(client, ann)
    other = await server_channel(client, srv, ann, "other")
    roles = [await role(client, srv, ann, f"r{i}", 0) for i in range(3)]
    monkeypatch.setattr(roles_domain, "MAX_SERVER_OVERRIDES", 2)
    for channel, target in ((srv.general, roles[0]), (other["id"], roles[1])):
        made = await override(client, ann, channel, "role", target, deny=int(P.SEND_MESSAGES))
        assert made.status_code == 200
    full = await override(client, ann, other["id"], "role", roles[2], deny=int(P.SEND_MESSAGES))
    assert full.status_code == 403 and full.json()["code"] == "TOO_MANY_OVERRIDES"
    again = await override(client, ann, other["id"], "role", roles[1], allow=int(P.ATTACH_FILES))
    assert again.status_code == 200  # (one it holds may still change)


async def test_a_categorys_overrides_count_again_in_each_channel_following_it(
    client: httpx.AsyncClient, make_user: MakeUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each synced channel shows its category's overrides (`category_overrides`): 100 of
    them over 200 followers made a server's payload 1.78 MB and one change of them 201
    events of 1.9 MB (review). They count in what a server may show: setting one there,
    making a channel follow, or moving one in, past the bound is TOO_MANY_OVERRIDES."""
    ann = await make_user("ann")
    srv = await community(client, ann)
    cat = await server_channel(client, srv, ann, "cat", kind="category")
    await server_channel(client, srv, ann, "a", parent_id=cat["id"])
    loose = await server_channel(client, srv, ann, "b")
    monkeypatch.setattr(server_views, "MAX_SHOWN_OVERRIDES", 4)
    deny = int(P.SEND_MESSAGES)
    set_ = await override(client, ann, cat["id"], "role", srv.everyone_role, deny=deny)
    assert set_.status_code == 200, set_.text  # shows 2 (the category's, and a's copy)
    refused = [
        await override(client, ann, srv.general, "role", srv.everyone_role, deny=deny),
        await client.post(  # 2 + 1 + 1 more: fine; the third follower's copy is too many
            srv.url("/channels"), headers=ann.headers, json={"name": "c", "parent_id": cat["id"]}
        ),
    ]
    assert [r.status_code for r in refused] == [200, 201], [r.text for r in refused]
    for attempt in (
        client.post(
            srv.url("/channels"), headers=ann.headers, json={"name": "d", "parent_id": cat["id"]}
        ),
        client.patch(
            f"/api/channels/{loose['id']}",
            headers=ann.headers,
            json={"parent_id": cat["id"], "permissions_synced": True},
        ),
        override(client, ann, cat["id"], "member", ann.id, allow=int(P.ATTACH_FILES)),
    ):
        answer = await attempt
        assert answer.status_code == 403 and answer.json()["code"] == "TOO_MANY_OVERRIDES"
    unsynced = await client.post(  # (a channel not following shows none of them)
        srv.url("/channels"),
        headers=ann.headers,
        json={"name": "e", "parent_id": cat["id"], "permissions_synced": False},
    )
    assert unsynced.status_code == 201, unsynced.text


async def test_a_category_override_costs_the_same_statements_however_many_channels_follow(
    client: httpx.AsyncClient, make_user: MakeUser, app: FastAPI, db_url: str
) -> None:
    """Judging a category's override in each synced channel read that channel's access
    on its own (520 statements at 498 channels): one read for them all (and so for a
    role's overrides when it is given or taken)."""
    ann = await make_user("ann")
    srv = await community(client, ann)
    made = await client.post(
        srv.url("/channels"), headers=ann.headers, json={"name": "c", "kind": "category"}
    )
    category = made.json()["id"]
    first = await override(client, ann, category, "role", srv.everyone_role, deny=int(P.SPEAK))
    assert first.status_code == 200
    # Giving and taking a role judge its overrides in each channel they reach, as well.
    reacts = await role(client, srv, ann, "reacts", 0)
    allowed = await override(client, ann, category, "role", reacts, allow=int(P.ADD_REACTIONS))
    assert allowed.status_code == 200
    given = srv.url(f"/members/{ann.id}/roles/{reacts}")
    counts, role_counts = [], []
    async with logged_pool(db_url, size=4) as (pool, seen):
        own, app.state.pool = app.state.pool, pool
        try:
            for more, deny in ((2, P.SEND_MESSAGES), (6, P.SEND_MESSAGES | P.ADD_REACTIONS)):
                for i in range(more):
                    await server_channel(client, srv, ann, f"c{more}-{i}", parent_id=category)
                seen.take()
                changed = await override(
                    client, ann, category, "role", srv.everyone_role, deny=int(deny)
                )
                assert changed.status_code == 200, changed.text
                counts.append(len(seen.take()))
                assert (await client.put(given, headers=ann.headers)).status_code == 204
                assert (await client.delete(given, headers=ann.headers)).status_code == 204
                role_counts.append(len(seen.take()))
        finally:
            app.state.pool = own
    assert counts[0] == counts[1], counts
    assert role_counts[0] == role_counts[1], role_counts


async def test_a_settings_form_may_send_a_role_or_a_channel_back_as_it_is(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """A client developer's find: the whole @everyone role sent back (a settings form's
    save) was 400 INVALID_ROLE_NAME, and a channel's topic saved with its category and
    sync as they are needed MANAGE_ROLES, which only moving the channel needs."""
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await community(client, ann, ben)
    roles = (await client.get(srv.url("/roles"), headers=ann.headers)).json()
    everyone = next(r for r in roles if r["is_default"])
    form = {k: everyone[k] for k in ("name", "permissions", "color", "hoist", "mentionable")}
    saved = await client.patch(
        srv.url(f"/roles/{srv.everyone_role}"), headers=ann.headers, json=form
    )
    assert saved.status_code == 200, saved.text
    assert saved.json() == everyone
    renamed = await client.patch(
        srv.url(f"/roles/{srv.everyone_role}"), headers=ann.headers, json={"name": "all"}
    )
    assert renamed.status_code == 400 and renamed.json()["code"] == "INVALID_ROLE_NAME"
    await role(client, srv, ann, "channels", int(P.MANAGE_CHANNELS), ben)
    category = await server_channel(client, srv, ann, "talk", kind="category")
    url = f"/api/channels/{srv.general}"
    channel = (await client.get(url, headers=ann.headers)).json()
    assert channel["parent_id"] is None
    form = {"topic": "new", "parent_id": None, "permissions_synced": False}
    topic = await client.patch(url, headers=ben.headers, json=form)
    assert topic.status_code == 200, topic.text
    assert topic.json()["topic"] == "new"
    moved = await client.patch(url, headers=ben.headers, json={**form, "parent_id": category["id"]})
    assert moved.status_code == 403 and moved.json()["missing"] == "MANAGE_ROLES", moved.text


async def test_a_kick_of_ones_own_id_is_refused_and_at_me_leaves(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """A client developer's find: DELETE .../members/{own id} left the server, so a
    moderation tool's Kick on its user's own row removed the moderator;
    CANNOT_KICK_SELF was never answered."""
    ann, mod, ben = await make_user("ann"), await make_user("mod"), await make_user("ben")
    srv = await community(client, ann, mod, ben)
    await role(client, srv, ann, "mods", int(P.KICK_MEMBERS), mod)
    for who in (mod, ben):  # (with KICK_MEMBERS or without)
        own = await client.delete(srv.url(f"/members/{who.id}"), headers=who.headers)
        assert own.status_code == 400 and own.json()["code"] == "CANNOT_KICK_SELF", own.text
        still = await client.get(srv.url(f"/members/{who.id}"), headers=ann.headers)
        assert still.status_code == 200, still.text
    left = await client.delete(srv.url("/members/@me"), headers=ben.headers)
    assert left.status_code == 204
    gone = await client.get(srv.url(f"/members/{ben.id}"), headers=ann.headers)
    assert gone.status_code == 404
