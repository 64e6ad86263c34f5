"""A chat bot's client written from the README alone, against a real server process:
accounts, a group and a server channel, every kind of write a bot makes, read
receipts, presence and mutes, and disconnecting and resuming on the gateway and SSE."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
import httpx

from tests.factories import PASSWORD, MakeUser, community, events_of, pair
from tests.realtime.clients import GatewayClient, SseClient, sse_stream

Http = Callable[[str], httpx.AsyncClient]

MESSAGE = {
    "id", "channel_id", "seq", "kind", "author", "webhook_id", "content", "created_at", "edited_at",
    "deleted", "deleted_at", "reply_to_id", "reply_to", "mentions", "mention_roles",
    "mention_everyone", "nonce", "pinned", "reactions", "attachments",
}  # fmt: skip
# The README's table of event types, for the events a bot meets here.
PAYLOADS: dict[str, set[str]] = {
    "message.created": MESSAGE,
    "message.updated": MESSAGE | {"previous_mentions"},
    "message.deleted": {
        "id",
        "channel_id",
        "seq",
        "deleted_at",
        "author_id",
        "mentions",
        "mention_roles",
        "mention_everyone",
    },
    "message.pinned": {"channel_id", "message_id", "pinned_by", "pinned_at"},
    "message.unpinned": {"channel_id", "message_id", "pinned_by", "pinned_at"},
    "reaction.added": {"message_id", "channel_id", "user_id", "emoji"},
    "reaction.removed": {"message_id", "channel_id", "user_id", "emoji"},
    "read_state.updated": {"channel_id", "user_id", "last_read_seq"},
    "presence.updated": {"user_id", "status", "status_text"},
    "mute.updated": {"kind", "id", "until"},
    "mute.removed": {"kind", "id"},
    "typing.started": {"channel_id", "user_id", "expires_in"},
}
READY = {
    "user_id", "session_id", "resumed", "heartbeat_interval", "user", "conversations",
    "friends", "friend_requests", "blocks", "servers", "presences", "voice_states", "mutes",
    "notification_settings",
    "truncated",
}  # fmt: skip
RESUMED = {
    "user_id", "session_id", "resumed", "status", "status_text", "presences",
    "heartbeat_interval",
}  # fmt: skip
TOKENS = {"access_token", "token_type", "expires_in", "refresh_token", "session_id", "user"}


class Bot:
    def __init__(self, api: httpx.AsyncClient, name: str) -> None:
        self.api, self.name = api, name
        self.tokens: dict[str, Any] = {}

    @property
    def h(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens['access_token']}"}

    @property
    def id(self) -> str:
        return str(self.tokens["user"]["id"])

    async def register(self) -> None:
        r = await self.api.post(
            "/api/auth/register",
            json={"username": self.name, "email": f"{self.name}@example.com", "password": PASSWORD},
        )
        assert r.status_code == 201, r.text
        assert set(r.json()) >= TOKENS, r.json()
        r = await self.api.post("/api/auth/login", json={"login": self.name, "password": PASSWORD})
        assert r.status_code == 200, r.text
        assert set(r.json()) >= TOKENS and r.json()["token_type"] == "Bearer"
        refreshed = await self.api.post(
            "/api/auth/refresh", json={"refresh_token": r.json()["refresh_token"]}
        )
        assert refreshed.status_code == 200, refreshed.text
        self.tokens = refreshed.json()
        assert set(self.tokens) >= TOKENS
        assert self.tokens["session_id"] == r.json()["session_id"]

    async def call(self, method: str, url: str, want: int, **kw: Any) -> Any:
        r = await self.api.request(method, url, headers=self.h, **kw)
        assert r.status_code == want, (method, url, r.status_code, r.text)
        return r.json() if r.content else None


def stored(events: list[tuple[str, str | None, Any]]) -> list[tuple[str, str | None, Any]]:
    return [e for e in events if e[1] is not None]


def kinds_of(events: list[tuple[str, str | None, Any]]) -> list[str]:
    return [t for t, _, _ in stored(events)]


def same_but(events: list[tuple[str, str | None, Any]], gone: str) -> list[tuple[str, Any]]:
    """The stored events' types and payloads, those naming `gone` left out."""
    return [(t, d) for t, _, d in stored(events) if gone not in str(d)]


async def sse_until(stream: SseClient, end: str) -> list[tuple[str, str | None, Any]]:
    got = []
    while True:
        ev = await stream.next()
        got.append((ev.event, ev.id, ev.data))
        if ev.event == "message.created" and ev.data["content"] == end:
            return got


