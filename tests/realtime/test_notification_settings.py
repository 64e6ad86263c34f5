"""Your notification settings reach your other sessions live, and come in `ready`;
nobody else hears of them."""

from __future__ import annotations

from collections.abc import Callable

import asyncpg
import httpx

from tests import factories
from tests.factories import MakeUser
from tests.realtime.clients import GatewayClient, sse_stream
from xfchat.settings import Settings

Http = Callable[[str], httpx.AsyncClient]
SETTINGS = "/api/users/@me/notification-settings"


async def test_a_setting_reaches_your_other_session_and_its_next_ready(
    server: str, http: Http, make_user: MakeUser, pool: asyncpg.Pool, settings: Settings
) -> None:
    api = http(server)
    ann, ben, chat = await factories.pair(api, make_user)
    phone = await factories.login(pool, settings, ben, user_agent="phone")
    async with (
        sse_stream(server, ben.access_token) as desk,
        sse_stream(server, ann.access_token) as other,
    ):
        assert desk.ready.data["notification_settings"] == []
        put = await api.put(
            f"{SETTINGS}/channel/{chat}", headers=phone.headers, json={"level": "mentions"}
        )
        assert put.status_code == 200, put.text
        told = await desk.next("notification_settings.updated")
        assert told.data == {
            "kind": "channel",
            "id": chat,
            "level": "mentions",
            "suppress_everyone": False,
        }
        gw = await GatewayClient.connect(server, ben.access_token)
        try:
            ready = await gw.next("ready")
            assert ready["d"]["notification_settings"] == [told.data]
        finally:
            await gw.close()
        gone = await api.delete(f"{SETTINGS}/channel/{chat}", headers=phone.headers)
        assert gone.status_code == 204
        removed = await desk.next("notification_settings.removed")
        assert removed.data == {"kind": "channel", "id": chat}
        # Ann's stream, read up to a message sent after all that: no setting of ben's.
        await factories.say(api, ann, chat, "after")
        heard = []
        while not heard or heard[-1] != "message.created":
            heard.append((await other.next()).event)
        assert not [t for t in heard if t.startswith("notification_settings.")], heard
