"""Attack 3 and 4: nothing from a channel or conversation the searcher cannot read is
returned, counted, quoted, or told apart (by total, total_capped, next_cursor, the
error); scopes one cannot read are the same 404 as ids that do not exist; cursors are
hostile input, bound to the search (and the searcher) that made them."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests import factories
from tests.api.search_attacks.conftest import bulk, search, sql, walk
from tests.factories import MakeUser, TestUser, community, override
from xfchat.api.search import cursor_key
from xfchat.domain.permissions import Permission as P
from xfchat.domain.search_cursor import Cursor, _digest, write_cursor
from xfchat.settings import Settings


@dataclass
class World:
    ann: TestUser
    ben: TestUser
    srv: Any
    hidden: dict[str, str]  # label -> channel id ben cannot read
    gone_server: str  # a server ben was removed from
    visible_words: set[str]


async def world(client: httpx.AsyncClient, make_user: MakeUser) -> World:
    ann, ben, cid = await make_user("ann"), await make_user("ben"), await make_user("cid")
    srv = await community(client, ann, ben)
    hidden: dict[str, str] = {}
    for name, who, deny in (
        ("secret", "role", P.VIEW_CHANNEL),
        ("nohistory", "role", P.READ_MESSAGE_HISTORY),
        ("benonly", "member", P.VIEW_CHANNEL),
        ("benhist", "member", P.READ_MESSAGE_HISTORY),
    ):
        channel = (await factories.server_channel(client, srv, ann, name))["id"]
        target = srv.everyone_role if who == "role" else ben.id
        made = await override(client, ann, channel, who, target, deny=int(deny))
        assert made.status_code in (200, 204), made.text
        hidden[name] = channel
    # a channel in a hidden category (synced: it follows the category)
    cat = (await factories.server_channel(client, srv, ann, "cat", kind="category"))["id"]
    made = await override(client, ann, cat, "role", srv.everyone_role, deny=int(P.VIEW_CHANNEL))
    assert made.status_code in (200, 204), made.text
    hidden["incategory"] = (
        await factories.server_channel(client, srv, ann, "incat", parent_id=cat)
    )["id"]
    # a group ben left, a conversation he was never in
    group = (await factories.group(client, ann, ben, cid))["id"]
    hidden["dm"] = (await factories.direct(client, ann, cid))["id"]
    # servers ben was kicked from / left
    kicked = await community(client, cid, ben, name="kicked")
    left = await community(client, cid, ben, name="left")
    for channel, label in (
        (group, "group"),
        (kicked.general, "kicked"),
        (left.general, "left"),
        *((c, label) for label, c in list(hidden.items())),
    ):
        author = ann if label not in ("kicked", "left", "group") else cid
        await factories.say(client, author, channel, f"kiwi {label} zz{label}word")
    await factories.say(client, ann, srv.general, "kiwi visible zzvisibleword")
    left_group = await client.delete(
        f"/api/conversations/{group}/participants/@me", headers=ben.headers
    )
    assert left_group.status_code == 204, left_group.text
    kick = await client.delete(kicked.url(f"/members/{ben.id}"), headers=cid.headers)
    assert kick.status_code == 204, kick.text
    leave = await client.delete(left.url("/members/@me"), headers=ben.headers)
    assert leave.status_code == 204, leave.text
    hidden.update(group=group, kicked=kicked.general, left=left.general)
    return World(ann, ben, srv, hidden, kicked.id, {"visible"})


def strip(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "request_id"}


async def test_nothing_unreadable_is_returned_counted_quoted_or_told_apart(
    client: httpx.AsyncClient, raw: httpx.AsyncClient, make_user: MakeUser
) -> None:
    w = await world(client, make_user)
    response = await search(raw, w.ben, q="kiwi")
    assert response.status_code == 200, response.text
    body = response.json()
    assert [r["message"]["content"] for r in body["results"]] == ["kiwi visible zzvisibleword"]
    assert body["total"] == 1 and body["total_capped"] is False
    for label in w.hidden:
        assert f"zz{label}word" not in response.text
    nothing = strip((await search(raw, w.ben, q="zznosuchwordanywhere")).json())
    for label in w.hidden:
        for q in (f"zz{label}word", f"zz{label}w*", f"{label}word", "kiwi -zzvisibleword"):
            got = await search(raw, w.ben, q=q)
            assert got.status_code == 200, (q, got.text)
            if q.startswith("kiwi -"):
                assert got.json()["results"] == [] and got.json()["total"] == 0, q
            else:
                assert strip(got.json()) == nothing, (label, q, got.json())
    # the filters do not reach into them either
    for q in ("in:secret", "in:#incat", "from:cid", "mentions:ben", "has:link -kiwi"):
        got = (await search(raw, w.ben, q=q)).json()
        assert got["results"] == [] and got["total"] == 0, (q, got)


async def test_a_scope_one_cannot_see_is_the_same_404_as_none(
    client: httpx.AsyncClient, raw: httpx.AsyncClient, make_user: MakeUser
) -> None:
    w = await world(client, make_user)
    nobody = str(uuid.uuid4())
    none_channel = await search(raw, w.ben, q="kiwi", channel_id=nobody)
    none_conv = await search(raw, w.ben, q="kiwi", conversation_id=nobody)
    none_server = await search(raw, w.ben, q="kiwi", server_id=nobody)
    assert none_channel.status_code == 404
    differing = {}
    for label, channel in w.hidden.items():
        if label in ("nohistory", "benhist"):
            continue  # (visible channels: see the next test)
        for key, none in (("channel_id", none_channel), ("conversation_id", none_conv)):
            got = await search(raw, w.ben, q="kiwi", **{key: channel})
            if (got.status_code, strip(got.json())) != (none.status_code, strip(none.json())):
                differing[(label, key)] = (got.status_code, got.text)
    for server in (w.gone_server, w.hidden["secret"]):
        got = await search(raw, w.ben, q="kiwi", server_id=server)
        if (got.status_code, strip(got.json())) != (
            none_server.status_code,
            strip(none_server.json()),
        ):
            differing[("server", server)] = (got.status_code, got.text)
    assert differing == {}


async def test_a_channel_one_sees_without_its_history_is_403(
    client: httpx.AsyncClient, raw: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """README: a scope one cannot see is the usual 404; a channel one sees without
    READ_MESSAGE_HISTORY is 403 MISSING_PERMISSIONS."""
    w = await world(client, make_user)
    for label in ("nohistory", "benhist"):
        got = await search(raw, w.ben, q="kiwi", channel_id=w.hidden[label])
        assert got.status_code == 403, (label, got.status_code, got.text)
        assert got.json()["code"] == "MISSING_PERMISSIONS"


async def test_a_cursor_is_bound_to_its_searcher_and_cannot_be_forged(
    client: httpx.AsyncClient, raw: httpx.AsyncClient, make_user: MakeUser
) -> None:
    w = await world(client, make_user)
    for i in range(3):
        await factories.say(client, w.ann, w.srv.general, f"kiwi more {i}")
    # ann reads everything; her cursor's total counts what ben cannot read
    annes = (await search(raw, w.ann, q="kiwi", sort="recent", limit=1)).json()
    bens_own = (await search(raw, w.ben, q="kiwi", sort="recent", limit=1)).json()
    assert annes["total"] > bens_own["total"]
    replayed = await search(
        raw, w.ben, q="kiwi", sort="recent", limit=1, cursor=annes["next_cursor"]
    )
    problems = {}
    if replayed.status_code == 200 and replayed.json()["total"] != bens_own["total"]:
        problems["replayed total"] = (replayed.json()["total"], bens_own["total"])
    # a cursor minted by anyone without the server's key
    fingerprint = [str(w.ben.id), "kiwi", "recent", "UTC", "None", "None"]
    now = datetime.now(UTC)
    forged = write_cursor(
        Cursor((now, uuid.uuid4()), (0.0, now, uuid.uuid4()), 987654, False),
        b"not the key",
        fingerprint,
    )
    got = await search(raw, w.ben, q="kiwi", sort="recent", limit=1, cursor=forged)
    if got.status_code == 200:
        problems["forged cursor accepted"] = {k: got.json()[k] for k in ("total", "total_capped")}
    # a cursor from another query, sort, zone or scope
    mine = (await search(raw, w.ben, q="kiwi", sort="recent", limit=1)).json()["next_cursor"]
    for other in (
        {"q": "kiwi ", "sort": "recent"},
        {"q": "KIWI", "sort": "recent"},
        {"q": "kiwi", "sort": "relevance"},
        {"q": "kiwi", "sort": "recent", "tz": "Europe/Paris"},
        {"q": "kiwi", "sort": "recent", "server_id": w.srv.id},
        {"q": "kiwi", "sort": "recent", "channel_id": w.srv.general},
    ):
        got = await search(raw, w.ben, limit=1, cursor=mine, **other)
        if got.status_code != 400 or got.json()["code"] != "INVALID_CURSOR":
            problems[f"other search {other}"] = got.status_code
    assert problems == {}


def b64(value: object) -> str:
    data = value if isinstance(value, bytes) else json.dumps(value).encode()
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


async def test_a_tampered_cursor_is_400_never_500(
    client: httpx.AsyncClient, raw: httpx.AsyncClient, make_user: MakeUser, settings: Settings
) -> None:
    ann, ben, dm = await factories.pair(client, make_user)
    for i in range(5):
        await factories.say(client, ann, dm, f"plum {i}")
    good = (await search(raw, ben, q="plum", limit=1)).json()["next_cursor"]

    def cases(sort: str) -> dict[str, list[str]]:
        key = cursor_key(settings.secret.get_secret_value())  # (signed as the server signs)
        digest = _digest(key, [str(ben.id), "plum", sort, "UTC", "None", "None"])
        now = datetime.now(UTC).isoformat()
        uid = str(uuid.uuid4())
        body = [digest, now, uid, 0.5, now, uid, 3, False]

        def with_(i: int, v: object) -> str:
            b = list(body)
            b[i] = v
            return b64(b)

        bad = {
            "flipped": [
                good[:k] + ("A" if good[k] != "A" else "B") + good[k + 1 :]
                for k in (0, 5, 30, len(good) // 2, len(good) - 1)
            ],
            "truncated": [good[:-1], good[:10]],
            "long": ["A" * 400, "A" * 401, "A" * 5000],
            "garbage": [
                "%%%%",
                "=====",
                "\u00e9\u00e9\u00e9\u00e9",
                "\U0001f600" * 4,
                "AAAA\x00AA",
                b64(b"\xff\xfe\x00"),
            ],
            "json": [
                b64(v)
                for v in (
                    [],
                    {},
                    None,
                    1,
                    "x",
                    [digest] * 8,
                    [[]] * 8,
                    {str(i): i for i in range(8)},
                )
            ],
            "fields": [
                with_(1, "9999-12-31T23:59:59.999999-23:59"),
                with_(4, "9999-12-31T23:59:59.999999-23:59"),
                with_(1, "1970-01-01T00:00:00+23:59"),
                with_(4, "1970-01-01T00:00:00+23:59"),
                with_(1, "0001-01-01T00:00:00+00:00"),
                with_(1, "2026-01-01T00:00:00"),
                with_(3, 1e308),
                with_(3, -1e308),
                with_(3, 10**30),
                with_(3, True),
                with_(6, -1),
                with_(6, 10**7),
                with_(2, "not-a-uuid"),
                with_(2, 12345),
                with_(7, "false"),
                b64([*body, "extra"]),
            ],
        }
        return bad

    failures = {}
    for sort in ("relevance", "recent"):
        for kind, cursors in cases(sort).items():
            for c in cursors:
                got = await search(raw, ben, q="plum", limit=1, cursor=c, sort=sort)
                if kind == "fields" and got.status_code == 200:
                    continue  # a well-formed cursor signed with the server's key
                ok = got.status_code == 400 and {"code", "message"} <= set(got.json())
                if not ok or got.json().get("code") not in ("INVALID_CURSOR", "VALIDATION_ERROR"):
                    failures[(kind, c[:50], sort)] = (got.status_code, got.text[:200])
    assert failures == {}


async def test_hidden_matches_change_nothing_observable(
    client: httpx.AsyncClient, raw: httpx.AsyncClient, make_user: MakeUser, db_url: str
) -> None:
    """A word in many messages of a channel ben cannot read: the same answer as a word in
    none, whether the index is narrowed to his channels or not."""
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await community(client, ann, ben)
    secret = (await factories.server_channel(client, srv, ann, "secret"))["id"]
    made = await override(client, ann, secret, "role", srv.everyone_role, deny=int(P.VIEW_CHANNEL))
    assert made.status_code in (200, 204)
    now = datetime.now(UTC)
    await bulk(db_url, srv.general, ann.id, [(f"visible filler {i}", now) for i in range(50)])
    await bulk(db_url, secret, ann.id, [(f"hiddenhot word {i}", now) for i in range(6000)])
    await sql(db_url, "ANALYZE messages")
    answers: dict[str, Any] = {}

    async def ask(*queries: str) -> None:
        for q in queries:
            got = await search(raw, ben, q=q)
            answers[q] = (got.status_code, strip(got.json()))
        assert len({str(a) for a in answers.values()}) == 1, answers

    await ask("hiddenhot", "hiddencold", "hiddenh*", "iddenho", "hiddenhot -visible")
    # ben reads most messages: the index is no longer narrowed to his channels
    await bulk(db_url, srv.general, ann.id, [(f"visible filler {i}", now) for i in range(20000)])
    await sql(db_url, "ANALYZE messages")
    await ask("hiddenhot", "hiddencold", "iddenho")


@pytest.mark.parametrize("sort", ["recent", "relevance"])
async def test_every_page_counts_only_what_may_be_read_now(
    client: httpx.AsyncClient, raw: httpx.AsyncClient, make_user: MakeUser, sort: str
) -> None:
    """Was: with sort=recent every later page repeated the first page's total, matches
    in a channel since hidden and a group since left included (relevance counted
    again). Matches sent since the first page are not counted (they wait for a new
    search), nor are they given."""
    ann, ben, cid = await make_user("ann"), await make_user("ben"), await make_user("cid")
    srv = await community(client, ann, ben)
    other = (await factories.server_channel(client, srv, ann, "other"))["id"]
    group = (await factories.group(client, ann, ben, cid))["id"]
    for channel, n in ((srv.general, 4), (other, 6), (group, 3)):
        for i in range(n):
            await factories.say(client, ann, channel, f"kiwi {i}")
    mine = {"kiwi 0", "kiwi 1", "kiwi 2", "kiwi 3"}

    async def lose(page: int) -> None:
        if page == 1:
            hid = await override(client, ann, other, "member", ben.id, deny=int(P.VIEW_CHANNEL))
            assert hid.status_code == 200, hid.text
            out = await client.delete(
                f"/api/conversations/{group}/participants/{ben.id}", headers=ann.headers
            )
            assert out.status_code == 204, out.text
            await factories.say(client, ann, srv.general, "kiwi later")

    ids, bodies = await walk(raw, ben, lose, q="kiwi", sort=sort, limit=2)
    assert bodies[0]["total"] == 13
    assert [b["total"] for b in bodies[1:]] == [4] * (len(bodies) - 1), bodies
    assert all(b["total_capped"] is False for b in bodies)
    later = [r["message"]["content"] for b in bodies[1:] for r in b["results"]]
    assert later and set(later) <= mine and len(ids) == len(set(ids))


async def test_a_cursors_every_field_is_signed_and_an_older_one_is_counted_again(
    client: httpx.AsyncClient, raw: httpx.AsyncClient, make_user: MakeUser, settings: Settings
) -> None:
    """A cursor names the channels its total was counted in, so what it says is signed
    whole (it was only bound to the search): a total or channels altered is 400. One
    written before (the search signed, no channels) still pages on, counted again."""
    ann, ben, dm = await factories.pair(client, make_user)
    for i in range(5):
        await factories.say(client, ann, dm, f"plum {i}")
    good = (await search(raw, ben, q="plum", sort="recent", limit=2)).json()["next_cursor"]
    body = json.loads(base64.urlsafe_b64decode(good + "=" * (-len(good) % 4)))
    assert len(body) == 9
    for i, value in ((6, 999), (7, True), (8, "0" * 16)):
        altered = b64([*body[:i], value, *body[i + 1 :]])
        got = await search(raw, ben, q="plum", sort="recent", limit=2, cursor=altered)
        assert got.status_code == 400 and got.json()["code"] == "INVALID_CURSOR", (i, got.text)
    key = cursor_key(settings.secret.get_secret_value())
    older = [_digest(key, [str(ben.id), "plum", "recent", "UTC", "None", "None"]), *body[1:6]]
    got = await search(raw, ben, q="plum", sort="recent", limit=2, cursor=b64([*older, 77, False]))
    assert got.status_code == 200 and got.json()["total"] == 5, got.text
