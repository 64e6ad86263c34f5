"""What an outside attack on text as a hostile member writes it found: emoji that are one
reaction written two ways, mentions the server reads but no client shows, names that a
mention shows as @everyone, names written decomposed that user search and `in:#` missed,
unassigned ignorable code points that show nothing, and runs of combining marks that
cost PostgreSQL time quadratic in their length; and what held (search, reaction paths,
multipart and JSON text, limits in code points)."""

from __future__ import annotations

import unicodedata
from typing import Any
from urllib.parse import quote
from uuid import UUID, uuid4

import asyncpg
import httpx
import pytest

from tests.factories import PASSWORD, AppWith, MakeUser, community, pair, role, say
from xfchat.db.queries import messages as messages_q
from xfchat.db.queries.search import Check
from xfchat.domain.search_snippets import snippet

THUMB, VS15, VS16 = "\U0001f44d", "\ufe0e", "\ufe0f"


def _reactions(message: dict[str, object]) -> list[tuple[str, int, bool]]:
    listed = message["reactions"]
    assert isinstance(listed, list)
    return [(r["emoji"], r["count"], r["me"]) for r in listed]


async def _message(client: httpx.AsyncClient, headers: dict[str, str], dm: str, mid: str) -> dict:
    history = await client.get(f"/api/channels/{dm}/messages", headers=headers)
    assert history.status_code == 200, history.text
    return next(m for m in history.json() if m["id"] == mid)


