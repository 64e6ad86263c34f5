"""A ban that deletes the member's recent messages (`delete_message_seconds`), as a
client hears it: every viewer of a channel gets each deletion live, and one that was
offline gets them on a resume, as any moderator's deletion."""

from __future__ import annotations

from typing import Any

import httpx

from tests.factories import MakeUser, community, say
from tests.factories import server_channel as channel
from tests.realtime.clients import GatewayClient, sse_stream


async def test_a_bans_deletions_reach_viewers_live_and_on_a_resume(
    server: str, make_user: MakeUser
) -> None:
    ann, ben, cid, dot = [await make_user(n) for n in ("ann", "ben", "cid", "dot")]
    async with httpx.AsyncClient(base_url=server, timeout=10) as api:
        srv = await community(api, ann, ben, cid, dot)
        other = str((await channel(api, srv, ann, "other"))["id"])
        async with sse_stream(server, dot.access_token) as away:
            marker = await say(api, ann, srv.general, "before")
            while (e := await away.next("message.created")).data["id"] != marker["id"]:
                pass
            place = away.last_id
        assert place is not None
        async with sse_stream(server, cid.access_token) as live:
            spam = [
                (await say(api, ben, srv.general, "spam 1"))["id"],
                (await say(api, ben, other, "spam 2"))["id"],
            ]
            banned = await api.put(
                srv.url(f"/bans/{ben.id}"),
                headers=ann.headers,
                json={"delete_message_seconds": 3600},
            )
            assert banned.status_code == 204, banned.text
            got: dict[str, Any] = {}
            while set(got) != set(spam):
                e = await live.next("message.deleted")
                got[e.data["id"]] = e.data
            assert {d["author_id"] for d in got.values()} == {str(ben.id)}
        after = await say(api, ann, srv.general, "after")
        async with sse_stream(server, dot.access_token, last_event_id=place) as back:
            seen: list[tuple[str, Any]] = []
            while True:
                e = await back.next()
                if e.id is None:
                    continue
                seen.append((e.event, e.data))
                if e.event == "message.created" and e.data["id"] == after["id"]:
                    break
        deleted = {d["id"] for t, d in seen if t == "message.deleted"}
        assert deleted == set(spam), seen
        for t, d in seen:
            if t == "message.created" and d["id"] in spam:
                assert d["content"] == "", d


async def test_a_bans_deletions_reach_a_resumed_gateway(server: str, make_user: MakeUser) -> None:
    ann, ben, dot = [await make_user(n) for n in ("ann", "ben", "dot")]
    async with httpx.AsyncClient(base_url=server, timeout=10) as api:
        srv = await community(api, ann, ben, dot)
        gw = await GatewayClient.connect(server, dot.access_token)
        try:
            await gw.next("ready")
            marker = await say(api, ann, srv.general, "before")
            await gw.until("message.created", lambda d: d["id"] == marker["id"])
            place = gw.last_seq
        finally:
            await gw.close()
        assert place is not None
        spam = (await say(api, ben, srv.general, "spam"))["id"]
        banned = await api.put(
            srv.url(f"/bans/{ben.id}"), headers=ann.headers, json={"delete_message_seconds": 60}
        )
        assert banned.status_code == 204, banned.text
        after = await say(api, ann, srv.general, "after")
        back = await GatewayClient.connect(server, dot.access_token, resume=place)
        try:
            _, seen = await back.until("message.created", lambda d: d["id"] == after["id"])
        finally:
            await back.close()
        deleted = [f["d"]["id"] for f in seen if f.get("t") == "message.deleted"]
        assert deleted == [spam], [f.get("t") for f in seen]
        removed = [f["d"]["user_id"] for f in seen if f.get("t") == "member.removed"]
        assert removed == [str(ben.id)]
