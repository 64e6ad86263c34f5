"""Who reacted, and the messages that mention me."""

from __future__ import annotations

import uuid

import asyncpg
import httpx

from tests import factories
from tests.factories import AppWith, MakeUser, community, pair, role


async def test_who_reacted_is_listed_in_order_and_paged(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    ann, ben, dm = await pair(client, make_user, "group")
    people = [ann, ben]
    for name in ("cid", "dan", "eve"):
        user = await make_user(name)
        await factories.befriend(ann, user)
        added = await client.put(
            f"/api/conversations/{dm}/participants/{user.id}", headers=ann.headers
        )
        assert added.status_code == 200
        people.append(user)
    message = await factories.say(client, ann, dm, "react to me")
    url = f"/api/channels/{dm}/messages/{message['id']}/reactions"
    for user in reversed(people):  # eve first, ann last
        assert (await client.put(f"{url}/👍/@me", headers=user.headers)).status_code == 204
    await client.put(f"{url}/🎉/@me", headers=ben.headers)
    first = await client.get(f"{url}/👍", params={"limit": 2}, headers=ann.headers)
    assert [u["username"] for u in first.json()] == ["eve", "dan"]
    assert first.headers["x-has-more"] == "true" and "email" not in first.json()[0]
    rest = await client.get(
        f"{url}/👍", params={"limit": 10, "after": first.json()[-1]["id"]}, headers=ann.headers
    )
    assert [u["username"] for u in rest.json()] == ["cid", "ben", "ann"]
    assert rest.headers["x-has-more"] == "false"
    # Was: the next page looked up its cursor's reaction, so one taken back (or taken
    # back and made again) in between ended the list: [] and "no more".
    link = first.headers["link"][1:].split(">")[0]
    for again in (False, True):
        assert (await client.delete(f"{url}/👍/@me", headers=people[3].headers)).status_code == 204
        if again:
            await client.put(f"{url}/👍/@me", headers=people[3].headers)
        goes_on = await client.get(link, headers=ann.headers)
        names = ["cid", "ben", "ann", "dan"] if again else ["cid", "ben", "ann"]
        assert [u["username"] for u in goes_on.json()] == names[:2], again
        assert goes_on.headers["x-has-more"] == "true"
    party = await client.get(f"{url}/🎉", headers=ann.headers)
    assert [u["username"] for u in party.json()] == ["ben"]
    stranger = await make_user("zed")
    hidden = await client.get(f"{url}/👍", headers=stranger.headers)
    assert hidden.status_code == 404 and hidden.json()["code"] == "CHANNEL_NOT_FOUND"
    missing = await client.get(
        f"/api/channels/{dm}/messages/00000000-0000-0000-0000-000000000001/reactions/👍",
        headers=ann.headers,
    )
    assert missing.status_code == 404 and missing.json()["code"] == "MESSAGE_NOT_FOUND"
    bad = await client.get(f"{url}/{'x' * 65}", headers=ann.headers)
    assert bad.status_code == 400 and bad.json()["code"] == "INVALID_EMOJI"


async def test_my_mentions_are_paged_newest_first_and_only_where_i_may_read(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    ann, ben, dm = await pair(client, make_user)
    group = (await factories.group(client, ben, ann, name="g"))["id"]
    said = []
    for i in range(5):
        where = dm if i % 2 == 0 else group
        said.append(await factories.say(client, ben, where, f"hey <@{ann.id}> {i}"))
    await factories.say(client, ben, dm, "no mention here")
    deleted = await factories.say(client, ben, dm, f"oops <@{ann.id}>")
    await client.delete(f"/api/channels/{dm}/messages/{deleted['id']}", headers=ben.headers)
    url = "/api/users/@me/mentions"
    first = await client.get(url, params={"limit": 3}, headers=ann.headers)
    assert [m["content"][-1] for m in first.json()] == ["4", "3", "2"]
    assert first.headers["x-has-more"] == "true"
    assert first.json()[0]["author"]["username"] == "ben"
    link = first.headers["link"][1:].split(">")[0]
    rest = await client.get(link, headers=ann.headers)
    assert [m["id"] for m in rest.json()] == [said[1]["id"], said[0]["id"]]
    assert rest.headers["x-has-more"] == "false"
    in_group = await client.get(url, params={"limit": 2}, headers=ann.headers)
    assert in_group.json()[-1]["channel_id"] == group
    # Leaving the group: its messages are no longer mine to read.
    left = await client.delete(f"/api/conversations/{group}/participants/@me", headers=ann.headers)
    assert left.status_code == 204
    after = (await client.get(url, headers=ann.headers)).json()
    assert [m["channel_id"] for m in after] == [dm, dm, dm]
    # Was: a page's cursor in the group left since matched nothing: [] and "no more".
    link = in_group.headers["link"][1:].split(">")[0]
    rest = await client.get(link, headers=ann.headers)
    assert [m["id"] for m in rest.json()] == [said[2]["id"], said[0]["id"]]
    unknown = await client.get(url, params={"before": group}, headers=ben.headers)
    assert unknown.status_code == 400 and unknown.json()["code"] == "INVALID_CURSOR"
    assert (await client.get(url, headers=ben.headers)).json() == []
    bad = await client.get(url, params={"limit": 0}, headers=ann.headers)
    assert bad.status_code == 400


async def test_a_mentions_cursor_is_a_message_that_may_have_been_listed(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """Was: any message of a channel one may read passed as `before` (200), where the
    README promised 400 INVALID_CURSOR for any but one that named you."""
    ann, ben, cid = [await make_user(n) for n in ("ann", "ben", "cid")]
    srv = await community(client, ben, ann, cid)  # (ben, the owner, may ping anyone)
    crew = await role(client, srv, ben, "crew", 0, ann)
    named = await factories.say(client, ben, srv.general, f"<@{ann.id}> first")
    everyone = await factories.say(client, ben, srv.general, "@everyone second")
    crewed = await factories.say(client, ben, srv.general, f"<@&{crew}> third")
    plain = await factories.say(client, ben, srv.general, "no one named")
    others = await factories.say(client, ben, srv.general, f"<@{cid.id}> only")
    mine = await factories.say(client, ann, srv.general, "@everyone of my own")
    edited = await factories.say(client, ben, srv.general, "will change")
    deleted = await factories.say(client, ben, srv.general, "will go")
    url = "/api/users/@me/mentions"

    async def page(who: factories.TestUser, before: dict[str, object]) -> httpx.Response:
        return await client.get(url, params={"before": before["id"]}, headers=who.headers)

    for cursor, older in ((crewed, [everyone, named]), (everyone, [named]), (named, [])):
        got = await page(ann, cursor)
        assert got.status_code == 200, cursor["content"]
        assert [m["id"] for m in got.json()] == [m["id"] for m in older]
    assert (await page(cid, crewed)).status_code == 400  # not in the role
    assert (await page(ann, others)).status_code == 400
    assert (await page(cid, others)).status_code == 200
    for who, cursor in ((ann, plain), (ann, mine), (ben, everyone)):  # (never one's own)
        refused = await page(who, cursor)
        assert refused.status_code == 400 and refused.json()["code"] == "INVALID_CURSOR"
        assert refused.json()["field"] == "before"
    # Changed since, it may have been listed before: paging goes on from it.
    changed = await client.patch(
        f"/api/channels/{srv.general}/messages/{edited['id']}",
        headers=ben.headers,
        json={"content": "changed"},
    )
    assert changed.status_code == 200
    gone = await client.delete(
        f"/api/channels/{srv.general}/messages/{deleted['id']}", headers=ben.headers
    )
    assert gone.status_code == 204
    for cursor in (edited, deleted):
        got = await page(ann, cursor)
        assert [m["id"] for m in got.json()] == [crewed["id"], everyone["id"], named["id"]]


async def test_mentions_sent_in_one_batch_come_in_their_order(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    """Was: a batch's messages share one time, and the list broke ties by message id:
    seq 200, 198, 199, ... where history says 200, 199, 198."""
    ann, ben, dm = await pair(client, make_user)
    said = [await factories.say(client, ben, dm, f"<@{ann.id}> {i}") for i in range(6)]
    await pool.execute(
        "UPDATE messages SET created_at = now() WHERE channel_id = $1", uuid.UUID(dm)
    )  # (as one batch writes them)
    url = "/api/users/@me/mentions"
    first = await client.get(url, params={"limit": 4}, headers=ann.headers)
    link = first.headers["link"][1:].split(">")[0]
    rest = await client.get(link, headers=ann.headers)
    listed = [m["id"] for m in first.json() + rest.json()]
    assert listed == [m["id"] for m in reversed(said)]


async def test_mentions_of_everyone_and_roles_need_the_permission(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    ann, ben, cid, eve = [await make_user(n) for n in ("ann", "ben", "cid", "eve")]
    srv = await community(client, ann, ben, cid, eve)
    crew = await role(client, srv, ann, "crew", 0, cid)
    # ben has neither MENTION_EVERYONE nor a mentionable role to mention: plain text.
    plain = await factories.say(
        client, ben, srv.general, f"@everyone look <@&{crew}> <@&{srv.everyone_role}>"
    )
    assert plain["mention_everyone"] is False and plain["mention_roles"] == []
    made = await client.patch(
        srv.url(f"/roles/{crew}"), headers=ann.headers, json={"mentionable": True}
    )
    assert made.status_code == 200
    pinged = await factories.say(client, ben, srv.general, f"<@&{crew}> and mail@here.io")
    assert pinged["mention_roles"] == [crew] and pinged["mention_everyone"] is False
    # The owner has every permission: @here counts, and so would an unmentionable role.
    loud = await factories.say(client, ann, srv.general, f"@here and <@&{crew}>")
    assert loud["mention_everyone"] is True and loud["mention_roles"] == [crew]
    # A role of another server, or no role at all, is plain text.
    other = await community(client, ann, name="other")
    elsewhere = await role(client, other, ann, "elsewhere", 0)
    stray = await factories.say(client, ann, srv.general, f"<@&{elsewhere}> <@&{ann.id}>")
    assert stray["mention_roles"] == [] and stray["mention_everyone"] is False

    async def mentions_of(who: factories.TestUser) -> list[str]:
        got = await client.get("/api/users/@me/mentions", headers=who.headers)
        assert got.status_code == 200
        return [m["id"] for m in got.json()]

    assert await mentions_of(cid) == [loud["id"], pinged["id"]]
    assert await mentions_of(eve) == [loud["id"]]  # not in the role
    assert await mentions_of(ben) == [loud["id"]]  # never one's own
    assert await mentions_of(ann) == []  # the @here is her own, and she is not in crew
    # An edit re-reads what the text mentions, with the editor's permissions.
    edited = await client.patch(
        f"/api/channels/{srv.general}/messages/{pinged['id']}",
        headers=ben.headers,
        json={"content": "@everyone nothing to see"},
    )
    assert edited.status_code == 200
    assert edited.json()["mention_roles"] == [] and edited.json()["mention_everyone"] is False
    assert await mentions_of(cid) == [loud["id"]]
    # Deleted: no longer a mention of anyone.
    gone = await client.delete(
        f"/api/channels/{srv.general}/messages/{loud['id']}", headers=ann.headers
    )
    assert gone.status_code == 204
    assert await mentions_of(eve) == []
    # In a conversation @everyone is plain text.
    dm = (await factories.group(client, ann, ben, name="g"))["id"]
    quiet = await factories.say(client, ann, dm, "@everyone hi")
    assert quiet["mention_everyone"] is False and quiet["mention_roles"] == []


async def test_my_mentions_count_as_searches(
    client: httpx.AsyncClient, make_user: MakeUser, app_with: AppWith
) -> None:
    """Each page looks through every channel one may see (2 s at 100,000 channels): it
    counts in the search bucket, not only in the API's 600 a minute."""
    ann = await make_user("ann")
    limited = await app_with(rate_search_user="2/60")
    asked = [
        (await limited.get("/api/users/@me/mentions", headers=ann.headers)).status_code
        for _ in range(3)
    ]
    assert asked == [200, 200, 429]
    searched = await limited.get("/api/search", params={"q": "x"}, headers=ann.headers)
    assert searched.status_code == 429  # (one bucket for both)


async def test_mentions_from_someone_i_blocked_do_not_ping_me(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """As on Discord, someone you blocked no longer pings you where you still meet (a
    server, a group made before the block): their mentions leave "my mentions" and the
    mention counts (the unread count keeps their messages), and come back with an
    unblock. Nothing of it shows to them."""
    ann, ben, zed = await make_user("ann"), await make_user("ben"), await make_user("zed")
    srv = await community(client, ann, zed)
    crew = (await factories.group(client, ben, ann, zed))["id"]
    in_server = await factories.say(client, zed, str(srv.general), f"<@{ann.id}> look")
    in_group = await factories.say(client, zed, crew, f"<@{ann.id}> look")
    url = "/api/users/@me/mentions"

    async def counts() -> tuple[list[str], dict[str, tuple[int, int]]]:
        mine = await client.get(url, headers=ann.headers)
        state = (await client.get("/api/users/@me/state", headers=ann.headers)).json()
        reads = {c["id"]: (c["unread"], c["mention_count"]) for c in state["conversations"]}
        for s in state["servers"]:
            for r in s["read_states"]:
                reads[r["channel_id"]] = (r["unread"], r["mention_count"])
        group = (await client.get(f"/api/conversations/{crew}", headers=ann.headers)).json()
        assert (group["unread"], group["mention_count"]) == reads[crew]
        return [m["id"] for m in mine.json()], reads

    listed, reads = await counts()
    assert listed == [in_group["id"], in_server["id"]]
    assert reads[crew] == (1, 1) and reads[str(srv.general)] == (1, 1)
    blocked = await client.put(f"/api/users/@me/blocks/{zed.id}", headers=ann.headers)
    assert blocked.status_code == 204
    listed, reads = await counts()
    assert listed == []
    assert reads[crew] == (1, 0) and reads[str(srv.general)] == (1, 0)
    # Zed's own view of the message is as it was: the block is not told.
    his = await client.get(f"/api/channels/{crew}/messages/{in_group['id']}", headers=zed.headers)
    assert his.json()["mentions"] == [str(ann.id)]
    await client.delete(f"/api/users/@me/blocks/{zed.id}", headers=ann.headers)
    listed, reads = await counts()
    assert listed == [in_group["id"], in_server["id"]] and reads[crew] == (1, 1)
