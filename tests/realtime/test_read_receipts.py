"""Read receipts over a real server process: the others hear only of new highs, the
reader's own connections of every move, and a resume replays what live delivery gave."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from tests.factories import MakeUser, TestUser, pair, say
from tests.realtime.clients import SseClient, sse_stream

Http = Callable[[str], httpx.AsyncClient]


async def _told(stream: SseClient, end: str) -> list[tuple[str, int]]:
    """The read receipts a stream carries up to the message `end`: (whose, seq)."""
    told = []
    while True:
        ev = await stream.next()
        if ev.event == "message.created" and ev.data["id"] == end:
            return told
        if ev.event == "read_state.updated":
            told.append((ev.data["user_id"], ev.data["last_read_seq"]))


async def test_receipts_never_go_back_and_a_resume_replays_them_as_live(
    server: str, http: Http, make_user: MakeUser
) -> None:
    """Ann acks 1, 2, 1, 2, 3, 1, 3 in a group: ben hears 1, 2, 3 (each a new high), her
    own connection every move; each of them resumed from the start of the stream gets
    exactly what it got live (the moves that were hers alone are on her own stream,
    replayed to her and to nobody else)."""
    api = http(server)
    ann, ben, group = await pair(api, make_user, "group")
    for text in ("a", "b", "c"):
        await say(api, ben, group, text)

    async def acks_then(end_by: TestUser) -> str:
        for seq in (1, 2, 1, 2, 3, 1, 3):
            answer = await api.put(
                f"/api/channels/{group}/ack", headers=ann.headers, json={"seq": seq}
            )
            assert answer.status_code == 200, answer.text
        return str((await say(api, end_by, group, "end"))["id"])

    async with (
        sse_stream(server, ann.access_token) as ann_stream,
        sse_stream(server, ben.access_token) as ben_stream,
    ):
        assert ann_stream.ready.id and ben_stream.ready.id
        starts = {"ann": ann_stream.ready.id, "ben": ben_stream.ready.id}
        end = await acks_then(ben)
        live = {"ann": await _told(ann_stream, end), "ben": await _told(ben_stream, end)}
    a = str(ann.id)
    assert live["ben"] == [(a, 1), (a, 2), (a, 3)]
    assert live["ann"] == [(a, 1), (a, 2), (a, 1), (a, 2), (a, 3), (a, 1), (a, 3)]
    for who, user in (("ann", ann), ("ben", ben)):
        async with sse_stream(server, user.access_token, last_event_id=starts[who]) as again:
            assert again.ready.data["resumed"] is True
            assert await _told(again, end) == live[who], who
