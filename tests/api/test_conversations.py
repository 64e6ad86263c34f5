from __future__ import annotations

from uuid import UUID

import asyncpg
import httpx

from tests import factories
from tests.factories import MakeUser, pair
from xfchat.domain import messages_purge


async def test_a_direct_conversation_is_one_per_pair(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    ann, ben = await make_user("ann"), await make_user("ben")
    first = await client.post(
        "/api/conversations", headers=ann.headers, json={"kind": "direct", "user_id": str(ben.id)}
    )
    again = await client.post(
        "/api/conversations", headers=ben.headers, json={"kind": "direct", "user_id": str(ann.id)}
    )
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    assert sorted(first.json()["participant_ids"]) == sorted([str(ann.id), str(ben.id)])
    to_self = await client.post(
        "/api/conversations", headers=ann.headers, json={"kind": "direct", "user_id": str(ann.id)}
    )
    assert to_self.status_code == 400 and to_self.json()["code"] == "CANNOT_MESSAGE_SELF"


async def test_blocked_users_cannot_open_or_use_a_direct_conversation(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    ann, ben, dm = await pair(client, make_user)
    url = f"/api/channels/{dm}/messages"
    before = (await client.post(url, headers=ann.headers, json={"content": "hi"})).json()
    await client.put(f"/api/users/@me/blocks/{ann.id}", headers=ben.headers)
    edited = await client.patch(
        f"{url}/{before['id']}", headers=ann.headers, json={"content": "still here"}
    )
    assert edited.status_code == 403 and edited.json()["code"] == "CANNOT_MESSAGE_USER"
    history = (await client.get(url, headers=ben.headers)).json()
    assert [m["content"] for m in history] == ["hi"]  # readable, not writable
    opened = await client.post(
        "/api/conversations", headers=ann.headers, json={"kind": "direct", "user_id": str(ben.id)}
    )
    assert opened.status_code == 403 and opened.json()["code"] == "CANNOT_MESSAGE_USER"
    sent = await client.post(
        f"/api/channels/{dm}/messages", headers=ann.headers, json={"content": "hello?"}
    )
    assert sent.status_code == 403 and sent.json()["code"] == "CANNOT_MESSAGE_USER"


async def test_group_owner_adds_removes_and_ownership_passes_on_leave(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    ann, ben, cid, dan = [await make_user(n) for n in ("ann", "ben", "cid", "dan")]
    group = await factories.group(client, ann, ben, cid, name="crew")
    gid = group["id"]
    assert group["owner_id"] == str(ann.id) and len(group["participant_ids"]) == 3

    not_owner = await client.put(
        f"/api/conversations/{gid}/participants/{dan.id}", headers=ben.headers
    )
    assert not_owner.status_code == 403 and not_owner.json()["code"] == "NOT_CONVERSATION_OWNER"
    await factories.befriend(ann, dan)
    added = await client.put(f"/api/conversations/{gid}/participants/{dan.id}", headers=ann.headers)
    assert added.status_code == 200 and str(dan.id) in added.json()["participant_ids"]
    assert (await client.get(f"/api/conversations/{gid}", headers=dan.headers)).status_code == 200

    removed = await client.delete(
        f"/api/conversations/{gid}/participants/{cid.id}", headers=ann.headers
    )
    assert removed.status_code == 204
    gone = await client.get(f"/api/conversations/{gid}", headers=cid.headers)
    assert gone.status_code == 404 and gone.json()["code"] == "CONVERSATION_NOT_FOUND"

    left = await client.delete(f"/api/conversations/{gid}/participants/@me", headers=ann.headers)
    assert left.status_code == 204
    after = (await client.get(f"/api/conversations/{gid}", headers=ben.headers)).json()
    assert after["owner_id"] == str(ben.id)
    assert sorted(after["participant_ids"]) == sorted([str(ben.id), str(dan.id)])

    renamed = await client.patch(
        f"/api/conversations/{gid}", headers=dan.headers, json={"name": "new"}
    )
    assert renamed.status_code == 200 and renamed.json()["name"] == "new"


async def test_the_last_one_out_deletes_the_group_and_what_it_held(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection, pool: asyncpg.Pool
) -> None:
    """Was: a group everyone had left stayed for ever with its messages and files,
    reachable by nobody and counted by nothing (so past the conversation cap). (Its
    messages and files are purged after: migration 0055.)"""
    ann, ben = await make_user("ann"), await make_user("ben")
    group = await factories.group(client, ann, ben, name="crew")
    gid = group["id"]
    sent = await client.post(
        f"/api/channels/{gid}/messages",
        headers=ann.headers,
        data={"content": "bye"},
        files=[("files", ("a.txt", b"abc", "text/plain"))],
    )
    assert sent.status_code == 201, sent.text
    for who in (ben, ann):
        left = await client.delete(
            f"/api/conversations/{gid}/participants/@me", headers=who.headers
        )
        assert left.status_code == 204
        kept = await conn.fetchval("SELECT count(*) FROM channels WHERE id = $1", UUID(gid))
        assert kept == (1 if who is ben else 0)
    assert await messages_purge.purge_deleted_channels(pool) == 1
    assert await conn.fetchval("SELECT count(*) FROM messages") == 0
    assert await conn.fetchval("SELECT count(*) FROM files") == 0
    types = [t for t, _ in await factories.events_of(conn, "user", ann.id)]
    assert types[-1] == "conversation.removed"


async def test_a_group_holds_at_most_25(client: httpx.AsyncClient, make_user: MakeUser) -> None:
    owner = await make_user()
    others = [await make_user() for _ in range(25)]
    await factories.befriend(owner, *others)
    response = await client.post(
        "/api/conversations",
        headers=owner.headers,
        json={"kind": "group", "participant_ids": [str(o.id) for o in others]},
    )
    assert response.status_code == 400 and response.json()["code"] == "TOO_MANY_PARTICIPANTS"
    ok = await client.post(
        "/api/conversations",
        headers=owner.headers,
        json={"kind": "group", "participant_ids": [str(o.id) for o in others[:24]]},
    )
    assert ok.status_code == 201 and len(ok.json()["participant_ids"]) == 25
    full = ok.json()["id"]
    extra = await make_user()
    await factories.befriend(owner, extra)
    over = await client.put(
        f"/api/conversations/{full}/participants/{extra.id}", headers=owner.headers
    )
    assert over.status_code == 400 and over.json()["code"] == "TOO_MANY_PARTICIPANTS"


async def test_unknown_participants_are_refused(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    owner = await make_user()
    response = await client.post(
        "/api/conversations",
        headers=owner.headers,
        json={"kind": "group", "participant_ids": ["00000000-0000-0000-0000-0000000000aa"]},
    )
    assert response.status_code == 400 and response.json()["code"] == "INVALID_PARTICIPANTS"


async def test_the_list_shows_last_message_and_unread_and_mention_counts(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    ann, ben, dm = await pair(client, make_user)
    group = (await factories.group(client, ann, ben))["id"]
    await factories.say(client, ben, dm, "before mine")
    await factories.say(client, ann, dm, "mine")  # sending marks the channel read
    for text in ("one", f"two <@{ann.id}>", f"three <@{ann.id}>"):
        await factories.say(client, ben, dm, text)
    await factories.say(client, ben, group, f"in the group <@{ben.id}>")
    listed = (await client.get("/api/conversations", headers=ann.headers)).json()
    assert [c["id"] for c in listed] == sorted([group, dm])  # by id (the state: by activity)
    by_id = {c["id"]: c for c in listed}
    assert by_id[dm]["unread"] == 3 and by_id[dm]["last_read_seq"] == 2
    assert by_id[dm]["mention_count"] == 2 and by_id[group]["mention_count"] == 0
    last = by_id[dm]["last_message"]
    assert last["content"] == f"three <@{ann.id}>" and last["seq"] == 5
    assert last["author"]["username"] == "ben"  # the same shape as every message
    assert by_id[group]["unread"] == 1
    profiles = {p["username"]: p for p in by_id[dm]["participants"]}
    assert set(profiles) == {"ann", "ben"} and "email" not in profiles["ben"]
    alone = await client.get(f"/api/conversations/{dm}", headers=ann.headers)
    assert alone.json() == by_id[dm]  # one conversation: the same fields as the list
    ack = await client.put(f"/api/channels/{dm}/ack", headers=ann.headers, json={"seq": 4})
    assert ack.status_code == 200 and ack.json()["last_read_seq"] == 4
    listed = {
        c["id"]: c for c in (await client.get("/api/conversations", headers=ann.headers)).json()
    }
    assert listed[dm]["unread"] == 1 and listed[dm]["last_read_seq"] == 4
    assert listed[dm]["mention_count"] == 1
    ben_view = (await client.get(f"/api/conversations/{dm}", headers=ben.headers)).json()
    assert ben_view["unread"] == 0 and ben_view["last_read_seq"] == 5
    # Was: a deleted newest message stayed the last one, an empty tombstone.
    await client.delete(f"/api/channels/{dm}/messages/{last['id']}", headers=ben.headers)
    after = (await client.get(f"/api/conversations/{dm}", headers=ann.headers)).json()
    assert after["last_message"]["content"] == f"two <@{ann.id}>"


async def test_non_participants_get_404_for_everything(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    ann, _, dm = await pair(client, make_user)
    eve = await make_user("eve")
    message = await factories.say(client, ann, dm, "private")
    base = f"/api/conversations/{dm}"
    channel = f"/api/channels/{dm}"
    calls = [
        ("GET", base, None, "CONVERSATION_NOT_FOUND"),
        ("PATCH", base, {"name": "x"}, "CONVERSATION_NOT_FOUND"),
        ("DELETE", f"{base}/participants/@me", None, "CONVERSATION_NOT_FOUND"),
        ("GET", f"{channel}/messages", None, "CHANNEL_NOT_FOUND"),
        ("POST", f"{channel}/messages", {"content": "hi"}, "CHANNEL_NOT_FOUND"),
        (
            "PUT",
            f"{channel}/messages/00000000-0000-0000-0000-00000000000e",
            {"content": "hi"},
            "CHANNEL_NOT_FOUND",
        ),
        ("GET", f"{channel}/messages/{message['id']}", None, "CHANNEL_NOT_FOUND"),
        ("PATCH", f"{channel}/messages/{message['id']}", {"content": "x"}, "CHANNEL_NOT_FOUND"),
        ("DELETE", f"{channel}/messages/{message['id']}", None, "CHANNEL_NOT_FOUND"),
        ("GET", f"{channel}/messages/{message['id']}/edits", None, "CHANNEL_NOT_FOUND"),
        ("PUT", f"{channel}/messages/{message['id']}/reactions/x/@me", None, "CHANNEL_NOT_FOUND"),
        ("PUT", f"{channel}/ack", {"seq": 1}, "CHANNEL_NOT_FOUND"),
        ("GET", f"{channel}/read-states", None, "CHANNEL_NOT_FOUND"),
        ("POST", f"{channel}/typing", None, "CHANNEL_NOT_FOUND"),
    ]
    for method, url, body, code in calls:
        response = await client.request(method, url, headers=eve.headers, json=body)
        assert response.status_code == 404, (method, url, response.text)
        assert response.json()["code"] == code, (method, url)
    subscribe = await client.get(
        f"{channel}/messages", headers={**eve.headers, "Subscribe": "true"}
    )
    assert subscribe.status_code == 404 and subscribe.json()["code"] == "CHANNEL_NOT_FOUND"


async def test_the_list_comes_a_page_at_a_time_by_id_whatever_is_said_meanwhile(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """Was: one answer with every conversation (75.9 MB for 1,000 large groups). By id,
    a message sent while a client pages moves nothing: each conversation comes once."""
    ann, ben, dm = await pair(client, make_user)
    groups = [(await factories.group(client, ann, ben, name=f"g{i}"))["id"] for i in range(4)]
    everyone = sorted([dm, *groups])
    first = await client.get("/api/conversations?limit=2", headers=ann.headers)
    assert first.status_code == 200 and first.headers["x-has-more"] == "true"
    assert [c["id"] for c in first.json()] == everyone[:2]
    for later in everyone[2:]:  # activity that would put them all first
        await factories.say(client, ben, later, "now")
    rest = await factories.pages(client, first.links["next"]["url"], ann.headers)
    assert [c["id"] for r in [first, *rest] for c in r.json()] == everyone
    assert [len(r.json()) for r in rest] == [2, 1]
    whole = await client.get("/api/conversations", headers=ann.headers)  # default 50
    assert [c["id"] for c in whole.json()] == everyone and whole.headers["x-has-more"] == "false"
    too_many = await client.get("/api/conversations?limit=101", headers=ann.headers)
    assert too_many.status_code == 400


async def test_a_new_groups_people_come_in_the_order_its_get_lists_them(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    """A client developer's find: the answer and `conversation.created` listed the owner
    first, GET lists everyone by when they joined, then by id (all at once here): a
    client replacing the event's conversation by the GET's saw a change that was none."""
    people = sorted([await make_user(f"p{i}") for i in range(4)], key=lambda u: u.id)
    owner, *others = people[::-1]  # (the owner's id the highest: listed first before)
    made = await factories.group(client, owner, *others)
    got = await client.get(f"/api/conversations/{made['id']}", headers=owner.headers)
    assert made["participant_ids"] == got.json()["participant_ids"] == [str(u.id) for u in people]
    assert [p["id"] for p in made["participants"]] == got.json()["participant_ids"]
    async with pool.acquire() as conn:
        told = await factories.events_of(conn, "user", owner.id)
    created = [data for kind, data in told if kind == "conversation.created"]
    assert created[-1]["participant_ids"] == made["participant_ids"], created


async def test_being_added_back_to_a_group_tells_my_read_state_and_counts_as_the_list_does(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    ann, ben, cid = [await make_user(n) for n in ("ann", "ben", "cid")]
    gid = (await factories.group(client, ann, ben, cid))["id"]
    await factories.say(client, ben, gid, f"hi <@{cid.id}>")
    left = await client.delete(
        f"/api/conversations/{gid}/participants/{cid.id}", headers=cid.headers
    )
    assert left.status_code == 204
    await factories.say(client, ben, gid, "said while cid was away")
    back = await client.put(f"/api/conversations/{gid}/participants/{cid.id}", headers=ann.headers)
    assert back.status_code == 200, back.text
    listed = (await client.get(f"/api/conversations/{gid}", headers=cid.headers)).json()
    assert (listed["last_read_seq"], listed["unread"], listed["mention_count"]) == (0, 2, 1)
    # What cid's clients hear of it says the same: with nothing to count from (the
    # messages came before), a client taking the event alone showed the group read.
    (added,) = [
        d for t, d in await factories.events_of(conn, "user", cid.id) if t == "conversation.added"
    ]
    assert added["id"] == gid
    assert (added["last_read_seq"], added["unread"], added["mention_count"]) == (0, 2, 1)
