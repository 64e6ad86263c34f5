"""The client attacked from outside. A member with an account puts markup, script URLs
and hostile names everywhere the client shows text: the victim's page shows it all as
text and runs none of it. The client runs under Trusted Types; a hostile gateway frame
pollutes nothing; /docs (same origin, so same localStorage, where the refresh token
lives) renders under its own CSP; neither page can be framed. Four defects this found,
each test failing before its fix: logging out with an expired access token left the
session alive; a session revoked elsewhere left its settings dialog on screen; h() would
make an inline handler or a javascript: link from a string; an event named after an
Object.prototype member threw.

Two lines of defence are checked separately: the DOM (no element or attribute was made
from received text) and the CSP (the `browsers` fixture fails a test on any violation
report, which is what an inline handler that got into the DOM would produce)."""

from __future__ import annotations

import asyncio
import json
import re
import time
from uuid import UUID

import asyncpg
import jwt
from playwright.async_api import Page, Route, WebSocketRoute, expect

from tests.e2e.browser.client import (
    GENERAL,
    SERVER,
    USER_IDS,
    act,
    api_as,
    message,
    open_channel,
    open_settings,
    say,
)
from tests.e2e.browser.conftest import Browsers, Site, log_in
from tests.e2e.browser.test_browser_chat import png
from xfchat.domain.tokens import issue_access_token


def payload(tag: str) -> str:
    """Markup that, parsed as HTML, runs script (marking `window.__pwned`)."""
    return f"<img src=x onerror=__pwned='{tag}'><svg onload=__pwned='{tag}'>"


# Every element the client made, and every attribute on it: none may be an event handler,
# an element received text could only have made by being parsed, or a link anywhere but
# http(s) (and the client's own #routes and blob: downloads); an image only from this
# server (a blob: it fetched, or /api/media/): an outside one would be a tracking pixel.
DOM_AUDIT = """() => {
  const bad = [];
  for (const el of document.body.querySelectorAll("*")) {
    const tag = el.tagName.toLowerCase();
    if (["script", "iframe", "object", "embed", "svg", "math", "base", "meta", "link", "style"].includes(tag)) bad.push(`<${tag}>`);
    for (const a of el.attributes) {
      if (a.name.startsWith("on")) bad.push(`${tag}[${a.name}]`);
      if (a.name === "href" && !/^(https?:|#|blob:)/.test(a.value)) bad.push(`${tag}[href=${a.value}]`);
      if (["src", "srcset", "poster", "action", "formaction", "xlink:href"].includes(a.name) && !/^(blob:|\\/api\\/media\\/)/.test(a.value)) bad.push(`${tag}[${a.name}=${a.value}]`);
    }
    if (tag === "a" && el.target === "_blank" && !/\\bnoopener\\b/.test(el.rel)) bad.push(`a[target=_blank] without noopener: ${el.href}`);
  }
  return { bad, pwned: window.__pwned ?? null };
}"""


async def audit(page: Page, where: str) -> None:
    found = await page.evaluate(DOM_AUDIT)
    assert found == {"bad": [], "pwned": None}, where


