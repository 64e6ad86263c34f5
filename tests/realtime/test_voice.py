"""Voice over the gateway, against real server processes: joining and leaving, the
WebRTC signalling relay between two people in a voice channel (and nobody else), and
voice states that end with their connection or their process (a clean stop, SIGKILL)."""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Callable
from typing import Any

import asyncpg
import httpx
from jsonschema import Draft202012Validator

from tests import factories
from tests.factories import MakeUser, TestUser, community, server_channel
from tests.openapi_check import document
from tests.realtime.clients import GatewayClient, sse_stream
from tests.realtime.test_presence import BOUND_S, FAST
from tests.support import Servers
from xfchat.domain.retention import prune_rows
from xfchat.settings import Settings

VOICE_STATE_UPDATE, VOICE_SIGNAL = 4, 12
Frames = list[dict[str, Any]]


async def gateway(stack: contextlib.AsyncExitStack, base: str, who: TestUser) -> GatewayClient:
    client = await GatewayClient.connect(base, who.access_token)
    stack.push_async_callback(client.close)
    await client.next("ready")
    return client


async def join(client: GatewayClient, channel: str | None, **flags: bool) -> dict[str, Any]:
    await client.send(VOICE_STATE_UPDATE, {"channel_id": channel, **flags})
    frame, _ = await client.until("voice.connected")
    assert "s" not in frame  # not an event of the log
    documented("voice.connected", frame["d"])
    return dict(frame["d"])


def documented(name: str, data: Any) -> None:
    """`data` is what the API document's Event.<name> says (they were not in it)."""
    schema = {**document(), "$ref": f"#/components/schemas/Event.{name}"}
    Draft202012Validator(schema).validate({"type": name, "data": data})


def about(user: TestUser, left: bool, channel: str | None = None) -> Callable[[Any], bool]:
    def match(d: Any) -> bool:
        return bool(
            d["user_id"] == str(user.id)
            and d["left"] is left
            and (channel is None or d["channel_id"] == channel)
        )

    return match


async def signal_to(client: GatewayClient, to: TestUser, kind: str, data: Any) -> None:
    await client.send(VOICE_SIGNAL, {"to": str(to.id), "kind": kind, "data": data})


async def received(client: GatewayClient, frames: Frames) -> dict[str, Any]:
    """The next voice.signal, keeping what came before it in `frames`."""
    frame, before = await client.until("voice.signal")
    frames += before
    assert "s" not in frame  # not stored, nothing to resume
    return dict(frame["d"])


async def error(client: GatewayClient, frames: Frames) -> dict[str, Any]:
    frame, before = await client.until("voice.error")
    frames += before
    documented("voice.error", frame["d"])
    return dict(frame["d"])


