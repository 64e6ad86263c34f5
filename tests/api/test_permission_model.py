"""The permission model against what a Discord moderator expects: table-driven checks
of escalation through roles and overrides, moderation against equal and higher members,
a timeout in every channel action, and the permissions a client computes from what the
API shows equal to what the server enforces (on randomised roles and overrides)."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests import factories
from tests.factories import MakeUser, TestUser, community, override, role, server_channel
from xfchat.domain.permissions import ALL
from xfchat.domain.permissions import Permission as P
from xfchat.errors import XFChatError

MOD_PERMS = int(
    P.VIEW_CHANNEL
    | P.SEND_MESSAGES
    | P.READ_MESSAGE_HISTORY
    | P.MANAGE_ROLES
    | P.KICK_MEMBERS
    | P.BAN_MEMBERS
    | P.MODERATE_MEMBERS
    | P.MANAGE_NICKNAMES
    | P.MANAGE_CHANNELS
)


@dataclass
class Ladder:
    """owner > senior (admin role) > mod = peer > admin_low (ADMINISTRATOR) > low > plain."""

    srv: factories.Community
    owner: TestUser
    senior: TestUser
    mod: TestUser
    peer: TestUser
    admin_low: TestUser
    low: TestUser
    plain: TestUser
    roles: dict[str, str]


async def ladder(client: httpx.AsyncClient, make_user: MakeUser) -> Ladder:
    names = ("owner", "senior", "mod", "peer", "admin_low", "low", "plain")
    users = [await make_user(n) for n in names]
    owner, senior, mod, peer, admin_low, low, plain = users
    srv = await community(client, owner, *users[1:])
    # Each new role goes in at 1, pushing the others up: made from the top down.
    roles = {
        "senior": await role(client, srv, owner, "senior", int(ALL), senior),
        "mod": await role(client, srv, owner, "mod", MOD_PERMS, mod, peer),
        "admin_low": await role(client, srv, owner, "admin_low", int(P.ADMINISTRATOR), admin_low),
        "low": await role(client, srv, owner, "low", int(P.VIEW_CHANNEL), low),
        "perky": await role(client, srv, owner, "perky", int(P.MENTION_EVERYONE)),
        "plain_role": await role(client, srv, owner, "plain_role", 0),
    }
    return Ladder(srv, owner, senior, mod, peer, admin_low, low, plain, roles)


def _code(r: httpx.Response) -> tuple[int, str | None]:
    body = r.json() if r.content else None
    return r.status_code, body.get("code") if isinstance(body, dict) else None


# ------------------------------------------------------------ escalation by MANAGE_ROLES


async def test_manage_roles_cannot_escalate_through_roles_or_overrides(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    w = await ladder(client, make_user)
    srv, mod, roles = w.srv, w.mod, w.roles
    secret = (await server_channel(client, srv, w.owner, "secret"))["id"]
    # mod may see #secret but not send there.
    assert (
        await override(client, w.owner, secret, "role", roles["mod"], deny=int(P.SEND_MESSAGES))
    ).status_code == 200
    admin = str(int(P.ADMINISTRATOR))
    lacking = str(int(P.MANAGE_SERVER))
    h = mod.headers
    attempts: list[tuple[str, Any, tuple[int, str]]] = [
        ("create ADMINISTRATOR role", client.post(srv.url("/roles"), headers=h, json={"name": "x", "permissions": admin}), (403, "MISSING_PERMISSIONS")),
        ("create role with a lacked bit", client.post(srv.url("/roles"), headers=h, json={"name": "x", "permissions": lacking}), (403, "MISSING_PERMISSIONS")),
        ("add a lacked bit to a lower role", client.patch(srv.url(f"/roles/{roles['low']}"), headers=h, json={"permissions": lacking}), (403, "MISSING_PERMISSIONS")),
        ("add ADMINISTRATOR to a lower role", client.patch(srv.url(f"/roles/{roles['low']}"), headers=h, json={"permissions": admin}), (403, "MISSING_PERMISSIONS")),
        ("add a lacked bit to @everyone", client.patch(srv.url(f"/roles/{srv.everyone_role}"), headers=h, json={"permissions": str(int(P.MANAGE_SERVER | P.VIEW_CHANNEL))}), (403, "MISSING_PERMISSIONS")),
        ("edit own top role", client.patch(srv.url(f"/roles/{roles['mod']}"), headers=h, json={"permissions": str(MOD_PERMS & ~int(P.BAN_MEMBERS))}), (403, "ROLE_HIERARCHY")),
        ("rename own top role", client.patch(srv.url(f"/roles/{roles['mod']}"), headers=h, json={"name": "boss"}), (403, "ROLE_HIERARCHY")),
        ("edit a higher role", client.patch(srv.url(f"/roles/{roles['senior']}"), headers=h, json={"permissions": "0"}), (403, "ROLE_HIERARCHY")),
        ("delete a higher role", client.delete(srv.url(f"/roles/{roles['senior']}"), headers=h), (403, "ROLE_HIERARCHY")),
        ("delete own role", client.delete(srv.url(f"/roles/{roles['mod']}"), headers=h), (403, "ROLE_HIERARCHY")),
        ("move own role up", client.patch(srv.url("/roles"), headers=h, json=[{"id": roles["mod"], "position": 9000}]), (403, "ROLE_HIERARCHY")),
        ("move a lower role to own position", client.patch(srv.url("/roles"), headers=h, json=[{"id": roles["low"], "position": 5}]), (403, "ROLE_HIERARCHY")),
        ("move a lower role above own", client.patch(srv.url("/roles"), headers=h, json=[{"id": roles["low"], "position": 9000}]), (403, "ROLE_HIERARCHY")),
        ("move a higher role down", client.patch(srv.url("/roles"), headers=h, json=[{"id": roles["senior"], "position": 1}]), (403, "ROLE_HIERARCHY")),
        ("give self a higher role", client.put(srv.url(f"/members/{mod.id}/roles/{roles['senior']}"), headers=h), (403, "ROLE_HIERARCHY")),
        ("give self own-level role", client.put(srv.url(f"/members/{mod.id}/roles/{roles['mod']}"), headers=h), (403, "ROLE_HIERARCHY")),
        ("give self a lower ADMINISTRATOR role", client.put(srv.url(f"/members/{mod.id}/roles/{roles['admin_low']}"), headers=h), (403, "MISSING_PERMISSIONS")),
        ("give self a lower role with a lacked bit", client.put(srv.url(f"/members/{mod.id}/roles/{roles['perky']}"), headers=h), (403, "MISSING_PERMISSIONS")),
        ("give a peer a lower role", client.put(srv.url(f"/members/{w.peer.id}/roles/{roles['low']}"), headers=h), (403, "ROLE_HIERARCHY")),
        ("take a role from a peer", client.delete(srv.url(f"/members/{w.peer.id}/roles/{roles['mod']}"), headers=h), (403, "ROLE_HIERARCHY")),
        ("own member override", override(client, mod, secret, "member", mod.id, allow=int(P.SEND_MESSAGES)), (403, "ROLE_HIERARCHY")),
        ("lift own role's deny", override(client, mod, secret, "role", roles["mod"]), (403, "ROLE_HIERARCHY")),
        ("override on a higher role", override(client, mod, secret, "role", roles["senior"], deny=int(P.VIEW_CHANNEL)), (403, "ROLE_HIERARCHY")),
        ("override on a peer", override(client, mod, secret, "member", w.peer.id, deny=int(P.VIEW_CHANNEL)), (403, "ROLE_HIERARCHY")),
        ("override on the owner", override(client, mod, secret, "member", w.owner.id, deny=int(P.VIEW_CHANNEL)), (403, "ROLE_HIERARCHY")),
        ("@everyone override granting a lacked bit", override(client, mod, secret, "role", srv.everyone_role, allow=int(P.MANAGE_MESSAGES)), (403, "MISSING_PERMISSIONS")),
        ("@everyone override granting ADMINISTRATOR", override(client, mod, secret, "role", srv.everyone_role, allow=int(P.ADMINISTRATOR)), (403, "MISSING_PERMISSIONS")),
        ("grant SEND where denied to self", override(client, mod, secret, "role", roles["low"], allow=int(P.SEND_MESSAGES)), (403, "MISSING_PERMISSIONS")),
        ("lower role override with a lacked bit", override(client, mod, secret, "member", w.low.id, allow=int(P.MANAGE_MESSAGES)), (403, "MISSING_PERMISSIONS")),
    ]  # fmt: skip
    before = (await client.get(srv.url("/roles"), headers=w.owner.headers)).json()
    for what, request, expected in attempts:
        got = _code(await request)
        assert got == expected, what
    after = (await client.get(srv.url("/roles"), headers=w.owner.headers)).json()
    assert after == before
    send = await factories.send_message(client, mod, secret, "still muted?")
    assert send.status_code == 403
    # What mod may do: a role below theirs, with permissions they hold.
    ok = await client.patch(
        srv.url(f"/roles/{roles['low']}"), headers=h, json={"permissions": str(int(P.KICK_MEMBERS))}
    )
    assert ok.status_code == 200
    assert (
        await client.put(srv.url(f"/members/{w.low.id}/roles/{roles['plain_role']}"), headers=h)
    ).status_code == 204


# ------------------------------------------------------------ moderation and the hierarchy


async def test_moderation_against_equal_higher_and_owner_is_refused(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    w = await ladder(client, make_user)
    srv, h = w.srv, w.mod.headers
    until = (datetime.now(UTC) + timedelta(hours=1)).isoformat()

    def actions(target: TestUser) -> list[tuple[str, Any]]:
        m = srv.url(f"/members/{target.id}")
        return [
            ("nickname", lambda: client.patch(m, headers=h, json={"nickname": "x"})),
            ("timeout", lambda: client.patch(m, headers=h, json={"timed_out_until": until})),
            ("clear timeout", lambda: client.patch(m, headers=h, json={"timed_out_until": None})),
            ("give role", lambda: client.put(f"{m}/roles/{w.roles['plain_role']}", headers=h)),
            ("kick", lambda: client.delete(m, headers=h)),
            ("ban", lambda: client.put(srv.url(f"/bans/{target.id}"), headers=h, json={})),
        ]

    for target in (w.owner, w.senior, w.peer):
        for what, act in actions(target):
            got = _code(await act())
            assert got == (403, "ROLE_HIERARCHY"), (target.username, what, got)
    # ADMINISTRATOR below mod: bound by the hierarchy like anyone, never timed out.
    got = _code(await actions(w.admin_low)[1][1]())
    assert got == (403, "ROLE_HIERARCHY")
    assert (await actions(w.admin_low)[0][1]()).status_code == 200  # nickname
    # Below mod: all of it.
    for what, act in actions(w.low)[:4]:
        assert (await act()).status_code in (200, 204), what
    assert (await actions(w.low)[4][1]()).status_code == 204  # kick
    assert (await actions(w.plain)[5][1]()).status_code == 204  # ban
    assert (await actions(w.admin_low)[4][1]()).status_code == 204  # kick
    # Self: not through the moderator routes.
    assert _code(await client.put(srv.url(f"/bans/{w.mod.id}"), headers=h, json={})) == (
        400,
        "CANNOT_BAN_SELF",
    )
    assert (
        _code(
            await client.patch(
                srv.url(f"/members/{w.mod.id}"), headers=h, json={"timed_out_until": until}
            )
        )[0]
        == 403
    )
    # senior (above mod) times mod out.
    assert (
        await client.patch(
            srv.url(f"/members/{w.mod.id}"),
            headers=w.senior.headers,
            json={"timed_out_until": until},
        )
    ).status_code == 200
    # A timed-out moderator moderates nothing.
    # (the permission is asked before the hierarchy: TIMED_OUT, not ROLE_HIERARCHY)
    for what, act in [*actions(w.peer)[:2], *actions(w.peer)[4:]]:
        got = _code(await act())
        assert got == (403, "TIMED_OUT"), what


# ------------------------------------------------------------ a timeout in every action


async def test_a_timeout_leaves_only_viewing_and_reading_in_every_action(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    owner, ben = await make_user("owner"), await make_user("ben")
    srv = await community(client, owner, ben)
    vc = (await server_channel(client, srv, owner, "vc", kind="voice"))["id"]
    # Even a member override allowing everything does not outlast a timeout.
    every = int(ALL & ~P.ADMINISTRATOR)
    assert (
        await override(client, owner, srv.general, "member", ben.id, allow=every)
    ).status_code == 200
    assert (await override(client, owner, vc, "member", ben.id, allow=every)).status_code == 200
    mine = await factories.say(client, ben, srv.general, "before")
    theirs = await factories.say(client, owner, srv.general, "hello")
    until = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    await factories.voice_join(pool, ben, vc)
    t = await client.patch(
        srv.url(f"/members/{ben.id}"), headers=owner.headers, json={"timed_out_until": until}
    )
    assert t.status_code == 200
    states = (await client.get(f"/api/channels/{vc}/voice-states", headers=owner.headers)).json()
    assert states == [], "a timeout ends the voice state"
    ch = f"/api/channels/{srv.general}"
    refused = {
        "send": factories.send_message(client, ben, srv.general, "hi"),
        "send with a client id": factories.send_message(client, ben, srv.general, "hi", message_id=str(uuid.uuid4())),
        "reply": factories.send_message(client, ben, srv.general, "hi", reply_to_id=theirs["id"]),
        "react": client.put(f"{ch}/messages/{theirs['id']}/reactions/%F0%9F%91%8D/@me", headers=ben.headers),
        "typing": client.post(f"{ch}/typing", headers=ben.headers),
        "edit own message": client.patch(f"{ch}/messages/{mine['id']}", headers=ben.headers, json={"content": "after"}),
        "pin": client.put(f"{ch}/pins/{theirs['id']}", headers=ben.headers),
        "delete another's message": client.delete(f"{ch}/messages/{theirs['id']}", headers=ben.headers),
        "create invite": client.post(srv.url("/invites"), headers=ben.headers, json={}),
        "change own nickname": client.patch(srv.url(f"/members/{ben.id}"), headers=ben.headers, json={"nickname": "x"}),
        "make a channel": client.post(srv.url("/channels"), headers=ben.headers, json={"name": "x"}),
    }  # fmt: skip
    for what, request in refused.items():
        got = _code(await request)
        assert got[0] == 403 and got[1] in (
            "TIMED_OUT",
            "MISSING_PERMISSIONS",
            "NOT_MESSAGE_AUTHOR",
        ), (what, got)
    with pytest.raises(XFChatError) as joined:
        await factories.voice_join(pool, ben, vc)
    assert joined.value.code == "TIMED_OUT"
    kept = {
        "see the channel": client.get(ch, headers=ben.headers),
        "read history": client.get(f"{ch}/messages", headers=ben.headers),
        "read one message": client.get(f"{ch}/messages/{theirs['id']}", headers=ben.headers),
        "read pins": client.get(f"{ch}/pins", headers=ben.headers),
        "mark read": client.put(f"{ch}/ack", headers=ben.headers, json={"seq": theirs["seq"]}),
        "see voice states": client.get(f"/api/channels/{vc}/voice-states", headers=ben.headers),
    }
    for what, request in kept.items():
        assert (await request).status_code in (200, 204), what
    # The owner lifts it: everything is back.
    await client.patch(
        srv.url(f"/members/{ben.id}"), headers=owner.headers, json={"timed_out_until": None}
    )
    assert (await factories.send_message(client, ben, srv.general, "back")).status_code == 201
    assert await factories.voice_join(pool, ben, vc) is not None


# ------------------------------------------------- what a client computes = what is enforced

BITS = [P.VIEW_CHANNEL, P.SEND_MESSAGES, P.READ_MESSAGE_HISTORY, P.ADD_REACTIONS]


def _client_permissions(server: dict[str, Any], channel: dict[str, Any]) -> int:
    """src/xfchat/web/js/perms.js channelPermissions, as a client computes it from what
    the server shows (the documented algorithm: Discord's, with the category's
    overrides first where the channel follows it)."""
    member = server["member"]
    everyone = next(r for r in server["roles"] if r["is_default"])
    if server["owner_id"] == member["user"]["id"]:
        return int(ALL)
    perms = 0
    for r in server["roles"]:
        if r["is_default"] or r["id"] in member["role_ids"]:
            perms |= int(r["permissions"])
    if perms & P.ADMINISTRATOR:
        return int(ALL)

    def apply(perms: int, overrides: list[dict[str, Any]]) -> int:
        ea = ed = ra = rd = ma = md = 0
        for o in overrides:
            if o["kind"] == "role" and o["id"] == everyone["id"]:
                ea, ed = int(o["allow"]), int(o["deny"])
            elif o["kind"] == "role" and o["id"] in member["role_ids"]:
                ra |= int(o["allow"])
                rd |= int(o["deny"])
            elif o["kind"] == "member" and o["id"] == member["user"]["id"]:
                ma, md = int(o["allow"]), int(o["deny"])
        for allow, deny in ((ea, ed), (ra, rd), (ma, md)):
            perms = (perms & ~deny) | allow
        return perms

    if channel["permissions_synced"] and channel["parent_id"]:
        perms = apply(perms, channel["category_overrides"])
    perms = apply(perms, channel["overrides"])
    timed = member["timed_out_until"]
    if timed and datetime.fromisoformat(timed) > datetime.now(UTC):
        perms &= int(P.VIEW_CHANNEL | P.READ_MESSAGE_HISTORY)
    return perms if perms & P.VIEW_CHANNEL else 0


def _bits(rng: random.Random) -> int:
    return sum(int(b) for b in BITS if rng.random() < 0.5)


def _pair(rng: random.Random) -> tuple[int, int]:
    allow, deny = 0, 0
    for b in BITS:
        pick = rng.random()
        if pick < 0.25:
            allow |= int(b)
        elif pick < 0.5:
            deny |= int(b)
    return allow, deny


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_what_a_client_computes_is_what_the_server_enforces(
    client: httpx.AsyncClient, make_user: MakeUser, seed: int
) -> None:
    rng = random.Random(seed)
    owner = await make_user("owner")
    members = [await make_user(f"m{i}") for i in range(4)]
    srv = await community(client, owner, *members)
    everyone_perms = _bits(rng) | int(P.CREATE_INVITE)
    r = await client.patch(
        srv.url(f"/roles/{srv.everyone_role}"),
        headers=owner.headers,
        json={"permissions": str(everyone_perms)},
    )
    assert r.status_code == 200
    role_ids = [await role(client, srv, owner, f"r{i}", _bits(rng)) for i in range(3)]
    for m in members:
        for rid in role_ids:
            if rng.random() < 0.5:
                assert (
                    await client.put(srv.url(f"/members/{m.id}/roles/{rid}"), headers=owner.headers)
                ).status_code == 204
    cat = (await server_channel(client, srv, owner, "cat", kind="category"))["id"]
    chans = [srv.general]
    for i in range(3):
        made = await server_channel(
            client, srv, owner, f"c{i}", parent_id=cat, permissions_synced=rng.random() < 0.7
        )
        chans.append(made["id"])
    for channel in [cat, *chans]:
        targets = [
            ("role", srv.everyone_role),
            *(("role", r) for r in role_ids),
            *(("member", m.id) for m in members),
        ]
        for kind, target in targets:
            if rng.random() < 0.4:
                allow, deny = _pair(rng)
                assert (
                    await override(client, owner, channel, kind, target, allow, deny)
                ).status_code == 200
    until = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    timed = rng.choice(members)
    assert (
        await client.patch(
            srv.url(f"/members/{timed.id}"), headers=owner.headers, json={"timed_out_until": until}
        )
    ).status_code == 200
    posts = {c: await factories.say(client, owner, c, "a post") for c in chans}
    for m in members:
        shown = (await client.get(srv.url(), headers=m.headers)).json()
        by_id = {c["id"]: c for c in shown["channels"]}
        for c in chans:
            seen = c in by_id
            got = (await client.get(f"/api/channels/{c}", headers=m.headers)).status_code
            assert (got == 200) == seen, (m.username, c)
            if not seen:
                continue
            perms = _client_permissions(shown, by_id[c])
            assert perms & P.VIEW_CHANNEL
            where = (seed, m.username, by_id[c]["name"], perms)
            send = await factories.send_message(client, m, c, "x")
            assert (send.status_code == 201) == bool(perms & P.SEND_MESSAGES), where
            read = await client.get(f"/api/channels/{c}/messages", headers=m.headers)
            assert (read.status_code == 200) == bool(perms & P.READ_MESSAGE_HISTORY), where
            react = await client.put(
                f"/api/channels/{c}/messages/{posts[c]['id']}/reactions/%E2%9C%85/@me",
                headers=m.headers,
            )
            need = int(P.ADD_REACTIONS | P.READ_MESSAGE_HISTORY)
            assert (react.status_code == 204) == (perms & need == need), where
        # Channels not shown are the 404 of no channel.
        for c in chans:
            if c not in by_id:
                assert (
                    await client.get(f"/api/channels/{c}/messages", headers=m.headers)
                ).status_code == 404


PERMS_JS = Path(__file__).resolve().parents[2] / "src" / "xfchat" / "web" / "js" / "perms.js"


def _client_has(server: dict[str, Any], channel_id: str, names: list[str]) -> dict[str, bool]:
    """What the web client's own perms.js says the member may do in the channel."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    script = (
        f"import {{ P, has, channelPermissions }} from {json.dumps(PERMS_JS.as_uri())};\n"
        "const [server, id, names] = JSON.parse(process.argv[1]);\n"
        "const ch = server.channels.find((c) => c.id === id);\n"
        "const perms = channelPermissions(server, ch);\n"
        "console.log(JSON.stringify(Object.fromEntries(names.map((n) => [n, has(perms, P[n])]))));\n"
    )
    out = subprocess.run(
        [node, "--input-type=module", "-e", script, json.dumps([server, channel_id, names])],
        capture_output=True, text=True, check=True, timeout=30,
    )  # fmt: skip
    return dict(json.loads(out.stdout))


