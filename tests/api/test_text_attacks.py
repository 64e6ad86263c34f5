"""What an outside attack on text and input found: names that read as reserved ones,
text that shows nothing, header bytes, values past their column's range."""

from __future__ import annotations

import httpx
import pytest

from tests.factories import PASSWORD, AppWith, MakeUser, community, pair, role, say

# Each shows nothing: zero-width space, BOM, word joiner, bidi override and isolates,
# Hangul filler, braille blank; and some of them around spaces.
BLANKS = ["\u200b", "\ufeff", "\u2060", "\u202e", "\u2066\u2069", "\u3164", "\u2800", " \u200b "]


@pytest.mark.parametrize("name", ["admin.", ".admin", "_admin", "admin_", "_Root.", "a.", "_b_"])
async def test_a_username_that_reads_as_a_reserved_or_one_letter_name_is_refused(
    client: httpx.AsyncClient, make_user: MakeUser, name: str
) -> None:
    body = {"username": name, "email": "x@example.com", "password": PASSWORD}
    made = await client.post("/api/auth/register", json=body)
    assert made.status_code == 400 and made.json()["code"] == "INVALID_USERNAME", made.text
    me = await make_user("someone")
    changed = await client.patch("/api/users/@me", headers=me.headers, json={"username": name})
    assert changed.status_code == 400 and changed.json()["code"] == "INVALID_USERNAME"


async def test_usernames_with_dots_and_underscores_inside_are_still_fine(
    client: httpx.AsyncClient,
) -> None:
    for n, name in enumerate(["ad.min", "_ab", "ab_", "j.r.r", "__ok__"]):
        body = {"username": name, "email": f"x{n}@example.com", "password": PASSWORD}
        made = await client.post("/api/auth/register", json=body)
        assert made.status_code == 201, (name, made.text)


@pytest.mark.parametrize("name", ["@everyone", "@here", "@Everyone", "＠here", "@every\u200bone"])
async def test_a_role_cannot_be_named_as_a_mention_of_everyone(
    client: httpx.AsyncClient, make_user: MakeUser, name: str
) -> None:
    ann = await make_user("ann")
    srv = await community(client, ann)
    made = await client.post(srv.url("/roles"), headers=ann.headers, json={"name": name})
    assert made.status_code == 400 and made.json()["code"] == "INVALID_ROLE_NAME", made.text
    assert made.json()["field"] == "name"
    other = await role(client, srv, ann, "mods", 0)
    renamed = await client.patch(
        srv.url(f"/roles/{other}"), headers=ann.headers, json={"name": name}
    )
    assert renamed.status_code == 400 and renamed.json()["code"] == "INVALID_ROLE_NAME"
    roles = (await client.get(srv.url("/roles"), headers=ann.headers)).json()
    assert [r["name"] for r in roles] == ["mods", "@everyone"]


async def test_names_that_show_nothing_are_empty(app_with: AppWith, make_user: MakeUser) -> None:
    client = await app_with(rate_profile_user="1000/600", rate_register_ip="1000/3600")
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await community(client, ann, ben)
    mods = await role(client, srv, ann, "mods", 0)
    ann_h, ben_h = ann.headers, ben.headers
    for n, blank in enumerate(BLANKS):
        register = {"username": f"new{n}", "email": f"new{n}@example.com", "password": PASSWORD}
        group = {"kind": "group", "name": blank, "participant_ids": []}
        attempts = [
            ("INVALID_DISPLAY_NAME", "POST", "/api/auth/register", {}, "display_name", register),
            ("INVALID_DISPLAY_NAME", "PATCH", "/api/users/@me", ben_h, "display_name", {}),
            ("INVALID_STATUS_TEXT", "PATCH", "/api/users/@me", ben_h, "status_text", {}),
            ("INVALID_NICKNAME", "PATCH", srv.url(f"/members/{ben.id}"), ben_h, "nickname", {}),
            ("INVALID_SERVER_NAME", "POST", "/api/servers", ann_h, "name", {}),
            ("INVALID_SERVER_NAME", "PATCH", srv.url(), ann_h, "name", {}),
            ("INVALID_CHANNEL_NAME", "POST", srv.url("/channels"), ann_h, "name", {}),
            ("INVALID_CHANNEL_NAME", "PATCH", f"/api/channels/{srv.general}", ann_h, "name", {}),
            ("INVALID_ROLE_NAME", "POST", srv.url("/roles"), ann_h, "name", {}),
            ("INVALID_ROLE_NAME", "PATCH", srv.url(f"/roles/{mods}"), ann_h, "name", {}),
            ("INVALID_CONVERSATION_NAME", "POST", "/api/conversations", ann_h, "name", group),
        ]
        for code, method, url, headers, field, body in attempts:
            answer = await client.request(method, url, headers=headers, json={**body, field: blank})
            assert answer.status_code == 400, (code, repr(blank), answer.text)
            assert answer.json()["code"] == code, (repr(blank), answer.text)
    # The text itself is kept as given: a right-to-left name keeps its marks.
    named = await client.patch(
        "/api/users/@me", headers=ben.headers, json={"display_name": "\u2067שלום\u2069"}
    )
    assert named.status_code == 200 and named.json()["display_name"] == "\u2067שלום\u2069"
    cleared = await client.patch(
        srv.url(f"/members/{ben.id}"), headers=ben.headers, json={"nickname": ""}
    )
    assert cleared.status_code == 200 and cleared.json()["nickname"] is None


