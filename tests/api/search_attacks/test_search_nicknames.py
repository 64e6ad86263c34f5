"""`from:` by server nickname: in a search confined to one server (its `server_id`, or
one of its channels) a from: names whoever has that username and every member whose
nickname there it is; nowhere else does a nickname name anyone, and a name nobody has
finds nothing, as before."""

from __future__ import annotations

from typing import Any

import httpx

from tests import factories
from tests.api.search_attacks.conftest import search, sql
from tests.factories import Community, MakeUser, TestUser, community
from xfchat.domain.search import MAX_NAMESAKES


async def nickname(
    client: httpx.AsyncClient, srv: Community, by: TestUser, who: Any, name: str
) -> None:
    done = await client.patch(
        srv.url(f"/members/{who.id}"), headers=by.headers, json={"nickname": name}
    )
    assert done.status_code == 200, done.text


async def found(raw: httpx.AsyncClient, who: TestUser, q: str, **scope: Any) -> list[str]:
    """The contents `who` finds for `q`, sorted."""
    response = await search(raw, who, q=q, sort="recent", **scope)
    assert response.status_code == 200, (q, scope, response.text)
    return sorted(r["message"]["content"] for r in response.json()["results"])


async def test_from_a_nickname_finds_its_member_in_that_servers_search_only(
    client: httpx.AsyncClient, raw: httpx.AsyncClient, make_user: MakeUser
) -> None:
    ann, ben, cid = await make_user("ann"), await make_user("ben"), await make_user("cid")
    srv = await community(client, ann, ben, cid)
    other = await community(client, ann, ben, name="other")  # ben has no nickname there
    hers = await community(client, cid, ben, name="hers")  # ann is not in it
    await nickname(client, srv, ann, ben, "Benny")
    await nickname(client, hers, cid, ben, "Ghost")
    await nickname(client, hers, cid, cid, "Ann")
    await factories.say(client, ben, srv.general, "kiwi in srv")
    await factories.say(client, cid, srv.general, "kiwi by cid")
    await factories.say(client, ben, other.general, "kiwi in other")
    dm = (await factories.direct(client, ann, ben))["id"]
    await factories.say(client, ben, dm, "kiwi in dm")
    group = (await factories.group(client, ann, ben, cid))["id"]
    await factories.say(client, ben, group, "kiwi in group")

    # in the server, and in one of its channels: case aside
    for q in ("from:Benny", "from:benny", "from:@BENNY", "kiwi from:benny"):
        assert await found(raw, ann, q, server_id=srv.id) == ["kiwi in srv"], q
    assert await found(raw, ann, "from:benny", channel_id=srv.general) == ["kiwi in srv"]
    assert await found(raw, ann, "kiwi -from:benny", server_id=srv.id) == ["kiwi by cid"]
    # the username still names him there
    assert await found(raw, ann, "from:ben", server_id=srv.id) == ["kiwi in srv"]

    # nowhere else: not everywhere at once, not in a conversation, not in a server
    # where he has no such nickname; a nickname of a server ann is not in names nobody
    # (as a name nobody has: nothing found, however it is negated)
    for q, scope in (
        ("from:benny", {}),
        ("from:benny", {"conversation_id": dm}),
        ("from:benny", {"conversation_id": group}),
        ("from:benny", {"server_id": other.id}),
        ("from:benny", {"channel_id": other.general}),
        ("from:ghost", {"server_id": srv.id}),
        ("from:ghost", {"server_id": other.id}),
        ("from:ghost", {}),
    ):
        response = await search(raw, ann, q=q, **scope)
        assert response.status_code == 200, response.text
        assert response.json() == {
            "results": [],
            "total": 0,
            "total_capped": False,
            "next_cursor": None,
        }, (q, scope)
    assert await found(raw, ann, "kiwi -from:benny") == sorted(
        ["kiwi in srv", "kiwi by cid", "kiwi in other", "kiwi in dm", "kiwi in group"]
    )
    # cid's nickname "Ann" in a server ann is not in is no name of hers anywhere else
    assert await found(raw, ann, "from:ann", server_id=srv.id) == []
    # and the scope ann may not see is the usual 404, from: or not
    hidden = await search(raw, ann, q="from:ghost", server_id=hers.id)
    assert hidden.status_code == 404, hidden.text


