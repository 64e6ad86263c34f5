"""Resume tokens taken while a channel could be seen, used after it could not: nothing
from the channel after the loss (new messages, nor edits, reactions and deletions of
the old ones) on SSE or the gateway, whatever took it away."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from tests import factories
from tests.factories import MakeUser, TestUser, community, override, role, say
from tests.realtime.clients import GatewayClient, sse_stream
from xfchat.domain.permissions import Permission

VIEW = int(Permission.VIEW_CHANNEL)
RESUMES = 3  # tries of each transport's resume
UNAVAILABLE = 4013  # the gateway's close: the server too busy to read the log; resume


async def _scene(
    api: httpx.AsyncClient, ann: TestUser, ben: TestUser, how: str
) -> tuple[str, Callable[[], Awaitable[None]]]:
    """A channel ben sees, and the change that takes it away."""
    if how in ("group_left", "group_removed"):
        group = (await factories.group(api, ann, ben))["id"]

        async def lose() -> None:
            url = f"/api/conversations/{group}/participants/{ben.id}"
            who = ben if how == "group_left" else ann
            assert (await api.delete(url, headers=who.headers)).status_code == 204

        return group, lose
    srv = await community(api, ann, ben)
    made = await api.post(srv.url("/channels"), headers=ann.headers, json={"name": "x"})
    channel = made.json()["id"]
    r = await role(api, srv, ann, "r", 0, ben)
    await override(api, ann, channel, "role", srv.everyone_role, 0, VIEW)
    await override(api, ann, channel, "role", r, VIEW, 0)

    async def lose() -> None:
        if how == "kicked":
            got = await api.delete(srv.url(f"/members/{ben.id}"), headers=ann.headers)
        elif how == "banned":
            got = await api.put(srv.url(f"/bans/{ben.id}"), headers=ann.headers, json={})
        elif how == "left":
            got = await api.delete(srv.url("/members/@me"), headers=ben.headers)
        elif how == "role_removed":
            got = await api.delete(srv.url(f"/members/{ben.id}/roles/{r}"), headers=ann.headers)
        elif how == "member_override":
            got = await override(api, ann, channel, "member", ben.id, 0, VIEW)
        elif how == "role_deleted":
            got = await api.delete(srv.url(f"/roles/{r}"), headers=ann.headers)
        elif how == "server_deleted":
            got = await api.delete(f"/api/servers/{srv.id}", headers=ann.headers)
        else:
            assert how == "channel_deleted"
            got = await api.delete(f"/api/channels/{channel}", headers=ann.headers)
        assert got.status_code in (200, 204), (how, got.status_code, got.text)

    return channel, lose


@pytest.mark.parametrize(
    "how",
    [
        "kicked",
        "banned",
        "left",
        "role_removed",
        "member_override",
        "role_deleted",
        "channel_deleted",
        "server_deleted",
        "group_left",
        "group_removed",
    ],
)
async def test_nothing_after_the_loss_on_a_resume(
    server: str, make_user: MakeUser, how: str
) -> None:
    ann, ben = await make_user("ann"), await make_user("ben")
    async with httpx.AsyncClient(base_url=server, timeout=10) as api:
        channel, lose = await _scene(api, ann, ben, how)
        async with sse_stream(server, ben.access_token) as s:
            old = await say(api, ann, channel, "old")
            other = await say(api, ann, channel, "other old")
            await s.next("message.created")
            await s.next("message.created")
            token = s.last_id
        assert token is not None
        await lose()
        marker_dm = (await factories.direct(api, ann, ben))["id"]
        after: list[Any] = []
        if how not in ("channel_deleted", "server_deleted"):
            m = await api.post(
                f"/api/channels/{channel}/messages", headers=ann.headers, json={"content": "new"}
            )
            after.append(m.status_code)
            await api.patch(
                f"/api/channels/{channel}/messages/{old['id']}",
                headers=ann.headers,
                json={"content": "edited"},
            )
            await api.put(
                f"/api/channels/{channel}/messages/{old['id']}/reactions/%F0%9F%98%80/@me",
                headers=ann.headers,
            )
            await api.delete(f"/api/channels/{channel}/messages/{other['id']}", headers=ann.headers)
        marker = await say(api, ann, marker_dm, "marker")
        # (a stream the server ends as unavailable, too busy to read the log on a loaded
        # box, is resumed from its last place, as README says a client does)
        seen: list[tuple[str, Any]] = []
        place = token
        for _ in range(RESUMES):
            async with sse_stream(server, ben.access_token, last_event_id=place) as s:
                try:
                    while True:
                        e = await s.next()
                        if e.id is None:
                            continue
                        seen.append((e.event, e.data))
                        if e.event == "message.created" and e.data["id"] == marker["id"]:
                            break
                    break
                except EOFError:
                    place = s.last_id or place
        frames: list[tuple[str, Any]] = []
        place = token
        for _ in range(RESUMES):
            gw = await GatewayClient.connect(server, ben.access_token, resume=place)
            try:
                while True:
                    f = await gw.next()
                    if "s" not in f or f["t"] == "ready":
                        continue
                    frames.append((f["t"], f["d"]))
                    if f["t"] == "message.created" and f["d"]["id"] == marker["id"]:
                        break
                break
            except EOFError:
                if gw.ws.close_code != UNAVAILABLE:
                    raise
                place = gw.last_seq or place
            finally:
                await gw.close()
        assert seen and frames and seen[-1] == frames[-1]
    for got in (seen, frames):
        types = [t for t, _ in got]
        lost_at = next(
            i
            for i, (t, _) in enumerate(got)
            if t in ("server.left", "channel.hidden", "conversation.removed")
        )
        leaked = [
            (t, d)
            for t, d in got[lost_at + 1 :]
            if d.get("channel_id") == channel or d.get("id") in (old["id"], other["id"])
        ]
        assert leaked == [], (how, types)
    assert seen == frames
