"""Permission changes while a member's SSE, gateway and Braid connections are open: a
hidden channel's events stop at once, a revealed one's flow with nothing missed from
the reveal on, and a resume across both yields exactly that."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import Callable
from typing import Any, cast

import httpx

from tests.factories import MakeUser, community, group, say
from tests.realtime.clients import GatewayClient, sse_stream, wait_subscribers
from tests.support import METRICS_HEADERS, Servers
from xfchat.api.braid import _Body
from xfchat.domain.events import Stream
from xfchat.domain.permissions import Permission
from xfchat.realtime.cursor import Position, TokenCodec
from xfchat.realtime.follows import Follows
from xfchat.realtime.hub import Hub

Http = Callable[[str], httpx.AsyncClient]
VIEW = str(int(Permission.VIEW_CHANNEL))
HISTORY = str(int(Permission.READ_MESSAGE_HISTORY))


def read_in_background(braid: httpx.Response) -> tuple[list[str], asyncio.Task[None]]:
    """A Braid subscription's body as it comes, and the task reading it (it ends with the
    response)."""
    chunks: list[str] = []

    async def read() -> None:
        async for chunk in braid.aiter_text():
            chunks.append(chunk)

    return chunks, asyncio.create_task(read())


async def test_an_override_hides_and_reveals_a_channel_on_every_transport(
    server: str, http: Http, make_user: MakeUser
) -> None:
    api = http(server)
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await community(api, ann, ben)
    staff = (
        await api.post(srv.url("/channels"), headers=ann.headers, json={"name": "staff"})
    ).json()["id"]
    override = f"/api/channels/{staff}/overrides/role/{srv.everyone_role}"
    async with (
        sse_stream(server, ben.access_token) as stream,
        httpx.AsyncClient(timeout=httpx.Timeout(10, read=None)) as raw,
        raw.stream(
            "GET",
            f"{server}/api/channels/{staff}/messages",
            headers={**ben.headers, "Subscribe": "true"},
        ) as braid,
    ):
        assert braid.status_code == 209
        braid_chunks, braid_reader = read_in_background(braid)
        gw = await GatewayClient.connect(server, ben.access_token)
        try:
            await gw.next("ready")
            await wait_subscribers(server, 3)
            before = await say(api, ann, staff, "before")
            assert (await stream.next("message.created")).data["id"] == before["id"]
            assert (await gw.next("message.created"))["d"]["id"] == before["id"]
            resume_from = stream.last_id

            hidden = await api.put(override, headers=ann.headers, json={"deny": VIEW})
            assert hidden.status_code == 200
            for got in (
                (await stream.next("channel.hidden")).data,
                (await gw.next("channel.hidden"))["d"],
            ):
                assert got["channel_ids"] == [staff] and got["reason"] == "permissions"
            async with asyncio.timeout(10):
                await braid_reader  # the Braid subscription ends
            assert any(before["id"] in c for c in braid_chunks)
            secret = await say(api, ann, staff, "while hidden")
            ping = await say(api, ann, srv.general, "general ping")
            # The next message either transport gets is #general's: #staff's is not sent.
            assert (await stream.next("message.created")).data["id"] == ping["id"]
            assert (await gw.next("message.created"))["d"]["id"] == ping["id"]
            between = stream.last_id

            shown = await api.delete(override, headers=ann.headers)
            assert shown.status_code == 200
            revealed = (await stream.next("channel.revealed")).data
            assert [c["id"] for c in revealed["channels"]] == [staff]
            assert (await gw.next("channel.revealed"))["d"]["channels"][0]["name"] == "staff"
            after = await say(api, ann, staff, "after the reveal")
            assert (await stream.next("message.created")).data["id"] == after["id"]
            assert (await gw.next("message.created"))["d"]["id"] == after["id"]
        finally:
            await gw.close()
    assert secret["id"] not in str(braid_chunks)

    # Resumes from before the hide and from between hide and reveal replay exactly that.
    for token, expected in (
        (resume_from, ["channel.hidden", ping["id"], "channel.revealed", after["id"]]),
        (between, ["channel.revealed", after["id"]]),
    ):
        async with sse_stream(server, ben.access_token, last_event_id=token) as again:
            seen: list[str] = []
            while len(seen) < len(expected):
                event = await again.next()
                if event.event == "message.created":
                    seen.append(event.data["id"])
                elif event.event in ("channel.hidden", "channel.revealed"):
                    seen.append(event.event)
            assert seen == expected
        gw = await GatewayClient.connect(server, ben.access_token, resume=_gateway_token(token))
        try:
            frames: list[dict[str, Any]] = []
            while len(frames) < len(expected):
                frame = await gw.next()
                if frame.get("t") in ("message.created", "channel.hidden", "channel.revealed"):
                    frames.append(frame)
            assert [
                f["d"]["id"] if f["t"] == "message.created" else f["t"] for f in frames
            ] == expected
        finally:
            await gw.close()


async def test_losing_read_message_history_ends_a_braid_subscription_there(
    server: str, http: Http, make_user: MakeUser
) -> None:
    """Was: the subscription, a sync of the history, went on after the member lost
    READ_MESSAGE_HISTORY (only VIEW_CHANNEL kept): every later message came, a reply's
    and a pin notice's previews quoting old messages, and it ended, if ever, only when a
    gap made it read the history it was refused. It ends at the change now, counted;
    the feeds keep the channel's live events (README, "A member without
    READ_MESSAGE_HISTORY")."""
    api = http(server)
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await community(api, ann, ben)
    old = await say(api, ann, srv.general, "an old SECRET")
    async with (
        sse_stream(server, ben.access_token) as stream,
        httpx.AsyncClient(timeout=httpx.Timeout(10, read=None)) as raw,
        raw.stream(
            "GET",
            f"{server}/api/channels/{srv.general}/messages",
            headers={**ben.headers, "Subscribe": "true"},
        ) as braid,
    ):
        assert braid.status_code == 209
        chunks, reader = read_in_background(braid)
        await wait_subscribers(server, 2)
        seen = await say(api, ann, srv.general, "seen")
        assert (await stream.next("message.created")).data["id"] == seen["id"]
        denied = await api.put(
            f"/api/channels/{srv.general}/overrides/member/{ben.id}",
            headers=ann.headers,
            json={"allow": "0", "deny": HISTORY},
        )
        assert denied.status_code == 200, denied.text
        lost = (await stream.next("channel.history_hidden")).data
        assert lost["channel_ids"] == [srv.general] and lost["reason"] == "permissions"
        async with asyncio.timeout(10):
            await reader  # the subscription ended, its response whole
        reply = await api.post(
            f"/api/channels/{srv.general}/messages",
            headers=ann.headers,
            json={"content": "a reply", "reply_to_id": old["id"]},
        )
        assert reply.status_code == 201
        # The feed still has the channel's live events (a reply's preview too).
        assert (await stream.next("message.created")).data["id"] == reply.json()["id"]
    synced = "".join(chunks)
    assert seen["id"] in synced and reply.json()["id"] not in synced
    assert synced.count("SECRET") == 1  # in the snapshot, read while he might
    again = await api.get(
        f"/api/channels/{srv.general}/messages", headers={**ben.headers, "Subscribe": "true"}
    )
    assert again.status_code == 403 and again.json()["missing"] == "READ_MESSAGE_HISTORY"
    metrics = (await api.get("/metrics", headers=METRICS_HEADERS)).text
    assert 'xfchat_realtime_subscriptions_ended_total{reason="access_lost"} 1.0' in metrics


