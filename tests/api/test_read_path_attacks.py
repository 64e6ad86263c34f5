"""Read paths after losing access, attacks that held (README, "Without
READ_MESSAGE_HISTORY", **Search**, **Real time**): kicked, banned, left, the channel
hidden by a member override, a category's override or a role taken away, a group left or
removed from; every read of what was said there answers as for a channel that never
existed, search, mentions and the state count and quote nothing of it, and a resume token
from before a member could see a channel replays nothing said there before."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests import factories
from tests.factories import Community, MakeUser, TestUser
from tests.realtime.clients import sse_stream
from tests.support import Servers
from xfchat.domain.permissions import Permission as P

VIEW = int(P.VIEW_CHANNEL)
HISTORY = int(P.READ_MESSAGE_HISTORY)
PARTY = "%F0%9F%8E%89"
NO_CHANNEL = {"code": "CHANNEL_NOT_FOUND", "message": "no such channel"}
NO_FILE = {"code": "ATTACHMENT_NOT_FOUND", "message": "no such attachment"}


@pytest.fixture
def server(servers: Servers) -> str:
    return servers.start()[1]


async def _said(
    client: httpx.AsyncClient, ann: TestUser, ben: TestUser, channel: str
) -> tuple[dict[str, Any], str]:
    """A message of ann's naming ben, edited, reacted to and pinned, and a file beside it."""
    url = f"/api/channels/{channel}/messages"
    first = await factories.say(client, ann, channel, f"<@{ben.id}> secret original")
    sent = await client.post(
        url,
        headers=ann.headers,
        data={"content": "secret file"},
        files=[("files", ("a.txt", b"secret bytes", "text/plain"))],
    )
    assert sent.status_code == 201, sent.text
    edit = {"content": f"<@{ben.id}> secret edited"}
    assert (await client.patch(f"{url}/{first['id']}", headers=ann.headers, json=edit)).is_success
    react = await client.put(f"{url}/{first['id']}/reactions/{PARTY}/@me", headers=ann.headers)
    assert react.status_code == 204
    pin = await client.put(f"/api/channels/{channel}/pins/{first['id']}", headers=ann.headers)
    assert pin.status_code == 204
    return first, str(sent.json()["attachments"][0]["id"])


async def _nothing_readable(
    client: httpx.AsyncClient, ben: TestUser, channel: str, msg: dict[str, Any], att: str
) -> None:
    """Every read of the channel answers as for no channel; search, mentions and the
    state show nothing of it."""
    base, seq = f"/api/channels/{channel}", msg["seq"]
    one = f"{base}/messages/{msg['id']}"
    for path in (
        f"{base}/messages",
        f"{base}/messages?before={seq + 9}",
        f"{base}/messages?after=0",
        f"{base}/messages?around={seq}",
        one,
        f"{one}/edits",
        f"{one}/reactions/{PARTY}",
        f"{base}/pins",
        f"{base}/read-states",
        base,
        f"/api/search?q=secret&channel_id={channel}",
    ):
        got = await client.get(path, headers=ben.headers)
        assert (got.status_code, got.json()) == (404, NO_CHANNEL), (path, got.text)
    for headers in ({}, {"Range": "bytes=0-3"}):
        got = await client.get(f"/api/attachments/{att}", headers={**ben.headers, **headers})
        assert (got.status_code, got.json()) == (404, NO_FILE), got.text
    assert (await client.head(f"/api/attachments/{att}", headers=ben.headers)).status_code == 404
    found = (await client.get("/api/search?q=secret", headers=ben.headers)).json()
    assert (found["results"], found["total"]) == ([], 0)
    assert (await client.get("/api/users/@me/mentions", headers=ben.headers)).json() == []
    state = (await client.get("/api/users/@me/state", headers=ben.headers)).text
    assert channel not in state and "secret" not in state


async def _lose(
    client: httpx.AsyncClient, ann: TestUser, ben: TestUser, srv: Community, how: str, **ids: str
) -> None:
    if how == "kicked":
        got = await client.delete(srv.url(f"/members/{ben.id}"), headers=ann.headers)
    elif how == "banned":
        got = await client.put(srv.url(f"/bans/{ben.id}"), headers=ann.headers, json={})
    elif how == "left":
        got = await client.delete(srv.url("/members/@me"), headers=ben.headers)
    elif how == "member_override":
        got = await factories.override(client, ann, srv.general, "member", ben.id, deny=VIEW)
    elif how == "category_override":
        got = await factories.override(client, ann, ids["category"], "member", ben.id, deny=VIEW)
    else:
        assert how == "role_removed"
        got = await client.delete(
            srv.url(f"/members/{ben.id}/roles/{ids['role']}"), headers=ann.headers
        )
    assert got.is_success, got.text