async def test_two_in_a_voice_channel_exchange_offer_answer_and_candidates_and_nobody_else_hears(
    servers: Servers, make_user: MakeUser
) -> None:
    _, a = servers.start()
    _, b = servers.start()
    ann, ben, cid = [await make_user(n) for n in ("ann", "ben", "cid")]
    async with contextlib.AsyncExitStack() as stack:
        api = await stack.enter_async_context(httpx.AsyncClient(base_url=a, timeout=10))
        srv = await community(api, ann, ben, cid)
        room = (await server_channel(api, srv, ann, "Lounge", kind="voice"))["id"]
        ann_voice = await gateway(stack, a, ann)
        ben_voice = await gateway(stack, b, ben)  # on the other process
        ann_tab = await gateway(stack, b, ann)  # another tab of hers: not her voice connection
        outsider = await gateway(stack, a, cid)  # sees the channel, is not in it
        frames: dict[str, Frames] = {"ann": [], "ben": [], "tab": [], "cid": []}

        mine = await join(ann_voice, room)
        assert mine["voice_states"] == [mine["state"]]
        assert mine["state"]["user_id"] == str(ann.id) and mine["ice_servers"] == []
        assert mine["ice_transport_policy"] == "all"
        theirs = await join(ben_voice, room, self_mute=True)
        assert [s["user_id"] for s in theirs["voice_states"]] == [str(ann.id), str(ben.id)]
        came, _ = await ann_voice.until("voice.state_updated", about(ben, False))
        assert came["d"]["self_mute"] is True and "s" in came  # a stored event

        # The newcomer offers (an SDP longer than one notification holds), the other
        # answers, and both trickle candidates, the last one null (end of candidates).
        sdp = "v=0\r\n" + "".join(f"a=fmtp:{n} profile-level-id=42e01f\r\n" for n in range(300))
        assert 8_000 < len(sdp) < 16_000
        offer = {"type": "offer", "sdp": sdp}
        await signal_to(ben_voice, ann, "offer", offer)
        assert await received(ann_voice, frames["ann"]) == {
            "channel_id": room,
            "from": str(ben.id),
            "kind": "offer",
            "data": offer,
        }
        answer = {"type": "answer", "sdp": "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"}
        await signal_to(ann_voice, ben, "answer", answer)
        got = await received(ben_voice, frames["ben"])
        assert (got["from"], got["kind"], got["data"]) == (str(ann.id), "answer", answer)
        candidates = [
            {"candidate": f"candidate:{n} 1 udp 2122260223 192.0.2.{n} 5400{n} typ host"}
            for n in range(3)
        ]
        for c in [*candidates, None]:
            await signal_to(ann_voice, ben, "candidate", c)
        await signal_to(ben_voice, ann, "candidate", candidates[0])
        assert [(await received(ben_voice, frames["ben"]))["data"] for _ in range(4)] == [
            *candidates,
            None,
        ]
        assert (await received(ann_voice, frames["ann"]))["data"] == candidates[0]

        # Refused, each with an error to the sender only, the connection kept.
        await signal_to(ben_voice, cid, "offer", answer)
        refused = await error(ben_voice, frames["ben"])
        assert (refused["code"], refused["op"], refused["to"]) == (
            "PEER_NOT_IN_CHANNEL",
            VOICE_SIGNAL,
            str(cid.id),
        )
        await signal_to(outsider, ann, "offer", offer)
        assert (await error(outsider, frames["cid"]))["code"] == "NOT_IN_VOICE"
        await signal_to(ann_tab, ben, "candidate", candidates[1])
        assert (await error(ann_tab, frames["tab"]))["code"] == "NOT_IN_VOICE"
        too_big = {"type": "offer", "sdp": "a" * 16_400}
        too_deep: dict[str, object] = {}
        inner = too_deep
        for _ in range(300):  # (read, but deeper than orjson writes: was a traceback, 500)
            inner["a"] = inner = {}
        for bad in (
            {"to": str(ann.id), "kind": "offer", "data": too_big},
            {"to": str(ann.id), "kind": "offer", "data": too_deep},
            {"to": str(ann.id), "kind": "hello", "data": {}},
            {"to": "ann", "kind": "offer", "data": {}},
            {"to": str(ann.id), "kind": "offer", "data": "v=0"},
            "not an object",
        ):
            await ben_voice.send(VOICE_SIGNAL, bad)
            assert (await error(ben_voice, frames["ben"]))["code"] == "INVALID_SIGNAL"
        # A `to` that is no user id is not sent back whole (was: up to a frame's 64 KiB).
        await ben_voice.send(VOICE_SIGNAL, {"to": "x" * 60_000, "kind": "offer", "data": {}})
        refused = await error(ben_voice, frames["ben"])
        assert refused["code"] == "INVALID_SIGNAL" and "to" not in refused
        await ben_voice.send(VOICE_STATE_UPDATE, {"channel_id": "lounge"})
        assert (await error(ben_voice, frames["ben"]))["code"] == "INVALID_VOICE_STATE"

        # The last word goes through the log after every signal above: whoever would
        # have received a stray signal has it before this message.
        await factories.say(api, ann, srv.general, "that is all")
        for name, client in (("tab", ann_tab), ("cid", outsider), ("ben", ben_voice)):
            _, before = await client.until("message.created")
            frames[name] += before
        for name in ("tab", "cid"):
            assert [f for f in frames[name] if f.get("t") == "voice.signal"] == [], name
        assert [f for f in frames["ben"] if f.get("t") == "voice.signal"] == []  # no extra
        assert [f for f in frames["ann"] if f.get("t") == "voice.signal"] == []


