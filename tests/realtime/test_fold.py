"""A client that keeps its state only by folding the events (tests/realtime/fold.py:
`ready`, then every event, in order, live or after a resume, on either transport) holds
what REST says afterwards: its servers, channels, roles, overrides, members, read
states, messages and own account."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
import httpx
import pytest

from tests.factories import MakeUser, TestUser, community, role, say
from tests.realtime.clients import GatewayClient, SseClient, sse
from tests.realtime.fold import Fold, differences, rest_snapshot
from xfchat.domain.permissions import Permission

Http = Callable[[str], httpx.AsyncClient]
VIEW = int(Permission.VIEW_CHANNEL)


class Feed:
    """One connection of the folding client: its events, as (type, data), stored ones
    and presence (typing and other unstored ones are of no state)."""

    def __init__(self, transport: str, client: SseClient | GatewayClient) -> None:
        self.transport = transport
        self.client = client

    @classmethod
    async def open(cls, transport: str, base: str, who: TestUser, resume: str | None) -> Feed:
        if transport == "sse":
            return cls(transport, await sse(base, who.access_token, last_event_id=resume))
        return cls(transport, await GatewayClient.connect(base, who.access_token, resume=resume))

    async def ready(self) -> dict[str, Any]:
        if isinstance(self.client, SseClient):
            return dict(self.client.ready.data)
        return dict((await self.client.next("ready"))["d"])

    @property
    def token(self) -> str | None:
        if isinstance(self.client, SseClient):
            return self.client.last_id
        return self.client.last_seq

    async def fold_until(self, fold: Fold, message_id: str) -> None:
        """Apply every event up to and including the message.created of `message_id`."""
        while True:
            if isinstance(self.client, SseClient):
                ev = await self.client.next(timeout=15)
                t, d, stored = ev.event, ev.data, ev.id is not None
            else:
                frame = await self.client.next(timeout=15)
                t, d, stored = frame["t"], frame["d"], "s" in frame
            if stored or t == "presence.updated":
                fold.apply(t, d)
            if t == "message.created" and d["id"] == message_id:
                return

    async def close(self) -> None:
        await self.client.close()


async def ok(call: Any) -> Any:
    response = await call
    assert response.status_code < 300, response.text
    return response.json() if response.content else None


async def assert_fold_is_rest(api: httpx.AsyncClient, who: TestUser, fold: Fold) -> None:
    for server_id in fold.servers:
        if server_id not in fold.members:  # (joined meanwhile: its list, as a client asks)
            await fold.load_server(api, who.headers, server_id)
    rest = await rest_snapshot(api, who.headers, sorted(fold.messages))
    assert differences(fold.snapshot(), rest) == []


@pytest.mark.parametrize("first, then", [("gateway", "sse"), ("sse", "gateway")])
async def test_a_client_folding_every_event_ends_where_rest_is(
    server: str, http: Http, make_user: MakeUser, first: str, then: str
) -> None:
    """Was: a channel shown again (an override lifted, a role given, the server handed
    over) came without the member's read state, so what was said there while it was
    hidden never showed as unread (#staff: REST 3, the client 0); a deletion did not say when it
    was made (a live client's tombstone had `deleted_at: null`, REST's the time)."""
    api = http(server)
    ann, ben, cid, dan = [await make_user(n) for n in ("ann", "ben", "cid", "dan")]
    srv = await community(api, ann, ben)
    a = ann.headers
    feed = await Feed.open(first, server, ben, None)
    fold = Fold(await feed.ready())
    await fold.load(api, ben.headers)

    # Roles and channels.
    mods = await role(api, srv, ann, "mods", VIEW, ben)
    await ok(api.patch(srv.url(f"/roles/{mods}"), headers=a, json={"name": "mods2", "color": 5}))
    other = await role(api, srv, ann, "other", 0)
    await ok(api.patch(srv.url("/roles"), headers=a, json=[{"id": other, "position": 5}]))
    cat = await ok(
        api.post(srv.url("/channels"), headers=a, json={"name": "c", "kind": "category"})
    )
    inner = await ok(
        api.post(srv.url("/channels"), headers=a, json={"name": "in", "parent_id": cat["id"]})
    )
    staff = (await ok(api.post(srv.url("/channels"), headers=a, json={"name": "staff"})))["id"]
    await say(api, ann, staff, "seen")
    # #staff hidden from everyone, talked in, shown again.
    hide = f"/api/channels/{staff}/overrides/role/{srv.everyone_role}"
    await ok(api.put(hide, headers=a, json={"allow": "0", "deny": str(VIEW)}))
    await say(api, ann, staff, "while hidden")
    await say(api, ann, staff, "@everyone while hidden")
    await ok(api.delete(hide, headers=a))
    # The category hidden from everyone, then shown to a role of ben's.
    cover = f"/api/channels/{cat['id']}/overrides/role/{srv.everyone_role}"
    await ok(api.put(cover, headers=a, json={"allow": "0", "deny": str(VIEW)}))
    await say(api, ann, inner["id"], "inside, hidden")
    mods_view = {"allow": str(VIEW), "deny": "0"}
    await ok(api.put(f"/api/channels/{cat['id']}/overrides/role/{mods}", headers=a, json=mods_view))
    # Members.
    await ok(api.patch(srv.url(f"/members/{ben.id}"), headers=a, json={"nickname": "benny"}))
    for who in (cid, dan):
        await ok(api.post(f"/api/invites/{srv.invite}", headers=who.headers))
    await ok(api.patch(srv.url(f"/members/{cid.id}"), headers=a, json={"nickname": "cidney"}))
    await ok(api.delete(srv.url(f"/members/{cid.id}"), headers=a))
    await ok(api.put(srv.url(f"/bans/{dan.id}"), headers=a, json={}))
    # Messages: a reply, an edit, reactions, pins, deletions (one mentioning ben).
    url = f"/api/channels/{srv.general}/messages"
    m1 = await say(api, ann, srv.general, f"hello <@{ben.id}>")
    m2 = await say(api, ann, srv.general, "a reply", reply_to_id=m1["id"])
    await ok(api.patch(f"{url}/{m2['id']}", headers=a, json={"content": "a reply, edited"}))
    for who in (ann, ben):
        await ok(api.put(f"{url}/{m1['id']}/reactions/x/@me", headers=who.headers))
    await ok(api.put(f"/api/channels/{srv.general}/pins/{m1['id']}", headers=a))
    await ok(api.put(f"/api/channels/{srv.general}/pins/{m2['id']}", headers=a))
    await ok(api.delete(f"/api/channels/{srv.general}/pins/{m2['id']}", headers=a))
    await ok(api.delete(f"{url}/{m1['id']}", headers=a))
    middle = await say(api, ann, srv.general, "middle")
    await feed.fold_until(fold, middle["id"])
    token = feed.token
    await feed.close()

    # While ben is away: more of the same, a second server, and the server handed to
    # him (the owner sees #secret, hidden from everyone, talked in meanwhile).
    secret = (await ok(api.post(srv.url("/channels"), headers=a, json={"name": "secret"})))["id"]
    deny = {"allow": "0", "deny": str(VIEW)}
    await ok(
        api.put(f"/api/channels/{secret}/overrides/role/{srv.everyone_role}", headers=a, json=deny)
    )
    await say(api, ann, secret, f"hush <@&{mods}>")
    await ok(
        api.patch(
            srv.url(),
            headers=a,
            json={"name": "renamed", "description": "d", "default_notifications": "mentions"},
        )
    )
    await ok(api.patch(f"/api/channels/{staff}", headers=a, json={"topic": "t"}))
    await ok(api.patch(srv.url("/channels"), headers=a, json=[{"id": staff, "position": 0}]))
    await ok(api.patch("/api/users/@me", headers=ben.headers, json={"display_name": "Ben B"}))
    await ok(api.delete(f"/api/channels/{cat['id']}", headers=a))
    await ok(api.delete(srv.url(f"/roles/{other}"), headers=a))
    await ok(api.delete(f"{url}/{m2['id']}", headers=a))
    await ok(api.post(srv.url("/transfer"), headers=a, json={"owner_id": str(ben.id)}))
    elsewhere = await community(api, dan, name="elsewhere")
    await ok(api.post(f"/api/invites/{elsewhere.invite}", headers=ben.headers))
    await say(api, dan, elsewhere.general, f"hi <@{ben.id}>")
    end = await say(api, ann, srv.general, "end")
    feed = await Feed.open(then, server, ben, token)
    fold.apply("ready", await feed.ready())
    await feed.fold_until(fold, end["id"])
    await feed.close()
    assert fold.servers[srv.id]["read_states"][staff]["unread"] == 3
    assert fold.servers[srv.id]["read_states"][secret]["mention_count"] == 1
    await assert_fold_is_rest(api, ben, fold)


async def test_a_reveal_too_large_to_repeat_says_to_ask_for_its_read_states(
    server: str, http: Http, make_user: MakeUser
) -> None:
    """Past the reveal budget the channels come as `channel.updated`, once each, and
    `channel.revealed` carries neither them nor their read states (counting those is
    what the budget bounds); the state route then has what was said in them."""
    api = http(server)
    ann, ben, cyd = [await make_user(n) for n in ("ann", "ben", "cyd")]
    srv = await community(api, ann, ben, cyd)
    vault = await ok(
        api.post(srv.url("/channels"), headers=ann.headers, json={"name": "v", "kind": "category"})
    )
    override = f"/api/channels/{vault['id']}/overrides/role/{srv.everyone_role}"
    await ok(api.put(override, headers=ann.headers, json={"allow": "0", "deny": str(VIEW)}))
    hidden = []
    for i in range(120):  # (2 members x 120 x 1.1 KB: past the 256 KiB budget)
        body = {"name": f"room-{i}", "topic": "t" * 1000, "parent_id": vault["id"]}
        hidden.append(
            (await ok(api.post(srv.url("/channels"), headers=ann.headers, json=body)))["id"]
        )
    for n, text in enumerate(("one", "@everyone two", "three")):
        await say(api, ann, hidden[n], text)
    stream = await sse(server, ben.access_token)
    try:
        fold = Fold(stream.ready.data)
        await fold.load(api, ben.headers)
        await ok(api.delete(override, headers=ann.headers))
        end = await say(api, ann, srv.general, "end")
        feed = Feed("sse", stream)
        await feed.fold_until(fold, end["id"])
    finally:
        await stream.close()
    assert "channel.updated" in fold.applied
    assert fold.unread_unknown == {*hidden, vault["id"]}  # (the category with its rooms)
    await fold.ask_again(api, ben.headers)
    reads = fold.servers[srv.id]["read_states"]
    counts = [reads.get(c, {}) for c in hidden[:4]]
    assert [(r.get("unread"), r.get("mention_count")) for r in counts] == [
        (1, 0),
        (1, 1),
        (1, 0),
        (0, 0),
    ]
    await assert_fold_is_rest(api, ben, fold)


async def test_a_deleted_message_folds_into_the_tombstone_history_shows(
    server: str, http: Http, make_user: MakeUser
) -> None:
    """Was: `message.deleted` did not say when: the tombstone a live client made had
    `deleted_at: null` where history has the time (a resumed client, replaying the
    scrubbed `message.created`, had it: the two clients disagreed)."""
    api = http(server)
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await community(api, ann, ben)
    gw = await GatewayClient.connect(server, ben.access_token)
    feed = Feed("gateway", gw)
    try:
        fold = Fold(await feed.ready())
        await fold.load(api, ben.headers)
        sent = await say(api, ann, srv.general, f"<@{ben.id}> look")
        url = f"/api/channels/{srv.general}/messages/{sent['id']}"
        await ok(api.put(f"{url}/reactions/x/@me", headers=ben.headers))
        await ok(api.put(f"/api/channels/{srv.general}/pins/{sent['id']}", headers=ann.headers))
        await ok(api.delete(url, headers=ann.headers))
        end = await say(api, ann, srv.general, "end")
        await feed.fold_until(fold, end["id"])
    finally:
        await feed.close()
    tombstone = await ok(api.get(url, headers=ben.headers))
    assert tombstone["deleted_at"] is not None
    assert fold.messages[srv.general][sent["id"]] == tombstone
    await assert_fold_is_rest(api, ben, fold)


async def test_a_transfer_leaves_a_timeout_that_ran_out_as_the_member_lists_hold_it(
    server: str, http: Http, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    """Was: handing the server to a member whose timeout had run out cleared it without
    a word (rightly not audited nor announced as a removal): REST then said
    `timed_out_until: null`, every member list kept from the events the old time."""
    api = http(server)
    ann, ben, cyd = [await make_user(n) for n in ("ann", "ben", "cyd")]
    srv = await community(api, ann, ben, cyd)
    async with pool.acquire() as conn:  # (a timeout that ran out a minute ago)
        await conn.execute(
            "UPDATE server_members SET timed_out_until = now() - interval '1 minute' "
            "WHERE server_id = $1 AND user_id = $2",
            uuid.UUID(srv.id),
            ben.id,
        )
    stream = await sse(server, cyd.access_token)
    try:
        fold = Fold(stream.ready.data)
        await fold.load(api, cyd.headers)
        assert fold.members[srv.id][str(ben.id)]["timed_out_until"] is not None
        await ok(
            api.post(srv.url("/transfer"), headers=ann.headers, json={"owner_id": str(ben.id)})
        )
        end = await say(api, ann, srv.general, "end")
        await Feed("sse", stream).fold_until(fold, end["id"])
    finally:
        await stream.close()
    assert fold.servers[srv.id]["owner_id"] == str(ben.id)
    await assert_fold_is_rest(api, cyd, fold)