def _gateway_token(token: str | None) -> str:
    assert token is not None
    return token  # the same resume token works on every transport


async def test_kicking_a_member_ends_delivery_for_that_server_at_once(
    server: str, http: Http, make_user: MakeUser
) -> None:
    api = http(server)
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await community(api, ann, ben)
    async with sse_stream(server, ben.access_token) as stream:
        gw = await GatewayClient.connect(server, ben.access_token)
        try:
            await gw.next("ready")
            kicked = await api.delete(srv.url(f"/members/{ben.id}"), headers=ann.headers)
            assert kicked.status_code == 204
            left = (await stream.next("server.left")).data
            assert left["reason"] == "kicked" and left["channel_ids"] == [srv.general]
            assert (await gw.next("server.left"))["d"]["id"] == srv.id
            await say(api, ann, srv.general, "after the kick")
            await api.patch(srv.url(), headers=ann.headers, json={"name": "renamed"})
            # Something ben still may see, to know the stream moved past those.
            dm = (
                await api.post(
                    "/api/conversations",
                    headers=ann.headers,
                    json={"kind": "direct", "user_id": str(ben.id)},
                )
            ).json()["id"]
            marker = await say(api, ann, dm, "marker")
            event = await stream.next()
            while event.event not in ("message.created", "server.updated"):
                event = await stream.next()
            assert event.data["id"] == marker["id"]
            frame = await gw.next()
            while frame.get("t") not in ("message.created", "server.updated"):
                frame = await gw.next()
            assert frame["d"]["id"] == marker["id"]
        finally:
            await gw.close()


