"""Every paged list and every cursor, attacked: ties of the sort key, items inserted,
edited and deleted between pages, hostile limits and cursors (never a 500, never a
silently wrong page), and cursors naming what the caller may not see."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import asyncpg
import httpx

from tests import factories
from tests.factories import AppWith, MakeUser, community, override, role, server_channel
from xfchat.domain.permissions import Permission as P

NOWHERE = "00000000-0000-4000-8000-000000000000"
REQUESTS = "/api/users/@me/friend-requests"
MENTIONS = "/api/users/@me/mentions"


def next_url(page: httpx.Response) -> str | None:
    if page.headers["x-has-more"] != "true":
        assert "link" not in page.headers
        return None
    return str(page.links["next"]["url"])


async def walk(client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> list[Any]:
    """Every item of a paged list, following `Link` while `X-Has-More` says so."""
    seen: list[Any] = []
    next_page: str | None = url
    for _ in range(200):
        if next_page is None:
            return seen
        page = await client.get(next_page, headers=headers)
        assert page.status_code == 200, page.text
        seen += page.json()
        next_page = next_url(page)
    raise AssertionError("a list that never ends")


async def test_the_audit_log_pages_on_past_entries_one_may_not_see(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """An auditor who cannot see a channel gets its entries left out; the pages still go
    on to the oldest entry (was: a page shortened by a hidden entry said `X-Has-More:
    false` and gave no `Link`, so every older entry was lost to the client)."""
    ann, aud = await make_user("ann"), await make_user("aud")
    srv = await community(client, ann, aud)
    await role(client, srv, ann, "auditors", int(P.VIEW_AUDIT_LOG), aud)
    staff = await server_channel(client, srv, ann, "staff")
    await override(client, ann, staff["id"], "member", aud.id, deny=int(P.VIEW_CHANNEL))
    for i in range(3):  # entries about the hidden channel, newer than the rest
        changed = await client.patch(
            f"/api/channels/{staff['id']}", headers=ann.headers, json={"topic": f"t{i}"}
        )
        assert changed.status_code == 200, changed.text
    everything = [e["id"] for e in await walk(client, srv.url("/audit-log"), ann.headers)]
    shown = await client.get(srv.url("/audit-log?limit=100"), headers=aud.headers)
    visible = [e["id"] for e in shown.json()]
    assert len(visible) < len(everything) and visible == everything[-len(visible) :]
    for limit in (1, 2, 3, 4):
        paged = await walk(client, srv.url(f"/audit-log?limit={limit}"), aud.headers)
        assert [e["id"] for e in paged] == visible, limit


HOSTILE_INTS = ["", "x", "1e3", "-1", "1.5", "0x10", "+-1", "true", "٣", "1" * 40, "NaN"]
HOSTILE_TIMES = [
    "",
    "x",
    "2026-13-01T00:00:00Z",
    "2026-02-30T00:00:00Z",
    "9999-12-31T23:59:59.999999-23:59",
    "0001-01-01T00:00:00+23:59",
    "1e400",
    "-1e400",
    "99999999999999999999999",
    "infinity",
    "-infinity",
    "now",
    "NaN",
    "2026-01-01T00:00:00Z" + "0" * 5000,
]


QUERY = {"/api/users/search": {"q": "a"}, "/api/search": {"q": "hi"}}


def refused(r: httpx.Response, *codes: str) -> bool:
    body = r.json()
    return (
        400 <= r.status_code < 500
        and set(body) >= {"code", "message"}
        and (not codes or body["code"] in codes)
    )


async def test_hostile_limits_and_cursors_are_4xx_with_a_code_never_a_500(
    make_user: MakeUser, app_with: AppWith
) -> None:
    """Every list's `limit` and cursor, malformed, out of range, past the documented
    maximum, or mixed: a 4xx with `{code, message}` (never 429 here: the limits are
    raised), never a 500; the documented maximum itself is served."""
    client = await app_with(rate_search_user="1000/60")
    ann, ben, dm = await factories.pair(client, make_user)
    srv = await community(client, ann, ben)
    said = await factories.say(client, ann, dm, f"hi <@{ben.id}>")
    reactions = f"/api/channels/{dm}/messages/{said['id']}/reactions/👍"
    assert (await client.put(f"{reactions}/@me", headers=ann.headers)).status_code == 204
    history = f"/api/channels/{dm}/messages"
    lists: dict[str, dict[str, list[str]]] = {
        history: {"before": HOSTILE_INTS, "after": HOSTILE_INTS, "around": HOSTILE_INTS},
        srv.url("/members"): {"after": ["x", "@me", "1"]},
        srv.url("/bans"): {"after": ["x", "@me"]},
        srv.url("/audit-log"): {"before": [*HOSTILE_INTS, "0", str(2**63)]},
        "/api/users/@me/blocks": {"after": ["x", "@me"]},
        "/api/conversations": {"after": ["x", "@me"]},
        "/api/users/@me/mentions": {"before": ["x", "@me", NOWHERE, dm]},
        reactions: {"after": ["x", "@me"], "after_at": HOSTILE_TIMES},
        "/api/users/@me/friend-requests": {"before_at": HOSTILE_TIMES},
        "/api/users/@me/usage": {"days": [*HOSTILE_INTS, "0", "367"]},
        "/api/users/search": {},
        "/api/search": {"cursor": ["x", "=" * 10, "AAAA", "x" * 401]},
    }
    limits = ["0", "-1", "1e3", "10.5", "", "x", "1" * 40, "٣", "NaN"]
    tried = 0
    for url, params in lists.items():
        for name, values in {"limit": limits, **params}.items():
            if url.endswith("/usage") and name == "limit":
                continue
            for value in values:
                extra: dict[str, str] = {**QUERY.get(url, {}), name: value}
                if name == "before_at":
                    extra["before"] = NOWHERE
                if name == "after_at":
                    extra["after"] = str(ben.id)
                r = await client.get(url, params=extra, headers=ann.headers)
                assert refused(r) and r.status_code != 429, (url, name, value[:50], r.text[:300])
                tried += 1
    # Too big for the documented maximum.
    for url, top in (
        (history, 100),
        (srv.url("/members"), 1000),
        (srv.url("/bans"), 1000),
        (srv.url("/audit-log"), 100),
        ("/api/users/@me/blocks", 1000),
        ("/api/conversations", 100),
        ("/api/users/@me/mentions", 100),
        (reactions, 100),
        ("/api/users/@me/friend-requests", 100),
        ("/api/users/search", 25),
        ("/api/search", 100),
    ):
        query = QUERY.get(url, {})
        fits = await client.get(url, params={**query, "limit": top}, headers=ann.headers)
        assert fits.status_code == 200, (url, fits.text)
        over = await client.get(url, params={**query, "limit": top + 1}, headers=ann.headers)
        assert refused(over, "VALIDATION_ERROR") and over.json()["field"] == "limit", url
    # More than one cursor where one is allowed.
    for params in (
        {"before": "5", "after": "1"},
        {"before": "5", "around": "3"},
        {"after": "1", "around": "3"},
        {"before": "5", "after": "1", "around": "3"},
    ):
        mixed = await client.get(history, params=params, headers=ann.headers)
        assert refused(mixed, "INVALID_PAGE"), (params, mixed.text)
    assert tried > 150


async def test_cursor_times_without_a_zone_are_refused_not_read_in_the_servers_zone(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """Was: a cursor time without a zone (its `+00:00` stripped, or a bare date) was
    read in the server process's own zone: 200 with a page hours off, skipping or
    repeating what it passed over."""
    ann, ben, dm = await factories.pair(client, make_user)
    said = await factories.say(client, ann, dm, "react")
    url = f"/api/channels/{dm}/messages/{said['id']}/reactions/👍"
    assert (await client.put(f"{url}/@me", headers=ann.headers)).status_code == 204
    for naive in ("2026-11-25T10:00:00", "2026-11-25T10:00:00.123456", "2026-11-25"):
        page = await client.get(
            url, params={"after": str(ann.id), "after_at": naive}, headers=ann.headers
        )
        assert refused(page, "INVALID_PAGE") and page.json()["field"] == "after_at", naive
        requests = await client.get(
            "/api/users/@me/friend-requests",
            params={"before": NOWHERE, "before_at": naive},
            headers=ann.headers,
        )
        assert refused(requests, "INVALID_PAGE") and requests.json()["field"] == "before_at"
    for zoned in ("2026-11-25T10:00:00Z", "2026-11-25T10:00:00+09:00", "1700000000"):
        page = await client.get(
            url, params={"after": str(ann.id), "after_at": zoned}, headers=ann.headers
        )
        assert page.status_code == 200, (zoned, page.text)
    # Far ends with a zone are positions like any other: all of it, or nothing.
    asked = await client.post(REQUESTS, headers=ben.headers, json={"username": "ann"})
    assert asked.status_code == 201, asked.text
    for at, count in (("9999-12-31T23:59:59.999999+00:00", 1), ("0001-01-01T00:00:00Z", 0)):
        page = await client.get(
            REQUESTS, params={"before": NOWHERE, "before_at": at}, headers=ann.headers
        )
        assert page.status_code == 200 and len(page.json()["incoming"]) == count, page.text
        assert page.headers["x-has-more"] == "false"


async def test_a_reactions_cursor_is_whole_or_names_a_reaction_still_there(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """Was: `after_at` without `after` was ignored (the first page again: every reactor
    twice), and `after` alone naming a reaction taken back gave `[]` and "no more" while
    others followed it."""
    ann, ben, dm = await factories.pair(client, make_user, "group")
    said = await factories.say(client, ann, dm, "react")
    url = f"/api/channels/{dm}/messages/{said['id']}/reactions/👍"
    for who in (ann, ben):
        assert (await client.put(f"{url}/@me", headers=who.headers)).status_code == 204
    first = await client.get(url, params={"limit": 1}, headers=ann.headers)
    assert [u["id"] for u in first.json()] == [str(ann.id)]
    at = first.links["next"]["url"].split("after_at=")[1]
    alone = await client.get(f"{url}?after_at={at}", headers=ann.headers)
    assert refused(alone, "INVALID_PAGE") and alone.json()["field"] == "after_at", alone.text
    by_id = await client.get(url, params={"after": str(ann.id)}, headers=ann.headers)
    assert [u["id"] for u in by_id.json()] == [str(ben.id)]
    assert (await client.delete(f"{url}/@me", headers=ann.headers)).status_code == 204
    gone = await client.get(url, params={"after": str(ann.id)}, headers=ann.headers)
    assert refused(gone, "INVALID_CURSOR") and gone.json()["field"] == "after", gone.text
    never = await client.get(url, params={"after": NOWHERE}, headers=ann.headers)
    assert refused(never, "INVALID_CURSOR"), never.text
    linked = await client.get(first.links["next"]["url"], headers=ann.headers)
    assert [u["id"] for u in linked.json()] == [str(ben.id)]  # the Link goes on


LIMITS = (1, 2, 3)


async def test_items_sharing_a_time_page_once_each_in_a_total_order(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool, app_with: AppWith
) -> None:
    """Friend requests, who reacted and mentions, each with every item's time forced
    equal in the database: the cursor carries the tie-breaker, so at every page size each
    item comes exactly once, in the order of the whole list."""
    fast = await app_with(rate_search_user="1000/60", rate_messages_user="1000/60")
    ann, ben, dm = await factories.pair(client, make_user, "group")
    group = (await factories.group(client, ben, ann, name="g2"))["id"]
    people = [await make_user(f"p{i}") for i in range(5)]
    for who in people:
        asked = await fast.post(
            "/api/users/@me/friend-requests", headers=who.headers, json={"username": "ann"}
        )
        assert asked.status_code == 201, asked.text
    said = await factories.say(fast, ann, dm, "react")
    reactions = f"/api/channels/{dm}/messages/{said['id']}/reactions/👍"
    for who in (ann, ben):
        assert (await fast.put(f"{reactions}/@me", headers=who.headers)).status_code == 204
    for where in (dm, group, dm, group, dm, group):
        await factories.say(fast, ben, where, f"hey <@{ann.id}>")
    at = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    async with pool.acquire() as conn:
        await conn.execute("UPDATE friend_requests SET created_at = $1", at)
        await conn.execute("UPDATE reactions SET created_at = $1", at)
        await conn.execute("UPDATE messages SET created_at = $1", at)
    whole_requests = (await fast.get(REQUESTS, headers=ann.headers)).json()["incoming"]
    assert len(whole_requests) == 5
    whole_reactors = (await fast.get(reactions, headers=ann.headers)).json()
    assert len(whole_reactors) == 2
    whole_mentions = (await fast.get(MENTIONS, headers=ann.headers)).json()
    assert len(whole_mentions) == 6
    for limit in LIMITS:
        requests: list[Any] = []
        next_page: str | None = f"{REQUESTS}?limit={limit}"
        while next_page is not None:
            page = await fast.get(next_page, headers=ann.headers)
            assert page.status_code == 200, page.text
            requests += page.json()["incoming"]
            next_page = next_url(page)
        assert [r["id"] for r in requests] == [r["id"] for r in whole_requests], limit
        reactors = await walk(fast, f"{reactions}?limit={limit}", ann.headers)
        assert reactors == whole_reactors, limit
        mentions = await walk(fast, f"{MENTIONS}?limit={limit}", ann.headers)
        assert [m["id"] for m in mentions] == [m["id"] for m in whole_mentions], limit


async def test_history_pages_neither_skip_nor_repeat_while_sent_to_and_deleted_from(
    client: httpx.AsyncClient, make_user: MakeUser, app_with: AppWith
) -> None:
    """Back through history (`before`) and forward from the start (`after`), a page at a
    time, while between pages new messages come and older ones (the cursor's own message
    among them) are deleted: each message there throughout comes exactly once, in order;
    a deleted one stays as its tombstone, in its place."""
    fast = await app_with(rate_messages_user="1000/60")
    ann, ben, dm = await factories.pair(client, make_user)
    url = f"/api/channels/{dm}/messages"
    for i in range(12):
        await factories.say(fast, ann, dm, f"m{i}")
    for params, newest_first in (({"limit": "3"}, True), ({"limit": "3", "after": "0"}, False)):
        before = {m["seq"] for m in await walk(fast, url + "?limit=100", ben.headers)}
        seen: list[int] = []
        page = await fast.get(url, params=params, headers=ben.headers)
        while True:
            assert page.status_code == 200, page.text
            got = page.json()
            seen += [m["seq"] for m in got]
            link = next_url(page)
            if link is None:
                break
            await factories.say(fast, ann, dm, "meanwhile")
            # The message the cursor names, and one not yet listed, go.
            for gone in (got[-1], await fast.get(link, headers=ben.headers)):
                victim = gone if isinstance(gone, dict) else gone.json()[-1]
                deleted = await fast.delete(f"{url}/{victim['id']}", headers=ann.headers)
                assert deleted.status_code == 204, deleted.text
            page = await fast.get(link, headers=ben.headers)
        assert len(seen) == len(set(seen)), seen
        assert seen == sorted(seen, reverse=newest_first), seen
        assert before <= set(seen), sorted(before - set(seen))
        if not newest_first:  # forward paging reaches what came meanwhile
            assert seen[-1] == max(
                m["seq"] for m in (await fast.get(url, headers=ben.headers)).json()
            )


async def test_a_cursor_whose_item_went_meanwhile_pages_on(
    client: httpx.AsyncClient, make_user: MakeUser, app_with: AppWith
) -> None:
    """Every list whose `Link` names an item (members, bans, blocks, conversations,
    friend requests, mentions): that item gone before the next page is read, the list
    goes on from where it was, each item there throughout once."""
    fast = await app_with(rate_search_user="1000/60", rate_messages_user="1000/60")
    ann = await make_user("ann")
    people = [await make_user(f"p{i}") for i in range(6)]
    srv = await community(fast, ann, *people)
    for who in [await make_user(f"b{i}") for i in range(5)]:
        assert (await fast.put(srv.url(f"/bans/{who.id}"), headers=ann.headers)).status_code == 204
    for i in range(0, 6, 2):
        await factories.group(fast, ann, people[i], people[i + 1], name=f"g{i}")
    dm = (await factories.direct(fast, people[5], ann))["id"]
    for i in range(5):
        await factories.say(fast, people[5], dm, f"<@{ann.id}> {i}")
    for who in people[:5]:
        blocked = await fast.put(f"/api/users/@me/blocks/{who.id}", headers=ann.headers)
        assert blocked.status_code == 204, blocked.text
    stranger = [await make_user(f"s{i}") for i in range(4)]
    for who in stranger:
        asked = await fast.post(REQUESTS, headers=who.headers, json={"username": "ann"})
        assert asked.status_code == 201, asked.text

    async def drop_members(item: Any) -> None:
        await fast.delete(srv.url(f"/members/{item['user']['id']}"), headers=ann.headers)

    async def drop_bans(item: Any) -> None:
        await fast.delete(srv.url(f"/bans/{item['user']['id']}"), headers=ann.headers)

    async def drop_blocks(item: Any) -> None:
        await fast.delete(f"/api/users/@me/blocks/{item['id']}", headers=ann.headers)

    async def drop_conversations(item: Any) -> None:
        await fast.delete(f"/api/conversations/{item['id']}/participants/@me", headers=ann.headers)

    async def drop_mentions(item: Any) -> None:
        await fast.delete(f"/api/channels/{dm}/messages/{item['id']}", headers=people[5].headers)

    lists = {
        srv.url("/members?limit=2"): drop_members,
        srv.url("/bans?limit=2"): drop_bans,
        "/api/users/@me/blocks?limit=2": drop_blocks,
        "/api/conversations?limit=2": drop_conversations,
        f"{MENTIONS}?limit=2": drop_mentions,
    }
    for url, drop in lists.items():
        whole = await walk(fast, url.split("?")[0], ann.headers)
        seen: list[Any] = []
        dropped: list[Any] = []
        page = await fast.get(url, headers=ann.headers)
        while True:
            assert page.status_code == 200, (url, page.text)
            seen += page.json()
            link = next_url(page)
            if link is None:
                break
            await drop(page.json()[-1])
            dropped.append(page.json()[-1])
            page = await fast.get(link, headers=ann.headers)
        key = "user" if "user" in whole[0] and "id" not in whole[0] else "id"
        ids = [str(item[key]) for item in seen]
        assert len(ids) == len(set(ids)), url
        assert ids == [str(item[key]) for item in whole], url
        assert dropped, url
    # Friend requests: the cursor's request cancelled (by its sender) meanwhile.
    first = await fast.get(f"{REQUESTS}?limit=1", headers=ann.headers)
    (cursor,) = first.json()["incoming"]
    sender = next(s for s in stranger if str(s.id) == cursor["user"]["id"])
    cancelled = await fast.delete(f"{REQUESTS}/{cursor['id']}", headers=sender.headers)
    assert cancelled.status_code == 204, cancelled.text
    rest: list[Any] = []
    next_page = next_url(first)
    while next_page is not None:
        page = await fast.get(next_page, headers=ann.headers)
        rest += page.json()["incoming"]
        next_page = next_url(page)
    assert len(rest) == 3 and cursor["id"] not in {r["id"] for r in rest}


async def test_a_mentions_cursor_in_a_channel_one_may_not_read_tells_nothing(
    client: httpx.AsyncClient, make_user: MakeUser, app_with: AppWith
) -> None:
    """A message of a channel hidden from ann (one that pings @everyone or her role, one
    edited, one deleted, one that pings nobody), and one of a conversation she is not
    in, named as `before`: each is answered exactly as an id that never was."""
    fast = await app_with(rate_search_user="1000/60", rate_messages_user="1000/60")
    ann, ben, cyd = [await make_user(n) for n in ("ann", "ben", "cyd")]
    srv = await community(fast, ben, ann, cyd)
    crew = await role(fast, srv, ben, "crew", 0, ann)
    staff = await server_channel(fast, srv, ben, "staff")
    await override(fast, ben, staff["id"], "member", ann.id, deny=int(P.VIEW_CHANNEL))
    hidden = staff["id"]
    pings = [
        await factories.say(fast, ben, hidden, text)
        for text in ("@everyone look", f"<@&{crew}> look", "nobody", "to edit", "to delete")
    ]
    edited = await fast.patch(
        f"/api/channels/{hidden}/messages/{pings[3]['id']}",
        headers=ben.headers,
        json={"content": "x"},
    )
    assert edited.status_code == 200, edited.text
    deleted = await fast.delete(
        f"/api/channels/{hidden}/messages/{pings[4]['id']}", headers=ben.headers
    )
    assert deleted.status_code == 204
    theirs = (await factories.direct(fast, ben, cyd))["id"]
    pings.append(await factories.say(fast, ben, theirs, "@everyone here"))
    await factories.say(fast, ben, srv.general, f"<@{ann.id}> visible")
    never = await fast.get(MENTIONS, params={"before": NOWHERE}, headers=ann.headers)
    assert refused(never, "INVALID_CURSOR")
    for message in pings:
        got = await fast.get(MENTIONS, params={"before": message["id"]}, headers=ann.headers)
        assert (got.status_code, got.json()) == (never.status_code, never.json()), message
        assert set(got.headers) - {"x-ratelimit-remaining", "x-ratelimit-reset"} == set(
            never.headers
        ) - {"x-ratelimit-remaining", "x-ratelimit-reset"}


async def test_a_braid_parents_cursor_of_another_channel_is_an_unknown_version(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """A Braid subscription's `Parents` (its cursor) naming a message of a channel one may
    not read, of another conversation, or no message at all: the same 410, naming
    nothing but what was sent; malformed ones are 400 `INVALID_PARENTS`."""
    ann, ben, dm = await factories.pair(client, make_user)
    cyd = await make_user("cyd")
    srv = await community(client, ben, ann)
    staff = await server_channel(client, srv, ben, "staff")
    await override(client, ben, staff["id"], "member", ann.id, deny=int(P.VIEW_CHANNEL))
    elsewhere = [
        await factories.say(client, ben, staff["id"], "hidden"),
        await factories.say(
            client, ben, str((await factories.direct(client, ben, cyd))["id"]), "x"
        ),
        await factories.say(client, ben, srv.general, "visible, but another channel"),
    ]
    url = f"/api/channels/{dm}/messages"
    subscribe = {**ann.headers, "Subscribe": "true"}
    for message in [*elsewhere, {"id": NOWHERE}]:
        got = await client.get(url, headers={**subscribe, "Parents": f'"{message["id"]}"'})
        assert got.status_code == 410 and got.json()["code"] == "VERSION_UNKNOWN", got.text
        assert set(got.json()) == {"code", "message"}
        assert got.json()["message"] == (
            f"version {message['id']!r} is not a message of this channel; subscribe without Parents"
        )
    for parents in ("x", '"a", 1', "[", '"' + "a" * 5000 + '"'):
        got = await client.get(url, headers={**subscribe, "Parents": parents})
        assert refused(got) and got.status_code in (400, 410, 431), (parents[:20], got.text)


async def test_a_reactions_link_names_the_same_emoji_whatever_its_characters(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """Was: the `Link` took Starlette's `request.url.path`, which keeps `?`, `#` and `\\`
    percent-encoded, and encoded it again: the next page asked for another emoji (`%3F`
    spelt out) and answered `[]`, "no more". Characters that would break the header
    (`>`, `,`, `;`, quotes) stay encoded."""
    ann, ben, dm = await factories.pair(client, make_user, "group")
    said = await factories.say(client, ann, dm, "react")
    for emoji in ("a?b", "c#d", "e\\f", '>;rel="prev",<x', "%41", "é+&=", "🎉"):
        url = f"/api/channels/{dm}/messages/{said['id']}/reactions/{quote(emoji, safe='')}"
        for who in (ann, ben):
            put = await client.put(f"{url}/@me", headers=who.headers)
            assert put.status_code == 204, (emoji, put.text)
        first = await client.get(url, params={"limit": 1}, headers=ann.headers)
        assert [u["id"] for u in first.json()] == [str(ann.id)], emoji
        assert list(first.links) == ["next"], (emoji, first.headers["link"])
        rest = await client.get(first.links["next"]["url"], headers=ann.headers)
        assert [u["id"] for u in rest.json()] == [str(ben.id)], (emoji, first.headers["link"])