@pytest.mark.parametrize(
    "how",
    ["kicked", "banned", "left", "member_override", "category_override", "role_removed"],
)
async def test_every_read_path_after_losing_a_server_channel_answers_as_for_none(
    client: httpx.AsyncClient, make_user: MakeUser, how: str
) -> None:
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await factories.community(client, ann, ben)
    ids: dict[str, str] = {}
    if how == "category_override":
        ids["category"] = (await factories.server_channel(client, srv, ann, "c", kind="category"))[
            "id"
        ]
        moved = await client.patch(
            f"/api/channels/{srv.general}",
            headers=ann.headers,
            json={"parent_id": ids["category"], "permissions_synced": True},
        )
        assert moved.status_code == 200, moved.text
    if how == "role_removed":
        await factories.override(client, ann, srv.general, "role", srv.everyone_role, deny=VIEW)
        ids["role"] = await factories.role(client, srv, ann, "crew", 0, ben)
        await factories.override(client, ann, srv.general, "role", ids["role"], allow=VIEW)
    msg, att = await _said(client, ann, ben, srv.general)
    await _lose(client, ann, ben, srv, how, **ids)
    await factories.say(client, ann, srv.general, f"<@{ben.id}> @everyone secret later")
    await _nothing_readable(client, ben, srv.general, msg, att)


@pytest.mark.parametrize("how", ["left", "removed"])
async def test_every_read_path_after_leaving_a_group_answers_as_for_none(
    client: httpx.AsyncClient, make_user: MakeUser, how: str
) -> None:
    ann, ben, cat = await make_user("ann"), await make_user("ben"), await make_user("cat")
    group = str((await factories.group(client, ann, ben, cat))["id"])
    msg, att = await _said(client, ann, ben, group)
    who = ben if how == "left" else ann
    url = f"/api/conversations/{group}/participants/{ben.id}"
    assert (await client.delete(url, headers=who.headers)).status_code == 204
    await factories.say(client, ann, group, f"<@{ben.id}> secret later")
    await _nothing_readable(client, ben, group, msg, att)
    assert (await client.get("/api/conversations", headers=ben.headers)).json() == []


