"""Who may put a channel in a category, or move one into or out of it: MANAGE_CHANNELS
where it lands, computed with the category's overrides (as Discord judges it)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.factories import MakeUser, community, override, role, server_channel
from xfchat.domain.permissions import Permission as P


def _refused(answer: httpx.Response, code: str = "MISSING_PERMISSIONS") -> None:
    assert answer.status_code == (400 if code == "INVALID_PARENT" else 403), answer.text
    assert answer.json()["code"] == code, answer.text


async def _create(client: httpx.AsyncClient, srv: Any, who: Any, **fields: Any) -> httpx.Response:
    return await client.post(srv.url("/channels"), headers=who.headers, json=fields)


async def test_create_channel_in_a_category_denying_manage_channels_is_403(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """Was 201: server-wide MANAGE_CHANNELS was all that was asked."""
    ann, mod = await make_user("ann"), await make_user("mod")
    srv = await community(client, ann, mod)
    mods = await role(client, srv, ann, "mods", int(P.MANAGE_CHANNELS), mod)
    cat = await server_channel(client, srv, ann, "Staff", kind="category")
    denied = await override(client, ann, cat["id"], "role", mods, deny=int(P.MANAGE_CHANNELS))
    assert denied.status_code == 200, denied.text
    _refused(await _create(client, srv, mod, name="x", parent_id=cat["id"]))
    assert (await _create(client, srv, mod, name="loose")).status_code == 201
    names = [
        c["name"] for c in (await client.get(srv.url("/channels"), headers=ann.headers)).json()
    ]
    assert "x" not in names


async def test_create_channel_in_a_category_one_cannot_see_is_invalid_parent(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """The same answer as for a category that does not exist: it tells nothing of it."""
    ann, mod = await make_user("ann"), await make_user("mod")
    srv = await community(client, ann, mod)
    await role(client, srv, ann, "mods", int(P.MANAGE_CHANNELS), mod)
    cat = await server_channel(client, srv, ann, "Staff", kind="category")
    await override(client, ann, cat["id"], "member", mod.id, deny=int(P.VIEW_CHANNEL))
    hidden = await _create(client, srv, mod, name="x", parent_id=cat["id"])
    none = await _create(client, srv, mod, name="x", parent_id=srv.everyone_role)
    _refused(hidden, "INVALID_PARENT")
    assert hidden.json() == none.json()


async def test_create_channel_with_manage_channels_granted_by_the_category_is_201(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """Was 403: the category's grant was not looked at. The channel follows the category,
    so its maker holds there what the category gives them, nothing more."""
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await community(client, ann, ben)
    cat = await server_channel(client, srv, ann, "Games", kind="category")
    await override(client, ann, cat["id"], "member", ben.id, allow=int(P.MANAGE_CHANNELS))
    await override(client, ann, cat["id"], "role", srv.everyone_role, deny=int(P.SEND_MESSAGES))
    made = await _create(client, srv, ben, name="chess", parent_id=cat["id"])
    assert made.status_code == 201, made.text
    assert made.json()["parent_id"] == cat["id"] and made.json()["permissions_synced"] is True
    _refused(await _create(client, srv, ben, name="loose"))  # not outside the category
    said = await client.post(
        f"/api/channels/{made.json()['id']}/messages", headers=ben.headers, json={"content": "x"}
    )
    _refused(said)  # the category's deny follows it
    _refused(  # and its overrides stay the server's MANAGE_ROLES holders' to change
        await override(client, ben, made.json()["id"], "member", ben.id, allow=int(P.SEND_MESSAGES))
    )


async def test_create_unsynced_channel_in_a_category_with_overrides_needs_manage_roles(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """A channel in a category that does not follow its overrides is free of its
    denials: as unsyncing one, it needs MANAGE_ROLES and what they deny held there. Was
    201 for MANAGE_CHANNELS alone (and so, with the category's grant, a way for a
    category's manager to make channels its denials do not reach)."""
    ann, ben, mod = [await make_user(n) for n in ("ann", "ben", "mod")]
    srv = await community(client, ann, ben, mod)
    await role(client, srv, ann, "mods", int(P.MANAGE_CHANNELS | P.MANAGE_ROLES), mod)
    cat = await server_channel(client, srv, ann, "News", kind="category")
    await override(client, ann, cat["id"], "member", ben.id, allow=int(P.MANAGE_CHANNELS))
    await override(client, ann, cat["id"], "role", srv.everyone_role, deny=int(P.SEND_MESSAGES))
    free = {"name": "free", "parent_id": cat["id"], "permissions_synced": False}
    _refused(await _create(client, srv, ben, **free))
    # MANAGE_ROLES is not enough where SEND_MESSAGES, which the category denies, is not held
    _refused(await _create(client, srv, mod, **free))
    await override(client, ann, cat["id"], "member", mod.id, allow=int(P.SEND_MESSAGES))
    made = await _create(client, srv, mod, **free)
    assert made.status_code == 201, made.text
    assert made.json()["permissions_synced"] is False


async def test_move_channel_into_a_category_denying_manage_channels_is_403(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """Was 200: MANAGE_CHANNELS in the channel and MANAGE_ROLES were asked, not
    MANAGE_CHANNELS in the destination."""
    ann, mod = await make_user("ann"), await make_user("mod")
    srv = await community(client, ann, mod)
    mods = await role(client, srv, ann, "mods", int(P.MANAGE_CHANNELS | P.MANAGE_ROLES), mod)
    closed = await server_channel(client, srv, ann, "Closed", kind="category")
    open_ = await server_channel(client, srv, ann, "Open", kind="category")
    await override(client, ann, closed["id"], "role", mods, deny=int(P.MANAGE_CHANNELS))
    loose = await server_channel(client, srv, ann, "loose")
    for sync in (True, False):
        body = {"parent_id": closed["id"], "permissions_synced": sync}
        _refused(await client.patch(f"/api/channels/{loose['id']}", headers=mod.headers, json=body))
    moved = await client.patch(
        f"/api/channels/{loose['id']}", headers=mod.headers, json={"parent_id": open_["id"]}
    )
    assert moved.status_code == 200 and moved.json()["parent_id"] == open_["id"], moved.text


async def test_move_channel_with_manage_channels_only_from_categories(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """Granted MANAGE_CHANNELS by two categories' overrides (and MANAGE_ROLES, which any
    move asks), one moves a channel from one to the other; out of both, where the
    server's MANAGE_CHANNELS decides as for a new uncategorised channel, not (was 200)."""
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await community(client, ann, ben)
    await role(client, srv, ann, "perms", int(P.MANAGE_ROLES), ben)
    one = await server_channel(client, srv, ann, "One", kind="category")
    two = await server_channel(client, srv, ann, "Two", kind="category")
    for cat in (one, two):
        await override(client, ann, cat["id"], "member", ben.id, allow=int(P.MANAGE_CHANNELS))
    chan = await server_channel(client, srv, ann, "c", parent_id=one["id"])
    url = f"/api/channels/{chan['id']}"
    across = await client.patch(url, headers=ben.headers, json={"parent_id": two["id"]})
    assert across.status_code == 200 and across.json()["parent_id"] == two["id"], across.text
    _refused(await client.patch(url, headers=ben.headers, json={"parent_id": None}))
    shown = (await client.get(url, headers=ann.headers)).json()
    assert shown["parent_id"] == two["id"]


async def test_move_unsynced_channel_into_a_category_with_overrides_is_asked_as_making_one(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """Was 200: making a channel in a category that does not follow its overrides needs
    what they deny held in the category, but making it uncategorised (it follows nothing)
    and moving it in, unsynced, reached the same place with MANAGE_ROLES alone."""
    ann, mod = await make_user("ann"), await make_user("mod")
    srv = await community(client, ann, mod)
    await role(client, srv, ann, "mods", int(P.MANAGE_CHANNELS | P.MANAGE_ROLES), mod)
    cat = await server_channel(client, srv, ann, "News", kind="category")
    await override(client, ann, cat["id"], "role", srv.everyone_role, deny=int(P.SEND_MESSAGES))
    _refused(await _create(client, srv, mod, name="free", parent_id=cat["id"], **UNSYNCED))
    loose = await server_channel(client, srv, mod, "free")
    assert loose["permissions_synced"] is False
    url = f"/api/channels/{loose['id']}"
    _refused(await client.patch(url, headers=mod.headers, json={"parent_id": cat["id"]}))
    _refused(
        await client.patch(url, headers=mod.headers, json={"parent_id": cat["id"], **UNSYNCED})
    )
    # following the category (whose denials then reach it) is a move as before
    synced = {"parent_id": cat["id"], "permissions_synced": True}
    moved = await client.patch(url, headers=mod.headers, json=synced)
    assert moved.status_code == 200, moved.text
    assert moved.json()["category_overrides"] and moved.json()["permissions_synced"] is True
    # and with SEND_MESSAGES held in the category, as making it unsynced there asks
    await override(client, ann, cat["id"], "member", mod.id, allow=int(P.SEND_MESSAGES))
    other = await server_channel(client, srv, mod, "free-2")
    moved = await client.patch(
        f"/api/channels/{other['id']}", headers=mod.headers, json={"parent_id": cat["id"]}
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["parent_id"] == cat["id"] and moved.json()["permissions_synced"] is False


UNSYNCED = {"permissions_synced": False}


async def test_a_move_racing_its_categorys_deletion_is_one_or_the_other(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """Held: both take the server's lock; the move lands in the category (which then
    goes, leaving it uncategorised) or finds it gone (INVALID_PARENT). Malformed parents
    are 400s, another server's category is INVALID_PARENT."""
    ann = await make_user("ann")
    srv = await community(client, ann)
    for _ in range(3):
        cat = await server_channel(client, srv, ann, "Doomed", kind="category")
        loose = await server_channel(client, srv, ann, "loose")
        moved, deleted = await asyncio.gather(
            client.patch(
                f"/api/channels/{loose['id']}", headers=ann.headers, json={"parent_id": cat["id"]}
            ),
            client.delete(f"/api/channels/{cat['id']}", headers=ann.headers),
        )
        assert deleted.status_code == 204, deleted.text
        if moved.status_code != 200:
            _refused(moved, "INVALID_PARENT")
        now = await client.get(f"/api/channels/{loose['id']}", headers=ann.headers)
        assert now.json()["parent_id"] is None, now.text
    elsewhere = await community(client, ann, name="other")
    theirs = await server_channel(client, elsewhere, ann, "Theirs", kind="category")
    url = f"/api/channels/{loose['id']}"
    _refused(
        await client.patch(url, headers=ann.headers, json={"parent_id": theirs["id"]}),
        "INVALID_PARENT",
    )
    _refused(await _create(client, srv, ann, name="x", parent_id=theirs["id"]), "INVALID_PARENT")
    for bad in ("nope", 12, [], {"id": theirs["id"]}, loose["id"]):
        for answer in (
            await client.patch(url, headers=ann.headers, json={"parent_id": bad}),
            await _create(client, srv, ann, name="x", parent_id=bad),
        ):
            assert answer.status_code in (400, 422), (bad, answer.text)


async def test_a_refusal_in_the_destination_says_the_category_not_this_channel(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """Was: making a channel in a category that denies one MANAGE_CHANNELS, or moving
    one there, was refused with "you need MANAGE_CHANNELS in this channel": a new
    channel is no channel yet, and a moved one's own MANAGE_CHANNELS was there. The
    message a client shows now says where it is missing; `missing` is as before."""
    ann, mod = await make_user("ann"), await make_user("mod")
    srv = await community(client, ann, mod)
    mods = await role(client, srv, ann, "mods", int(P.MANAGE_CHANNELS | P.MANAGE_ROLES), mod)
    closed = await server_channel(client, srv, ann, "Closed", kind="category")
    await override(client, ann, closed["id"], "role", mods, deny=int(P.MANAGE_CHANNELS))
    loose = await server_channel(client, srv, ann, "loose")
    for answer in (
        await _create(client, srv, mod, name="x", parent_id=closed["id"]),
        await client.patch(
            f"/api/channels/{loose['id']}", headers=mod.headers, json={"parent_id": closed["id"]}
        ),
    ):
        _refused(answer)
        body = answer.json()
        assert body["missing"] == "MANAGE_CHANNELS", body
        assert body["message"] == "you need MANAGE_CHANNELS in the category it goes in", body