async def test_a_conversation_call_relays_signals_and_rate_limits_them(
    server: str, make_user: MakeUser
) -> None:
    ann, ben, eve = [await make_user(n) for n in ("ann", "ben", "eve")]
    async with contextlib.AsyncExitStack() as stack:
        api = await stack.enter_async_context(httpx.AsyncClient(base_url=server, timeout=10))
        crew = (await factories.group(api, ann, ben))["id"]
        ann_voice = await gateway(stack, server, ann)
        ben_voice = await gateway(stack, server, ben)
        stranger = await gateway(stack, server, eve)
        await join(ann_voice, crew)
        theirs = await join(ben_voice, crew)
        assert theirs["state"]["server_id"] is None
        assert [s["user_id"] for s in theirs["voice_states"]] == [str(ann.id), str(ben.id)]
        await stranger.send(VOICE_STATE_UPDATE, {"channel_id": crew})
        assert (await error(stranger, []))["code"] == "CHANNEL_NOT_FOUND"
        # A burst past the connection's allowance: the excess is refused, the rest
        # arrives in order.
        count = 400
        for n in range(count):
            await signal_to(ann_voice, ben, "candidate", {"candidate": str(n)})
        await ann_voice.send(VOICE_STATE_UPDATE, {"channel_id": None})  # leaves: the end
        _, before = await ben_voice.until("voice.state_updated", about(ann, True), timeout=30)
        got = [int(f["d"]["data"]["candidate"]) for f in before if f.get("t") == "voice.signal"]
        _, mine = await ann_voice.until("voice.state_updated", about(ann, True), timeout=30)
        errors = [f["d"] for f in mine if f.get("t") == "voice.error"]
        assert errors and {e["code"] for e in errors} == {"RATE_LIMITED"}
        assert all(e["retry_after"] > 0 for e in errors)
        assert len(got) + len(errors) == count
        assert got == sorted(got) and len(got) >= 120


async def test_a_voice_state_ends_with_its_connection_and_when_its_process_stops(
    servers: Servers, make_user: MakeUser
) -> None:
    proc_a, a = servers.start()
    _, b = servers.start()
    ann, ben = await make_user("ann"), await make_user("ben")
    async with contextlib.AsyncExitStack() as stack:
        api = await stack.enter_async_context(httpx.AsyncClient(base_url=b, timeout=10))
        srv = await community(api, ben, ann)  # ben owns it: he may move people
        room = (await server_channel(api, srv, ben, "room", kind="voice"))["id"]
        other = (await server_channel(api, srv, ben, "other", kind="voice"))["id"]
        watcher = await gateway(stack, b, ben)
        await stack.enter_async_context(sse_stream(a, ann.access_token))  # she stays online
        first = await gateway(stack, a, ann)
        await join(first, room)
        await watcher.until("voice.state_updated", about(ann, False, room))
        # A moderator's move reaches her voice connection like any change.
        moved = await api.patch(
            srv.url(f"/members/{ann.id}/voice"), headers=ben.headers, json={"channel_id": other}
        )
        assert moved.status_code == 200
        await first.until("voice.state_updated", about(ann, False, other))
        # The connection that holds the state closes: the state goes, though she is
        # still connected (SSE).
        await first.close()
        # (Within 3 s: not the heartbeat's orphan drop, which spares a state written in
        # the last 5 s, as the move just did.)
        await watcher.until("voice.state_updated", about(ann, True, other), timeout=3)
        assert (
            await api.get(f"/api/channels/{other}/voice-states", headers=ben.headers)
        ).json() == []
        # The process stops cleanly: it drops its states itself (the sweep of a dead
        # process would take XFCHAT_PRESENCE_TIMEOUT, 30 s, longer than we wait).
        second = await gateway(stack, a, ann)
        await join(second, room)
        await watcher.until("voice.state_updated", about(ann, False, room))
        proc_a.stop(signal.SIGTERM)
        await watcher.until("voice.state_updated", about(ann, True, room), timeout=10)
        assert (
            await api.get(f"/api/channels/{room}/voice-states", headers=ben.headers)
        ).json() == []