async def test_a_hidden_channel_and_message_answer_as_nonexistent_ones(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """A channel hidden by an override, a group one was removed from, another server's
    channel and no channel at all: every route answers the same; a message of a hidden
    channel named through a channel one sees answers as an unknown id."""
    ann, ben, cat = await make_user("ann"), await make_user("ben"), await make_user("cat")
    srv = await factories.community(client, ann, ben)
    hidden = str((await factories.server_channel(client, srv, ann, "priv"))["id"])
    await factories.override(client, ann, hidden, "member", ben.id, deny=VIEW)
    secret = await factories.say(client, ann, hidden, "secret")
    group = str((await factories.group(client, ann, ben, cat))["id"])
    await factories.say(client, ann, group, "secret too")
    url = f"/api/conversations/{group}/participants/{ben.id}"
    assert (await client.delete(url, headers=ann.headers)).status_code == 204
    elsewhere = (await factories.community(client, ann, cat)).general
    answers = []
    for channel in (hidden, group, elsewhere, str(uuid.uuid4())):
        row = []
        for method, path, body in (
            ("GET", "", None),
            ("GET", "/messages", None),
            ("GET", f"/messages/{secret['id']}", None),
            ("POST", "/messages", {"content": "x"}),
            ("PUT", "/ack", {"seq": 1}),
            ("POST", "/typing", None),
            ("GET", "/pins", None),
            ("GET", "/read-states", None),
            ("PUT", f"/overrides/member/{ben.id}", {"allow": "1", "deny": "0"}),
        ):
            got = await client.request(
                method, f"/api/channels/{channel}{path}", headers=ben.headers, json=body
            )
            row.append((got.status_code, got.text))
        got = await client.get(f"/api/search?q=x&channel_id={channel}", headers=ben.headers)
        row.append((got.status_code, got.text))
        answers.append(row)
    assert all(a == answers[0] for a in answers), answers
    general = f"/api/channels/{srv.general}/messages"
    for mid in (secret["id"], str(uuid.uuid4())):
        got = [
            await client.get(f"{general}/{mid}", headers=ben.headers),
            await client.get(f"{general}/{mid}/edits", headers=ben.headers),
            await client.get(f"{general}/{mid}/reactions/{PARTY}", headers=ben.headers),
        ]
        assert [(g.status_code, g.json()["code"]) for g in got] == [(404, "MESSAGE_NOT_FOUND")] * 3
        reply = await client.post(
            general, headers=ben.headers, json={"content": "x", "reply_to_id": mid}
        )
        assert (reply.status_code, reply.json()["code"]) == (400, "INVALID_REPLY")


@pytest.mark.parametrize("how", ["member_override", "history_removed", "kicked"])
async def test_a_search_cursor_from_before_a_loss_finds_and_counts_only_what_is_readable(
    client: httpx.AsyncClient, make_user: MakeUser, how: str
) -> None:
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await factories.community(client, ann, ben)
    other = str((await factories.server_channel(client, srv, ann, "other"))["id"])
    for i in range(3):
        await factories.say(client, ann, srv.general, f"secret general {i}")
        await factories.say(client, ann, other, f"secret other {i}")
    first = (await client.get("/api/search?q=secret&limit=1", headers=ben.headers)).json()
    assert first["total"] == 6 and first["next_cursor"]
    if how == "kicked":
        await _lose(client, ann, ben, srv, how)
    else:
        deny = VIEW if how == "member_override" else HISTORY
        await factories.override(client, ann, srv.general, "member", ben.id, deny=deny)
    url = f"/api/search?q=secret&limit=1&cursor={first['next_cursor']}"
    page = (await client.get(url, headers=ben.headers)).json()
    assert page["total"] == (0 if how == "kicked" else 3)
    assert all(r["message"]["channel_id"] == other for r in page["results"])


async def test_the_audit_log_leaves_a_hidden_channel_out_of_a_reorder(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await factories.community(client, ann, ben)
    await factories.role(client, srv, ann, "auditor", int(P.VIEW_AUDIT_LOG), ben)
    hidden = str((await factories.server_channel(client, srv, ann, "secret-plans"))["id"])
    await factories.override(client, ann, hidden, "member", ben.id, deny=VIEW)
    order = [{"id": hidden, "position": 0}, {"id": srv.general, "position": 1}]
    assert (await client.patch(srv.url("/channels"), headers=ann.headers, json=order)).is_success
    log = await client.get(srv.url("/audit-log"), headers=ben.headers)
    assert log.status_code == 200 and hidden not in log.text and "secret" not in log.text
    reordered = [e for e in log.json() if e["action"] == "channel.reordered"]
    assert [e["changes"] for e in reordered] == [{srv.general: 1}]


@pytest.mark.parametrize("how", ["joined", "rejoined", "revealed", "override_lifted"])
async def test_a_resume_from_before_a_member_saw_a_channel_replays_nothing_said_before(
    server: str, make_user: MakeUser, how: str
) -> None:
    """In a server whose @everyone has VIEW_CHANNEL without READ_MESSAGE_HISTORY, ben's
    resume token from before he could see #general (not yet a member, kicked, the channel
    private, a member override) replays nothing said there before he could."""
    ann, ben = await make_user("ann"), await make_user("ben")
    async with httpx.AsyncClient(base_url=server, timeout=10) as api:
        srv = await factories.community(api, ann, *(() if how == "joined" else (ben,)))
        perms = {"permissions": str(int(P.VIEW_CHANNEL | P.SEND_MESSAGES))}
        made = await api.patch(
            srv.url(f"/roles/{srv.everyone_role}"), headers=ann.headers, json=perms
        )
        assert made.status_code == 200, made.text
        if how == "revealed":
            await factories.override(api, ann, srv.general, "role", srv.everyone_role, deny=VIEW)
        elif how == "override_lifted":
            await factories.override(api, ann, srv.general, "member", ben.id, deny=VIEW)
        elif how == "rejoined":
            await _lose(api, ann, ben, srv, "kicked")
        token = (await api.get("/api/users/@me/state", headers=ben.headers)).json()["resume_token"]
        await factories.say(api, ann, srv.general, "secret before")
        if how in ("joined", "rejoined"):
            joined = await api.post(f"/api/invites/{srv.invite}", headers=ben.headers)
            assert joined.status_code == 201, joined.text
        elif how == "revealed":
            await factories.override(api, ann, srv.general, "member", ben.id, allow=VIEW)
        else:
            url = f"/api/channels/{srv.general}/overrides/member/{ben.id}"
            assert (await api.delete(url, headers=ann.headers)).is_success
        history = await api.get(f"/api/channels/{srv.general}/messages", headers=ben.headers)
        assert history.status_code == 403
        marker = await factories.say(api, ann, srv.general, "marker after")
        seen: list[tuple[str, str]] = []
        async with sse_stream(server, ben.access_token, last_event_id=token) as stream:
            while True:
                event = await stream.next()
                seen.append((event.event, str(event.data)))
                if event.event == "message.created" and event.data["id"] == marker["id"]:
                    break
        assert not any("secret" in data for _, data in seen), seen