async def test_hostile_names_topics_statuses_files_and_links_show_as_text(
    site: Site, browsers: Browsers
) -> None:
    """Bob (a member) and a hostile owner fill every field another member's page shows
    with markup; alice's page shows it all as text: messages, mentions, links, names,
    nickname, status, avatar URL, role, channel, topic, server name, file name, search
    hits and the audit log."""
    async with api_as(site.base, "alice") as owner, api_as(site.base, "bob") as bob:
        me = {
            "display_name": payload("dn"),
            "status_text": payload("status"),
            "avatar_url": "https://tracker.example/pixel.png",  # (the server takes only http(s))
        }
        patched = await bob.patch("/api/users/@me", json=me)
        assert patched.status_code == 200, patched.text
        role = await owner.post(
            f"/api/servers/{SERVER}/roles",
            json={"name": payload("role"), "color": 0xFF0000, "hoist": True},
        )
        assert role.status_code == 201, role.text
        role_id = role.json()["id"]
        put = f"/api/servers/{SERVER}/members/{USER_IDS['bob']}/roles/{role_id}"
        assert (await owner.put(put)).status_code == 204
        topic = {"topic": payload("topic") + " javascript:alert(1)"}
        assert (await owner.patch(f"/api/channels/{GENERAL}", json=topic)).status_code == 200
        content = (
            f"{payload('content')} <@{USER_IDS['alice']}> <@&{role_id}> [x](javascript:alert(1)) "
            'javascript:alert(1) https://example.com/"onmouseover="window.__pwned=1 '
            "data:text/html,<script>alert(1)</script> pwnword"
        )
        files = {"files": (payload("file") + ".txt", b"hi", "text/html")}
        sent = await bob.post(
            f"/api/channels/{GENERAL}/messages",
            data={"payload_json": json.dumps({"content": content})},
            files=files,
        )
        assert sent.status_code == 201, sent.text

    # Connected, so that his custom status shows: it is in his presence, not his profile.
    await browsers.logged_in(site.base, "bob")
    alice = await browsers.logged_in(site.base, "alice")
    log = await open_channel(alice, "general")
    shown = message(log, "pwnword")
    await expect(shown).to_be_visible()
    await expect(shown.locator(".msg-content")).to_contain_text(payload("content"))
    await expect(shown.locator(".msg-author")).to_have_text(payload("dn"))
    await expect(shown.locator(".mention").nth(1)).to_have_text("@" + payload("role"))
    await expect(shown.get_by_text(payload("file") + ".txt", exact=True)).to_be_visible()
    links = shown.locator(".msg-content a")
    await expect(links).to_have_count(1)  # only the https one; cut at the quote
    await expect(links).to_have_attribute("href", "https://example.com/")
    await expect(alice.locator(".topic")).to_contain_text(payload("topic"))
    members = alice.get_by_role("complementary", name="Details")
    await expect(members.get_by_text(payload("status"), exact=True)).to_be_visible()
    await members.get_by_role("button", name=payload("dn")).click()
    profile = alice.get_by_role("dialog")
    await expect(profile.get_by_text(payload("status"), exact=True)).to_be_visible()
    await audit(alice, "channel view, member list and bob's profile")
    await alice.keyboard.press("Escape")

    search = alice.get_by_role("searchbox", name="Search messages")
    await search.fill("pwnword")
    await search.press("Enter")
    hit = alice.get_by_role("list", name="Search results").get_by_role("button").first
    await expect(hit.locator("mark")).to_have_text("pwnword")
    await audit(alice, "search results")

    await alice.get_by_role("button", name="Server settings").click()
    settings = alice.get_by_role("dialog", name="Gaming Squad settings")
    await settings.get_by_role("tab", name="Audit log").click()
    await expect(settings.get_by_text("role.created", exact=True)).to_be_visible()
    await audit(alice, "audit log")
    await alice.keyboard.press("Escape")

    await alice.get_by_role("link", name="Direct messages").click()
    await alice.get_by_role("tab", name="All").click()
    await expect(alice.get_by_text(payload("dn")).first).to_be_visible()
    await audit(alice, "friends page and the DM list")


# Whether `word`, in a text node under the element, is drawn left to right (its first
# character left of its last): under an override left open before it, it is not.
LEFT_TO_RIGHT = """(el, word) => {
  const walk = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
  for (let n = walk.nextNode(); n; n = walk.nextNode()) {
    const at = n.data.indexOf(word);
    if (at < 0) continue;
    const x = (i) => { const r = document.createRange(); r.setStart(n, i); r.setEnd(n, i + 1); return r.getBoundingClientRect().left; };
    return x(at) < x(at + word.length - 1);
  }
  return null;
}"""
# Every text node holding one of the names: not inside a <bdi> of its own, it could
# reorder (or break the line of) the text around it.
UNISOLATED = """(names) => {
  const bad = [];
  const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walk.nextNode(); n; n = walk.nextNode()) {
    const found = names.some((name) => n.data.includes(name));
    if (found && (n.parentElement.tagName !== "BDI" || n.data.includes("\\n"))) bad.push(`${n.parentElement.className}: ${JSON.stringify(n.data)}`);
  }
  return bad;
}"""
MEMBER_ROLE = "00000000-0000-0000-0000-000000000201"