async def test_an_emoji_with_or_without_its_variation_selector_is_one_reaction(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """Was: 👍 and 👍 + U+FE0F (what one keyboard or picker sends and another does not),
    ❤ and ❤️, a keycap with and without it, é composed and decomposed, were each two
    reactions side by side: one person could add the same emoji twice, and the count a
    message shows was split by how each client spelt it."""
    ann, ben, dm = await pair(client, make_user)
    mid = (await say(client, ann, dm, "hi"))["id"]
    url = f"/api/channels/{dm}/messages/{mid}/reactions"
    same = [
        (THUMB, THUMB + VS16),
        ("\u2764\ufe0f", "\u2764"),
        ("\u2764\ufe0f", "\u2764" + VS15),
        ("1\ufe0f\u20e3", "1\u20e3"),
        ("\u00e9", "e\u0301"),
    ]
    for first, second in same:
        for who, emoji in ((ann, first), (ben, second), (ann, second)):
            put = await client.put(f"{url}/{quote(emoji)}/@me", headers=who.headers)
            assert put.status_code == 204, (emoji, put.text)
    # A skin tone is another emoji.
    toned = THUMB + "\U0001f3fd"
    assert (await client.put(f"{url}/{quote(toned)}/@me", headers=ben.headers)).status_code == 204
    shown = _reactions(await _message(client, ann.headers, dm, mid))
    assert shown == [
        (THUMB, 2, True),
        ("\u2764\ufe0f", 2, True),
        ("1\ufe0f\u20e3", 2, True),
        ("\u00e9", 2, True),
        (toned, 1, False),
    ], shown
    # Either spelling lists and takes back the one reaction.
    for _, second in same:
        listed = await client.get(f"{url}/{quote(second)}", headers=ann.headers)
        assert [u["username"] for u in listed.json()] == ["ann", "ben"], (second, listed.text)
    gone = await client.delete(f"{url}/{quote(THUMB + VS16)}/@me", headers=ann.headers)
    assert gone.status_code == 204
    gone = await client.delete(f"{url}/{quote('e' + chr(0x301))}/@me", headers=ben.headers)
    assert gone.status_code == 204
    shown = _reactions(await _message(client, ann.headers, dm, mid))
    assert (THUMB, 1, False) in shown and ("\u00e9", 1, True) in shown, shown
    # A new reaction is kept in NFC, and its 64 characters are counted there.
    for long in ("\u0958" * 64, "\u0958" * 33):
        put = await client.put(f"{url}/{quote(long)}/@me", headers=ann.headers)
        assert put.status_code == 400 and put.json()["code"] == "INVALID_EMOJI", put.text


async def test_reactions_stored_in_two_spellings_before_the_rule_stay_and_go_together(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    """Rows stored before reactions were compared by their key keep their spelling; the
    person who made both takes them back with either, and is listed once."""
    ann, ben, dm = await pair(client, make_user)
    mid = (await say(client, ann, dm, "hi"))["id"]
    async with pool.acquire() as conn:
        for emoji in ("\u2764", "\u2764\ufe0f"):
            await messages_q.insert_reaction(
                conn, message_id=UUID(mid), user_id=ben.id, emoji=emoji
            )
    shown = _reactions(await _message(client, ben.headers, dm, mid))
    assert sorted(shown) == [("\u2764", 1, True), ("\u2764\ufe0f", 1, True)]
    url = f"/api/channels/{dm}/messages/{mid}/reactions"
    listed = await client.get(f"{url}/{quote(chr(0x2764))}", headers=ann.headers)
    assert [u["username"] for u in listed.json()] == ["ben"], listed.text
    # ann joins one of them (the first spelt that way), not a third.
    assert (await client.put(f"{url}/%E2%9D%A4/@me", headers=ann.headers)).status_code == 204
    assert len(_reactions(await _message(client, ann.headers, dm, mid))) == 2
    assert (await client.delete(f"{url}/%E2%9D%A4/@me", headers=ben.headers)).status_code == 204
    shown = _reactions(await _message(client, ben.headers, dm, mid))
    assert [count for _, count, me in shown if me] == [], shown


async def test_a_mention_counts_only_in_the_form_a_client_shows_as_one(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """Was: `<@----` + 32 hex digits + `>` (and any other spread of 36 hex digits and
    dashes that Python's UUID() reads) mentioned the user: it pinged them and counted in
    their mentions, while every client, which reads the 8-4-4-4-12 form, showed it as
    plain text, a ping no one can see the source of. So did `<@&...>` for a role."""
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await community(client, ann, ben)
    mods = await role(client, srv, ann, "mods", 0, ben)
    made = await client.patch(
        srv.url(f"/roles/{mods}"), headers=ann.headers, json={"mentionable": True}
    )
    assert made.status_code == 200, made.text
    for raw in (str(ben.id), mods):
        hexes = UUID(raw).hex
        odd = [f"----{hexes}", f"{hexes}----", f"{hexes[:8]}-{hexes[8:]}---"]
        for form in odd:
            sent = await say(client, ann, srv.general, f"psst <@{form}> <@&{form}>")
            assert sent["mentions"] == [] and sent["mention_roles"] == [], (form, sent)
    mine = await client.get("/api/users/@me/mentions", headers=ben.headers)
    assert mine.status_code == 200 and mine.json() == [], mine.text
    # The form clients show, in either case, still mentions.
    upper = str(ben.id).upper()
    sent = await say(client, ann, srv.general, f"hi <@{upper}> <@&{mods}>")
    assert sent["mentions"] == [str(ben.id)] and sent["mention_roles"] == [mods], sent


# Each reads as @everyone or @here where a mention shows a name: "@" + the name.
READS_AS_EVERYONE = [
    "everyone",
    "here",
    "Everyone",
    "\uff28\uff25\uff32\uff25",  # full-width HERE
    "\u0435veryone",  # (a Cyrillic ie)
    "every\u200bone",
    "@@here",
    "h\u0435r\u00e9",
    "\u1d07\u1d20\u1d07\u0280\u028f\u1d0f\u0274\u1d07",  # in small capitals
    "\u0570ere",  # (an Armenian ho)
    "\U0001d41e\U0001d42f\U0001d41e\U0001d42b\U0001d432\U0001d428\U0001d427\U0001d41e",
]


@pytest.mark.parametrize("name", READS_AS_EVERYONE)
async def test_a_name_that_a_mention_shows_as_everyone_is_refused(
    app_with: AppWith, make_user: MakeUser, name: str
) -> None:
    """Was: usernames cannot be `everyone` or `here`, and role names cannot be
    `@everyone`, but a mention shows "@" and the name: a role, a display name or a
    nickname `everyone` made every mention of it read "@everyone", highlighted, from
    anyone, the ping a server keeps for those with MENTION_EVERYONE."""
    client = await app_with(rate_profile_user="1000/600", rate_register_ip="1000/3600")
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await community(client, ann, ben)
    mods = await role(client, srv, ann, "mods", 0)
    register = {"username": "newbie", "email": "new@example.com", "password": PASSWORD}
    attempts = [
        ("INVALID_DISPLAY_NAME", "POST", "/api/auth/register", {}, "display_name", register),
        ("INVALID_DISPLAY_NAME", "PATCH", "/api/users/@me", ben.headers, "display_name", {}),
        ("INVALID_NICKNAME", "PATCH", srv.url(f"/members/{ben.id}"), ben.headers, "nickname", {}),
        ("INVALID_ROLE_NAME", "POST", srv.url("/roles"), ann.headers, "name", {}),
        ("INVALID_ROLE_NAME", "PATCH", srv.url(f"/roles/{mods}"), ann.headers, "name", {}),
    ]
    for code, method, url, headers, field, body in attempts:
        answer = await client.request(method, url, headers=headers, json={**body, field: name})
        assert answer.status_code == 400, (code, repr(name), answer.text)
        assert answer.json()["code"] == code and answer.json()["field"] == field, answer.text


async def test_names_near_everyone_are_still_names_and_old_ones_stay(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await community(client, ann, ben)
    for n, fine in enumerate(["Everyone's friend", "hereford", "every one", "No one"]):
        named = await client.patch(
            "/api/users/@me", headers=ben.headers, json={"display_name": fine}
        )
        assert named.status_code == 200, (fine, named.text)
        nick = await client.patch(
            srv.url(f"/members/{ben.id}"), headers=ben.headers, json={"nickname": fine}
        )
        assert nick.status_code == 200, (fine, nick.text)
        made = await client.post(
            srv.url("/roles"), headers=ann.headers, json={"name": f"{fine}{n}"}
        )
        assert made.status_code == 201, (fine, made.text)
    # Names stored before the rule stay, sent back as they are too.
    mods = await role(client, srv, ann, "mods", 0)
    async with pool.acquire() as conn:
        await conn.execute("UPDATE users SET display_name = 'here' WHERE id = $1", ben.id)
        await conn.execute(
            "UPDATE server_members SET nickname = 'everyone' WHERE user_id = $1", ben.id
        )
        await conn.execute("UPDATE roles SET name = 'here' WHERE id = $1", UUID(mods))
    kept = [
        ("/api/users/@me", ben.headers, {"status_text": "hi", "display_name": "here"}),
        (srv.url(f"/members/{ben.id}"), ben.headers, {"nickname": "everyone"}),
        (srv.url(f"/roles/{mods}"), ann.headers, {"name": "here", "color": 0xFF0000}),
    ]
    for url, headers, body in kept:
        changed = await client.patch(url, headers=headers, json=body)
        assert changed.status_code == 200, (url, changed.text)
    me = (await client.get("/api/users/@me", headers=ben.headers)).json()
    assert me["display_name"] == "here" and me["status_text"] == "hi"
    # Changed to another such name, they are refused.
    changed = await client.patch(
        "/api/users/@me", headers=ben.headers, json={"display_name": "everyone"}
    )
    assert changed.status_code == 400 and changed.json()["code"] == "INVALID_DISPLAY_NAME"


async def test_user_search_finds_names_written_composed_or_decomposed(
    app_with: AppWith, make_user: MakeUser
) -> None:
    """Was: a query typed decomposed (`e` + U+0301, as some keyboards and clipboards
    write it) found no `École`, and a display name stored decomposed (`E` + U+0301
    `mile`) was found by `e` but not by `em` or `ém`: user search said it folds text as
    message search does, which compares in NFC."""
    client = await app_with(rate_profile_user="1000/600")
    ann, ben, cat = await make_user("ann"), await make_user("ben"), await make_user("cat")
    for who, name in ((ben, "\u00c9cole"), (cat, "E\u0301mile")):
        named = await client.patch(
            "/api/users/@me", headers=who.headers, json={"display_name": name}
        )
        assert named.status_code == 200, named.text

    async def found(q: str) -> list[str]:
        answer = await client.get("/api/users/search", params={"q": q}, headers=ann.headers)
        assert answer.status_code == 200, answer.text
        return sorted(u["username"] for u in answer.json())

    assert await found("e\u0301") == ["ben", "cat"]
    assert await found("E\u0301c") == ["ben"]
    assert await found("\u00e9c") == ["ben"]
    for q in ("em", "\u00e9m", "E\u0301M", "\u00c9mile"):
        assert await found(q) == ["cat"], q


# Text a hostile member may send that must get an answer, never a 500, and soon.
ODD_QUERIES = [
    "&",
    "|",
    "!:*()'\\",
    "'a' & 'b' | !c",
    "a:* & b:*",
    "\u0301",
    "\u0301" * 500,
    "\u200b\u200b\u200b",
    "\u202eevil\u202c",
    "\u05e9\u05dc\u05d5\u05dd",
    "abc\u6570\u636e\u0634\u0645\u0633",
    "x" * 512,
    "x" * 513,
    "\u6570*",
    "\U0001f468\u200d\U0001f469\u200d\U0001f467",
    "\U0001f1eb\U0001f1f7",
    "1\ufe0f\u20e3",
    THUMB + "\U0001f3fd",
    '"' * 511,
    "-" * 100,
    "from:\u0301 in:#\u202e",
    "\ufffe\uffff",
]


async def test_search_given_odd_text_answers_200_or_invalid_query(
    app_with: AppWith, make_user: MakeUser
) -> None:
    client = await app_with(rate_search_user="1000/60")
    ann, _, dm = await pair(client, make_user)
    zalgo = ("a" + "\u0301" * 15 + "\u0316" * 15) * 129  # (30 marks a letter: the most)
    for heavy in (zalgo, "\u6570" * 4000, "\u202e" + "z" * 3999, "\u0301" * 30):
        await say(client, ann, dm, heavy)
    for q in ODD_QUERIES:  # (a hang is pytest-timeout's: no timing asserted here)
        answer = await client.get("/api/search", params={"q": q}, headers=ann.headers)
        assert answer.status_code in (200, 400), (repr(q[:20]), answer.text)
        if answer.status_code == 400:
            assert answer.json()["code"] == "INVALID_QUERY", answer.text


async def test_a_reaction_path_with_odd_bytes_is_invalid_emoji_or_no_route(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    ann, _, dm = await pair(client, make_user)
    url = f"/api/channels/{dm}/messages/{(await say(client, ann, dm, 'hi'))['id']}/reactions"
    for bad in ["%00", "%ED%A0%80", "%FF", "%C0%AF", "%EF%BF%BD", "a" * 65, "%E2%80%A8"]:
        for method, path in (("PUT", f"{url}/{bad}/@me"), ("GET", f"{url}/{bad}")):
            answer = await client.request(method, path, headers=ann.headers)
            assert answer.status_code in (400, 404), (bad, answer.text)
            assert answer.json()["code"] in ("INVALID_EMOJI", "NOT_FOUND"), answer.text
    for slash in ["%2F", "a%2Fb"]:
        answer = await client.put(f"{url}/{slash}/@me", headers=ann.headers)
        assert answer.status_code == 404 and answer.json()["code"] == "NOT_FOUND"


async def test_search_in_a_channel_named_in_another_form_or_case(
    app_with: AppWith, make_user: MakeUser
) -> None:
    """Was: `in:#` compared names by Python's lower() as written, so `in:#cafe` + U+0301
    (decomposed) found nothing in #café, nor `in:#ΣΑΣ` in #σας (final sigma); nor
    `in:#cafe`, where the text's `cafe` finds `café`."""
    client = await app_with(rate_search_user="1000/60")
    ann = await make_user("ann")
    srv = await community(client, ann)
    for name in ("caf\u00e9", "\u03c3\u03b1\u03c2"):
        made = await client.post(srv.url("/channels"), headers=ann.headers, json={"name": name})
        assert made.status_code == 201, made.text
        await say(client, ann, made.json()["id"], f"needle in {name}")
    for q, expected in (
        ("needle in:#cafe\u0301", "needle in caf\u00e9"),
        ("needle in:#CAF\u00c9", "needle in caf\u00e9"),
        ("needle in:#cafe", "needle in caf\u00e9"),  # (Latin accents aside, as in the text)
        ("needle in:#\u03a3\u0391\u03a3", "needle in \u03c3\u03b1\u03c2"),
    ):
        answer = await client.get("/api/search", params={"q": q}, headers=ann.headers)
        assert answer.status_code == 200, answer.text
        found = [r["message"]["content"] for r in answer.json()["results"]]
        assert found == [expected], (q, found)


# Default-ignorable code points Unicode has not assigned yet: renderers draw them as
# nothing (Unicode asks them to), so a name or message of them shows nothing.
UNASSIGNED_IGNORABLE = ["\u2065", "\ufff0", "\ufff8", "\U000e0002", "\U000e0080", "\U000e0fff"]


async def test_text_of_unassigned_ignorable_code_points_shows_nothing(
    app_with: AppWith, make_user: MakeUser
) -> None:
    """Was: U+2065, U+FFF0-U+FFF8 and the unassigned planes-14 code points around the
    tags (default ignorable, drawn as nothing) passed as a display name, a nickname, a
    server, channel or role name, a message and a reaction."""
    client = await app_with(rate_profile_user="1000/600")
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await community(client, ann, ben)
    msg = (await say(client, ann, srv.general, "hi"))["id"]
    reactions = f"/api/channels/{srv.general}/messages/{msg}/reactions"
    for blank in [*UNASSIGNED_IGNORABLE, " \u2065 \U000e0002 "]:
        attempts = [
            ("INVALID_DISPLAY_NAME", "PATCH", "/api/users/@me", ben.headers, "display_name"),
            ("INVALID_NICKNAME", "PATCH", srv.url(f"/members/{ben.id}"), ben.headers, "nickname"),
            ("INVALID_SERVER_NAME", "PATCH", srv.url(), ann.headers, "name"),
            ("INVALID_CHANNEL_NAME", "POST", srv.url("/channels"), ann.headers, "name"),
            ("INVALID_ROLE_NAME", "POST", srv.url("/roles"), ann.headers, "name"),
            (
                "EMPTY_MESSAGE",
                "POST",
                f"/api/channels/{srv.general}/messages",
                ben.headers,
                "content",
            ),
        ]
        for code, method, url, headers, field in attempts:
            answer = await client.request(method, url, headers=headers, json={field: blank})
            assert answer.status_code == 400, (code, repr(blank), answer.text)
            assert answer.json()["code"] == code, (repr(blank), answer.text)
        if " " not in blank:
            put = await client.put(f"{reactions}/{quote(blank)}/@me", headers=ben.headers)
            assert put.status_code == 400 and put.json()["code"] == "INVALID_EMOJI", put.text
    # Next to something shown, they are kept as given.
    kept = await client.patch(
        "/api/users/@me", headers=ben.headers, json={"display_name": "Ben\u2065"}
    )
    assert kept.status_code == 200 and kept.json()["display_name"] == "Ben\u2065"


async def test_limits_count_code_points_of_astral_text_as_documented(
    app_with: AppWith, make_user: MakeUser
) -> None:
    """Each limit counts code points: 64 emoji (128 UTF-16 units, 256 bytes) are a
    64-character display name, and the spaces around a name are not counted."""
    client = await app_with(rate_profile_user="1000/600", rate_search_user="1000/60")
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await community(client, ann, ben)
    cases = [
        ("PATCH", "/api/users/@me", "display_name", 64, "INVALID_DISPLAY_NAME"),
        ("PATCH", "/api/users/@me", "status_text", 128, "INVALID_STATUS_TEXT"),
        ("PATCH", srv.url(f"/members/{ann.id}"), "nickname", 32, "INVALID_NICKNAME"),
        ("POST", srv.url("/roles"), "name", 100, "INVALID_ROLE_NAME"),
        ("POST", srv.url("/channels"), "name", 100, "INVALID_CHANNEL_NAME"),
        ("POST", f"/api/channels/{srv.general}/messages", "content", 4000, "MESSAGE_TOO_LONG"),
    ]
    for method, url, field, most, code in cases:
        padded = THUMB * most if field == "content" else f" {THUMB * most} "  # (names trimmed)
        fits = await client.request(method, url, headers=ann.headers, json={field: padded})
        assert fits.status_code in (200, 201), (field, fits.text)
        over = await client.request(
            method, url, headers=ann.headers, json={field: THUMB * (most + 1)}
        )
        assert over.status_code == 400 and over.json()["code"] == code, (field, over.text)
    for q, status in ((THUMB * 16, 200), ("\U0001f389" * 513, 400)):
        answer = await client.get("/api/search", params={"q": q}, headers=ann.headers)
        assert answer.status_code == status, answer.text


async def test_a_message_with_more_than_30_combining_marks_in_a_row_is_refused(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """Was: "hello" and 3,994 combining marks of two classes, the higher first, were
    stored: PostgreSQL's normalize() (search's xf_nfc, in the stored search vector and
    in every search's confirmation on the text) orders such a run by swapping
    neighbours, 4 million swaps: half a second of the database per send (10 a channel
    every 10 s, each member), and five such messages made every search for "hello" take
    3 s, its whole budget."""
    ann, _, dm = await pair(client, make_user)
    url = f"/api/channels/{dm}/messages"
    sent = await say(client, ann, dm, "hi")
    for stacked in (
        "hello " + "\u0301" * 1997 + "\u0316" * 1997,
        "a" + "\u0301" * 31,
        "Z" + "\u0316\u0301" * 16 + " rest",
        # (each of these Tibetan vowel signs is of class 0, but two marks decomposed:
        # 4,000 of them took PostgreSQL 1.2 s to put in NFC)
        "\u0f73" * 4000,
        "a" + "\u0f75" * 3999,
        "hello " + "\u0f81" * 16,
        "\u01d8" + "\u0301" * 29,  # (u with two marks, and 29 more)
    ):
        posted = await client.post(url, headers=ann.headers, json={"content": stacked})
        assert posted.status_code == 400, posted.text
        assert posted.json()["code"] == "TOO_MANY_COMBINING_MARKS", posted.text
        assert posted.json()["field"] == "content"
        put = await client.put(f"{url}/{uuid4()}", headers=ann.headers, json={"content": stacked})
        assert put.status_code == 400 and put.json()["code"] == "TOO_MANY_COMBINING_MARKS"
        edited = await client.patch(
            f"{url}/{sent['id']}", headers=ann.headers, json={"content": stacked}
        )
        assert edited.status_code == 400 and edited.json()["code"] == "TOO_MANY_COMBINING_MARKS"
        form = await client.post(
            url,
            headers={**ann.headers, "Content-Type": "multipart/form-data; boundary=b"},
            content=b'--b\r\nContent-Disposition: form-data; name="content"\r\n\r\n'
            + stacked.encode()
            + b"\r\n--b--\r\n",
        )
        assert form.status_code == 400 and form.json()["code"] == "TOO_MANY_COMBINING_MARKS"
    # 30 in a row is real text's most (Unicode's stream-safe limit); runs of it, as many as
    # fit, and accented letters by the thousand are fine.
    for fine in (
        ("a" + "\u0301" * 15 + "\u0316" * 15) * 129,
        "\u1ef1\u0301" * 2000,
        "e\u0301" * 2000,
        "\u0f40\u0f73" * 2000,  # (a Tibetan letter with its vowel sign)
    ):
        assert (await say(client, ann, dm, fine))["content"] == fine


def test_a_snippet_of_a_message_stored_with_a_run_of_marks_is_not_put_in_nfc(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A message stored before TOO_MANY_COMBINING_MARKS may still hold 4,000 marks in
    a row: putting it in NFC took Python some 40 ms (twice, for its snippet), a page of
    100 such results seconds of the event loop. Its hits are placed as written."""
    content = "hello " + "\u0301" * 1997 + "\u0316" * 1997
    real_normalize, real_is_normalized = unicodedata.normalize, unicodedata.is_normalized

    def short_only(call: Any) -> Any:
        def guarded(form: str, text: str) -> Any:
            assert len(text) < 100, "a long run of marks was normalised"
            return call(form, text)

        return guarded

    monkeypatch.setattr(unicodedata, "normalize", short_only(real_normalize))
    monkeypatch.setattr(unicodedata, "is_normalized", short_only(real_is_normalized))
    segments = snippet(content, [Check("word", "hello", "hello", False)], None)
    assert "".join(s["text"] for s in segments if s["text"] != "\u2026") == content[:200]
    assert segments[0] == {"text": "hello", "hit": True}
