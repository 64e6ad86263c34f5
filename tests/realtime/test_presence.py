"""Presence across server processes: derived from live connections, announced to the
user's friends and the people who share a group or a server with them (never through
a direct conversation alone), and offline within a bound after a crash."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
import uuid

import asyncpg
import httpx

from tests import factories
from tests.factories import MakeUser
from tests.realtime.clients import GatewayClient, SseClient, sse, sse_stream
from tests.support import Servers

FAST = {"XFCHAT_PRESENCE_INTERVAL": "0.5", "XFCHAT_PRESENCE_TIMEOUT": "2"}
CONNECTIONS_OF = "SELECT count(*) FROM presence_connections WHERE user_id = $1"
BOUND_S = 2.5  # timeout + interval: the documented bound for a crashed process


async def presence_of(stream: SseClient, user_id: str, timeout: float = 10) -> dict:
    async with asyncio.timeout(timeout):
        while True:
            event = await stream.next("presence.updated", timeout)
            if event.data["user_id"] == user_id:
                return dict(event.data)


async def test_presence_across_processes_and_offline_within_the_bound_after_sigkill(
    servers: Servers, make_user: MakeUser
) -> None:
    proc_a, a = servers.start(**FAST)
    _, b = servers.start(**FAST)
    ann, ben = await make_user("ann"), await make_user("ben")
    async with httpx.AsyncClient(base_url=b, timeout=10) as api:
        sent = await api.post(
            "/api/users/@me/friend-requests", headers=ann.headers, json={"username": "ben"}
        )
        await api.post(
            f"/api/users/@me/friend-requests/{sent.json()['id']}/accept", headers=ben.headers
        )
    async with sse_stream(b, ben.access_token) as watcher:
        assert watcher.ready.data["presences"] == []  # ann is not connected yet
        annie = await SseClient(
            f"{a}/api/events", {"Authorization": f"Bearer {ann.access_token}"}
        ).start()
        try:
            online = await presence_of(watcher, str(ann.id))
            assert online == {"user_id": str(ann.id), "status": "online", "status_text": None}
            async with sse_stream(b, ben.access_token) as second:
                assert second.ready.data["presences"] == [online]  # in the state on connect
            proc_a.proc.send_signal(signal.SIGKILL)
            killed = time.monotonic()
            offline = await presence_of(watcher, str(ann.id), timeout=BOUND_S + 5)
            took = time.monotonic() - killed
            assert offline["status"] == "offline"
            assert took <= BOUND_S + 3, took  # the bound, with room for a busy machine
        finally:
            await annie.close()


async def test_chosen_status_invisible_and_custom_status(
    server: str, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    ann, ben = await make_user("ann"), await make_user("ben")
    stranger = await make_user("zed")
    async with httpx.AsyncClient(base_url=server, timeout=10) as api:
        await factories.befriend(ann, ben)  # (a direct conversation alone shows nothing)
        await factories.direct(api, ann, ben)
        async with (
            sse_stream(server, ben.access_token) as partner,
            sse_stream(server, stranger.access_token) as outsider,
            sse_stream(server, ann.access_token) as herself,
        ):
            assert (await presence_of(partner, str(ann.id)))["status"] == "online"
            assert (await presence_of(herself, str(ann.id)))["status"] == "online"
            dnd = await api.put(
                "/api/users/@me/presence",
                headers=ann.headers,
                json={"status": "dnd", "status_text": "in a meeting"},
            )
            assert dnd.status_code == 200 and dnd.json()["status"] == "dnd"
            seen = await presence_of(partner, str(ann.id))
            assert seen == {"user_id": str(ann.id), "status": "dnd", "status_text": "in a meeting"}
            hidden = await api.put(
                "/api/users/@me/presence", headers=ann.headers, json={"status": "invisible"}
            )
            assert hidden.json()["status"] == "invisible"
            assert (await presence_of(partner, str(ann.id)))["status"] == "offline"
            assert (await presence_of(herself, str(ann.id)))["status"] == "dnd"
            # Her own devices know the truth.
            assert (await presence_of(herself, str(ann.id)))["status"] == "invisible"
            state = (await api.get("/api/users/@me/state", headers=ben.headers)).json()
            assert state["presences"] == []  # invisible is offline to others
            await api.put("/api/users/@me/presence", headers=ann.headers, json={"status": "online"})
            assert (await presence_of(partner, str(ann.id)))["status"] == "online"
            # The outsider shares nothing with her: none of this reached them.
            heard = [outsider.events.get_nowait() for _ in range(outsider.events.qsize())]
            about_her = [e for e in heard if e is not None and str(ann.id) in str(e.data)]
            assert about_her == []
            bad = await api.put(
                "/api/users/@me/presence", headers=ann.headers, json={"status": "away"}
            )
            assert bad.status_code == 400 and bad.json()["field"] == "status"
    # A custom status is presence, not profile: no user.updated told it (was: to
    # everyone who shares a conversation or a server with her, invisible or not).
    told = await factories.events_of(conn, "user", ann.id)
    assert [d for t, d in told if t == "user.updated"] == []


async def test_an_invisible_users_connections_coming_and_going_show_nothing(
    server: str, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    ann, ben = await make_user("ann"), await make_user("ben")
    async with httpx.AsyncClient(base_url=server, timeout=10) as api:
        await factories.befriend(ann, ben)  # (a direct conversation alone shows nothing)
        await factories.direct(api, ann, ben)
        hidden = await api.put(
            "/api/users/@me/presence", headers=ann.headers, json={"status": "invisible"}
        )
        # Not connected, she still reads back the status she chose.
        assert hidden.json()["status"] == "invisible"
        async with sse_stream(server, ben.access_token) as partner:
            async with sse_stream(server, ann.access_token) as herself:
                assert (await presence_of(herself, str(ann.id)))["status"] == "invisible"
            # Her disconnect is written (and announced to herself only) before she
            # changes her status: connected still, her dnd would be shown to ben.
            async with asyncio.timeout(10):
                while await conn.fetchval(CONNECTIONS_OF, ann.id):
                    await asyncio.sleep(0.02)
            await api.put("/api/users/@me/presence", headers=ann.headers, json={"status": "dnd"})
            await api.put("/api/users/@me/presence", headers=ann.headers, json={"status": "online"})
            # Offline (not connected) all along for ben: the first news of her he gets
            # is nothing until she connects, visible, again.
            async with sse_stream(server, ann.access_token):
                seen = await presence_of(partner, str(ann.id))
            assert seen["status"] == "online"


async def test_a_servers_presences_are_its_connected_visible_members(
    server: str, make_user: MakeUser
) -> None:
    ann, ben, zed = await make_user("ann"), await make_user("ben"), await make_user("zed")
    async with httpx.AsyncClient(base_url=server, timeout=10) as api:
        srv = await factories.community(api, ann, ben)
        url = f"/api/servers/{srv.id}/presences"
        assert (await api.get(url, headers=ben.headers)).json() == []  # nobody connected
        async with sse_stream(server, ann.access_token), sse_stream(server, zed.access_token):
            shown = (await api.get(url, headers=ben.headers)).json()
            assert shown == [{"user_id": str(ann.id), "status": "online", "status_text": None}]
            outsider = await api.get(url, headers=zed.headers)  # connected, not a member
            assert outsider.status_code == 404
            assert outsider.json()["code"] == "SERVER_NOT_FOUND"
            hidden = await api.put(
                "/api/users/@me/presence", headers=ann.headers, json={"status": "invisible"}
            )
            assert hidden.status_code == 200
            assert (await api.get(url, headers=ben.headers)).json() == []  # invisible: offline


async def test_a_servers_presences_come_in_pages_by_user_id(
    server: str, make_user: MakeUser
) -> None:
    # (a server with more members online than one page holds had the rest cut off)
    owner = await make_user("own")
    members = [await make_user(f"p{i}") for i in range(3)]
    async with httpx.AsyncClient(base_url=server, timeout=10) as api:
        srv = await factories.community(api, owner, *members)
        url = f"/api/servers/{srv.id}/presences"
        online = sorted(str(m.id) for m in members)
        streams = [sse_stream(server, m.access_token) for m in members]
        async with contextlib.AsyncExitStack() as stack:
            for stream in streams:
                await stack.enter_async_context(stream)
            first = await api.get(url, params={"limit": 2}, headers=owner.headers)
            assert [p["user_id"] for p in first.json()] == online[:2]
            assert first.headers["X-Has-More"] == "true"
            assert f"after={online[1]}" in first.headers["Link"]
            rest = await api.get(
                url, params={"limit": 2, "after": online[1]}, headers=owner.headers
            )
            assert [p["user_id"] for p in rest.json()] == online[2:]
            assert rest.headers["X-Has-More"] == "false" and "Link" not in rest.headers
            whole = await api.get(url, headers=owner.headers)  # (1,000 by default)
            assert [p["user_id"] for p in whole.json()] == online
            for limit in (0, 1001):
                refused = await api.get(url, params={"limit": limit}, headers=owner.headers)
                assert refused.status_code == 400, refused.text
                assert refused.json()["code"] == "VALIDATION_ERROR"


async def test_a_burst_of_connections_is_announced_user_by_user_and_so_are_their_ends(
    server: str, make_user: MakeUser
) -> None:
    # A burst (as after a restart) is written in batches: each user still gets their
    # own announcement, online once however many connections they open, and offline
    # when their last one ends.
    owner = await make_user("own")
    members = [await make_user(f"m{i}") for i in range(6)]
    async with httpx.AsyncClient(base_url=server, timeout=10) as api:
        srv = await factories.community(api, owner, *members)
    ids = {str(m.id) for m in members}
    async with sse_stream(server, owner.access_token) as watcher:
        tokens = [m.access_token for m in members] + [members[0].access_token]
        streams = await asyncio.gather(*(sse(server, t) for t in tokens))
        try:
            seen: dict[str, str] = {}
            async with asyncio.timeout(15):
                while len(seen) < len(ids):
                    event = await watcher.next("presence.updated", 15)
                    who = event.data["user_id"]
                    if who == str(owner.id):  # (their own coming online)
                        continue
                    assert who in ids and who not in seen, event.data  # each once
                    seen[who] = event.data["status"]
            assert set(seen.values()) == {"online"}
            async with httpx.AsyncClient(base_url=server, timeout=10) as api:
                shown = await api.get(f"/api/servers/{srv.id}/presences", headers=owner.headers)
            assert {p["user_id"] for p in shown.json()} == ids | {str(owner.id)}
            await asyncio.gather(*(s.close() for s in streams[:-1]))  # m0 keeps its second
            gone: set[str] = set()
            async with asyncio.timeout(15):
                while len(gone) < len(ids) - 1:
                    event = await watcher.next("presence.updated", 15)
                    assert event.data["status"] == "offline", event.data
                    gone.add(event.data["user_id"])
            assert gone == ids - {str(members[0].id)}
        finally:
            await asyncio.gather(*(s.close() for s in streams), return_exceptions=True)


async def test_a_resumed_ready_carries_the_current_presences_and_ones_own_status(
    server: str, make_user: MakeUser
) -> None:
    # Presence is not in the log: what changed while a connection was away (a status, a
    # going offline) comes in the resumed ready, on the gateway and on SSE.
    ann, ben = await make_user("ann"), await make_user("ben")
    async with httpx.AsyncClient(base_url=server, timeout=10) as api:
        await factories.befriend(ann, ben)  # (a direct conversation alone shows nothing)
        await factories.direct(api, ann, ben)
        herself = await sse(server, ann.access_token)
        try:
            await api.put("/api/users/@me/presence", headers=ann.headers, json={"status": "dnd"})
            async with sse_stream(server, ben.access_token) as first:
                token = first.ready.id
                dnd = {"user_id": str(ann.id), "status": "dnd", "status_text": None}
                assert first.ready.data["presences"] == [dnd]
            await api.put("/api/users/@me/presence", headers=ann.headers, json={"status": "idle"})
            await api.put("/api/users/@me/presence", headers=ben.headers, json={"status": "dnd"})
            gateway = await GatewayClient.connect(server, ben.access_token, resume=token)
            try:
                ready = (await gateway.next("ready"))["d"]
            finally:
                await gateway.close()
            assert ready["resumed"] is True and ready["status"] == "dnd"
            assert ready["presences"] == [{**dnd, "status": "idle"}]
        finally:
            await herself.close()
        async with asyncio.timeout(10):  # her last connection's end is recorded
            while (await api.get("/api/users/@me/state", headers=ben.headers)).json()["presences"]:
                await asyncio.sleep(0.1)
    async with sse_stream(server, ben.access_token, last_event_id=token) as resumed:
        assert resumed.ready.data["resumed"] is True
        assert resumed.ready.data["presences"] == []  # offline now
        assert resumed.ready.data["status"] == "dnd"


async def test_a_new_peers_presence_is_asked_for_and_their_changes_follow(
    server: str, make_user: MakeUser
) -> None:
    """A group brings Ann together with Zed, whom she shared nothing with: no
    `presence.updated` told her he is online (he connected before), so she asks for
    the presences `ready` would carry now, and his next change reaches her."""
    ann, ben, zed = await make_user("ann"), await make_user("ben"), await make_user("zed")
    async with (
        httpx.AsyncClient(base_url=server, timeout=10) as api,
        sse_stream(server, zed.access_token),
        sse_stream(server, ann.access_token) as watcher,
    ):
        assert watcher.ready.data["presences"] == []  # (he is a stranger to her)
        before = await api.get("/api/users/@me/presences", headers=ann.headers)
        assert before.status_code == 200 and before.json() == []
        crew = await factories.group(api, ben, ann, zed)
        assert (await watcher.next("conversation.created")).data["id"] == crew["id"]
        now = await api.get("/api/users/@me/presences", headers=ann.headers)
        zed_online = {"user_id": str(zed.id), "status": "online", "status_text": None}
        assert zed_online in now.json()
        assert [p["user_id"] for p in now.json()] == sorted(p["user_id"] for p in now.json())
        await api.put("/api/users/@me/presence", headers=zed.headers, json={"status": "dnd"})
        assert (await presence_of(watcher, str(zed.id)))["status"] == "dnd"
        await api.put("/api/users/@me/presence", headers=zed.headers, json={"status": "invisible"})
        assert (await presence_of(watcher, str(zed.id)))["status"] == "offline"
        hidden = await api.get("/api/users/@me/presences", headers=ann.headers)
        assert str(zed.id) not in [p["user_id"] for p in hidden.json()]  # invisible: offline
        assert (await api.get("/api/users/@me/presences")).status_code == 401


async def test_presences_asked_by_id_are_those_you_may_see(
    server: str, make_user: MakeUser
) -> None:
    """`?user_ids=`: one answer for people a server, a group or a friendship shares with
    you (what the browser client asks when one of them may have stopped sharing), and
    nothing of a stranger, an invisible peer, yourself, or someone no longer in the only
    server you shared."""
    names = ("ann", "ben", "cat", "dan", "eve", "fay")
    ann, ben, cat, dan, eve, fay = [await make_user(n) for n in names]
    async with contextlib.AsyncExitStack() as stack:
        api = await stack.enter_async_context(httpx.AsyncClient(base_url=server, timeout=10))
        for who in (ann, ben, cat, dan, eve, fay):
            await stack.enter_async_context(sse_stream(server, who.access_token))
        await factories.befriend(ann, ben)
        await factories.group(api, ann, cat, fay)
        club = await factories.community(api, ann, dan)
        await api.put("/api/users/@me/presence", headers=fay.headers, json={"status": "invisible"})
        everyone = [str(u.id) for u in (ann, ben, cat, dan, eve, fay)]
        url = "/api/users/@me/presences?user_ids=" + ",".join(everyone)

        async def asked() -> list[str]:
            got = await api.get(url, headers=ann.headers)
            assert got.status_code == 200, got.text
            return [p["user_id"] for p in got.json()]

        assert await asked() == sorted(str(u.id) for u in (ben, cat, dan))
        kicked = await api.delete(f"/api/servers/{club.id}/members/{dan.id}", headers=ann.headers)
        assert kicked.status_code == 204, kicked.text
        assert await asked() == sorted(str(u.id) for u in (ben, cat))

        many = ",".join(str(uuid.uuid4()) for _ in range(101))
        too_many = await api.get(f"/api/users/@me/presences?user_ids={many}", headers=ann.headers)
        assert too_many.status_code == 400
        assert too_many.json()["code"] == "TOO_MANY_IDS"
        bad = await api.get("/api/users/@me/presences?user_ids=ben", headers=ann.headers)
        assert bad.status_code == 400 and bad.json()["code"] == "VALIDATION_ERROR"
        none = await api.get("/api/users/@me/presences?user_ids=", headers=ann.headers)
        assert none.status_code == 200 and none.json() == []


async def presences_until(stream: SseClient, marker: str, status: str) -> list[dict]:
    """The presences a stream hears until `marker`'s shows `status` (a marker sent after
    what is asserted: the stream hears the commits in order)."""
    heard = []
    async with asyncio.timeout(10):
        while True:
            event = await stream.next("presence.updated", 10)
            if event.data["user_id"] == marker and event.data["status"] == status:
                return heard
            heard.append(dict(event.data))


async def test_a_direct_conversation_alone_shows_no_presence(
    server: str, make_user: MakeUser
) -> None:
    """Anyone may open a direct conversation with anyone (and it stays after an
    unfriending or a block): it must not let a stranger follow someone's presence and
    custom status. A friend sees it; once the friendship ends, nothing more of it
    reaches them, live or asked for."""
    ann, ben, zed = await make_user("ann"), await make_user("ben"), await make_user("zed")
    async with httpx.AsyncClient(base_url=server, timeout=10) as api:
        await factories.befriend(ann, ben)
        await factories.direct(api, ben, ann)
        await factories.direct(api, zed, ann)  # the stranger opens one, and says nothing
        async with (
            sse_stream(server, ben.access_token) as friend,
            sse_stream(server, zed.access_token) as stranger,
            sse_stream(server, ann.access_token),
        ):
            assert (await presence_of(friend, str(ann.id)))["status"] == "online"
            dnd = {"status": "dnd", "status_text": "at the clinic"}
            await api.put("/api/users/@me/presence", headers=ann.headers, json=dnd)
            assert (await presence_of(friend, str(ann.id)))["status_text"] == "at the clinic"
            for asked_by in (zed, ben):
                asked = await api.get("/api/users/@me/presences", headers=asked_by.headers)
                state = await api.get("/api/users/@me/state", headers=asked_by.headers)
                shown = [p["user_id"] for p in asked.json() + state.json()["presences"]]
                assert (str(ann.id) in shown) == (asked_by is ben), shown
            await api.put("/api/users/@me/presence", headers=zed.headers, json={"status": "dnd"})
            heard = await presences_until(stranger, str(zed.id), "dnd")
            assert [p for p in heard if p["user_id"] == str(ann.id)] == []
            # Ben unfriends her: the direct conversation is all they share now.
            gone = await api.delete(f"/api/users/@me/friends/{ann.id}", headers=ben.headers)
            assert gone.status_code == 204
            await api.put("/api/users/@me/presence", headers=ann.headers, json={"status": "idle"})
            await api.put("/api/users/@me/presence", headers=ben.headers, json={"status": "dnd"})
            heard = await presences_until(friend, str(ben.id), "dnd")
            assert [p for p in heard if p["user_id"] == str(ann.id)] == []
            asked = await api.get("/api/users/@me/presences", headers=ben.headers)
            assert asked.json() == []


async def events_until_named(stream: SseClient, user_id: str, name: str) -> list[dict]:
    """Every event the stream hears until the user.updated that names `user_id`
    `name` (a marker), as {event, data}."""
    heard = []
    async with asyncio.timeout(10):
        while True:
            event = await stream.next(None, 10)
            if event.event == "user.updated" and event.data["id"] == user_id:
                if event.data["display_name"] == name:
                    return heard
            heard.append({"event": event.event, "data": event.data})


async def test_a_custom_status_reaches_only_those_who_see_the_presence(
    server: str, make_user: MakeUser
) -> None:
    """Changed by PATCH /api/users/@me as by PUT .../presence, a custom status is told
    as presence: to a friend and a server co-member while she is visible, to nobody else
    while she is invisible (her own connections excepted), and never in user.updated,
    which goes to everyone she shares a conversation with: here a stranger's direct one.
    (Was: in her public profile, so every user.updated told it to all of them, the
    stranger and her invisible status included, and a PATCH told no presence.)"""
    ann, ben, cat = await make_user("ann"), await make_user("ben"), await make_user("cat")
    zed = await make_user("zed")
    me = str(ann.id)
    async with httpx.AsyncClient(base_url=server, timeout=10) as api:
        await factories.befriend(ann, ben)
        await factories.direct(api, ben, ann)
        await factories.community(api, ann, cat)
        await factories.direct(api, zed, ann)  # the stranger opens one
        async with (
            sse_stream(server, ben.access_token) as friend,
            sse_stream(server, cat.access_token) as member,
            sse_stream(server, zed.access_token) as stranger,
            sse_stream(server, ann.access_token) as herself,
        ):
            for watcher in (friend, member, herself):
                assert (await presence_of(watcher, me))["status"] == "online"

            patched = await api.patch(
                "/api/users/@me", headers=ann.headers, json={"status_text": "gone fishing"}
            )
            assert patched.status_code == 200 and patched.json()["status_text"] == "gone fishing"
            shown = {"user_id": me, "status": "online", "status_text": "gone fishing"}
            for watcher in (friend, member, herself):
                assert await presence_of(watcher, me) == shown

            hidden = {"status": "invisible"}
            await api.put("/api/users/@me/presence", headers=ann.headers, json=hidden)
            assert (await presence_of(herself, me))["status"] == "invisible"
            for watcher in (friend, member):
                assert await presence_of(watcher, me) == {
                    **shown,
                    "status": "offline",
                    "status_text": None,
                }
            body = {"status_text": "at the clinic", "display_name": "Annie"}
            assert (await api.patch("/api/users/@me", headers=ann.headers, json=body)).is_success
            own = await presence_of(herself, me)
            assert own == {"user_id": me, "status": "invisible", "status_text": "at the clinic"}
            for watcher in (friend, member, stranger):  # (each shares a stream with her)
                heard = await events_until_named(watcher, me, "Annie")
                assert "clinic" not in str(heard) and "fishing" not in str(heard), heard
            for asked_by in (ben, cat, zed):
                state = await api.get("/api/users/@me/state", headers=asked_by.headers)
                assert "clinic" not in state.text
            # Visible again: those who see her presence see it, the stranger still not.
            await api.put("/api/users/@me/presence", headers=ann.headers, json={"status": "dnd"})
            back = {"user_id": me, "status": "dnd", "status_text": "at the clinic"}
            for watcher in (friend, member):
                assert await presence_of(watcher, me) == back
            assert (await api.get("/api/users/@me/presences", headers=ben.headers)).json() == [back]
            await api.patch("/api/users/@me", headers=ann.headers, json={"display_name": "Ann"})
            heard = await events_until_named(stranger, me, "Ann")
            assert "clinic" not in str(heard), heard