async def test_names_links_and_marks_cannot_rewrite_what_others_see(
    site: Site, browsers: Browsers
) -> None:
    """An outside attacker's spoofs, each failing before its fix: a link whose text read
    as another address (a bidi override before it, or inside it); a nickname, display
    name or role name left with an open U+202E or line breaks (stored before the server
    refused them) reversing, or adding lines to, other people's messages and every line
    that shows the name (the who-reacted tooltip too); combining marks stacked on each
    letter drawn over the whole list (by the hundred then; 30, the most a message may
    stack now, are still drawn high)."""
    async with api_as(site.base, "alice") as alice_api, api_as(site.base, "charlie") as charlie:
        url = f"/api/channels/{GENERAL}/messages"
        pinned = (await alice_api.post(url, json={"content": "pinme hello"})).json()
        assert (await alice_api.put(f"/api/channels/{GENERAL}/pins/{pinned['id']}")).is_success
        mention = f"pay <@{USER_IDS['alice']}> back now <@&{MEMBER_ROLE}> note"
        said = await charlie.post(url, json={"content": mention, "reply_to_id": pinned["id"]})
        assert said.status_code == 201, said.text
        said_id = said.json()["id"]
        spoofs = [
            "Official login page: \u202ehttps://evil.example/#/nigol/moc.elgoog.stnuocca//:sptth",
            "https://evil.example/\u202egpj.tac ok",
            # (30 marks on each letter, as many as a message may stack: UAX #15's limit)
            "zalgo " + ("e" + "\u0301" * 15 + "\u0316" * 15) * 60,
        ]
        for text in spoofs:
            assert (await charlie.post(url, json={"content": text})).status_code == 201
        towering = "zalgo " + ("e" + "\u0301" * 390 + "\u0316" * 390) * 5
        refused = await charlie.post(url, json={"content": towering})
        assert refused.json()["code"] == "TOO_MANY_COMBINING_MARKS", refused.text
        assert (await alice_api.put(f"{url}/{said_id}/reactions/%F0%9F%91%8D/@me")).is_success
    conn = await asyncpg.connect(site.db_url)
    try:  # (as stored before the server refused them)
        await conn.execute(
            "UPDATE server_members SET nickname = 'Ann\u202e' WHERE user_id = $1",
            UUID(USER_IDS["alice"]),
        )
        await conn.execute(
            "UPDATE users SET display_name = 'Alice\u202e' WHERE id = $1", UUID(USER_IDS["alice"])
        )
        await conn.execute(
            "UPDATE roles SET name = 'adm\n\nJK: I will NOT pay.' WHERE id = $1", UUID(MEMBER_ROLE)
        )
    finally:
        await conn.close()

    bob = await browsers.logged_in(site.base, "bob")
    log = await open_channel(bob, "general")
    shown = message(log, "back now")
    content = shown.locator(".msg-content")
    # Drawn with its names resolved before its layout is read (read sooner, while the
    # log was still being laid out, both ends of the text stood at 0: CI caught it once).
    await expect(shown.locator(".mention")).to_have_text(["@Ann\u202e", "@adm JK: I will NOT pay."])
    await expect(content).to_be_visible()
    assert await content.evaluate(LEFT_TO_RIGHT, "back now") is True
    for text, href in (
        ("Official login", "https://evil.example/#/nigol/moc.elgoog.stnuocca//:sptth"),
        ("gpj.tac", "https://evil.example/"),
    ):
        link = message(log, text).locator(".msg-content a")
        await expect(link).to_have_attribute("href", href)
        await expect(link).to_have_text(href)
        assert await link.evaluate(LEFT_TO_RIGHT, href) is True
    zalgo = message(log, "zalgo").locator(".msg-content")
    assert await zalgo.evaluate("(el) => getComputedStyle(el).overflowY") in ("clip", "hidden")

    async with api_as(site.base, "alice") as alice_api:
        assert (await alice_api.post(f"/api/channels/{GENERAL}/typing")).status_code == 204
    await expect(bob.locator(".typing bdi")).to_have_text("Ann\u202e")
    search = bob.get_by_role("searchbox", name="Search messages")
    await search.fill("pinme")
    await search.press("Enter")
    hits = bob.get_by_role("list", name="Search results").get_by_role("button")
    await expect(hits.first.locator("strong")).to_have_text("Ann\u202e")
    # The author line, the pin notice, the reply's preview, the mentions, the typing
    # line, the search hit, the member list and its role heading: each name isolated.
    names = ["Ann\u202e", "I will NOT pay"]
    assert await bob.evaluate(UNISOLATED, names) == []
    assert await bob.locator("bdi", has_text="Ann\u202e").count() >= 7

    thumbs = shown.locator('button.reaction[data-emoji="👍"]')
    await thumbs.hover()
    await expect(thumbs).to_have_attribute("title", "\u2068Alice\u202e\u2069 reacted with 👍")


