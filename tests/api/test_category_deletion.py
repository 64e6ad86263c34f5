"""Deleting a category: the channels synced with it keep a copy of its overrides as
their own (as Discord's keep their overwrites), so nobody gains or loses anything in
them, and MANAGE_CHANNELS in the category is all it asks."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import pytest

from tests import factories
from tests.factories import (
    Community,
    MakeUser,
    TestUser,
    community,
    lock_waiters,
    override,
    role,
    say,
)
from tests.factories import server_channel as channel
from xfchat.db.queries import servers as servers_q
from xfchat.domain import category_overrides
from xfchat.domain.permissions import Permission as P
from xfchat.domain.server_channels import delete_channel


def targets(overrides: list[dict[str, Any]]) -> set[tuple[str, str, str, str]]:
    return {(o["kind"], o["id"], o["allow"], o["deny"]) for o in overrides}


async def reads(client: httpx.AsyncClient, who: TestUser, channel_id: str) -> int:
    got = await client.get(f"/api/channels/{channel_id}/messages", headers=who.headers)
    return got.status_code


async def listed(client: httpx.AsyncClient, srv: Community, who: TestUser) -> set[str]:
    return {c["name"] for c in (await client.get(srv.url("/channels"), headers=who.headers)).json()}


async def private_staff(
    client: httpx.AsyncClient, srv: Community, owner: TestUser, staff_role: str
) -> str:
    """A category closed to @everyone and open to `staff_role`."""
    staff = (await channel(client, srv, owner, "staff", kind="category"))["id"]
    for target, allow, deny in (
        (srv.everyone_role, 0, P.VIEW_CHANNEL),
        (staff_role, P.VIEW_CHANNEL, 0),
    ):
        assert (
            await override(client, owner, staff, "role", target, int(allow), int(deny))
        ).is_success
    return staff


async def test_deleting_a_private_category_keeps_its_channels_private(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    ann, mod, sam, ben = [await make_user(n) for n in ("ann", "mod", "sam", "ben")]
    srv = await community(client, ann, mod, sam, ben)
    # mod may manage channels and nothing of roles: deleting a category is theirs to do.
    await role(client, srv, ann, "mods", int(P.MANAGE_CHANNELS), mod)
    staff_role = await role(client, srv, ann, "staff", 0, sam, mod)
    staff = await private_staff(client, srv, ann, staff_role)
    chat = await channel(client, srv, ann, "staff-chat", parent_id=staff)
    # A synced channel with an override of its own (it stays, the category's joining it).
    notes = await channel(client, srv, ann, "staff-notes", parent_id=staff)
    quiet = await override(client, ann, notes["id"], "member", sam.id, deny=int(P.SEND_MESSAGES))
    assert quiet.is_success
    # One in the category that does not follow it keeps its own overrides untouched.
    apart = await channel(
        client, srv, ann, "apart", parent_id=staff, permissions_synced=False, kind="voice"
    )
    assert (
        await override(client, ann, apart["id"], "role", staff_role, deny=int(P.SPEAK))
    ).is_success
    apart_before = (await client.get(f"/api/channels/{apart['id']}", headers=ann.headers)).json()
    said = await say(client, sam, chat["id"], "staff only")
    category_overrides = (await client.get(f"/api/channels/{staff}", headers=ann.headers)).json()[
        "overrides"
    ]
    assert await reads(client, ben, chat["id"]) == 404
    async with pool.acquire() as conn:
        told_before = {
            w.id: len(await factories.events_of(conn, "user", UUID(str(w.id))))
            for w in (ben, sam, mod)
        }

    gone = await client.delete(f"/api/channels/{staff}", headers=mod.headers)
    assert gone.status_code == 204, gone.text

    for c in (chat, notes):  # ben still cannot read or see them; sam still can
        assert await reads(client, ben, c["id"]) == 404
        assert await reads(client, sam, c["id"]) == 200
    assert {"staff-chat", "staff-notes", "staff"} & await listed(client, srv, ben) == set()
    assert {"staff-chat", "staff-notes"} <= await listed(client, srv, sam)
    history = await client.get(f"/api/channels/{chat['id']}/messages", headers=sam.headers)
    assert [m["id"] for m in history.json()] == [said["id"]]
    now = (await client.get(f"/api/channels/{chat['id']}", headers=ann.headers)).json()
    assert now["parent_id"] is None and now["permissions_synced"] is False
    assert targets(now["overrides"]) == targets(category_overrides)
    assert now["category_overrides"] == []
    kept = (await client.get(f"/api/channels/{notes['id']}", headers=ann.headers)).json()
    assert targets(kept["overrides"]) == targets(category_overrides) | {
        ("member", str(sam.id), "0", str(int(P.SEND_MESSAGES)))
    }
    still_quiet = await client.post(
        f"/api/channels/{notes['id']}/messages", headers=sam.headers, json={"content": "hi"}
    )
    assert still_quiet.status_code == 403
    apart_after = (await client.get(f"/api/channels/{apart['id']}", headers=ann.headers)).json()
    assert apart_after["overrides"] == apart_before["overrides"]
    assert apart_after["permissions_synced"] is False and apart_after["parent_id"] is None

    # Real time: nobody gains or loses a channel but the category itself; each channel
    # that was in it is told its new shape once, as a PATCH of its parent tells it.
    async with pool.acquire() as conn:
        for who in (ben, sam, mod):
            told = (await factories.events_of(conn, "user", UUID(str(who.id))))[
                told_before[who.id] :
            ]
            assert [t for t, _ in told if t.startswith("channel.")] == (
                [] if who is ben else ["channel.hidden"]
            ), (who.id, told)
            hidden = [d["channel_ids"] for t, d in told if t == "channel.hidden"]
            assert hidden == ([] if who is ben else [[staff]]), (who.id, hidden)
        for c in (chat, notes, apart):
            updates = [
                d
                for t, d in await factories.events_of(conn, "channel", UUID(c["id"]))
                if t == "channel.updated"
            ]
            last = updates[-1]
            assert last["parent_id"] is None and last["permissions_synced"] is False
            assert last["category_overrides"] == []
        chat_update = [
            d
            for t, d in await factories.events_of(conn, "channel", UUID(chat["id"]))
            if t == "channel.updated"
        ]
        assert targets(chat_update[-1]["overrides"]) == targets(category_overrides)
    # The audit log says what was copied where.
    log = await client.get(srv.url("/audit-log?action=channel.deleted"), headers=ann.headers)
    (entry,) = log.json()
    assert entry["changes"]["kind"] == "category"
    assert sorted(entry["changes"]["overrides_kept_in"]) == sorted([chat["id"], notes["id"]])
    assert targets(entry["changes"]["overrides"]) == targets(category_overrides)


async def test_deleting_a_category_needs_manage_channels_in_it(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    ann, mod, ben = [await make_user(n) for n in ("ann", "mod", "ben")]
    srv = await community(client, ann, mod, ben)
    mods = await role(client, srv, ann, "mods", int(P.MANAGE_CHANNELS), mod)
    staff = await private_staff(client, srv, ann, mods)
    chat = await channel(client, srv, ann, "staff-chat", parent_id=staff)
    # Without MANAGE_CHANNELS anywhere: refused; where the category is hidden: 404.
    assert (await client.delete(f"/api/channels/{staff}", headers=ben.headers)).status_code == 404
    cat = (await channel(client, srv, ann, "open", kind="category"))["id"]
    refused = await client.delete(f"/api/channels/{cat}", headers=ben.headers)
    assert refused.status_code == 403 and refused.json()["code"] == "MISSING_PERMISSIONS"
    # MANAGE_CHANNELS taken away in the category itself: refused, though held server-wide.
    denied = await override(client, ann, staff, "member", mod.id, deny=int(P.MANAGE_CHANNELS))
    assert denied.is_success
    refused = await client.delete(f"/api/channels/{staff}", headers=mod.headers)
    assert refused.status_code == 403 and refused.json()["code"] == "MISSING_PERMISSIONS"
    # Given back: MANAGE_CHANNELS there, without MANAGE_ROLES, is enough; ben gains
    # nothing by it.
    assert (await override(client, ann, staff, "member", mod.id)).is_success
    assert (await client.delete(f"/api/channels/{staff}", headers=mod.headers)).status_code == 204
    assert await reads(client, ben, chat["id"]) == 404


async def test_deleting_a_category_whose_channel_cannot_take_its_overrides_is_refused(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """Its own @everyone override lets the channel's members send, which the category's
    override of a role took from them first: as one layer, the role's would win."""
    ann, sam = await make_user("ann"), await make_user("sam")
    srv = await community(client, ann, sam)
    muted = await role(client, srv, ann, "muted", 0, sam)
    cat = (await channel(client, srv, ann, "cat", kind="category"))["id"]
    no_send = int(P.SEND_MESSAGES)
    assert (await override(client, ann, cat, "role", muted, deny=no_send)).is_success
    chat = (await channel(client, srv, ann, "chat", parent_id=cat))["id"]
    assert (await override(client, ann, chat, "role", srv.everyone_role, allow=no_send)).is_success
    refused = await client.delete(f"/api/channels/{cat}", headers=ann.headers)
    assert refused.status_code == 409 and refused.json()["code"] == "CATEGORY_OVERRIDES_CONFLICT"
    # Nothing changed: the category is there, chat follows it, sam still sends.
    shown = (await client.get(f"/api/channels/{chat}", headers=ann.headers)).json()
    assert shown["parent_id"] == cat and shown["permissions_synced"] is True
    assert (await say(client, sam, chat, "still here"))["content"] == "still here"
    # Overrides of both that make one layer as they are: deleted, each member as before.
    assert (await override(client, ann, chat, "role", srv.everyone_role)).is_success
    assert (await override(client, ann, chat, "role", muted, deny=no_send)).is_success
    assert (await client.delete(f"/api/channels/{cat}", headers=ann.headers)).status_code == 204
    refused_send = await client.post(
        f"/api/channels/{chat}/messages", headers=sam.headers, json={"content": "hi"}
    )
    assert refused_send.status_code == 403


