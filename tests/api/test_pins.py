"""Pins: who may pin, the limit, the events and the system message."""

from __future__ import annotations

import uuid

import asyncpg
import httpx
import pytest

from tests import factories
from tests.factories import MakeUser, community, role
from xfchat.domain import pins
from xfchat.domain.permissions import Permission as P


async def test_moderators_pin_in_servers_with_a_notice_events_and_a_limit(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    pool: asyncpg.Pool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ann, mod, ben = [await make_user(n) for n in ("ann", "mod", "ben")]
    srv = await community(client, ann, mod, ben)
    await role(client, srv, ann, "mods", int(P.MANAGE_MESSAGES), mod)
    said = [await factories.say(client, ben, srv.general, f"note {i}") for i in range(3)]
    url = f"/api/channels/{srv.general}/pins"
    refused = await client.put(f"{url}/{said[0]['id']}", headers=ben.headers)
    assert refused.status_code == 403 and refused.json()["code"] == "MISSING_PERMISSIONS"
    missing = await client.put(f"{url}/{uuid.uuid4()}", headers=mod.headers)
    assert missing.status_code == 404 and missing.json()["code"] == "MESSAGE_NOT_FOUND"
    stranger = await make_user("zed")
    hidden = await client.get(url, headers=stranger.headers)
    assert hidden.status_code == 404 and hidden.json()["code"] == "CHANNEL_NOT_FOUND"
    assert (await client.put(f"{url}/{said[0]['id']}", headers=mod.headers)).status_code == 204
    assert (await client.put(f"{url}/{said[0]['id']}", headers=mod.headers)).status_code == 204
    assert (await client.put(f"{url}/{said[1]['id']}", headers=mod.headers)).status_code == 204
    listed = await client.get(url, headers=ben.headers)
    assert [m["id"] for m in listed.json()] == [said[1]["id"], said[0]["id"]]
    assert all(m["pinned"] for m in listed.json())
    monkeypatch.setattr(pins, "MAX_PINS", 2)
    full = await client.put(f"{url}/{said[2]['id']}", headers=mod.headers)
    assert full.status_code == 400 and full.json()["code"] == "TOO_MANY_PINS"
    # The history shows who pinned what, once per pin.
    history = (
        await client.get(f"/api/channels/{srv.general}/messages", headers=ben.headers)
    ).json()
    notices = [m for m in history if m["kind"] == "pin"]
    assert [(n["author"]["username"], n["reply_to_id"]) for n in notices] == [
        ("mod", said[1]["id"]),
        ("mod", said[0]["id"]),
    ]
    assert notices[0]["reply_to"]["content"] == "note 1"
    # Was: a pin's notice did not move its author's read position, as a send does (and
    # clients do on their own message.created): mod had an unread message of their own.
    receipts = (
        await client.get(f"/api/channels/{srv.general}/read-states", headers=mod.headers)
    ).json()
    assert {r["user_id"]: r["last_read_seq"] for r in receipts}[str(mod.id)] == notices[0]["seq"]
    notice_edit = await client.patch(
        f"/api/channels/{srv.general}/messages/{notices[0]['id']}",
        headers=mod.headers,
        json={"content": "I did not"},
    )
    assert notice_edit.status_code == 403 and notice_edit.json()["code"] == "SYSTEM_MESSAGE"
    assert (await client.delete(f"{url}/{said[0]['id']}", headers=mod.headers)).status_code == 204
    # Deleting a pinned message unpins it.
    gone = await client.delete(
        f"/api/channels/{srv.general}/messages/{said[1]['id']}", headers=ben.headers
    )
    assert gone.status_code == 204
    assert (await client.get(url, headers=ben.headers)).json() == []
    async with pool.acquire() as conn:
        events = await factories.events_of(conn, "channel", uuid.UUID(srv.general))
    kinds = [(t, d.get("message_id") or d.get("kind")) for t, d in events if t != "message.deleted"]
    assert kinds[-5:] == [
        ("message.pinned", said[0]["id"]),
        ("message.created", "pin"),
        ("message.pinned", said[1]["id"]),
        ("message.created", "pin"),
        ("message.unpinned", said[0]["id"]),
    ]


async def test_anyone_in_a_conversation_pins_but_not_across_a_block(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    ann, ben, dm = await factories.pair(client, make_user)
    said = await factories.say(client, ben, dm, "remember this")
    url = f"/api/channels/{dm}/pins/{said['id']}"
    assert (await client.put(url, headers=ann.headers)).status_code == 204
    assert (await client.delete(url, headers=ben.headers)).status_code == 204
    blocked = await client.put(f"/api/users/@me/blocks/{ben.id}", headers=ann.headers)
    assert blocked.status_code in (200, 204)
    refused = await client.put(url, headers=ann.headers)
    assert refused.status_code == 403 and refused.json()["code"] == "CANNOT_MESSAGE_USER"
    assert (await client.get(f"/api/channels/{dm}/pins", headers=ann.headers)).json() == []


async def test_a_pin_notice_cannot_be_pinned(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    """Was: a `pin` notice, a system message, could be pinned (as it cannot be edited,
    SYSTEM_MESSAGE): each pin of one posted a notice of the notice, which could be
    pinned in turn, filling the channel's pins and history with "pinned a message"
    lines that pin nothing a person wrote (in a conversation any participant may pin).
    Discord refuses an action on a system message the same way."""
    ann, ben, dm = await factories.pair(client, make_user)
    said = await factories.say(client, ben, dm, "remember this")
    url = f"/api/channels/{dm}/pins"
    assert (await client.put(f"{url}/{said['id']}", headers=ann.headers)).status_code == 204
    history = await client.get(f"/api/channels/{dm}/messages", headers=ann.headers)
    notice = history.json()[0]
    assert notice["kind"] == "pin" and notice["reply_to_id"] == said["id"]
    refused = await client.put(f"{url}/{notice['id']}", headers=ben.headers)
    assert refused.status_code == 403 and refused.json()["code"] == "SYSTEM_MESSAGE"
    assert [m["id"] for m in (await client.get(url, headers=ann.headers)).json()] == [said["id"]]
    assert await conn.fetchval("SELECT count(*) FROM messages WHERE kind = 'pin'") == 1