async def test_a_voice_state_ends_after_its_process_is_killed(
    servers: Servers, make_user: MakeUser
) -> None:
    proc_a, a = servers.start(**FAST)
    _, b = servers.start(**FAST)
    ann, ben = await make_user("ann"), await make_user("ben")
    async with contextlib.AsyncExitStack() as stack:
        api = await stack.enter_async_context(httpx.AsyncClient(base_url=b, timeout=10))
        srv = await community(api, ann, ben)
        room = (await server_channel(api, srv, ann, "room", kind="voice"))["id"]
        watcher = await gateway(stack, b, ben)
        holder = await GatewayClient.connect(a, ann.access_token)
        await holder.next("ready")
        await join(holder, room)
        await watcher.until("voice.state_updated", about(ann, False, room))
        proc_a.proc.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        await watcher.until("voice.state_updated", about(ann, True, room), timeout=BOUND_S + 5)
        took = time.monotonic() - killed
        assert took <= BOUND_S + 3, took  # the presence bound, with room for a busy box
        assert (
            await api.get(f"/api/channels/{room}/voice-states", headers=ben.headers)
        ).json() == []
        # She can join again through the live process.
        again = await gateway(stack, b, ann)
        assert (await join(again, room))["voice_states"][0]["user_id"] == str(ann.id)


async def _ended_long_ago(pool: asyncpg.Pool, settings: Settings, user: TestUser) -> None:
    """The user's session ended longer ago than the retention job keeps ended ones."""
    async with pool.acquire() as conn:
        await conn.execute(
            "UPDATE sessions SET expires_at = now() - make_interval(days => $2::int + 1)"
            " WHERE id = $1",
            user.session_id,
            int(settings.refresh_token_ttl_days),
        )


async def _voice_room(
    stack: contextlib.AsyncExitStack, base: str, make_user: MakeUser
) -> tuple[httpx.AsyncClient, TestUser, TestUser, str]:
    """A client of `base`; ann, ben, and a voice channel of ann's server both are in."""
    ann, ben = await make_user("ann"), await make_user("ben")
    api = await stack.enter_async_context(httpx.AsyncClient(base_url=base, timeout=10))
    srv = await community(api, ann, ben)
    room = (await server_channel(api, srv, ann, "room", kind="voice"))["id"]
    return api, ann, ben, room


async def test_the_retention_of_ended_sessions_never_drops_a_held_voice_state_unannounced(
    servers: Servers, make_user: MakeUser, pool: asyncpg.Pool, settings: Settings
) -> None:
    # A gateway connection is authenticated once, and outlives its session's expiry by
    # up to a minute (the hub's look at its sessions, Hub.close_ended_sessions). Its
    # voice state named the session, and the retention job's deletion of sessions ended
    # longer ago than a refresh token lives took the state with it (ON DELETE CASCADE),
    # silently: nobody was told it left, the connection still thought it held it.
    _, a = servers.start()
    async with contextlib.AsyncExitStack() as stack:
        api, ann, ben, room = await _voice_room(stack, a, make_user)
        watcher = await gateway(stack, a, ann)
        bot = await gateway(stack, a, ben)
        await join(bot, room)
        await watcher.until("voice.state_updated", about(ben, False, room))
        await _ended_long_ago(pool, settings, ben)
        assert (await prune_rows(pool, settings))["sessions"] == 0  # its state holds it
        listed = await api.get(f"/api/channels/{room}/voice-states", headers=ann.headers)
        assert [s["user_id"] for s in listed.json()] == [str(ben.id)]
        # The state ends with its connection, told to those who see the channel; the
        # session goes at the next run.
        await bot.close()
        await watcher.until("voice.state_updated", about(ben, True, room), timeout=10)
        assert (await prune_rows(pool, settings))["sessions"] == 1