async def _expire_the_access_token(route: Route, secret: str) -> None:
    """The logout request as it is sent when the page's access token has run out (a laptop
    woken from sleep, a background tab whose refresh timer was throttled): the same
    session, signed by the server's key, expired an hour ago."""
    bearer = route.request.headers["authorization"].removeprefix("Bearer ")
    claims = jwt.decode(bearer, options={"verify_signature": False})
    expired = issue_access_token(
        secret,
        user_id=UUID(claims["sub"]),
        session_id=UUID(claims["sid"]),
        ttl_s=900,
        now=time.time() - 3600,
    )
    headers = {**route.request.headers, "authorization": f"Bearer {expired}"}
    await route.continue_(headers=headers)


async def test_logging_out_with_an_expired_access_token_still_ends_the_session(
    site: Site, browsers: Browsers
) -> None:
    """The page's access token has run out when the person presses Log out: the client
    refreshes it and logs out again (only the first request carries the expired token:
    the second has the fresh one, as it would)."""
    alice = await browsers.logged_in(site.base, "alice")
    held = await alice.evaluate("JSON.parse(localStorage.getItem('xfchat.session'))")
    await alice.route(
        "**/api/auth/logout",
        lambda r: _expire_the_access_token(r, site.servers.secret),
        times=1,
    )
    await alice.get_by_role("button", name="Log out").click()
    await expect(alice.get_by_label("Username or email")).to_be_visible()
    assert await alice.evaluate("localStorage.getItem('xfchat.session')") is None
    async with api_as(site.base, "bob") as api:
        stolen = {"refresh_token": held["refresh_token"]}
        again = await api.post("/api/auth/refresh", json=stolen, headers={"Authorization": ""})
    # The person pressed "Log out": whoever copied that refresh token must be out too.
    assert again.status_code == 401, again.text


async def test_docs_renders_under_its_csp(site: Site, browsers: Browsers) -> None:
    """/docs (Swagger UI) works with the CSP it is served with: the operations are listed
    and no violation is reported (the `browsers` fixture fails the test on one)."""
    page = await browsers.page(site.base)
    await page.goto(site.base + "/docs")
    # (Swagger UI lays out a hundred operations: on a busy box, longer than 15 s)
    await expect(page.get_by_text("/api/auth/login").first).to_be_visible(timeout=60_000)


async def test_neither_the_client_nor_docs_can_be_framed(site: Site, browsers: Browsers) -> None:
    """A hostile page frames the client and /docs to clickjack them: the browser shows
    neither inside the frame."""
    page = await browsers.browser.new_page()
    try:
        for path in ("/", "/docs"):
            await page.set_content(f'<iframe src="{site.base}{path}"></iframe>')
            frame = page.frames[1]
            await frame.wait_for_load_state()
            assert not frame.url.startswith(site.base), f"{path} was shown in a frame"
    finally:
        await page.close()