async def test_deleting_a_category_never_opens_a_channel_to_a_later_role_holder(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """The category lets staff see its channels; one of them keeps staff out again with
    its own @everyone deny and lets admins in. Today every staff member is an admin too,
    so nobody's permissions differ, but the copy, as one layer, puts the staff role's
    allow after the channel's @everyone deny: whoever is given staff later would see the
    admins' channel, history included. Refused (409), or kept closed: never opened."""
    ann, mod, sam, ben = [await make_user(n) for n in ("ann", "mod", "sam", "ben")]
    srv = await community(client, ann, mod, sam, ben)
    await role(client, srv, ann, "mods", int(P.MANAGE_CHANNELS), mod)
    admins = await role(client, srv, ann, "admins", 0, sam, mod)
    staff_role = await role(client, srv, ann, "staff", 0, sam, mod)
    staff = await private_staff(client, srv, ann, staff_role)
    secret = (await channel(client, srv, ann, "admins-only", parent_id=staff))["id"]
    view = int(P.VIEW_CHANNEL)
    for target, allow, deny in ((srv.everyone_role, 0, view), (admins, view, 0)):
        assert (await override(client, ann, secret, "role", target, allow, deny)).is_success
    await say(client, sam, secret, "admins only")

    gone = await client.delete(f"/api/channels/{staff}", headers=mod.headers)
    assert gone.status_code in (204, 409), gone.text
    given = await client.put(srv.url(f"/members/{ben.id}/roles/{staff_role}"), headers=ann.headers)
    assert given.status_code == 204, given.text
    assert await reads(client, ben, secret) == 404
    assert "admins-only" not in await listed(client, srv, ben)


async def test_deleting_a_category_changes_nothing_for_a_timed_out_member_after(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    """A timeout hides every difference but seeing and reading: the category lets
    helpers send where the channel's own @everyone override says nobody sends, and the
    only helper is timed out. Once the timeout runs out they must not send there."""
    ann, tim = await make_user("ann"), await make_user("tim")
    srv = await community(client, ann, tim)
    helpers = await role(client, srv, ann, "helpers", 0, tim)
    cat = (await channel(client, srv, ann, "cat", kind="category"))["id"]
    send = int(P.SEND_MESSAGES)
    assert (await override(client, ann, cat, "role", helpers, allow=send)).is_success
    news = (await channel(client, srv, ann, "news", parent_id=cat))["id"]
    assert (await override(client, ann, news, "role", srv.everyone_role, deny=send)).is_success
    until = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    timed = await client.patch(
        srv.url(f"/members/{tim.id}"), headers=ann.headers, json={"timed_out_until": until}
    )
    assert timed.status_code == 200, timed.text
    gone = await client.delete(f"/api/channels/{cat}", headers=ann.headers)
    assert gone.status_code in (204, 409), gone.text
    # The timeout runs out.
    await conn.execute(
        "UPDATE server_members SET timed_out_until = now() - interval '1 second' "
        "WHERE server_id = $1 AND user_id = $2",
        UUID(srv.id),
        tim.id,
    )
    sent = await client.post(
        f"/api/channels/{news}/messages", headers=tim.headers, json={"content": "hi"}
    )
    assert sent.status_code == 403, sent.text


async def test_deleting_a_category_joins_its_bits_to_a_channel_override_of_the_same_target(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """The category's staff override and the channel's own for staff touch different
    bits: the channel's keeps its own and takes the category's (one override, not two)."""
    ann, sam, ben = [await make_user(n) for n in ("ann", "sam", "ben")]
    srv = await community(client, ann, sam, ben)
    staff_role = await role(client, srv, ann, "staff", 0, sam)
    staff = await private_staff(client, srv, ann, staff_role)
    chats = [(await channel(client, srv, ann, n, parent_id=staff))["id"] for n in ("a", "b")]
    embed = int(P.EMBED_LINKS)
    assert (await override(client, ann, chats[0], "role", staff_role, deny=embed)).is_success
    assert (await client.delete(f"/api/channels/{staff}", headers=ann.headers)).status_code == 204
    view = int(P.VIEW_CHANNEL)
    for chat, deny in zip(chats, (embed, 0), strict=True):
        shown = (await client.get(f"/api/channels/{chat}", headers=ann.headers)).json()
        assert shown["permissions_synced"] is False
        assert targets(shown["overrides"]) == {
            ("role", srv.everyone_role, "0", str(view)),
            ("role", staff_role, str(view), str(deny)),
        }
        assert await reads(client, sam, chat) == 200 and await reads(client, ben, chat) == 404


async def test_deleting_a_category_tells_nothing_of_a_channel_its_viewer_cannot_see(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    """Ben sees the category, not its synced channel (kept from him by its own
    override): he is told the category went, and nothing of the channel."""
    ann, sam, ben = [await make_user(n) for n in ("ann", "sam", "ben")]
    srv = await community(client, ann, sam, ben)
    staff_role = await role(client, srv, ann, "staff", 0, sam)
    cat = (await channel(client, srv, ann, "cat", kind="category"))["id"]
    react = int(P.ADD_REACTIONS)
    assert (await override(client, ann, cat, "role", srv.everyone_role, deny=react)).is_success
    hidden = (await channel(client, srv, ann, "hidden", parent_id=cat))["id"]
    view = int(P.VIEW_CHANNEL)
    for target, allow, deny in ((srv.everyone_role, 0, view), (staff_role, view, 0)):
        assert (await override(client, ann, hidden, "role", target, allow, deny)).is_success
    async with pool.acquire() as conn:
        before = len(await factories.events_of(conn, "user", UUID(str(ben.id))))
    assert (await client.delete(f"/api/channels/{cat}", headers=ann.headers)).status_code == 204
    async with pool.acquire() as conn:
        told = (await factories.events_of(conn, "user", UUID(str(ben.id))))[before:]
    assert [(t, d.get("channel_ids")) for t, d in told if t.startswith("channel.")] == [
        ("channel.hidden", [cat])
    ]
    assert hidden not in str(told)
    shown = (await client.get(srv.url(""), headers=ben.headers)).json()
    assert hidden not in {c["id"] for c in shown["channels"]}
    assert cat not in {c["id"] for c in shown["channels"]}
    assert await reads(client, sam, hidden) == 200
    assert await reads(client, ben, hidden) == 404


async def test_deleting_a_category_as_channels_and_overrides_change_leaves_none_open(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """The deletion at once with a channel moved in, one moved out, an override of the
    category and of a synced channel changed, a role deleted and a member leaving: each
    answered (no 500), and whatever order they took, a channel that followed the private
    category at its deletion is still closed to ben."""
    ann, sam, ben, lea = [await make_user(n) for n in ("ann", "sam", "ben", "lea")]
    srv = await community(client, ann, sam, ben, lea)
    staff_role = await role(client, srv, ann, "staff", 0, sam, lea)
    gone_role = await role(client, srv, ann, "gone", 0, sam)
    staff = await private_staff(client, srv, ann, staff_role)
    assert (await override(client, ann, staff, "role", gone_role, allow=int(P.SPEAK))).is_success
    inside = (await channel(client, srv, ann, "inside", parent_id=staff))["id"]
    leaving = (await channel(client, srv, ann, "leaving", parent_id=staff))["id"]
    coming = (await channel(client, srv, ann, "coming"))["id"]
    voice = (await channel(client, srv, ann, "voice", parent_id=staff, kind="voice"))["id"]
    react = int(P.ADD_REACTIONS)
    answers = await asyncio.gather(
        client.delete(f"/api/channels/{staff}", headers=ann.headers),
        client.patch(f"/api/channels/{coming}", headers=ann.headers, json={"parent_id": staff}),
        client.patch(f"/api/channels/{leaving}", headers=ann.headers, json={"parent_id": None}),
        override(client, ann, staff, "member", ben.id, deny=react),
        override(client, ann, inside, "member", sam.id, deny=int(P.EMBED_LINKS)),
        client.delete(srv.url(f"/roles/{gone_role}"), headers=ann.headers),
        client.delete(srv.url("/members/@me"), headers=lea.headers),
    )
    assert all(a.status_code < 500 for a in answers), [a.text for a in answers]
    assert answers[0].status_code == 204, answers[0].text
    for c in (inside, voice):
        assert await reads(client, ben, c) == 404
        assert await reads(client, sam, c) in (200, 400)
    shown = (await client.get(f"/api/channels/{coming}", headers=ann.headers)).json()
    if answers[1].status_code == 200:  # moved in first: it keeps the category's closure
        assert await reads(client, ben, coming) == 404
    assert shown["parent_id"] is None
    listed_ben = await listed(client, srv, ben)
    assert {"inside", "voice", "staff"} & listed_ben == set()


async def test_an_override_set_as_its_category_is_deleted_tells_the_channel_as_it_is_after(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    """The override's change reads the channel, then waits for the server's lock while
    the category is deleted: its answer and its channel.updated must show the channel
    as the deletion left it (no category, not synced), not as it was read before."""
    ann, sam = await make_user("ann"), await make_user("sam")
    srv = await community(client, ann, sam)
    staff_role = await role(client, srv, ann, "staff", 0, sam)
    staff = await private_staff(client, srv, ann, staff_role)
    inside = (await channel(client, srv, ann, "inside", parent_id=staff))["id"]
    async with pool.acquire() as conn, conn.transaction():
        await servers_q.lock_server(conn, server_id=UUID(srv.id))
        waiting = asyncio.create_task(
            override(client, ann, inside, "member", sam.id, deny=int(P.EMBED_LINKS))
        )
        await lock_waiters(pool)
        await delete_channel(conn, ann.actor, UUID(staff), None)
    answer = await waiting
    assert answer.status_code == 200, answer.text
    assert answer.json()["parent_id"] is None and answer.json()["permissions_synced"] is False
    async with pool.acquire() as conn:
        told = [d for t, d in await factories.events_of(conn, "channel", UUID(inside))]
    assert told[-1]["parent_id"] is None and told[-1]["permissions_synced"] is False
    shown = (await client.get(f"/api/channels/{inside}", headers=ann.headers)).json()
    assert answer.json() == shown


async def test_an_override_set_as_its_channel_is_deleted_is_404(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    """The channel goes while the override's change waits for the server's lock."""
    ann, sam = await make_user("ann"), await make_user("sam")
    srv = await community(client, ann, sam)
    doomed = (await channel(client, srv, ann, "doomed"))["id"]
    async with pool.acquire() as conn, conn.transaction():
        await servers_q.lock_server(conn, server_id=UUID(srv.id))
        waiting = asyncio.create_task(
            override(client, ann, doomed, "member", sam.id, deny=int(P.EMBED_LINKS))
        )
        await lock_waiters(pool)
        await delete_channel(conn, ann.actor, UUID(doomed), None)
    answer = await waiting
    assert answer.status_code == 404 and answer.json()["code"] == "CHANNEL_NOT_FOUND", answer.text


async def test_a_category_deletion_past_a_channels_overrides_names_the_channels_seen(
    client: httpx.AsyncClient, make_user: MakeUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Was: 403 TOO_MANY_OVERRIDES said "a channel has at most 100 overrides" and not
    which: now `channel_ids` names them, as a 409's, those the deleter may see."""
    ann, mod = await make_user("ann"), await make_user("mod")
    srv = await community(client, ann, mod)
    await role(client, srv, ann, "mods", int(P.MANAGE_CHANNELS), mod)
    r1, r2, r3 = [await role(client, srv, ann, f"r{i}", 0) for i in (1, 2, 3)]
    cat = (await channel(client, srv, ann, "cat", kind="category"))["id"]
    assert (await override(client, ann, cat, "role", r1, deny=int(P.SEND_MESSAGES))).is_success
    fits = (await channel(client, srv, ann, "fits", parent_id=cat))["id"]
    full = []
    for name in ("seen", "hidden"):
        made = (await channel(client, srv, ann, name, parent_id=cat))["id"]
        for r in (r2, r3):
            own = await override(client, ann, made, "role", r, deny=int(P.ATTACH_FILES))
            assert own.is_success
        full.append(made)
    seen, hidden = full
    hide = await override(client, ann, hidden, "member", mod.id, deny=int(P.VIEW_CHANNEL))
    assert hide.is_success
    monkeypatch.setattr(category_overrides, "MAX_OVERRIDES", 2)
    for who, named in ((mod, [seen]), (ann, [seen, hidden])):
        refused = await client.delete(f"/api/channels/{cat}", headers=who.headers)
        assert refused.status_code == 403, refused.text
        body = refused.json()
        assert body["code"] == "TOO_MANY_OVERRIDES"
        assert sorted(body["channel_ids"]) == sorted(named), (who.id, body)
        assert fits not in body["channel_ids"]


async def _state(pool: asyncpg.Pool, server_id: str) -> list[Any]:
    """What a category's deletion could change: the server's channels (their category
    and syncing), their overrides, its audit log and the event log's head."""
    async with pool.acquire() as conn:
        return [
            await conn.fetch(
                "SELECT id, parent_id, permissions_synced FROM channels"
                " WHERE server_id = $1 ORDER BY id",
                UUID(server_id),
            ),
            await conn.fetch(
                "SELECT o.channel_id, o.role_id, o.user_id, o.allow, o.deny"
                " FROM channel_permission_overrides o JOIN channels c ON c.id = o.channel_id"
                " WHERE c.server_id = $1 ORDER BY o.id",
                UUID(server_id),
            ),
            await conn.fetchval(
                "SELECT count(*) FROM audit_log WHERE server_id = $1", UUID(server_id)
            ),
            await conn.fetchval("SELECT g FROM event_clock"),
        ]


async def test_a_refused_category_deletion_names_what_its_deleter_sees_and_changes_nothing(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    pool: asyncpg.Pool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Was: 409 CATEGORY_OVERRIDES_CONFLICT said "a channel following this category" and
    no more, so a client could not show which of its channels to change or unsync first:
    now `channel_ids` names them, those the deleter may see (one kept from them is not
    named, as nothing else tells them of it). And was: the deletion read who sees the
    category and each of its channels (every member) before checking whether the copy
    of its overrides could be made, so a 409 CATEGORY_OVERRIDES_CONFLICT or a 403
    TOO_MANY_OVERRIDES paid for that read too. Now the copy is checked first, and a
    refusal reads what its deleter alone sees to name the channels (a cost: the answers
    are as they were): still those it may see, and nothing written, no event, no audit
    entry, no override, every channel still synced."""
    ann, mod, sam = [await make_user(n) for n in ("ann", "mod", "sam")]
    srv = await community(client, ann, mod, sam)
    await role(client, srv, ann, "mods", int(P.MANAGE_CHANNELS), mod)
    muted = await role(client, srv, ann, "muted", 0, sam)
    cat = (await channel(client, srv, ann, "cat", kind="category"))["id"]
    no_send = int(P.SEND_MESSAGES)
    assert (await override(client, ann, cat, "role", muted, deny=no_send)).is_success
    fine = (await channel(client, srv, ann, "fine", parent_id=cat))["id"]
    crossed = []
    for name in ("chat", "secret"):
        made = (await channel(client, srv, ann, name, parent_id=cat))["id"]
        everyone = await override(client, ann, made, "role", srv.everyone_role, allow=no_send)
        assert everyone.is_success
        crossed.append(made)
    chat, secret = crossed
    hide = await override(client, ann, secret, "member", mod.id, deny=int(P.VIEW_CHANNEL))
    assert hide.is_success

    async def refused_as(status: int, code: str) -> None:
        """Refused to each, naming what each sees, with nothing changed."""
        before = await _state(pool, srv.id)
        for who, named in ((mod, [chat]), (ann, [chat, secret])):
            refused = await client.delete(f"/api/channels/{cat}", headers=who.headers)
            assert refused.status_code == status, refused.text
            assert refused.json()["code"] == code
            assert sorted(refused.json()["channel_ids"]) == sorted(named), who.id
            assert fine not in refused.json()["channel_ids"]
            assert await _state(pool, srv.id) == before

    await refused_as(409, "CATEGORY_OVERRIDES_CONFLICT")
    # Past a channel's overrides (chat and secret hold two, fine none): 403, likewise.
    monkeypatch.setattr(category_overrides, "MAX_OVERRIDES", 1)
    for target in (chat, secret):  # (no longer crossed)
        assert (await override(client, ann, target, "role", muted, deny=no_send)).is_success
    await refused_as(403, "TOO_MANY_OVERRIDES")
    # Within the bounds, it goes, the channels keeping the category's overrides.
    monkeypatch.setattr(category_overrides, "MAX_OVERRIDES", 100)
    assert (await client.delete(f"/api/channels/{cat}", headers=mod.headers)).status_code == 204
    shown = (await client.get(f"/api/channels/{chat}", headers=ann.headers)).json()
    assert shown["parent_id"] is None and shown["permissions_synced"] is False
    assert ("role", muted, "0", str(no_send)) in targets(shown["overrides"])