async def test_a_connection_whose_session_ended_is_told_so_when_it_joins(
    servers: Servers, make_user: MakeUser, pool: asyncpg.Pool, settings: Settings
) -> None:
    # The connection outlives its session by up to a minute (the hub's look at its
    # sessions); a join from it meanwhile was written as a state naming an ended session
    # or, once the retention job had deleted the session, refused by its foreign key as
    # DATABASE_UNAVAILABLE ("the database is unavailable", a warning logged): the
    # database was fine.
    _, a = servers.start()
    async with contextlib.AsyncExitStack() as stack:
        api, ann, ben, room = await _voice_room(stack, a, make_user)
        bot = await gateway(stack, a, ben)
        async with pool.acquire() as conn:
            await conn.execute(
                "UPDATE sessions SET expires_at = now() - interval '1 second' WHERE id = $1",
                ben.session_id,
            )
        frames: Frames = []
        await bot.send(VOICE_STATE_UPDATE, {"channel_id": room})
        refused = await error(bot, frames)
        assert (refused["op"], refused["code"]) == (VOICE_STATE_UPDATE, "SESSION_REVOKED")
        await _ended_long_ago(pool, settings, ben)
        assert (await prune_rows(pool, settings))["sessions"] == 1
        await bot.send(VOICE_STATE_UPDATE, {"channel_id": room})
        refused = await error(bot, frames)
        assert (refused["op"], refused["code"]) == (VOICE_STATE_UPDATE, "SESSION_REVOKED")
        assert (
            await api.get(f"/api/channels/{room}/voice-states", headers=ann.headers)
        ).json() == []


async def test_an_id_nested_deeper_than_python_prints_is_refused_as_any_malformed_one(
    server: str, make_user: MakeUser
) -> None:
    # `to` and `channel_id` were read with UUID(str(value)): a list nested 1,000 deep
    # (which a 64 KiB frame carries and orjson reads) raised RecursionError in str(),
    # answered INTERNAL_ERROR with a traceback logged, 30 a second from one user.
    async with contextlib.AsyncExitStack() as stack:
        _, ann, ben, room = await _voice_room(stack, server, make_user)
        voice = await gateway(stack, server, ann)
        await join(voice, room)
        deep = "[" * 1000 + "]" * 1000
        frames: Frames = []
        await voice.ws.send(f'{{"op":12,"d":{{"to":{deep},"kind":"offer","data":{{}}}}}}')
        refused = await error(voice, frames)
        assert (refused["op"], refused["code"]) == (VOICE_SIGNAL, "INVALID_SIGNAL")
        assert "to" not in refused
        await voice.ws.send(f'{{"op":4,"d":{{"channel_id":{deep}}}}}')
        refused = await error(voice, frames)
        assert (refused["op"], refused["code"]) == (VOICE_STATE_UPDATE, "INVALID_VOICE_STATE")
        await signal_to(voice, ben, "offer", {})  # the connection stays
        assert (await error(voice, frames))["code"] == "PEER_NOT_IN_CHANNEL"


async def test_a_connection_whose_session_ended_relays_no_more_signals(
    server: str, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    # A join from a connection whose session ended is refused (above), but its signals
    # (ICE candidates: addresses) still reached the others in the call until the hub's
    # look at its sessions closed it, up to a minute later.
    ann, ben = await make_user("ann"), await make_user("ben")
    async with contextlib.AsyncExitStack() as stack:
        api = await stack.enter_async_context(httpx.AsyncClient(base_url=server, timeout=10))
        srv = await community(api, ann, ben)
        room = (await server_channel(api, srv, ann, "room", kind="voice"))["id"]
        ann_voice, ben_voice = await gateway(stack, server, ann), await gateway(stack, server, ben)
        await join(ann_voice, room)
        await join(ben_voice, room)
        frames: Frames = []
        candidate = {"candidate": "candidate:1 1 udp 2122260223 192.0.2.7 54001 typ host"}
        await signal_to(ben_voice, ann, "candidate", candidate)
        assert (await received(ann_voice, frames))["data"] == candidate
        async with pool.acquire() as conn:
            await conn.execute(
                "UPDATE sessions SET expires_at = now() - interval '1 second' WHERE id = $1",
                ben.session_id,
            )
        await signal_to(ben_voice, ann, "candidate", candidate)
        refused = await error(ben_voice, [])
        assert (refused["op"], refused["code"]) == (VOICE_SIGNAL, "SESSION_REVOKED")
        await factories.say(api, ann, srv.general, "after the signal")
        _, before = await ann_voice.until("message.created")
        assert [f for f in frames + before if f.get("t") == "voice.signal"] == []
