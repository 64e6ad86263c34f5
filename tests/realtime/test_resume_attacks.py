"""A helper's attack at real-time delivery: a client that reconnects in a loop, on SSE
and the gateway, on two processes (one with the smallest queue), while messages (some
too big for a notification) go to several channels and the channels are hidden,
shown, taken away by a role and by kicks: it gets exactly what a steady connection
gets, and so does a replay from the first token; a Braid client that resumes with
Parents in a loop gets every message once. Hostile Last-Event-IDs get a resync."""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import socket
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.factories import MakeUser, community, role, say
from tests.realtime.clients import GatewayClient, sse
from tests.support import Servers
from xfchat.domain.permissions import Permission
from xfchat.realtime.cursor import TokenCodec


def _raw_sse_head(base: str, head: bytes) -> bytes:
    """A raw request's answer, read up to its `resync` event (or what came in 3 s)."""
    parts = urlsplit(base)
    assert parts.hostname is not None and parts.port is not None
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as s:
        s.sendall(head)
        data = b""
        s.settimeout(3)
        with contextlib.suppress(TimeoutError):
            while b"event: resync" not in data or not data.endswith(b"\n\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        return data


@pytest.mark.parametrize(
    "bad",
    [b"2.", b"3.", b"3.____________________________", b"3.\xff\xfe\xfd", b"\xc3\xa9\xc3\xa9"],
)
async def test_hostile_last_event_ids_get_a_resync(
    server: str, make_user: MakeUser, bad: bytes
) -> None:
    ben = await make_user("ben")
    head = (
        b"GET /api/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
        + ben.access_token.encode()
        + b"\r\nLast-Event-ID: "
        + bad
        + b"\r\n\r\n"
    )
    out = await asyncio.to_thread(_raw_sse_head, server, head)
    assert out.startswith(b"HTTP/1.1 200 "), out[:200]
    assert b"event: resync" in out and b'"reason":"malformed"' in out, out[-400:]


VIEW = str(int(Permission.VIEW_CHANNEL))
FAST = {"XFCHAT_RATE_REALTIME_USER": "100000/60", "XFCHAT_RATE_INVITES_USER": "100000/60"}


Item = tuple[int, int, str, str]  # g, pos, type, what


def _item(codec_tag: bytes, t: str, token: str, data: Any) -> Item:
    p = TokenCodec.decode(token, codec_tag)
    what = str(data.get("id") or data.get("message_id") or data.get("channel_ids") or "")
    return p.g, p.pos, t, what


async def _open(transport: str, base: str, access: str, resume: str | None) -> Any:
    if transport == "sse":
        client = await sse(base, access, last_event_id=resume)
        assert client.ready.data["resumed"] == (resume is not None), client.ready.data
        return client
    gw = await GatewayClient.connect(base, access, resume=resume)
    first = await gw.next()
    assert first.get("t") == "ready", first
    return gw


class Ended(Exception):
    def __init__(self, resume: str | None) -> None:
        self.resume = resume


async def _next_stored(transport: str, client: Any) -> tuple[str, str, Any]:
    while True:
        if transport == "sse":
            try:
                ev = await client.next(timeout=20)
            except EOFError:
                raise Ended(None) from None
            if ev.event == "closed":
                assert ev.data["reason"] in ("slow_consumer", "shutdown"), ev
                raise Ended(ev.data["resume"])
            if ev.id is None or ev.event in ("ready", "resync"):
                assert ev.event != "resync", ev
                continue
            return ev.event, ev.id, ev.data
        try:
            frame = await client.next(timeout=20)
        except EOFError as exc:
            assert client.ws.close_code in (4011, 4013, 1006, None), exc
            raise Ended(None) from None
        if "s" not in frame:
            continue
        return frame["t"], frame["s"], frame["d"]


async def test_a_reconnecting_client_gets_what_a_steady_one_does(
    servers: Servers, make_user: MakeUser, secret: str
) -> None:
    _, a = servers.start(**FAST)
    _, b = servers.start(**FAST, XFCHAT_REALTIME_QUEUE="10")
    ann, ben = await make_user("ann"), await make_user("ben")
    tag = TokenCodec(secret).tag(ben.id)
    api = httpx.AsyncClient(base_url=a, timeout=30)
    srv = await community(api, ann, ben)
    chans = [srv.general]
    for name in ("c1", "c2", "c3"):
        made = await api.post(srv.url("/channels"), headers=ann.headers, json={"name": name})
        chans.append(made.json()["id"])
    r = await role(api, srv, ann, "r", 0, ben)
    c3 = chans[3]
    assert (
        await api.put(
            f"/api/channels/{c3}/overrides/role/{srv.everyone_role}",
            headers=ann.headers,
            json={"deny": VIEW},
        )
    ).status_code == 200
    assert (
        await api.put(
            f"/api/channels/{c3}/overrides/role/{r}", headers=ann.headers, json={"allow": VIEW}
        )
    ).status_code == 200

    steady = await sse(a, ben.access_token)
    first = steady.ready.id
    end_id: list[str] = []
    rng = random.Random(11)
    sent: list[dict[str, Any]] = []

    async def sender(k: int) -> None:
        for i in range(60):
            big = "😀" * 2500 if i % 5 == 0 else ""
            m = await api.post(
                f"/api/channels/{chans[(i + k) % 4]}/messages",
                headers=ann.headers,
                json={"content": f"{k}-{i}{big}"},
            )
            if m.status_code == 201:
                sent.append(m.json())

    async def hider() -> None:
        url = f"/api/channels/{chans[2]}/overrides/role/{srv.everyone_role}"
        for k in range(10):
            while len(sent) < 15 * k:
                await asyncio.sleep(0.01)
            assert (await api.put(url, headers=ann.headers, json={"deny": VIEW})).status_code == 200
            assert (await api.delete(url, headers=ann.headers)).status_code == 200

    async def roler() -> None:
        url = srv.url(f"/members/{ben.id}/roles/{r}")
        for k in range(10):
            while len(sent) < 15 * k + 7:
                await asyncio.sleep(0.01)
            got = await api.delete(url, headers=ann.headers)
            assert got.status_code in (204, 404), got.text
            got = await api.put(url, headers=ann.headers)
            assert got.status_code in (204, 404), got.text

    async def toucher() -> None:
        for _ in range(40):
            if sent:
                m = rng.choice(sent)
                await api.patch(
                    f"/api/channels/{m['channel_id']}/messages/{m['id']}",
                    headers=ann.headers,
                    json={"content": "edited"},
                )
                await api.put(
                    f"/api/channels/{m['channel_id']}/messages/{m['id']}/reactions/%F0%9F%98%80/@me",
                    headers=ann.headers,
                )
            await asyncio.sleep(0)

    async def kicker() -> None:
        for k in range(4):
            while len(sent) < 30 * (k + 1):
                await asyncio.sleep(0.01)
            got = await api.delete(srv.url(f"/members/{ben.id}"), headers=ann.headers)
            assert got.status_code == 204, got.text
            await asyncio.sleep(0.05)
            got = await api.post(f"/api/invites/{srv.invite}", headers=ben.headers)
            assert got.status_code in (200, 201), got.text
            got = await api.put(srv.url(f"/members/{ben.id}/roles/{r}"), headers=ann.headers)

    chain: list[Item] = []
    ends: list[str | None] = []

    async def reconnector() -> None:
        token = first
        n = 0
        while True:
            transport = ("sse", "gateway")[n % 2]
            base = (a, b)[(n // 2) % 2]
            n += 1
            client = await _open(transport, base, ben.access_token, token)
            try:
                for _ in range(rng.randint(1, 40)):
                    try:
                        t, tok, data = await _next_stored(transport, client)
                    except Ended as ended:
                        ends.append(ended.resume)
                        if ended.resume is not None:
                            assert ended.resume == token or token is None
                        break
                    chain.append(_item(tag, t, tok, data))
                    token = tok
                    if rng.random() < 0.05:
                        await asyncio.sleep(0.3)
                    if t == "message.created" and end_id and data["id"] == end_id[0]:
                        return
            finally:
                await client.close()

    loop = asyncio.create_task(reconnector())
    await asyncio.gather(*(sender(k) for k in range(6)), hider(), roler(), toucher(), kicker())
    end = await say(api, ann, srv.general, "END")
    end_id.append(end["id"])
    steady_items: list[Item] = []
    while True:
        ev = await steady.next(timeout=30)
        if ev.id is None:
            continue
        steady_items.append(_item(tag, ev.event, ev.id, ev.data))
        if ev.event == "message.created" and ev.data["id"] == end["id"]:
            break
    await steady.close()
    await asyncio.wait_for(loop, 60)
    assert chain == steady_items
    # and a replay from the start on each transport
    for transport, base in (("sse", b), ("gateway", a)):
        client = await _open(transport, base, ben.access_token, first)
        got: list[Item] = []
        try:
            while len(got) < len(steady_items):
                t, tok, data = await _next_stored(transport, client)
                got.append(_item(tag, t, tok, data))
        finally:
            await client.close()
        assert got == steady_items, transport
    await api.aclose()
    assert len(steady_items) > 100, len(steady_items)


async def _braid_versions(
    base: str, token: str, channel: str, parents: str | None, until: str, out: list[str]
) -> None:
    headers = {"Authorization": f"Bearer {token}", "Subscribe": "true"}
    if parents:
        headers["Parents"] = f'"{parents}"'
    async with (
        httpx.AsyncClient(timeout=httpx.Timeout(30, read=None)) as raw,
        raw.stream("GET", f"{base}/api/channels/{channel}/messages", headers=headers) as r,
    ):
        assert r.status_code == 209, r.status_code
        buf = ""
        async for chunk in r.aiter_text():
            buf += chunk
            end = 0
            for m in re.finditer(r'Version: "([0-9a-f-]+)"\r\nParents', buf):
                out.append(m.group(1))
                end = m.end()
            buf = buf[end:]
            if out and out[-1] == until:
                return


async def test_braid_resumes_in_a_loop_get_every_message_once(
    servers: Servers, make_user: MakeUser
) -> None:
    _, a = servers.start(**FAST)
    ann, ben = await make_user("ann"), await make_user("ben")
    api = httpx.AsyncClient(base_url=a, timeout=30)
    srv = await community(api, ann, ben)
    first = await say(api, ann, srv.general, "first")
    ids: list[str] = []
    seqs: dict[str, int] = {}

    async def sender(k: int) -> None:
        for i in range(50):
            m = await say(api, ann, srv.general, f"{k}-{i}")
            ids.append(m["id"])
            seqs[m["id"]] = m["seq"]

    chain: list[str] = []

    async def looper() -> None:
        last = first["id"]
        while True:
            got: list[str] = []
            task = asyncio.create_task(
                _braid_versions(a, ben.access_token, srv.general, last, "never", got)
            )
            while len(got) < min(5, 200 - len(chain)) and not task.done():
                await asyncio.sleep(0.01)
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            chain.extend(got)
            if got:
                last = got[-1]
            if len(chain) >= 200:
                return

    loop = asyncio.create_task(looper())
    await asyncio.gather(*(sender(k) for k in range(4)))
    await asyncio.wait_for(loop, 60)
    assert len(chain) == len(set(chain)), "a message twice"
    assert sorted(chain) == sorted(ids)
    assert [seqs[c] for c in chain] == sorted(seqs.values())  # in order
    await api.aclose()
