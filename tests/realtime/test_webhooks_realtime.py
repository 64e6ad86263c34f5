"""A webhook's messages reach subscribers live, in the channel's one order: gap-free
`seq` interleaved with members' sends (a real server process, SSE)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx

from tests.factories import MakeUser, community, say
from tests.realtime.clients import sse_stream

Http = Callable[[str], httpx.AsyncClient]


async def test_webhook_messages_are_delivered_in_order_between_members_sends(
    server: str, http: Http, make_user: MakeUser
) -> None:
    api = http(server)
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await community(api, ann, ben)
    made = await api.post(
        f"/api/channels/{srv.general}/webhooks", headers=ann.headers, json={"name": "CI"}
    )
    assert made.status_code == 201, made.text
    hook = made.json()

    async def execute(i: int) -> dict[str, object]:
        posted = await api.post(
            f"/api/webhooks/{hook['id']}/{hook['token']}", json={"content": f"build {i}"}
        )
        assert posted.status_code == 201, posted.text
        return dict(posted.json())

    async with sse_stream(server, ben.access_token) as stream:
        sent = await asyncio.gather(
            *(execute(i) if i % 2 else say(api, ann, srv.general, f"m{i}") for i in range(12))
        )
        got = await stream.collect("message.created", 12)
    # Every send acknowledged was delivered, once, in seq order, with no gap.
    assert [e.data["seq"] for e in got] == list(range(1, 13))
    assert sorted(e.data["id"] for e in got) == sorted(str(m["id"]) for m in sent)
    by_id = {str(m["id"]): m for m in sent}
    assert all(by_id[e.data["id"]]["seq"] == e.data["seq"] for e in got)
    hooked = [e.data for e in got if e.data["webhook_id"] is not None]
    assert len(hooked) == 6
    assert all(d["author"]["bot"] is True and d["author"]["username"] == "CI" for d in hooked)
    assert all(d["webhook_id"] == hook["id"] for d in hooked)