# Each would rewrite the text a page shows around the name: a line break (a made-up line
# under the author's), an override or embedding left open (the rest of a message that
# mentions it reversed), a closer of nothing, an isolate closed by another's closer, a tab,
# a C1 control, the line separator.
NOT_ONE_LINE = [
    "Bob\n\nJK: I will NOT pay.",
    "Bob\u202e",
    "adm\u202b!",
    "x\u2069y",
    "\u2067x\u202c",
    "a\tb",
    "a\x85b",
    "a\u2028b",
]


async def test_names_are_one_line_with_their_bidi_controls_closed(
    app_with: AppWith, make_user: MakeUser
) -> None:
    """Was: a display name with line breaks, a nickname or role name ending in an open
    U+202E were stored (200), and rewrote other people's messages that mentioned them."""
    limits = {
        "rate_presence_user": "1000/60",
        "rate_register_ip": "1000/3600",
        "rate_nickname_user": "1000/600",
    }
    client = await app_with(rate_profile_user="1000/600", rate_groups_user="1000/600", **limits)
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await community(client, ann, ben)
    mods = await role(client, srv, ann, "mods", 0)
    ann_h, ben_h = ann.headers, ben.headers
    fields = [
        ("INVALID_DISPLAY_NAME", "PATCH", "/api/users/@me", ben_h, "display_name", {}),
        ("INVALID_STATUS_TEXT", "PATCH", "/api/users/@me", ben_h, "status_text", {}),
        ("INVALID_STATUS_TEXT", "PUT", "/api/users/@me/presence", ben_h, "status_text", {}),
        ("INVALID_NICKNAME", "PATCH", srv.url(f"/members/{ben.id}"), ben_h, "nickname", {}),
        ("INVALID_SERVER_NAME", "PATCH", srv.url(), ann_h, "name", {}),
        ("INVALID_CHANNEL_NAME", "POST", srv.url("/channels"), ann_h, "name", {}),
        ("INVALID_ROLE_NAME", "PATCH", srv.url(f"/roles/{mods}"), ann_h, "name", {}),
        (
            "INVALID_CONVERSATION_NAME",
            "POST",
            "/api/conversations",
            ann_h,
            "name",
            {"kind": "group", "participant_ids": []},
        ),
    ]
    for bad in NOT_ONE_LINE:
        register = {"username": "newbie", "email": "new@example.com", "password": PASSWORD}
        made = await client.post("/api/auth/register", json={**register, "display_name": bad})
        assert made.status_code == 400, (repr(bad), made.text)
        assert made.json()["code"] == "INVALID_DISPLAY_NAME", made.text
        for code, method, url, headers, field, body in fields:
            answer = await client.request(method, url, headers=headers, json={**body, field: bad})
            assert answer.status_code == 400, (code, repr(bad), answer.text)
            assert answer.json()["code"] == code and answer.json()["field"] == field
    # Closed in order, they stay within the name; marks open nothing.
    for good in ["\u2067שלום\u2069", "\u200fשלום", "a\u202eb\u202c\u2066c\u2069", "Bob"]:
        for code, method, url, headers, field, body in fields:
            answer = await client.request(method, url, headers=headers, json={**body, field: good})
            assert answer.status_code in (200, 201), (code, repr(good), answer.text)


