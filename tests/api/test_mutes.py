"""Mutes of channels, conversations and servers: yours alone, of what you may see,
bounded, ending on time, told to your other sessions, gone when you leave."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import pytest

from tests import factories
from tests.api.user_targets import (
    NOWHERE,
    leaving_drops_them,
    put_racing_a_leave,
    unseen_targets,
)
from tests.factories import MakeUser, TestUser
from xfchat.domain import mutes
from xfchat.domain.retention import prune_rows
from xfchat.settings import Settings

MUTES = "/api/users/@me/mutes"


def later(**delta: float) -> str:
    return (datetime.now(UTC) + timedelta(**delta)).isoformat()


async def put_mute(
    client: httpx.AsyncClient, who: TestUser, kind: str, target: object, until: Any = None
) -> httpx.Response:
    return await client.put(f"{MUTES}/{kind}/{target}", headers=who.headers, json={"until": until})


async def listed(client: httpx.AsyncClient, who: TestUser) -> list[dict[str, Any]]:
    got = await client.get(MUTES, headers=who.headers)
    assert got.status_code == 200, got.text
    return list(got.json())


async def test_mute_a_channel_a_conversation_and_a_server(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await factories.community(client, ann, ben)
    talk = (await factories.direct(client, ann, ben))["id"]
    until = later(hours=8)

    channel = await put_mute(client, ben, "channel", srv.general, until)
    assert channel.status_code == 200, channel.text
    assert channel.json() == {
        "kind": "channel",
        "id": srv.general,
        "until": datetime.fromisoformat(until).isoformat(),
    }
    assert (await put_mute(client, ben, "channel", talk)).json()["until"] is None
    assert (await put_mute(client, ben, "server", srv.id, later(minutes=15))).status_code == 200
    assert [(m["kind"], m["id"]) for m in await listed(client, ben)] == [
        ("channel", srv.general),
        ("channel", talk),
        ("server", srv.id),
    ]
    # Muting again replaces it (no second row), and only yours change.
    again = await put_mute(client, ben, "channel", srv.general, None)
    assert again.status_code == 200 and again.json()["until"] is None
    assert len(await listed(client, ben)) == 3
    assert await listed(client, ann) == []
    state = (await client.get("/api/users/@me/state", headers=ben.headers)).json()
    assert state["mutes"] == await listed(client, ben)

    gone = await client.delete(f"{MUTES}/channel/{srv.general}", headers=ben.headers)
    assert gone.status_code == 204
    assert await client.delete(f"{MUTES}/server/{srv.id}", headers=ben.headers)
    assert [m["id"] for m in await listed(client, ben)] == [talk]
    # Unmuting what is not muted changes nothing.
    twice = await client.delete(f"{MUTES}/channel/{srv.general}", headers=ben.headers)
    assert twice.status_code == 204


async def test_muting_does_not_change_what_is_counted(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    ann, ben, chat = await factories.pair(client, make_user)
    assert (await put_mute(client, ben, "channel", chat)).status_code == 200
    await factories.say(client, ann, chat, "hello")
    await factories.say(client, ann, chat, f"<@{ben.id}> look")
    state = (await client.get("/api/users/@me/state", headers=ben.headers)).json()
    (talk,) = state["conversations"]
    assert (talk["unread"], talk["mention_count"]) == (2, 1)


async def test_targets_you_may_not_see_are_404_as_if_they_did_not_exist(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    users, cases = await unseen_targets(client, make_user)
    for who, kind, target, code in cases:
        missing = await put_mute(client, who, kind, NOWHERE)
        for answer in (
            await put_mute(client, who, kind, target),
            await client.delete(f"{MUTES}/{kind}/{target}", headers=who.headers),
        ):
            assert answer.status_code == 404, (kind, target, answer.text)
            assert answer.json() == missing.json()
            assert answer.json()["code"] == code
    assert [await listed(client, u) for u in users] == [[], []]


async def test_bad_input_is_a_4xx_with_a_code(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    ann = await make_user("ann")
    srv = await factories.community(client, ann)
    voice = await factories.server_channel(client, srv, ann, "talk", kind="voice")
    url = f"{MUTES}/channel/{srv.general}"
    bad_untils = [
        later(minutes=-1),  # past
        later(days=30, minutes=5),  # past the 30 days
        "2026-11-25T10:00:00",  # no zone
    ]
    for until in bad_untils:
        r = await client.put(url, headers=ann.headers, json={"until": until})
        assert r.status_code == 400, r.text
        assert r.json()["code"] == "INVALID_MUTE_UNTIL"
    for body in ({}, {"until": 15}, {"until": "tomorrow"}, {"until": True}):
        r = await client.put(url, headers=ann.headers, json=body)
        assert r.status_code == 400 and r.json()["code"] == "VALIDATION_ERROR", (body, r.text)
    for path in (f"{MUTES}/channel/not-a-uuid", f"{MUTES}/role/{srv.general}"):
        r = await client.put(path, headers=ann.headers, json={"until": None})
        assert 400 <= r.status_code < 500 and "code" in r.json(), r.text
    r = await put_mute(client, ann, "channel", voice["id"])
    assert r.status_code == 400 and r.json()["code"] == "CANNOT_MUTE_CHANNEL"
    assert (await put_mute(client, ann, "channel", srv.general, later(days=29))).status_code == 200


async def test_a_user_holds_at_most_max_mutes(
    client: httpx.AsyncClient, make_user: MakeUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert mutes.MAX_MUTES == 1000  # (the README's number)
    monkeypatch.setattr(mutes, "MAX_MUTES", 2)
    ann = await make_user("ann")
    srv = await factories.community(client, ann)
    other = await factories.community(client, ann, name="other")
    extra = await factories.server_channel(client, srv, ann, "extra")
    assert (await put_mute(client, ann, "channel", srv.general)).status_code == 200
    assert (await put_mute(client, ann, "server", srv.id)).status_code == 200
    over = await put_mute(client, ann, "channel", extra["id"])
    assert over.status_code == 400 and over.json()["code"] == "TOO_MANY_MUTES"
    # Changing one held is not one more; unmuting makes room.
    assert (await put_mute(client, ann, "server", srv.id, later(hours=1))).status_code == 200
    assert (await client.delete(f"{MUTES}/server/{srv.id}", headers=ann.headers)).status_code == 204
    assert (await put_mute(client, ann, "server", other.id)).status_code == 200


async def test_an_ended_mute_is_no_mute(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    conn: asyncpg.Connection,
    pool: asyncpg.Pool,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(mutes, "MAX_MUTES", 1)
    ann = await make_user("ann")
    srv = await factories.community(client, ann)
    extra = await factories.server_channel(client, srv, ann, "extra")
    assert (
        await put_mute(client, ann, "channel", srv.general, later(minutes=15))
    ).status_code == 200
    await conn.execute("UPDATE mutes SET muted_until = now() - interval '1 second'")
    assert await listed(client, ann) == []
    state = (await client.get("/api/users/@me/state", headers=ann.headers)).json()
    assert state["mutes"] == []
    assert (await prune_rows(pool, settings))["mutes"] == 1
    assert await conn.fetchval("SELECT count(*) FROM mutes") == 0
    # An ended one counts for nothing against the bound, and goes at the next change.
    assert (
        await put_mute(client, ann, "channel", srv.general, later(minutes=15))
    ).status_code == 200
    await conn.execute("UPDATE mutes SET muted_until = now() - interval '1 second'")
    assert (await put_mute(client, ann, "channel", extra["id"])).status_code == 200
    assert await conn.fetchval("SELECT count(*) FROM mutes") == 1
    # Unmuting an ended one is no change to tell.
    await conn.execute("UPDATE mutes SET muted_until = now() - interval '1 second'")
    before = await factories.events_of(conn, "user", ann.id)
    assert (
        await client.delete(f"{MUTES}/channel/{extra['id']}", headers=ann.headers)
    ).status_code == 204
    assert await factories.events_of(conn, "user", ann.id) == before


async def test_your_other_sessions_are_told(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    ann, ben, chat = await factories.pair(client, make_user)
    until = later(hours=1)
    await put_mute(client, ben, "channel", chat, until)
    await client.delete(f"{MUTES}/channel/{chat}", headers=ben.headers)
    told = [
        (t, d) for t, d in await factories.events_of(conn, "user", ben.id) if t.startswith("mute.")
    ]
    assert told == [
        (
            "mute.updated",
            {"kind": "channel", "id": chat, "until": datetime.fromisoformat(until).isoformat()},
        ),
        ("mute.removed", {"kind": "channel", "id": chat}),
    ]
    others = await factories.events_of(conn, "user", ann.id)
    assert not [t for t, _ in others if t.startswith("mute.")]
    assert not [
        t
        for t, _ in await factories.events_of(conn, "channel", UUID(chat))
        if t.startswith("mute.")
    ]


async def test_leaving_or_being_removed_drops_the_mutes_of_it(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    await leaving_drops_them(client, make_user, put_mute, listed)


async def test_account_deletion_removes_the_mutes(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    ann, ben, chat = await factories.pair(client, make_user)
    srv = await factories.community(client, ann, ben)
    await put_mute(client, ben, "channel", chat)
    await put_mute(client, ben, "server", srv.id, later(hours=24))
    await put_mute(client, ann, "channel", chat)
    gone = await client.post(
        "/api/users/@me/delete", headers=ben.headers, json={"password": ben.password}
    )
    assert gone.status_code == 204, gone.text
    assert await conn.fetchval("SELECT count(*) FROM mutes WHERE user_id = $1", ben.id) == 0
    assert await conn.fetchval("SELECT count(*) FROM mutes WHERE user_id = $1", ann.id) == 1


async def test_a_deleted_channel_or_server_takes_its_mutes(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await factories.community(client, ann, ben)
    extra = await factories.server_channel(client, srv, ann, "extra")
    await put_mute(client, ben, "channel", extra["id"])
    assert (
        await client.delete(f"/api/channels/{extra['id']}", headers=ann.headers)
    ).status_code == 204
    assert await listed(client, ben) == []
    await put_mute(client, ben, "server", srv.id)
    assert (await client.delete(srv.url(), headers=ann.headers)).status_code == 204
    assert await conn.fetchval("SELECT count(*) FROM mutes") == 0


@pytest.mark.parametrize("kind", ["channel", "server"])
async def test_a_mute_racing_a_leave_comes_after_it(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool, kind: str
) -> None:
    """Was possible: a mute judged before a leave committed, written after it, stayed
    for a server its user was no longer in. Now the mute waits for the leave, and is
    refused as for any server you are not in."""
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await factories.community(client, ann, ben)
    target = srv.general if kind == "channel" else srv.id
    answer = await put_racing_a_leave(pool, ben, srv, lambda: put_mute(client, ben, kind, target))
    assert answer.status_code == 404, answer.text
    assert answer.json()["code"] == (
        "CHANNEL_NOT_FOUND" if kind == "channel" else "SERVER_NOT_FOUND"
    )
    assert await listed(client, ben) == []


async def test_a_mute_as_it_is_already_writes_and_tells_nothing(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    # Was: the same mute again was written anew (moved to the end of the order last
    # set) and told to every session as `mute.updated`; now it answers as it stands.
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await factories.community(client, ann, ben)
    talk = (await factories.direct(client, ann, ben))["id"]
    until = later(hours=8)
    first = await put_mute(client, ben, "channel", srv.general, until)
    assert (await put_mute(client, ben, "channel", talk)).status_code == 200
    order = await listed(client, ben)

    async def told() -> int:
        events = await factories.events_of(conn, "user", ben.id)
        return len([t for t, _ in events if t.startswith("mute.")])

    before = await told()
    for target, at in ((srv.general, until), (talk, None)):
        same = await put_mute(client, ben, "channel", target, at)
        assert same.status_code == 200, same.text
    assert same.json() == {"kind": "channel", "id": talk, "until": None}
    assert (await put_mute(client, ben, "channel", srv.general, until)).json() == first.json()
    assert await listed(client, ben) == order and await told() == before
    # A change still is one.
    changed = await put_mute(client, ben, "channel", srv.general, None)
    assert changed.json()["until"] is None and await told() == before + 1
    assert [m["id"] for m in await listed(client, ben)] == [talk, srv.general]
