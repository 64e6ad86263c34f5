"""Notification settings of channels, conversations and servers: yours alone, of what
you may see, bounded, told to your own sessions only, gone when you leave."""

from __future__ import annotations

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
from xfchat.domain import notification_settings

SETTINGS = "/api/users/@me/notification-settings"


async def put_setting(
    client: httpx.AsyncClient,
    who: TestUser,
    kind: str,
    target: object,
    level: str = "mentions",
    **more: Any,
) -> httpx.Response:
    return await client.put(
        f"{SETTINGS}/{kind}/{target}", headers=who.headers, json={"level": level, **more}
    )


async def listed(client: httpx.AsyncClient, who: TestUser) -> list[dict[str, Any]]:
    got = await client.get(SETTINGS, headers=who.headers)
    assert got.status_code == 200, got.text
    return list(got.json())


async def test_set_a_channel_a_conversation_and_a_server(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await factories.community(client, ann, ben)
    talk = (await factories.direct(client, ann, ben))["id"]
    assert await listed(client, ben) == []  # (none set: the defaults)

    channel = await put_setting(client, ben, "channel", srv.general, "nothing")
    assert channel.status_code == 200, channel.text
    assert channel.json() == {
        "kind": "channel",
        "id": srv.general,
        "level": "nothing",
        "suppress_everyone": False,
    }
    assert (await put_setting(client, ben, "channel", talk, "mentions")).status_code == 200
    server = await put_setting(client, ben, "server", srv.id, "mentions", suppress_everyone=True)
    assert server.json() == {
        "kind": "server",
        "id": srv.id,
        "level": "mentions",
        "suppress_everyone": True,
    }
    assert [(s["kind"], s["id"], s["level"]) for s in await listed(client, ben)] == [
        ("channel", srv.general, "nothing"),
        ("channel", talk, "mentions"),
        ("server", srv.id, "mentions"),
    ]
    # Setting again replaces it (no second row), and only yours change.
    again = await put_setting(client, ben, "channel", srv.general, "all")
    assert again.status_code == 200 and again.json()["level"] == "all"
    assert len(await listed(client, ben)) == 3
    assert await listed(client, ann) == []
    state = (await client.get("/api/users/@me/state", headers=ben.headers)).json()
    assert state["notification_settings"] == await listed(client, ben)

    gone = await client.delete(f"{SETTINGS}/channel/{srv.general}", headers=ben.headers)
    assert gone.status_code == 204
    gone = await client.delete(f"{SETTINGS}/server/{srv.id}", headers=ben.headers)
    assert gone.status_code == 204
    assert [s["id"] for s in await listed(client, ben)] == [talk]
    # Back to the default where none is set changes nothing.
    twice = await client.delete(f"{SETTINGS}/channel/{srv.general}", headers=ben.headers)
    assert twice.status_code == 204


async def test_targets_you_may_not_see_are_404_as_if_they_did_not_exist(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    users, cases = await unseen_targets(client, make_user)
    for who, kind, target, code in cases:
        missing = await put_setting(client, who, kind, NOWHERE)
        answers = [
            await put_setting(client, who, kind, target),
            await client.delete(f"{SETTINGS}/{kind}/{target}", headers=who.headers),
        ]
        assert [(a.status_code, a.json()) for a in answers] == [(404, missing.json())] * 2
        assert missing.json()["code"] == code, (kind, target)
    assert [await listed(client, u) for u in users] == [[], []]


async def test_bad_input_is_a_4xx_with_a_code(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    ann = await make_user("ann")
    srv = await factories.community(client, ann)
    voice = await factories.server_channel(client, srv, ann, "talk", kind="voice")
    category = await factories.server_channel(client, srv, ann, "cat", kind="category")
    url = f"{SETTINGS}/channel/{srv.general}"
    for body in ({}, {"level": "loud"}, {"level": 1}, {"level": "all", "suppress_everyone": "x"}):
        r = await client.put(url, headers=ann.headers, json=body)
        assert r.status_code == 400 and r.json()["code"] == "VALIDATION_ERROR", (body, r.text)
    for path in (f"{SETTINGS}/channel/not-a-uuid", f"{SETTINGS}/role/{srv.general}"):
        r = await client.put(path, headers=ann.headers, json={"level": "all"})
        assert 400 <= r.status_code < 500 and "code" in r.json(), r.text
    for place in (voice, category):
        r = await put_setting(client, ann, "channel", place["id"])
        assert r.status_code == 400 and r.json()["code"] == "CANNOT_SET_NOTIFICATIONS", r.text
        r = await client.delete(f"{SETTINGS}/channel/{place['id']}", headers=ann.headers)
        assert r.status_code == 400 and r.json()["code"] == "CANNOT_SET_NOTIFICATIONS", r.text
    r = await put_setting(client, ann, "channel", srv.general, "all", suppress_everyone=True)
    assert r.status_code == 400 and r.json()["code"] == "INVALID_NOTIFICATION_SETTING"
    # A switch is a JSON boolean, never converted (the README's API overview): "true"
    # and 1 were taken as true, "false" and 0 as false.
    for lax in ("true", 1, "false", 0, "yes"):
        r = await put_setting(client, ann, "server", srv.id, "all", suppress_everyone=lax)
        assert r.status_code == 400, (lax, r.text)
        assert (r.json()["code"], r.json()["field"]) == ("VALIDATION_ERROR", "suppress_everyone")
    assert await listed(client, ann) == []


async def test_a_user_holds_at_most_max_notification_settings(
    client: httpx.AsyncClient, make_user: MakeUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert notification_settings.MAX_NOTIFICATION_SETTINGS == 1000  # (the README's number)
    monkeypatch.setattr(notification_settings, "MAX_NOTIFICATION_SETTINGS", 2)
    ann = await make_user("ann")
    srv = await factories.community(client, ann)
    other = await factories.community(client, ann, name="other")
    extra = await factories.server_channel(client, srv, ann, "extra")
    assert (await put_setting(client, ann, "channel", srv.general)).status_code == 200
    assert (await put_setting(client, ann, "server", srv.id)).status_code == 200
    over = await put_setting(client, ann, "channel", extra["id"])
    assert over.status_code == 400 and over.json()["code"] == "TOO_MANY_NOTIFICATION_SETTINGS"
    # Changing one held is not one more; putting one back to its default makes room.
    assert (await put_setting(client, ann, "server", srv.id, "nothing")).status_code == 200
    r = await client.delete(f"{SETTINGS}/server/{srv.id}", headers=ann.headers)
    assert r.status_code == 204
    assert (await put_setting(client, ann, "server", other.id)).status_code == 200


async def test_only_your_own_sessions_are_told(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    ann, ben, chat = await factories.pair(client, make_user)
    await put_setting(client, ben, "channel", chat, "nothing")
    await put_setting(client, ben, "channel", chat, "nothing")  # (as it is: not told again)
    await client.delete(f"{SETTINGS}/channel/{chat}", headers=ben.headers)
    told = [
        (t, d)
        for t, d in await factories.events_of(conn, "user", ben.id)
        if t.startswith("notification_settings.")
    ]
    assert told == [
        (
            "notification_settings.updated",
            {"kind": "channel", "id": chat, "level": "nothing", "suppress_everyone": False},
        ),
        ("notification_settings.removed", {"kind": "channel", "id": chat}),
    ]
    others = await factories.events_of(conn, "user", ann.id)
    assert not [t for t, _ in others if t.startswith("notification_settings.")]
    assert not [
        t
        for t, _ in await factories.events_of(conn, "channel", UUID(chat))
        if t.startswith("notification_settings.")
    ]


async def test_leaving_or_being_removed_drops_the_settings_of_it(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    await leaving_drops_them(client, make_user, put_setting, listed)


async def test_a_deleted_channel_or_server_or_account_takes_its_settings(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await factories.community(client, ann, ben)
    extra = await factories.server_channel(client, srv, ann, "extra")
    await put_setting(client, ben, "channel", extra["id"])
    assert (
        await client.delete(f"/api/channels/{extra['id']}", headers=ann.headers)
    ).status_code == 204
    assert await listed(client, ben) == []
    await put_setting(client, ben, "server", srv.id)
    assert (await client.delete(srv.url(), headers=ann.headers)).status_code == 204
    assert await conn.fetchval("SELECT count(*) FROM notification_settings") == 0

    chat = (await factories.direct(client, ann, ben))["id"]
    await put_setting(client, ben, "channel", chat)
    await put_setting(client, ann, "channel", chat)
    gone = await client.post(
        "/api/users/@me/delete", headers=ben.headers, json={"password": ben.password}
    )
    assert gone.status_code == 204, gone.text
    count = "SELECT count(*) FROM notification_settings WHERE user_id = $1"
    assert await conn.fetchval(count, ben.id) == 0
    assert await conn.fetchval(count, ann.id) == 1


@pytest.mark.parametrize("kind", ["channel", "server"])
async def test_a_setting_racing_a_leave_comes_after_it(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool, kind: str
) -> None:
    """A setting judged before a leave committed must not be written after it, to stay
    for a server its user is no longer in: it waits for the leave, and is refused."""
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await factories.community(client, ann, ben)
    target = srv.general if kind == "channel" else srv.id
    answer = await put_racing_a_leave(
        pool, ben, srv, lambda: put_setting(client, ben, kind, target)
    )
    assert answer.status_code == 404, answer.text
    assert answer.json()["code"] == (
        "CHANNEL_NOT_FOUND" if kind == "channel" else "SERVER_NOT_FOUND"
    )
    assert await listed(client, ben) == []
