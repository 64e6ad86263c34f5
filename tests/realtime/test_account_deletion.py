"""An account deletion as the others' connections and the account's own see it, on a
real server process."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from tests import factories
from tests.factories import MakeUser
from tests.realtime.clients import GatewayClient, sse_stream
from tests.realtime.test_presence import presence_of

Http = Callable[[str], httpx.AsyncClient]


async def test_a_deletion_reaches_the_friends_streams_and_closes_its_own(
    server: str, http: Http, make_user: MakeUser
) -> None:
    api = http(server)
    ann, ben, dm = await factories.pair(api, make_user)
    await factories.befriend(ann, ben)
    gw = await GatewayClient.connect(server, ann.access_token)
    await gw.next("ready")
    async with (
        sse_stream(server, ben.access_token) as friend,
        sse_stream(server, ann.access_token) as own,
    ):
        gone = await api.post(
            "/api/users/@me/delete", headers=ann.headers, json={"password": ann.password}
        )
        assert gone.status_code == 204, gone.text
        # Hers end at once, on every transport.
        closed = await own.next("closed")
        assert closed.data["reason"] == "session_revoked"
        assert await gw.closed_with() == 4012
        # Ben hears who she is now, in their conversation, and that the friendship ended.
        updated = await friend.next("user.updated")
        assert updated.data["id"] == str(ann.id) and updated.data["deleted"] is True
        assert updated.data["username"].startswith("deleted_user_")
        removed = await friend.next("friend.removed")
        assert removed.data["user_id"] == str(ann.id) and removed.data["user"]["deleted"]
    again = await GatewayClient.connect(server, ann.access_token)
    assert await again.closed_with() == 4012
    history = await api.get(f"/api/channels/{dm}/messages", headers=ben.headers)
    assert history.status_code == 200


async def test_a_deleted_account_shows_offline_to_those_who_saw_it_online(
    server: str, http: Http, make_user: MakeUser
) -> None:
    api = http(server)
    ann, ben, _dm = await factories.pair(api, make_user)
    await factories.befriend(ann, ben)  # (a direct conversation alone shows no presence)
    async with sse_stream(server, ben.access_token) as watcher:
        gw = await GatewayClient.connect(server, ann.access_token)
        await gw.next("ready")
        online = await presence_of(watcher, str(ann.id))
        assert online["status"] == "online"
        gone = await api.post(
            "/api/users/@me/delete", headers=ann.headers, json={"password": ann.password}
        )
        assert gone.status_code == 204, gone.text
        assert await gw.closed_with() == 4012
        offline = await presence_of(watcher, str(ann.id))
        assert offline == {"user_id": str(ann.id), "status": "offline", "status_text": None}