async def test_a_large_reveal_names_the_channels_and_sends_each_payload_once(
    server: str, http: Http, make_user: MakeUser
) -> None:
    """Revealing many channels to many members repeated every channel's payload in each
    member's event (a role change in a server of 500 channels and 200 members asked
    PostgreSQL for a 1 GiB statement: 500). Past a budget the events carry the channel
    ids, and each payload follows once, as the channel's `channel.updated`, which reaches
    the members who just gained it, live and on a resume."""
    api = http(server)
    ann, ben, cyd = [await make_user(n) for n in ("ann", "ben", "cyd")]
    srv = await community(api, ann, ben, cyd)
    made = await api.post(
        srv.url("/channels"), headers=ann.headers, json={"name": "vault", "kind": "category"}
    )
    category = made.json()["id"]
    override = f"/api/channels/{category}/overrides/role/{srv.everyone_role}"
    assert (await api.put(override, headers=ann.headers, json={"deny": VIEW})).status_code == 200
    topic = "t" * 1000
    hidden = []
    for i in range(120):  # (2 members x 120 x 1.1 KB: past the 256 KiB budget)
        made = await api.post(
            srv.url("/channels"),
            headers=ann.headers,
            json={"name": f"room-{i}", "topic": topic, "parent_id": category},
        )
        assert made.status_code == 201, made.text
        hidden.append(made.json()["id"])
    async with sse_stream(server, ben.access_token) as stream:
        before = stream.last_id
        assert before is not None
        assert (await api.delete(override, headers=ann.headers)).status_code == 200
        revealed = (await stream.next("channel.revealed")).data
        assert set(revealed["channel_ids"]) >= set(hidden) and revealed["channels"] == []
        payloads = {}
        while len(payloads) < len(revealed["channel_ids"]):
            event = await stream.next("channel.updated")
            payloads[event.data["id"]] = event.data
        assert payloads[hidden[7]]["name"] == "room-7" and payloads[hidden[7]]["topic"] == topic
        said = await say(api, ann, hidden[7], "now you see it")
        assert (await stream.next("message.created")).data["id"] == said["id"]
    async with sse_stream(server, ben.access_token, last_event_id=before) as again:
        assert (await again.next("channel.revealed")).data["channels"] == []
        replayed = set()
        while len(replayed) < len(revealed["channel_ids"]):
            replayed.add((await again.next("channel.updated")).data["id"])
        assert replayed >= set(hidden)
        assert (await again.next("message.created")).data["id"] == said["id"]


async def test_a_braid_subscription_ends_at_a_removal_even_when_the_re_adding_came_first(
    servers: Servers, make_user: MakeUser
) -> None:
    """Was (a chaos run found it): the subscription judged access by what the hub had
    applied last, which runs ahead of what it writes. A process stalled while Ben was
    removed from the group and added back, and its subscription then sent what was said
    while he was out, and went on; and one whose channel was taken away for good ended
    without what came before the change. It ends at the removal now, after all that
    came before it."""
    stalled, here = servers.start()
    _, there = servers.start()
    ann, ben, cat = await make_user("ann"), await make_user("ben"), await make_user("cat")
    async with (
        httpx.AsyncClient(base_url=there, timeout=10) as api,
        httpx.AsyncClient(timeout=httpx.Timeout(10, read=None)) as raw,
    ):
        crew = await group(api, ann, ben, cat)
        async with raw.stream(
            "GET",
            f"{here}/api/channels/{crew['id']}/messages",
            headers={**ben.headers, "Subscribe": "true"},
        ) as braid:
            assert braid.status_code == 209
            chunks, reader = read_in_background(braid)
            await wait_subscribers(here, 1)
            member = f"/api/conversations/{crew['id']}/participants/{ben.id}"
            stalled.proc.send_signal(signal.SIGSTOP)
            try:
                before = await say(api, cat, crew["id"], "before")
                assert (await api.delete(member, headers=ann.headers)).status_code == 204
                away = await say(api, cat, crew["id"], "while Ben was out")
                assert (await api.put(member, headers=ann.headers)).status_code in (200, 204)
                after = await say(api, cat, crew["id"], "after")
            finally:
                stalled.proc.send_signal(signal.SIGCONT)
            async with asyncio.timeout(10):
                await reader  # the subscription ended, its response whole
    synced = "".join(chunks)
    assert before["id"] in synced
    assert away["id"] not in synced and after["id"] not in synced