async def test_an_administrator_bit_in_an_override_grants_nothing_in_client_or_server(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    # FINDING: the owner may set ADMINISTRATOR in a channel override (any bit they hold);
    # the server ignores it (ADMINISTRATOR counts from roles only, as Discord), but the
    # web client's `has` read it as every permission, offering what the server refuses.
    owner, ben = await make_user("owner"), await make_user("ben")
    srv = await community(client, owner, ben)
    theirs = await factories.say(client, owner, srv.general, "hello")
    set_ = await override(
        client, owner, srv.general, "role", srv.everyone_role, allow=int(P.ADMINISTRATOR)
    )
    assert set_.status_code == 200
    shown = (await client.get(srv.url(), headers=ben.headers)).json()
    names = ["MANAGE_MESSAGES", "MANAGE_CHANNELS", "MANAGE_ROLES", "SEND_MESSAGES"]
    offered = _client_has(shown, srv.general, names)
    ch = f"/api/channels/{srv.general}"
    enforced = {
        "MANAGE_MESSAGES": (await client.delete(f"{ch}/messages/{theirs['id']}", headers=ben.headers)).status_code == 204,
        "MANAGE_CHANNELS": (await client.patch(ch, headers=ben.headers, json={"topic": "mine"})).status_code == 200,
        "MANAGE_ROLES": (await override(client, ben, srv.general, "role", srv.everyone_role)).status_code == 200,
        "SEND_MESSAGES": (await factories.send_message(client, ben, srv.general, "hi")).status_code == 201,
    }  # fmt: skip
    assert enforced == {
        "MANAGE_MESSAGES": False,
        "MANAGE_CHANNELS": False,
        "MANAGE_ROLES": False,
        "SEND_MESSAGES": True,
    }
    assert offered == enforced
