"""A client cut off as a slow consumer resumes from the last id it received with
nothing lost and nothing twice, whether or not it was told why (README: a client that
does not take what was queued for it within a second is cut off without `closed`)."""

from __future__ import annotations

import asyncio
import contextlib
import json

import httpx

from tests import factories
from tests.factories import MakeUser, say
from tests.realtime.clients import sse_stream, wait_subscribers
from tests.support import METRICS_HEADERS, Servers, reading_nothing


def sse_frames(raw: bytes) -> list[dict[str, str]]:
    """The whole SSE frames of a raw chunked response (its chunk framing taken out)."""
    _, _, rest = raw.partition(b"\r\n\r\n")
    data = b""
    while rest:
        size_line, sep, after = rest.partition(b"\r\n")
        if not sep:
            break
        size = int(size_line, 16)
        data += after[:size]
        if len(after) < size + 2:
            break
        rest = after[size + 2 :]
    frames = []
    for block in data.decode(errors="replace").split("\n\n")[:-1]:
        frames.append(dict(line.partition(": ")[::2] for line in block.split("\n")))
    return frames


async def test_a_stalled_sse_client_resumes_after_its_cut_without_loss(
    servers: Servers, make_user: MakeUser
) -> None:
    _, base = servers.start(XFCHAT_REALTIME_QUEUE="20")
    ann, ben = await make_user("ann"), await make_user("ben")
    async with httpx.AsyncClient(base_url=base, timeout=10) as api:
        group = (await factories.group(api, ann, ben))["id"]
        stalled = reading_nothing(
            base,
            f"GET /api/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            f"{ben.access_token}\r\n\r\n".encode(),
        )
        await wait_subscribers(base, 1)  # (its place taken before the first send)
        count, text = 600, "😀" * 3990  # about 10 MB, past what the kernel buffers

        async def sender(k: int) -> None:
            for i in range(k, count, 6):
                await say(api, ann, group, f"{i:05d}{text}")

        await asyncio.gather(*(sender(k) for k in range(6)))
        while (
            'reason="slow_consumer"'
            not in (await api.get("/metrics", headers=METRICS_HEADERS)).text
        ):
            await asyncio.sleep(0.1)
        stalled.settimeout(30)
        raw = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := stalled.recv(1 << 20):  # what reached it, to the cut
                raw += chunk
        stalled.close()
    frames = sse_frames(raw)
    got = [json.loads(f["data"])["seq"] for f in frames if f.get("event") == "message.created"]
    assert got == list(range(1, len(got) + 1)) and len(got) < count
    closed = [json.loads(f["data"]) for f in frames if f.get("event") == "closed"]
    last = [f["id"] for f in frames if "id" in f][-1]
    if closed:  # (told: its token is the last id it received)
        assert closed == [{"reason": "slow_consumer", "resume": last}]
    async with sse_stream(base, ben.access_token, last_event_id=last) as again:
        rest = [e.data["seq"] for e in await again.collect("message.created", count - len(got))]
    assert rest == list(range(len(got) + 1, count + 1))