# Trusted Types (in the client's CSP): Chromium refuses, at run time, every string handed
# to an HTML or script sink (innerHTML and its kin, setHTMLUnsafe, srcdoc, script src,
# javascript: URLs, inline handler attributes), whatever the source looks like. Its
# console messages do not name the CSP, so violations are collected from the page.
TRUSTED_TYPES = ("require-trusted-types-for 'script'", "trusted-types 'none'")
WATCH_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) =>
  window.__violations.push(`${e.violatedDirective}: ${e.blockedURI} ${e.sample}`));
"""


async def under_trusted_types(page: Page) -> None:
    """Reload `page` watching for violations; its CSP enforces Trusted Types."""
    await page.add_init_script(WATCH_VIOLATIONS)
    response = await page.reload()
    assert response is not None
    csp = response.headers["content-security-policy"].split("; ")
    assert all(directive in csp for directive in TRUSTED_TYPES), csp


async def test_the_client_runs_under_trusted_types(site: Site, browsers: Browsers) -> None:
    """The suite checks the client's sources for HTML sinks by name; this has the browser
    check: with Trusted Types enforced, chatting, reacting, replying, editing,
    pinning, uploading and opening an image, searching and the settings run with no
    sink ever reached (no violation, no error)."""
    alice = await browsers.page(site.base)
    bob = await browsers.page(site.base)
    for page, who in ((alice, "alice"), (bob, "bob")):
        await under_trusted_types(page)
        await page.get_by_label("Username or email").fill(who)
        await page.get_by_label("Password").fill("password123")
        await page.get_by_role("button", name="Log in").click()
    a_log = await open_channel(alice, "general")
    b_log = await open_channel(bob, "general")
    await say(alice, "tt <b>x</b> https://example.com/a @bob")
    await expect(message(b_log, "tt <b>x</b>")).to_be_visible()
    await act(message(b_log, "tt <b>x</b>"), "Reply")
    await say(bob, "tt reply")
    await act(message(a_log, "tt reply"), "Add reaction")
    await alice.get_by_role("button", name="React with 🎉").click()
    await expect(
        message(b_log, "tt reply").get_by_role("button", name=re.compile("^🎉"))
    ).to_be_visible()
    await alice.locator("input[type=file]").set_input_files(
        [
            {"name": "pic.png", "mimeType": "image/png", "buffer": png()},
            {"name": "page.html", "mimeType": "text/html", "buffer": b"<script>x</script>"},
        ]
    )
    await say(alice, "tt files")
    sent = message(b_log, "tt files")
    await sent.get_by_role("button", name="Open image pic.png").click()
    await expect(bob.get_by_role("dialog", name="pic.png").get_by_role("img")).to_have_attribute(
        "src", re.compile("^blob:")
    )
    await bob.keyboard.press("Escape")
    async with bob.expect_download():
        await sent.get_by_role("button", name="Download page.html").click()
    await act(message(a_log, "tt reply"), "Pin")
    await bob.get_by_role("button", name="Pinned messages").click()
    search = alice.get_by_role("searchbox", name="Search messages")
    await search.fill("tt")
    await search.press("Enter")
    await expect(
        alice.get_by_role("list", name="Search results").locator("mark").first
    ).to_be_visible()
    settings = await open_settings(alice)
    for tab in ("Roles", "Channels", "Members", "Bans", "Invites"):
        await settings.get_by_role("tab", name=tab).click()
    await settings.get_by_role("button", name="Create invite").click()
    await expect(settings.locator(".settings-list code")).to_have_count(1)
    await settings.get_by_role("tab", name="Audit log").click()
    await expect(settings.get_by_text("invite.created", exact=True)).to_be_visible()
    for page in (alice, bob):
        assert await page.evaluate("window.__violations") == []
    # (and the policy is in force: a sink refuses a string)
    sink = "() => { try { document.createElement('i').innerHTML = '<b>'; } catch (e) { return e.name; } }"
    assert await alice.evaluate(sink) == "TypeError"
    # (that refusal was reported, as every violation is: the `browsers` fixture got it)
    reported = [p for p in browsers.problems if "innerHTML|<b>" in p]
    for _ in range(200):  # (the report crosses from the page: wait for it, up to 10 s)
        if reported:
            break
        await asyncio.sleep(0.05)
        reported = [p for p in browsers.problems if "innerHTML|<b>" in p]
    assert len(reported) == 1, browsers.problems
    browsers.problems[:] = [p for p in browsers.problems if p not in reported]


async def test_a_session_revoked_elsewhere_leaves_nothing_of_it_on_screen(
    site: Site, browsers: Browsers
) -> None:
    """A stolen laptop: its owner, from another device, ends every other session. The
    open tab must go back to the login form with nothing of the account left showing:
    not the server settings (members, bans, audit log) open in a modal dialog."""
    alice = await browsers.logged_in(site.base, "alice")
    settings = await open_settings(alice)
    await settings.get_by_role("tab", name="Members").click()
    async with api_as(site.base, "alice") as phone:
        mine = (await phone.get("/api/users/@me/sessions")).json()
        for s in mine:
            if not s["current"]:
                assert (await phone.delete(f"/api/users/@me/sessions/{s['id']}")).status_code == 204
    await expect(alice.get_by_label("Username or email")).to_be_attached()
    await expect(alice.locator("dialog[open]")).to_have_count(0)


async def test_h_makes_no_script_from_a_string(site: Site, browsers: Browsers) -> None:
    """The one way the client builds elements refuses, by itself, the two ways a string
    from the server could become script: an event handler attribute and a script URL."""
    page = await browsers.browser.new_page(base_url=site.base)
    try:
        await page.goto(site.base)
        made = await page.evaluate(
            """async () => {
              const { h } = await import("/web/js/dom.js");
              const a = h("a", { onclick: "window.__pwned = 1", href: "javascript:window.__pwned = 1" });
              const img = h("img", { src: "/web/favicon.svg", onerror: "window.__pwned = 1" });
              return [...a.getAttributeNames(), ...img.getAttributeNames()]
                .map((n) => `${n}=${a.getAttribute(n) ?? img.getAttribute(n)}`);
            }"""
        )
    finally:
        await page.close()
    assert not [m for m in made if m.startswith("on") or "javascript:" in m]


async def test_hostile_gateway_frames_pollute_nothing_and_break_nothing(
    site: Site, browsers: Browsers
) -> None:
    """A hostile or broken server (or a proxy on the way) sends frames with `__proto__`
    keys and event types named after Object.prototype's members: no object of the page
    gains a property, no error is thrown, and the page goes on working."""
    async with api_as(site.base, "alice") as api:
        real = (await api.get(f"/api/channels/{GENERAL}/messages?limit=1")).json()[0]
    forged = {
        **real,
        "id": "00000000-0000-0000-0000-00000000f00d",
        "seq": real["seq"] + 1000,
        "content": "forged frame",
        "__proto__": {"polluted": "message"},
        "constructor": {"prototype": {"polluted": "constructor"}},
    }
    hostile = [
        {"op": 0, "t": "__proto__", "s": None, "d": {"polluted": "type"}},
        {"op": 0, "t": "__defineGetter__", "s": None, "d": {}},
        {
            "op": 0,
            "t": "server.updated",
            "s": None,
            "d": {"id": SERVER, "__proto__": {"polluted": "server"}},
        },
        {"op": 0, "t": "message.created", "s": None, "d": forged},
    ]

    def relay(ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()

        def down(frame: str | bytes) -> None:
            ws.send(frame)
            if isinstance(frame, str) and '"t":"ready"' in frame.replace(" ", ""):
                for f in hostile:
                    ws.send(json.dumps(f))

        server.on_message(down)

    alice = await browsers.page(site.base)
    await alice.route_web_socket("**/api/gateway", relay)
    await alice.reload()
    await log_in(alice, "alice")
    log = await open_channel(alice, "general")
    await say(alice, "still working")
    await expect(message(log, "still working")).to_be_visible()
    polluted = await alice.evaluate("() => [({}).polluted, [].polluted, Object.prototype.polluted]")
    assert polluted == [None, None, None]
    errors, browsers.problems[:] = list(browsers.problems), []
    assert errors == []