async def test_from_a_name_several_have_finds_each_of_them(
    client: httpx.AsyncClient, raw: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """A nickname that is another's username, and a nickname two members share: from:
    finds each of them (as several from: filters find any of them), -from: leaves out
    each of them, and one who is both is counted once."""
    ann, ben, cid = await make_user("ann"), await make_user("ben"), await make_user("cid")
    dan, eve = await make_user("dan"), await make_user("eve")
    srv = await community(client, ann, ben, cid, dan, eve)
    await nickname(client, srv, ann, ben, "cid")  # cid's username
    await nickname(client, srv, ann, dan, "Twin")
    await nickname(client, srv, ann, eve, "twin")
    await nickname(client, srv, ann, cid, "CID")  # his own username, as nickname
    for who in (ann, ben, cid, dan, eve):
        await factories.say(client, who, srv.general, f"kiwi by {who.username}")
    everyone = ["kiwi by ann", "kiwi by ben", "kiwi by cid", "kiwi by dan", "kiwi by eve"]

    def but(*left_out: str) -> list[str]:
        return [m for m in everyone if m.removeprefix("kiwi by ") not in left_out]

    assert await found(raw, ann, "from:cid", server_id=srv.id) == ["kiwi by ben", "kiwi by cid"]
    assert await found(raw, ann, "from:twin", server_id=srv.id) == ["kiwi by dan", "kiwi by eve"]
    assert await found(raw, ann, "from:twin from:ann", server_id=srv.id) == but("ben", "cid")
    assert await found(raw, ann, "kiwi -from:cid", server_id=srv.id) == but("ben", "cid")
    assert await found(raw, ann, "kiwi -from:twin -from:ann", server_id=srv.id) == but(
        "ann", "dan", "eve"
    )
    # counted once: cid by username and by nickname, and named twice
    response = await search(raw, ann, q="from:cid from:CID", server_id=srv.id)
    assert response.status_code == 200, response.text
    assert response.json()["total"] == 2
    # outside the server only the username names anyone
    assert await found(raw, ann, "from:cid") == ["kiwi by cid"]


async def test_a_nickname_more_members_have_than_the_bound_is_a_400(
    client: httpx.AsyncClient, raw: httpx.AsyncClient, make_user: MakeUser, db_url: str
) -> None:
    """One name never puts a crowd in the window's author filter: at MAX_NAMESAKES
    members it finds them all; one more is INVALID_QUERY at the name, negated too."""
    ann = await make_user("ann")
    srv = await community(client, ann)
    await sql(
        db_url,
        """
        WITH u AS (
            INSERT INTO users (username, email, email_key, password_hash)
            SELECT 'u' || i, 'u' || i || '@x.org', 'u' || i || '@x.org', 'h'
            FROM generate_series(1, $2::int) i RETURNING id)
        INSERT INTO server_members (server_id, user_id, nickname)
        SELECT $1::uuid, u.id, 'Crowd' FROM u
        """,
        srv.id,
        MAX_NAMESAKES,
    )
    await factories.say(client, ann, srv.general, "kiwi")
    response = await search(raw, ann, q="kiwi -from:crowd", server_id=srv.id)
    assert response.status_code == 200, response.text
    assert response.json()["total"] == 1
    await sql(
        db_url,
        "UPDATE server_members SET nickname = 'crowd' WHERE server_id = $1::uuid AND user_id = $2",
        srv.id,
        ann.id,
    )
    for q, at in (("from:crowd", 5), ("kiwi -from:CROWD", 11)):
        response = await search(raw, ann, q=q, server_id=srv.id)
        assert response.status_code == 400, response.text
        assert response.json()["code"] == "INVALID_QUERY"
        assert response.json()["position"] == at
    # (outside the server the nickname names nobody, as before)
    response = await search(raw, ann, q="kiwi -from:crowd")
    assert response.status_code == 200, response.text
    assert response.json()["total"] == 1
