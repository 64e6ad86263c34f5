"""GET /api/users/@me/state stays bounded whatever others do to grow it."""

from __future__ import annotations

import httpx
import pytest

from tests import factories
from tests.factories import AppWith, MakeUser
from xfchat.domain import state


async def test_a_state_others_grow_is_cut_short_and_says_so(
    client: httpx.AsyncClient, make_user: MakeUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    ann = await make_user("ann")
    others = [await make_user(f"u{i}") for i in range(4)]
    for other in others[:3]:
        await factories.group(client, other, ann)
    for other in others[:2]:
        sent = await client.post(
            "/api/users/@me/friend-requests", headers=other.headers, json={"username": "ann"}
        )
        assert sent.status_code == 201
    whole = (await client.get("/api/users/@me/state", headers=ann.headers)).json()
    assert len(whole["conversations"]) == 3 and whole["truncated"] == []
    one_conversation = len(httpx.Response(200, json=whole["conversations"][0]).content)
    monkeypatch.setattr(state, "STATE_CONVERSATION_BYTES", 2 * one_conversation + 10)
    monkeypatch.setattr(state, "STATE_REQUESTS", 1)
    cut = (await client.get("/api/users/@me/state", headers=ann.headers)).json()
    assert cut["truncated"] == ["conversations", "friend_requests"]
    # The most recently active first, the newest request.
    assert [c["id"] for c in cut["conversations"]] == [c["id"] for c in whole["conversations"][:2]]
    assert [r["user"]["username"] for r in cut["friend_requests"]["incoming"]] == ["u1"]


async def test_mention_count_is_capped_like_unread(app_with: AppWith, make_user: MakeUser) -> None:
    client = await app_with(rate_messages_user="1000/10", rate_api_user="1000/10")
    ann, ben = await make_user("ann"), await make_user("ben")
    dm = (await factories.direct(client, ann, ben))["id"]
    for i in range(105):
        await factories.say(client, ben, dm, f"<@{ann.id}> {i}")
    (mine,) = (await client.get("/api/conversations", headers=ann.headers)).json()
    assert mine["unread"] == 100 and mine["mention_count"] == 100