async def gw_until(gw: GatewayClient, end: str) -> list[tuple[str, str | None, Any]]:
    frame, before = await gw.until("message.created", lambda d: d["content"] == end)
    return [(f["t"], f.get("s"), f["d"]) for f in [*before, frame]]


def check_payloads(events: list[tuple[str, str | None, Any]]) -> None:
    for t, _, d in events:
        if t in PAYLOADS:
            assert set(d) == PAYLOADS[t], (t, set(d) ^ PAYLOADS[t])


async def test_a_bot_sends_edits_reacts_pins_acks_and_resumes_losing_nothing(
    server: str, http: Http
) -> None:
    api = http(server)
    ann, ben = Bot(api, "annbot"), Bot(api, "benbot")
    await ann.register()
    await ben.register()
    req = await ann.call("POST", "/api/users/@me/friend-requests", 201, json={"username": "benbot"})
    await ben.call("POST", f"/api/users/@me/friend-requests/{req['id']}/accept", 200)
    grp = await ann.call(
        "POST",
        "/api/conversations",
        201,
        json={"kind": "group", "name": "bots", "participant_ids": [ben.id]},
    )
    g = grp["id"]

    class U:  # the factory's shape
        def __init__(self, b: Bot) -> None:
            self.headers = b.h

    srv = await community(api, U(ann), U(ben))  # type: ignore[arg-type]
    c = srv.general

    async with (
        sse_stream(server, ann.tokens["access_token"]) as ann_sse,
        sse_stream(server, ben.tokens["access_token"]) as ben_sse,
    ):
        gw = await GatewayClient.connect(server, ann.tokens["access_token"])
        try:
            ready = await gw.next("ready")
            assert ready["d"]["resumed"] is False and ready["s"]
            gw_start = ready["s"]
            starts = {"ann": ann_sse.ready.id, "ben": ben_sse.ready.id}
            assert starts["ann"] and starts["ben"]

            hello_ms = gw.hello["d"]["heartbeat_interval"]
            assert ready["d"]["heartbeat_interval"] == hello_ms
            assert set(ready["d"]) == READY, set(ready["d"]) ^ READY
            assert set(ann_sse.ready.data) == READY, set(ann_sse.ready.data) ^ READY
            state_now = await ann.call("GET", "/api/users/@me/state", 200)
            conn_only = {
                "user_id",
                "session_id",
                "resumed",
                "heartbeat_interval",
            }  # (a connection's)
            want = (READY - conn_only) | {"resume_token"}
            assert set(state_now) == want, set(state_now) ^ want
            mid = str(uuid.uuid4())
            sent = await api.put(
                f"/api/channels/{g}/messages/{uuid.uuid4()}", headers=ann.h, json={"content": "v"}
            )
            assert sent.status_code == 201 and sent.headers["Version"] == f'"{sent.json()["id"]}"'
            page = await api.get(f"/api/channels/{g}/messages?limit=1", headers=ann.h)
            assert page.headers["X-Has-More"] == "false", page.headers
            assert page.headers["Version"] == f'"{sent.json()["id"]}"'
            one = await ann.call(
                "PUT", f"/api/channels/{g}/messages/{mid}", 201, json={"content": "hello"}
            )
            assert one["id"] == mid
            again = await ann.call(
                "PUT", f"/api/channels/{g}/messages/{mid}", 200, json={"content": "hello"}
            )
            assert again == one
            two = await ben.call(
                "POST", f"/api/channels/{g}/messages", 201, json={"content": "hi", "nonce": "n1"}
            )
            twice = await ben.call(
                "POST", f"/api/channels/{g}/messages", 200, json={"content": "hi", "nonce": "n1"}
            )
            assert twice["id"] == two["id"] and two["nonce"] == "n1"
            await ann.call(
                "PATCH", f"/api/channels/{g}/messages/{mid}", 200, json={"content": "hello!"}
            )
            await ben.call("PUT", f"/api/channels/{g}/messages/{mid}/reactions/👍/@me", 204)
            await ann.call("PUT", f"/api/channels/{g}/pins/{two['id']}", 204)
            reply = await ben.call(
                "POST",
                f"/api/channels/{g}/messages",
                201,
                json={"content": "re", "reply_to_id": mid},
            )
            assert reply["reply_to"]["id"] == mid and reply["reply_to"]["content"] == "hello!"
            await ann.call("DELETE", f"/api/channels/{g}/messages/{two['id']}", 403)
            await ben.call("DELETE", f"/api/channels/{g}/messages/{two['id']}", 204)
            # read receipts: up, back, up again to the same, further up
            last = reply["seq"]
            first_high = None
            for seq in (1, last, 1, last):
                state = await ann.call("PUT", f"/api/channels/{g}/ack", 200, json={"seq": seq})
                assert set(state) == {"user_id", "last_read_seq", "updated_at"}
                first_high = first_high or (state if seq == last else None)
            assert first_high is not None and first_high["updated_at"] < state["updated_at"]
            same = await ann.call("PUT", f"/api/channels/{g}/ack", 200, json={"seq": last})
            assert same == state
            bad = await ann.api.put(f"/api/channels/{g}/ack", headers=ann.h, json={"seq": last + 5})
            assert bad.status_code == 400 and bad.json()["code"] == "INVALID_SEQ"
            assert set(bad.json()) >= {"code", "message"}
            states = {
                s["user_id"]: s
                for s in await ben.call("GET", f"/api/channels/{g}/read-states", 200)
            }
            assert states[ann.id] == first_high, (states[ann.id], first_high)
            own = {
                s["user_id"]: s
                for s in await ann.call("GET", f"/api/channels/{g}/read-states", 200)
            }
            assert own[ann.id] == state and set(own) == {ann.id, ben.id}
            # a server channel: receipts are one's own
            await ben.call("POST", f"/api/channels/{c}/messages", 201, json={"content": "srv"})
            await ann.call("PUT", f"/api/channels/{c}/ack", 200, json={"seq": 1})
            mine = await ben.call("GET", f"/api/channels/{c}/read-states", 200)
            assert [s["user_id"] for s in mine] == [ben.id]
            # presence and mutes, and the ones that change nothing
            p = await ann.call("PUT", "/api/users/@me/presence", 200, json={"status": "dnd"})
            assert p == {"user_id": ann.id, "status": "dnd", "status_text": None}
            assert await ann.call("PUT", "/api/users/@me/presence", 200, json={}) == p
            assert (
                await ann.call("PUT", "/api/users/@me/presence", 200, json={"status": "dnd"}) == p
            )
            m = await ann.call(
                "PUT", f"/api/users/@me/mutes/channel/{g}", 200, json={"until": None}
            )
            assert m == {"kind": "channel", "id": g, "until": None}
            assert (
                await ann.call(
                    "PUT", f"/api/users/@me/mutes/channel/{g}", 200, json={"until": None}
                )
                == m
            )
            await ann.call("DELETE", f"/api/users/@me/mutes/channel/{g}", 204)
            await ben.call("DELETE", f"/api/channels/{g}/messages/{mid}/reactions/👍/@me", 204)
            await ann.call("DELETE", f"/api/channels/{g}/pins/{mid}", 204)
            await ann.call("POST", f"/api/channels/{g}/typing", 204)
            await ben.call("POST", f"/api/channels/{g}/messages", 201, json={"content": "end"})

            live = {
                "ann": await sse_until(ann_sse, "end"),
                "ben": await sse_until(ben_sse, "end"),
                "gw": await gw_until(gw, "end"),
            }
        finally:
            await gw.close()

    for who in live:
        check_payloads(live[who])
        assert all(22 <= len(i) <= 28 for _, i, _ in stored(live[who]) if i), who
    kinds = [t for t, _, _ in live["ben"]]
    assert kinds.count("message.created") >= 4, kinds
    a = ann.id
    ben_receipts = [
        d["last_read_seq"]
        for t, _, d in live["ben"]
        if t == "read_state.updated" and d["user_id"] == a
    ]
    # (ann was at the pin notice she posted: 1 was a move back, `last` her new high)
    assert ben_receipts == [last], ben_receipts
    ann_moves = [
        (d["channel_id"], d["last_read_seq"])
        for t, _, d in live["ann"]
        if t == "read_state.updated"
    ]
    assert ann_moves == [(g, 1), (g, last), (g, 1), (g, last), (c, 1)], ann_moves
    # ann's own presence: dnd once; ben (in a group with her) too, once
    for who in ("ann", "ben"):
        pres = [d for t, _, d in live[who] if t == "presence.updated" and d["user_id"] == a]
        assert [x["status"] for x in pres][-1:] == ["dnd"], (who, pres)
        assert [x["status"] for x in pres].count("dnd") == 1, (who, pres)
    typing = [(i, d) for t, i, d in live["ben"] if t == "typing.started"]
    assert typing == [(None, {"channel_id": g, "user_id": a, "expires_in": 10})], typing
    mutes = [t for t, _, _ in live["ann"] if t.startswith("mute.")]
    assert mutes == ["mute.updated", "mute.removed"], mutes
    # the same on the gateway as on SSE, for ann
    assert kinds_of(live["gw"]) == kinds_of(live["ann"])
    assert same_but(live["gw"], "-") == same_but(live["ann"], "-")

    # resume from the start: exactly what came live, stored events only, same order
    for who, bot in (("ann", ann), ("ben", ben)):
        async with sse_stream(
            server, bot.tokens["access_token"], last_event_id=starts[who]
        ) as again:
            assert again.ready.data["resumed"] is True
            assert set(again.ready.data) == RESUMED, set(again.ready.data) ^ RESUMED
            replay = await sse_until(again, "end")
        # (tokens carry the second they were handed out: compare by the events; a
        # deleted message is shown in the replay as history shows it, as documented)
        gone = two["id"]
        assert kinds_of(replay) == kinds_of(live[who]), who
        assert same_but(replay, gone) == same_but(live[who], gone), who
        # and from the middle: the tail exactly
        half = stored(live[who])[len(stored(live[who])) // 2]
        async with sse_stream(server, bot.tokens["access_token"], last_event_id=half[1]) as tail:
            rest = await sse_until(tail, "end")
        whole = stored(live[who])
        assert kinds_of(rest) == kinds_of(whole[whole.index(half) + 1 :]), who
    gw2 = await GatewayClient.connect(server, ann.tokens["access_token"], resume=gw_start)
    try:
        r = await gw2.next("ready")
        assert r["d"]["resumed"] is True
        assert set(r["d"]) == RESUMED, set(r["d"]) ^ RESUMED
        again_gw = await gw_until(gw2, "end")
    finally:
        await gw2.close()
    assert kinds_of(again_gw) == kinds_of(live["gw"])
    assert same_but(again_gw, two["id"]) == same_but(live["gw"], two["id"])


async def test_a_bots_refused_tokens_and_subscriptions_answer_as_the_readme_says(
    server: str, http: Http
) -> None:
    """SSE: a malformed token is `resync` `malformed`, a 201-character one 400; the gateway:
    4007; Braid: 209 with its headers, an unknown parent 410, bad heartbeats 400."""
    api = http(server)
    bot = Bot(api, "edgebot")
    await bot.register()
    token = bot.tokens["access_token"]
    async with sse_stream(server, token, last_event_id="x" * 24) as refused:
        assert refused.ready.data["resumed"] is False
        resync = await refused.next()
        assert resync.event == "resync" and resync.data["reason"] == "malformed", resync
        assert set(resync.data) == {"reason", "message"}
    long = await api.get("/api/events", headers={**bot.h, "Last-Event-ID": "x" * 201})
    assert long.status_code == 400 and long.json()["code"] == "VALIDATION_ERROR", long.text
    gw = await GatewayClient.connect(server, token, resume="x" * 24)
    try:
        assert await gw.closed_with() == 4007
    finally:
        await gw.close()
    grp = await bot.call("POST", "/api/servers", 201, json={"name": "edge"})
    ch = next(c["id"] for c in grp["channels"] if c["name"] == "general")
    await bot.call("POST", f"/api/channels/{ch}/messages", 201, json={"content": "a"})
    url = f"/api/channels/{ch}/messages"
    async with api.stream(
        "GET", url, headers={**bot.h, "Subscribe": "", "Heartbeats": "5s"}
    ) as sub:
        assert sub.status_code == 209
        assert sub.headers["subscribe"] == "true"
        assert sub.headers["content-type"].startswith("application/http-history")
        assert sub.headers["heartbeats"] == "5s", sub.headers
    gone = await api.get(
        url, headers={**bot.h, "Subscribe": "true", "Parents": f'"{uuid.uuid4()}"'}
    )
    assert gone.status_code == 410 and gone.json()["code"] == "VERSION_UNKNOWN", gone.text
    bad = await api.get(url, headers={**bot.h, "Subscribe": "true", "Heartbeats": "5ss"})
    assert bad.status_code == 400 and bad.json()["code"] == "INVALID_HEARTBEATS", bad.text
    async with api.stream("GET", "/api/events", headers=bot.h) as raw:
        assert raw.headers["content-type"].startswith("text/event-stream")
        head = b""
        async for chunk in raw.aiter_bytes():
            head += chunk
            if b"event: ready" in head:
                break
        assert head.startswith(b"retry: 1000"), head[:40]
    plain = await api.get("/api/gateway", headers=bot.h)
    assert plain.status_code == 426 and plain.json()["code"] == "UPGRADE_REQUIRED"


async def test_a_first_ack_at_zero_moves_nothing_and_tells_nobody(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    """A bot that acks an empty channel (0, the only seq it takes) before anything was
    read: no read position is 0 already (as the conversation's `last_read_seq` says), so
    it is the position it has, answered as it stands, and nobody is told; was: a
    `read_state.updated` to 0 on the reader's own stream (and its replay)."""
    ann, _ben, chat = await pair(client, make_user, "group")
    before = await client.get(f"/api/conversations/{chat}", headers=ann.headers)
    assert before.json()["last_read_seq"] == 0
    first = await client.put(f"/api/channels/{chat}/ack", headers=ann.headers, json={"seq": 0})
    assert first.status_code == 200 and first.json()["last_read_seq"] == 0, first.text
    again = await client.put(f"/api/channels/{chat}/ack", headers=ann.headers, json={"seq": 0})
    assert again.json() == first.json()
    async with pool.acquire() as conn:
        told = [t for t, _ in await events_of(conn, "user", ann.id)]
        told += [t for t, _ in await events_of(conn, "channel", uuid.UUID(chat))]
    assert "read_state.updated" not in told, told


async def test_a_custom_status_sent_again_with_spaces_by_patch_is_not_counted(
    app_with: Any, make_user: MakeUser
) -> None:
    """PATCH /api/users/@me with `status_text` ' brb ' over 'brb' (a bot re-sending what it
    set, padded) changes nothing (the update trims it) and, as PUT /presence already
    judged it, is not counted in `profile`; was: counted, so the third was 429 here."""
    client = await app_with(rate_profile_user="2/600")
    ann = await make_user("padbot")
    set_ = await client.patch("/api/users/@me", headers=ann.headers, json={"status_text": "brb"})
    assert set_.status_code == 200, set_.text
    for _ in range(3):
        again = await client.patch(
            "/api/users/@me", headers=ann.headers, json={"status_text": " brb "}
        )
        assert again.status_code == 200, again.text
        assert again.json() == set_.json()


async def test_a_bot_resumes_from_its_last_position_on_each_transport_missing_nothing(
    server: str, http: Http, make_user: MakeUser
) -> None:
    """From the last id or `s` it was given (SSE's Last-Event-ID and `?since=`, the
    gateway's RESUME): what was sent while it was away, once each and in order, then
    what comes live; nothing it had already."""
    api = http(server)
    ann, ben, chat = await pair(api, make_user, "group")
    async with sse_stream(server, ann.access_token) as first:
        gw = await GatewayClient.connect(server, ann.access_token)
        try:
            await gw.next("ready")
            await api.post(
                f"/api/channels/{chat}/messages", headers=ben.headers, json={"content": "one"}
            )
            one = await first.next("message.created")
            await gw.next("message.created")
            sse_last, gw_last = first.last_id, gw.last_seq
        finally:
            await gw.close()
    assert sse_last and gw_last
    for text in ("two", "three"):
        await api.post(
            f"/api/channels/{chat}/messages", headers=ben.headers, json={"content": text}
        )
    client = SseClient(
        f"{server}/api/events?since={sse_last}", {"Authorization": f"Bearer {ann.access_token}"}
    )
    await client.start()
    async with sse_stream(server, ann.access_token, last_event_id=sse_last) as by_header:
        gw = await GatewayClient.connect(server, ann.access_token, resume=gw_last)
        try:
            ready = await gw.next("ready")
            assert ready["d"]["resumed"] is True and ready["s"]
            assert (await client.next("ready")).data["resumed"] is True
            await api.post(
                f"/api/channels/{chat}/messages", headers=ben.headers, json={"content": "four"}
            )
            want = ["two", "three", "four"]
            got_gw = [(await gw.next("message.created"))["d"]["content"] for _ in want]
            got_h = [(await by_header.next("message.created")).data["content"] for _ in want]
            got_q = [(await client.next("message.created")).data["content"] for _ in want]
            assert got_gw == got_h == got_q == want, (got_gw, got_h, got_q)
            assert one.data["content"] == "one"
        finally:
            await gw.close()
            await client.close()
