"""Permission changes while a member's SSE, gateway and Braid connections are open: a
hidden channel's events stop at once, a revealed one's flow with nothing missed from
the reveal on, and a resume across both yields exactly that."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx

from tests.factories import MakeUser, community, say
from tests.realtime.clients import GatewayClient, sse_stream, wait_subscribers
from xfchat.domain.permissions import Permission

Http = Callable[[str], httpx.AsyncClient]
VIEW = str(int(Permission.VIEW_CHANNEL))


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
        braid_chunks: list[str] = []

        async def read_braid() -> None:
            async for chunk in braid.aiter_text():
                braid_chunks.append(chunk)

        braid_reader = asyncio.create_task(read_braid())
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
