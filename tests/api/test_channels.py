"""One message API for every kind of channel, decided by the one access seam: a
server's text channels here (conversations are in test_messages.py)."""

from __future__ import annotations

import uuid

import asyncpg
import httpx

from tests import factories
from tests.factories import MakeUser, say
from xfchat.db.queries import servers as servers_q
from xfchat.domain.permissions import Permission


async def test_members_use_a_server_channel_like_a_conversation(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await factories.server(pool, ann, ben)
    general = str(srv.channels["general"])
    base = f"/api/channels/{general}"
    first = await say(client, ann, general, f"hi <@{ben.id}>")
    assert first["seq"] == 1 and first["mentions"] == [str(ben.id)]
    second = await say(client, ben, general, "hello", message_id=str(uuid.uuid4()))
    assert second["seq"] == 2
    history = (await client.get(f"{base}/messages", headers=ben.headers)).json()
    assert [m["id"] for m in history] == [second["id"], first["id"]]
    edited = await client.patch(
        f"{base}/messages/{first['id']}", headers=ann.headers, json={"content": "edited"}
    )
    assert edited.status_code == 200 and edited.json()["content"] == "edited"
    reacted = await client.put(
        f"{base}/messages/{first['id']}/reactions/👍/@me", headers=ben.headers
    )
    assert reacted.status_code == 204
    assert (
        await client.put(f"{base}/ack", headers=ben.headers, json={"seq": 2})
    ).status_code == 200
    states = (await client.get(f"{base}/read-states", headers=ann.headers)).json()
    # (ann's own message moved her read position to it)
    assert {s["user_id"]: s["last_read_seq"] for s in states} == {str(ann.id): 1}
    assert (await client.post(f"{base}/typing", headers=ann.headers)).status_code == 204


async def test_a_members_reading_in_a_server_channel_is_their_own(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool, conn: asyncpg.Connection
) -> None:
    """Was: every member's read position (and when they moved it) went to every member as
    a read receipt, an invisible member's too: when they were reading, for anyone in the
    server to follow. In a server channel a receipt is now the reader's own (Discord
    shows none); in a conversation the others still see it."""
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await factories.server(pool, ann, ben)
    general = str(srv.channels["general"])
    await say(client, ann, general, "hello")
    acked = await client.put(f"/api/channels/{general}/ack", headers=ben.headers, json={"seq": 1})
    assert acked.status_code == 200, acked.text
    for who, own in ((ann, 1), (ben, 1)):
        states = await client.get(f"/api/channels/{general}/read-states", headers=who.headers)
        assert [(s["user_id"], s["last_read_seq"]) for s in states.json()] == [(str(who.id), own)]
    channel_events = await factories.events_of(conn, "channel", uuid.UUID(general))
    assert "read_state.updated" not in [t for t, _ in channel_events]
    bens = [
        d for t, d in await factories.events_of(conn, "user", ben.id) if t == "read_state.updated"
    ]
    assert bens == [{"channel_id": general, "user_id": str(ben.id), "last_read_seq": 1}]
    dm = (await factories.direct(client, ann, ben))["id"]
    await say(client, ann, dm, "in private")
    await client.put(f"/api/channels/{dm}/ack", headers=ben.headers, json={"seq": 1})
    states = (await client.get(f"/api/channels/{dm}/read-states", headers=ann.headers)).json()
    assert {s["user_id"]: s["last_read_seq"] for s in states} == {str(ben.id): 1, str(ann.id): 1}


async def test_a_non_member_cannot_see_a_server_channel(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    ann, eve = await make_user("ann"), await make_user("eve")
    srv = await factories.server(pool, ann)
    general = str(srv.channels["general"])
    for method, url in [
        ("GET", f"/api/channels/{general}/messages"),
        ("POST", f"/api/channels/{general}/messages"),
        ("POST", f"/api/channels/{general}/typing"),
        ("GET", f"/api/channels/{general}/read-states"),
    ]:
        response = await client.request(method, url, headers=eve.headers, json={"content": "x"})
        assert response.status_code == 404 and response.json()["code"] == "CHANNEL_NOT_FOUND"


async def test_overrides_hide_a_channel_or_take_sending_away(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await factories.server(pool, ann, ben, text=("general", "staff", "news"))
    staff, news = srv.channels["staff"], srv.channels["news"]
    async with pool.acquire() as conn:
        await servers_q.upsert_permission_override(
            conn,
            channel_id=staff,
            role_id=srv.everyone_role,
            allow=0,
            deny=int(Permission.VIEW_CHANNEL),
        )
        await servers_q.upsert_permission_override(
            conn,
            channel_id=news,
            role_id=srv.everyone_role,
            allow=0,
            deny=int(Permission.SEND_MESSAGES),
        )
    hidden = await client.get(f"/api/channels/{staff}/messages", headers=ben.headers)
    assert hidden.status_code == 404 and hidden.json()["code"] == "CHANNEL_NOT_FOUND"
    assert (
        await client.get(f"/api/channels/{staff}/messages", headers=ann.headers)
    ).status_code == 200  # the owner
    muted = await client.post(
        f"/api/channels/{news}/messages", headers=ben.headers, json={"content": "x"}
    )
    assert muted.status_code == 403
    assert (
        muted.json()["code"] == "MISSING_PERMISSIONS" and muted.json()["missing"] == "SEND_MESSAGES"
    )
    typing = await client.post(f"/api/channels/{news}/typing", headers=ben.headers)
    assert typing.status_code == 403
    assert (
        await client.get(f"/api/channels/{news}/messages", headers=ben.headers)
    ).status_code == 200
    mention = await say(client, ann, str(srv.channels["general"]), f"<@{ben.id}>")
    assert mention["mentions"] == [str(ben.id)]
    hidden_mention = await say(client, ann, str(staff), f"<@{ben.id}>")
    assert hidden_mention["mentions"] == []  # ben may not see #staff


async def test_deleting_others_messages_needs_manage_messages(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    ann, ben, cid = await make_user("ann"), await make_user("ben"), await make_user("cid")
    srv = await factories.server(pool, ann, ben, cid)
    general = str(srv.channels["general"])
    message = await say(client, ben, general, "spam")
    url = f"/api/channels/{general}/messages/{message['id']}"
    refused = await client.delete(url, headers=cid.headers)
    assert refused.status_code == 403 and refused.json()["code"] == "NOT_MESSAGE_AUTHOR"
    assert (await client.delete(url, headers=ann.headers)).status_code == 204  # the owner
    assert (await client.get(url, headers=ben.headers)).json()["deleted"] is True


async def test_voice_channels_carry_no_messages(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    ann = await make_user("ann")
    srv = await factories.server(pool, ann, voice=("lounge",))
    lounge = srv.channels["lounge"]
    for method in ("GET", "POST"):
        response = await client.request(
            method, f"/api/channels/{lounge}/messages", headers=ann.headers, json={"content": "x"}
        )
        assert response.status_code == 400 and response.json()["code"] == "NOT_A_TEXT_CHANNEL"


async def test_get_channel_by_id_as_the_server_or_conversation_shows_it_404_when_hidden(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    ann, ben, eve = await make_user("ann"), await make_user("ben"), await make_user("eve")
    srv = await factories.community(client, ann, ben)
    staff = await factories.server_channel(client, srv, ann, "staff")
    hide = await factories.override(
        client, ann, staff["id"], "role", srv.everyone_role, deny=int(Permission.VIEW_CHANNEL)
    )
    assert hide.status_code == 200
    listed = (await client.get(srv.url(), headers=ben.headers)).json()["channels"]
    general = await client.get(f"/api/channels/{srv.general}", headers=ben.headers)
    assert general.status_code == 200
    assert general.json() == next(c for c in listed if c["id"] == srv.general)
    assert general.json()["server_id"] == srv.id
    dm = await factories.direct(client, ann, ben)
    as_channel = await client.get(f"/api/channels/{dm['id']}", headers=ben.headers)
    shown = (await client.get(f"/api/conversations/{dm['id']}", headers=ben.headers)).json()
    assert as_channel.status_code == 200 and as_channel.json() == {**shown, "server_id": None}
    unknown = await client.get(f"/api/channels/{uuid.uuid4()}", headers=ben.headers)
    assert unknown.status_code == 404 and unknown.json()["code"] == "CHANNEL_NOT_FOUND"
    for who, channel in ((ben, staff["id"]), (eve, srv.general), (eve, dm["id"])):
        hidden = await client.get(f"/api/channels/{channel}", headers=who.headers)
        assert (hidden.status_code, hidden.json()) == (404, unknown.json())
    assert (
        await client.get(f"/api/channels/{staff['id']}", headers=ann.headers)
    ).json() == hide.json()