async def test_a_braid_resumes_catch_up_stops_where_the_subscription_started(
    server: str, make_user: MakeUser
) -> None:
    """Was (an outside review): a resume's catch-up read the history with no end, with
    the access of the moment it read, so it went past where the subscription started
    and past a removal the hub had judged already: Ben, removed and added back before
    his subscription's writer first read the history, got what was said while he was
    out. It reads up to the newest message at the start (the hub's queue has the rest,
    in order), here with the history as PostgreSQL holds it after the re-adding."""
    ann, ben, cat = await make_user("ann"), await make_user("ben"), await make_user("cat")
    assert ben.pool is not None
    async with httpx.AsyncClient(base_url=server, timeout=10) as api:
        crew = await group(api, ann, ben, cat)
        channel = uuid.UUID(crew["id"])
        one = await say(api, cat, crew["id"], "one")
        two = await say(api, cat, crew["id"], "two")
        # His subscription starts here, resumed after "one" (the newest then: "two"),
        hub = Hub(
            cast(Any, None), cast(Any, None), TokenCodec("a secret long enough to be a secret")
        )
        sub = hub.subscribe(ben.id, None, Follows(ben.id, [channel], only=channel))
        sub.start(Position(1, 0), 0, set())
        hub.known.set()
        assert hub.go_live(sub)
        # ... and before its writer reads the history he is removed, Cat speaks, and he
        # is added back: the hub queues the removal (and ends the subscription there).
        member = f"/api/conversations/{crew['id']}/participants/{ben.id}"
        assert (await api.delete(member, headers=ann.headers)).status_code == 204
        away = await say(api, cat, crew["id"], "while Ben was out")
        assert (await api.put(member, headers=ann.headers)).status_code in (200, 204)
    hub._dispatch(1, Stream.user(ben.id), [(1, "conversation.removed", {"id": crew["id"]})])
    body = _Body(ben.pool, ben.actor, channel, sub, None, (one["seq"], one["id"]), [two])
    written: list[bytes] = []

    async def write(chunk: bytes) -> None:
        written.append(chunk)

    await body.produce(write)
    synced = b"".join(written).decode()
    assert two["id"] in synced and away["id"] not in synced


async def test_deleting_a_private_category_reveals_nothing_of_its_channels_live(
    server: str, http: Http, make_user: MakeUser
) -> None:
    """Its synced channels keep a copy of its overrides: ben, kept out, gets no reveal and
    none of their messages; sam, let in, keeps getting them, after their `channel.updated`
    (no category, no longer synced, the category's overrides their own)."""
    api = http(server)
    ann, sam, ben = await make_user("ann"), await make_user("sam"), await make_user("ben")
    srv = await community(api, ann, sam, ben)
    staff_role = (
        await api.post(srv.url("/roles"), headers=ann.headers, json={"name": "staff"})
    ).json()["id"]
    given = await api.put(srv.url(f"/members/{sam.id}/roles/{staff_role}"), headers=ann.headers)
    assert given.status_code == 204
    staff = (
        await api.post(
            srv.url("/channels"), headers=ann.headers, json={"name": "staff", "kind": "category"}
        )
    ).json()["id"]
    for target, body in ((srv.everyone_role, {"deny": VIEW}), (staff_role, {"allow": VIEW})):
        set_ = await api.put(
            f"/api/channels/{staff}/overrides/role/{target}", headers=ann.headers, json=body
        )
        assert set_.status_code == 200, set_.text
    chat = (
        await api.post(
            srv.url("/channels"), headers=ann.headers, json={"name": "chat", "parent_id": staff}
        )
    ).json()["id"]
    async with (
        sse_stream(server, ben.access_token) as bens,
        sse_stream(server, sam.access_token) as sams,
    ):
        await wait_subscribers(server, 2)
        gone = await api.delete(f"/api/channels/{staff}", headers=ann.headers)
        assert gone.status_code == 204
        secret = await say(api, sam, chat, "still staff only")
        public = await say(api, ben, srv.general, "hello")
        # ben: nothing of chat, up to his own message after it.
        seen: list[tuple[str, Any]] = []
        while True:
            got = await bens.next()
            seen.append((got.event, got.data))
            if got.event == "message.created" and got.data["id"] == public["id"]:
                break
        assert all(chat not in str(data) and secret["id"] not in str(data) for _, data in seen), (
            seen
        )
        assert not [e for e, _ in seen if e in ("channel.revealed", "channel.hidden")], seen
        # sam: the category hidden, chat's new shape, then its message; chat never hidden.
        hides = []
        while (got := await sams.next()).event != "channel.updated":
            if got.event in ("channel.hidden", "channel.revealed"):
                hides.append((got.event, got.data["channel_ids"]))
        assert hides == [("channel.hidden", [staff])], hides
        updated = got
        assert updated.data["id"] == chat and updated.data["parent_id"] is None
        assert updated.data["permissions_synced"] is False
        assert {(o["id"], o["allow"], o["deny"]) for o in updated.data["overrides"]} == {
            (srv.everyone_role, "0", VIEW),
            (staff_role, VIEW, "0"),
        }
        while (got := await sams.next()).event != "message.created":
            assert got.event not in ("channel.hidden", "channel.revealed"), got
        assert got.data["id"] == secret["id"]
