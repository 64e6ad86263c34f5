"""Your mutes reach your other sessions live, and come in `ready`."""

from __future__ import annotations

from collections.abc import Callable

import asyncpg
import httpx

from tests import factories
from tests.factories import MakeUser
from tests.realtime.clients import GatewayClient, sse_stream
from xfchat.settings import Settings

Http = Callable[[str], httpx.AsyncClient]


async def test_a_mute_reaches_your_other_session_and_its_next_ready(
    server: str, http: Http, make_user: MakeUser, pool: asyncpg.Pool, settings: Settings
) -> None:
    api = http(server)
    ann, ben, chat = await factories.pair(api, make_user)
    phone = await factories.login(pool, settings, ben, user_agent="phone")
    async with (
        sse_stream(server, ben.access_token) as desk,
        sse_stream(server, ann.access_token) as other,
    ):
        assert desk.ready.data["mutes"] == []
        put = await api.put(
            f"/api/users/@me/mutes/channel/{chat}", headers=phone.headers, json={"until": None}
        )
        assert put.status_code == 200, put.text
        told = await desk.next("mute.updated")
        assert told.data == {"kind": "channel", "id": chat, "until": None}
        gw = await GatewayClient.connect(server, ben.access_token)
        try:
            ready = await gw.next("ready")
            assert ready["d"]["mutes"] == [told.data]
        finally:
            await gw.close()
        gone = await api.delete(f"/api/users/@me/mutes/channel/{chat}", headers=phone.headers)
        assert gone.status_code == 204
        assert (await desk.next("mute.removed")).data == {"kind": "channel", "id": chat}
        heard = [other.events.get_nowait() for _ in range(other.events.qsize())]
        assert not [e for e in heard if e is not None and e.event.startswith("mute.")]