async def test_a_reaction_of_dots_or_of_nothing_shown_is_refused(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """Was: "." and ".." were stored (a browser's URL to them is another route, so no
    client could take them back or list them), and so was a lone U+202E."""
    ann, _, dm = await pair(client, make_user)
    url = f"/api/channels/{dm}/messages/{(await say(client, ann, dm, 'hi'))['id']}/reactions"
    for bad in ["%2E", "%2E%2E", "...", "%E2%80%AE", "%E2%80%8B", "a%E2%80%AE", "a%C2%9Fb"]:
        put = await client.put(f"{url}/{bad}/@me", headers=ann.headers)
        assert put.status_code == 400 and put.json()["code"] == "INVALID_EMOJI", (bad, put.text)
        # (taking back or listing one, as stored before the rule, still works)
        assert (await client.delete(f"{url}/{bad}/@me", headers=ann.headers)).status_code == 204
        assert (await client.get(f"{url}/{bad}", headers=ann.headers)).json() == []
    for good in ["%F0%9F%91%8D", "a.b", "%E2%9D%A4%EF%B8%8F"]:  # 👍, a.b, ❤️
        put = await client.put(f"{url}/{good}/@me", headers=ann.headers)
        assert put.status_code == 204, (good, put.text)


async def test_a_message_that_shows_nothing_is_empty_and_a_family_emoji_is_not(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    ann, _, dm = await pair(client, make_user)
    url = f"/api/channels/{dm}/messages"
    sent = await say(client, ann, dm, "hello")
    for blank in BLANKS:
        empty = await client.post(url, headers=ann.headers, json={"content": blank})
        assert empty.status_code == 400, (repr(blank), empty.text)
        assert empty.json()["code"] == "EMPTY_MESSAGE"
        edited = await client.patch(
            f"{url}/{sent['id']}", headers=ann.headers, json={"content": blank}
        )
        assert edited.status_code == 400 and edited.json()["code"] == "EMPTY_MESSAGE"
        form = await client.post(
            url,
            headers={**ann.headers, "Content-Type": "multipart/form-data; boundary=b"},
            content=b'--b\r\nContent-Disposition: form-data; name="content"\r\n\r\n'
            + blank.encode()
            + b"\r\n--b--\r\n",
        )
        assert form.status_code == 400 and form.json()["code"] == "EMPTY_MESSAGE", form.text
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466"  # (joined by U+200D)
    kept = await say(client, ann, dm, family)
    assert kept["content"] == family
    flag = await client.patch(f"{url}/{sent['id']}", headers=ann.headers, json={"content": family})
    assert flag.status_code == 200 and flag.json()["content"] == family


async def test_an_audit_reason_is_512_characters_however_it_is_encoded(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """A hostile client's find: 513 characters of four percent-encoded bytes each were
    VALIDATION_ERROR (the header was cut at 6,144 bytes), not INVALID_AUDIT_REASON."""
    ann = await make_user("ann")
    srv = await community(client, ann)
    grin = "%F0%9F%98%80"  # (one character, U+1F600)
    for count, status in ((512, 200), (513, 400)):
        changed = await client.patch(
            srv.url(),
            headers={**ann.headers, "X-Audit-Log-Reason": grin * count},
            json={"name": f"srv {count}"},
        )
        assert changed.status_code == status, changed.text
        if status == 400:
            assert changed.json()["code"] == "INVALID_AUDIT_REASON", changed.text


async def test_header_text_sent_as_raw_utf8_is_read_as_utf8_without_controls(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """Was: raw UTF-8 in X-Audit-Log-Reason and User-Agent was stored read as Latin-1
    ("Ã©", C1 control characters from bytes 0x80-0x9F)."""
    ann = await make_user("ann")
    srv = await community(client, ann)
    reasons = [
        ("r\u00e9union \u00e0 l'\u00e9cole, a\u0301 \U0001f600".encode(), None),
        (b"caf\xe9 cr\xe8me", "caf\u00e9 cr\u00e8me"),  # not UTF-8: Latin-1, as sent
        ("x\u0085y\u009bz".encode(), "x yz"),  # NEL a space, CSI gone
        (b"spam%0Alinks%C2%9B%09%C3%A9t%C3%A9", "spam links \u00e9t\u00e9"),
    ]
    for n, (sent, stored) in enumerate(reasons):
        changed = await client.patch(
            srv.url(),
            headers={**ann.headers, "X-Audit-Log-Reason": sent},
            json={"name": f"srv {n}"},
        )
        assert changed.status_code == 200, changed.text
        log = (await client.get(srv.url("/audit-log?limit=1"), headers=ann.headers)).json()
        assert log[0]["reason"] == (stored or sent.decode()), log[0]
    agents = [
        ("Mozilla/5.0 (\u00e9t\u00e9; \u65e5\u672c) \U0001f600".encode(), None),
        (b"\xff\xfeold", "\u00ff\u00feold"),
        ("A\u0085B\u0090C".encode(), "A BC"),
    ]
    for sent, stored in agents:
        login = await client.post(
            "/api/auth/login",
            headers={"User-Agent": sent},
            json={"login": "ann", "password": PASSWORD},
        )
        assert login.status_code == 200, login.text
        token = login.json()["access_token"]
        mine = await client.get(
            "/api/users/@me/sessions", headers={"Authorization": f"Bearer {token}"}
        )
        current = next(s for s in mine.json() if s["current"])
        assert current["user_agent"] == (stored or sent.decode()), current


async def test_values_past_their_columns_range_get_the_routes_codes(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """Was: 400 INVALID_VALUE, the driver's failure, for each of these."""
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await community(client, ann)
    for before in (2**63, 2**64, -1, 0):
        log = await client.get(srv.url(f"/audit-log?before={before}"), headers=ann.headers)
        assert log.status_code == 400 and log.json()["code"] == "VALIDATION_ERROR", log.text
        assert log.json()["field"] == "before"
    top = await client.get(srv.url(f"/audit-log?before={2**63 - 1}"), headers=ann.headers)
    assert top.status_code == 200
    said = await say(client, ann, srv.general, "hi")
    url = f"/api/channels/{srv.general}/messages/{said['id']}/reactions/%F0%9F%91%8D"
    assert (await client.put(f"{url}/@me", headers=ann.headers)).status_code == 204
    for at in ("9999-12-31T23:59:59-23:00", "0001-01-01T00:00:00+23:59"):
        page = await client.get(
            url, params={"after": str(ann.id), "after_at": at}, headers=ann.headers
        )
        assert page.status_code == 400, page.text
        assert (page.json()["code"], page.json()["field"]) == ("INVALID_PAGE", "after_at")
        requests = await client.get(
            "/api/users/@me/friend-requests",
            params={"before": str(ben.id), "before_at": at},
            headers=ann.headers,
        )
        assert requests.status_code == 400, requests.text
        assert (requests.json()["code"], requests.json()["field"]) == ("INVALID_PAGE", "before_at")
    edge = await client.get(
        url,
        params={"after": str(ben.id), "after_at": "9999-12-31T23:59:59+00:00"},
        headers=ann.headers,
    )
    assert edge.status_code == 200 and edge.json() == []


@pytest.mark.parametrize(
    "bits", ["８", "٨", "1_0", " 8 ", "+8", "8 ", "-0", "0x8", "8.0", "", "1" * 21, str(1 << 64)]
)
async def test_permissions_are_ascii_decimal_strings_only(
    client: httpx.AsyncClient, make_user: MakeUser, bits: str
) -> None:
    """Was: int() read full-width and Arabic-Indic digits, underscores, spaces, a sign."""
    ann = await make_user("ann")
    srv = await community(client, ann)
    made = await client.post(srv.url("/roles"), headers=ann.headers, json={"permissions": bits})
    assert made.status_code == 400, made.text
    assert (made.json()["code"], made.json()["field"]) == ("INVALID_PERMISSIONS", "permissions")
    mods = await role(client, srv, ann, "mods", 0)
    changed = await client.patch(
        srv.url(f"/roles/{mods}"), headers=ann.headers, json={"permissions": bits}
    )
    assert changed.status_code == 400 and changed.json()["code"] == "INVALID_PERMISSIONS"
    for field in ("allow", "deny"):
        override = await client.put(
            f"/api/channels/{srv.general}/overrides/role/{mods}",
            headers=ann.headers,
            json={field: bits},
        )
        assert override.status_code == 400, override.text
        assert (override.json()["code"], override.json()["field"]) == ("INVALID_PERMISSIONS", field)


async def test_permissions_in_plain_digits_still_work(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    ann = await make_user("ann")
    srv = await community(client, ann)
    made = await client.post(srv.url("/roles"), headers=ann.headers, json={"permissions": "0008"})
    assert made.status_code == 201 and made.json()["permissions"] == "8", made.text
