"""State on connect: a client draws its first screen from `ready` alone, and keeps it
current from the events that follow."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from tests import factories
from tests.factories import MakeUser, TestUser, say
from tests.realtime.clients import GatewayClient, sse_stream

Http = Callable[[str], httpx.AsyncClient]


def render(ready: dict[str, Any]) -> dict[str, Any]:
    """What a client's first screen shows, computed from the ready payload only: the
    conversation list (title, avatar, unread and mention badges, last line), friends
    and pending requests."""
    me = ready["user"]["id"]

    def name(user: dict[str, Any]) -> str:
        return str(user["display_name"] or user["username"])

    rows = []
    for c in ready["conversations"]:
        others = [p for p in c["participants"] if p["id"] != me]
        title = c["name"] or ", ".join(name(p) for p in others)
        avatar = others[0]["avatar_url"] if c["kind"] == "direct" else None
        last = c["last_message"]
        line = f"{name(last['author'])}: {last['content']}" if last else ""
        rows.append((title, avatar, c["unread"], c["mention_count"], line))
    return {
        "me": name(ready["user"]),
        "conversations": rows,
        "friends": sorted(name(f["user"]) for f in ready["friends"]),
        "incoming": [name(r["user"]) for r in ready["friend_requests"]["incoming"]],
        "outgoing": [name(r["user"]) for r in ready["friend_requests"]["outgoing"]],
        "blocked": [name(u) for u in ready["blocks"]],
    }


async def befriend(api: httpx.AsyncClient, a: TestUser, b: TestUser) -> str:
    sent = await api.post(
        "/api/users/@me/friend-requests", headers=a.headers, json={"username": b.username}
    )
    accepted = await api.post(
        f"/api/users/@me/friend-requests/{sent.json()['id']}/accept", headers=b.headers
    )
    assert accepted.status_code == 200, accepted.text
    return str(accepted.json()["conversation_id"])


async def world(api: httpx.AsyncClient, make_user: MakeUser) -> dict[str, Any]:
    ann = await make_user("ann", display_name="Ann")
    ben = await make_user("ben", display_name="Benjamin")
    cid, dan, eve, _fay, gus = [await make_user(n) for n in ("cid", "dan", "eve", "fay", "gus")]
    avatar = "https://cdn.example.com/ben.png"
    patched = await api.patch("/api/users/@me", headers=ben.headers, json={"avatar_url": avatar})
    assert patched.status_code == 200
    with_ben = await befriend(api, ann, ben)
    with_cid = await befriend(api, cid, ann)
    group = (await factories.group(api, cid, ann, dan, name="climbing"))["id"]
    await say(api, ben, with_ben, "are you there?")
    await say(api, ben, with_ben, f"<@{ann.id}> ping")
    await say(api, ann, with_cid, "see you at 6")
    for text in ("who brings rope", f"<@{ann.id}> you?", "ok"):
        await say(api, dan, group, text)
    await api.post("/api/users/@me/friend-requests", headers=eve.headers, json={"username": "ann"})
    await api.post("/api/users/@me/friend-requests", headers=ann.headers, json={"username": "fay"})
    assert (
        await api.put(f"/api/users/@me/blocks/{gus.id}", headers=ann.headers)
    ).status_code == 204
    return {"ann": ann, "ben": ben, "with_ben": with_ben, "avatar": avatar, "dan": dan}


SCREEN = {
    "me": "Ann",
    "conversations": [
        ("climbing", None, 3, 1, "dan: ok"),
        ("cid", None, 0, 0, "Ann: see you at 6"),
        ("Benjamin", "https://cdn.example.com/ben.png", 2, 1, "Benjamin: <@ANN> ping"),
    ],
    "friends": ["Benjamin", "cid"],
    "incoming": ["eve"],
    "outgoing": ["fay"],
    "blocked": ["gus"],
}


def expected(ann: TestUser) -> dict[str, Any]:
    screen = dict(SCREEN)
    screen["conversations"] = [
        (t, a, u, m, line.replace("ANN", str(ann.id)))
        for t, a, u, m, line in SCREEN["conversations"]
    ]
    return screen


async def test_a_fresh_client_draws_its_whole_screen_from_ready_alone(
    server: str, http: Http, make_user: MakeUser
) -> None:
    api = http(server)
    w = await world(api, make_user)
    ann = w["ann"]
    gw = await GatewayClient.connect(server, ann.access_token)
    try:
        ready = await gw.next("ready")
    finally:
        await gw.close()
    assert (
        ready["d"]["resumed"] is False
        and "email" not in ready["d"]["conversations"][0]["participants"][0]
    )
    assert ready["d"]["user"]["email"] == ann.email
    assert render(ready["d"]) == expected(ann)
    async with sse_stream(server, ann.access_token) as stream:
        assert render(stream.ready.data) == expected(ann)  # SSE's ready: the same state
    state = (await api.get("/api/users/@me/state", headers=ann.headers)).json()
    assert render(state) == expected(ann)
    assert state["conversations"] == ready["d"]["conversations"]

    # The REST state's token resumes right after it: the next change is the first event.
    later = await say(api, w["ben"], w["with_ben"], "after the state")
    async with sse_stream(server, ann.access_token, last_event_id=state["resume_token"]) as s:
        assert s.ready.data["resumed"] is True and "conversations" not in s.ready.data
        assert (await s.next("message.created")).data["id"] == later["id"]
    resumed = await GatewayClient.connect(server, ann.access_token, resume=ready["s"])
    try:
        again = await resumed.next("ready")
        assert again["d"]["resumed"] is True and "conversations" not in again["d"]
        assert (await resumed.next("message.created"))["d"]["id"] == later["id"]
    finally:
        await resumed.close()


async def test_a_profile_change_reaches_a_conversation_partner_live_and_on_resume(
    server: str, http: Http, make_user: MakeUser
) -> None:
    api = http(server)
    ann, ben = await make_user("ann"), await make_user("ben")
    await factories.direct(api, ann, ben)
    stranger = await make_user("zed")
    async with (
        sse_stream(server, ben.access_token) as partner,
        sse_stream(server, stranger.access_token) as outsider,
    ):
        changed = await api.patch(
            "/api/users/@me", headers=ann.headers, json={"display_name": "Annie"}
        )
        assert changed.status_code == 200
        update = await partner.next("user.updated")
        assert update.data["id"] == str(ann.id) and update.data["display_name"] == "Annie"
        assert "email" not in update.data
        token = partner.last_id
        heard = [outsider.events.get_nowait() for _ in range(outsider.events.qsize())]
        assert [e.event for e in heard if e is not None and e.event != "presence.updated"] == []
    gw = await GatewayClient.connect(server, ann.access_token)
    try:
        await gw.next("ready")
        body = {"display_name": "Annie B", "status_text": "busy"}
        await api.patch("/api/users/@me", headers=ann.headers, json=body)
        # The user's own other devices hear it too: the profile as user.updated, the
        # custom status (presence, not profile) as their own presence.updated.
        own: dict[str, Any] = {}
        mine: dict[str, Any] = {}
        while not own or mine.get("status_text") != "busy":
            frame = await gw.next()
            if frame["t"] == "user.updated":
                own = frame["d"]
            elif frame["t"] == "presence.updated":
                mine = frame["d"]
        assert own["display_name"] == "Annie B" and "status_text" not in own
        assert mine == {"user_id": str(ann.id), "status": "online", "status_text": "busy"}
    finally:
        await gw.close()
    async with sse_stream(server, ben.access_token, last_event_id=token) as back:
        missed = await back.next("user.updated")
        assert missed.data["display_name"] == "Annie B" and "status_text" not in missed.data
