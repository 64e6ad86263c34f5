"""A refresh that fails for want of the server (a network error, a 503, a 429) keeps the
session: only a 401 from the refresh (or the gateway's 4012) ends it."""

from __future__ import annotations

import asyncio
import re

import pytest
from playwright.async_api import Page, Route, WebSocketRoute, expect

from tests.e2e.browser.client import GENERAL, api_as, message, open_channel, say
from tests.e2e.browser.conftest import Browsers, Site, log_in

EXPIRED = {"code": "TOKEN_EXPIRED", "message": "the access token has expired"}


async def until_answered(answered: list[int], want: list[int], seconds: float = 10) -> None:
    for _ in range(int(seconds * 10)):
        if answered == want:
            return
        await asyncio.sleep(0.1)
    assert answered == want


async def record_toasts(page: Page) -> None:
    """From now on, note every toast the page shows, as it is shown (each goes 5 s
    later: one looked for at the end only was missed if it came and went)."""
    await page.evaluate(
        """() => {
            window.__toasts = [];
            new MutationObserver((changes) => {
                for (const c of changes) for (const n of c.addedNodes) {
                    if (n.nodeType === 1 && n.classList.contains("toast")) window.__toasts.push(n.textContent);
                }
            }).observe(document.body, {subtree: true, childList: true});
        }"""
    )


async def not_sent_toasts(page: Page) -> list[str]:
    """The "Not sent" toasts shown since record_toasts."""
    return [t for t in await page.evaluate("window.__toasts") if "Not sent" in t]


async def fail_refresh_once(page: Page, how: str) -> list[int]:
    """The next refresh fails as `how` says; later ones reach the server. Returns the
    statuses of the refreshes that reached it (appended as they are answered)."""
    answered: list[int] = []
    failed = False

    async def handle(route: Route) -> None:
        nonlocal failed
        if not failed:
            failed = True
            if how == "network":
                await route.abort("connectionrefused")
            else:
                await route.fulfill(
                    status=503,
                    headers={"Retry-After": "1"},
                    json={"code": "DATABASE_BUSY", "message": "busy"},
                )
            return
        response = await route.fetch()
        answered.append(response.status)
        await route.fulfill(response=response)

    await page.route("**/api/auth/refresh", handle)
    return answered


@pytest.mark.parametrize("how", ["network", "503"])
async def test_a_send_whose_refresh_fails_keeps_the_session_and_the_text(
    site: Site, browsers: Browsers, how: str
) -> None:
    alice = await browsers.logged_in(site.base, "alice")
    log = await open_channel(alice, "general")
    answered = await fail_refresh_once(alice, how)
    expired_once = False

    async def expire(route: Route) -> None:  # the access token ran out before this send
        nonlocal expired_once
        if route.request.method == "POST" and not expired_once:
            expired_once = True
            await route.fulfill(status=401, json=EXPIRED)
        else:
            await route.continue_()

    await alice.route(f"**/api/channels/{GENERAL}/messages", expire)
    await record_toasts(alice)
    box = alice.get_by_role("textbox", name="Message", exact=True)
    await box.fill("typed while the server was away")
    await box.press("Enter")

    # Sent by itself once the server is back: the send is tried again (as the refresh).
    await expect(message(log, "typed while the server was away")).to_have_count(1)
    await until_answered(answered, [200])
    assert await not_sent_toasts(alice) == []
    await expect(box).to_have_value("")
    await expect(alice.get_by_text("Your session expired")).to_have_count(0)
    assert await alice.evaluate("localStorage.getItem('xfchat.session')") is not None
    await expect(alice.get_by_label("Username or email")).to_have_count(0)


async def test_sends_held_back_by_the_rate_limit_all_go_in_the_order_typed(
    site: Site, browsers: Browsers
) -> None:
    """Was: of a burst past the channel's limit (10 in 10 s), the refused sends came
    back to the box only while it was empty: the first did, the others were lost. Now a
    refused send waits as long as the 429 says and goes again, and the ones typed after
    it wait behind it."""
    alice = await browsers.logged_in(site.base, "alice")
    log = await open_channel(alice, "general")
    refused: list[str] = []

    async def limit(route: Route) -> None:  # the 4th to 6th sends are over the limit once
        body = route.request.post_data or ""
        over = [t for t in ("burst 03", "burst 04", "burst 05") if f'"{t}"' in body]
        if route.request.method == "POST" and over and over[0] not in refused:
            refused.append(over[0])
            await route.fulfill(
                status=429,
                headers={"Retry-After": "1"},
                json={"code": "RATE_LIMITED", "message": "slow down", "retry_after": 1},
            )
            return
        await route.continue_()

    await alice.route(f"**/api/channels/{GENERAL}/messages", limit)
    await record_toasts(alice)
    box = alice.get_by_role("textbox", name="Message", exact=True)
    typed = [f"burst {i:02d}" for i in range(8)]
    for text in typed:
        await box.fill(text)
        await box.press("Enter")
    for text in typed:  # (sent: a pending one is drawn too, greyed)
        await expect(message(log, text)).to_have_count(1)
        await expect(message(log, text)).not_to_have_class(re.compile("msg-pending"))
    shown = await log.locator("li.msg .msg-content").all_inner_texts()
    assert [t.strip() for t in shown if t.startswith("burst ")] == typed
    assert refused == ["burst 03", "burst 04", "burst 05"]
    assert await not_sent_toasts(alice) == []
    await expect(box).to_have_value("")


async def test_sends_queued_behind_one_given_up_come_back_with_it_in_order(
    site: Site, browsers: Browsers
) -> None:
    """Was: a send that found no server for a minute came back to the box, and the one
    typed after it, waiting behind it, then had a minute of its own: the server back
    meanwhile, it went out alone, before the one typed first (which sat in the box). Now
    the sends waiting behind one given up come back with it, in the order typed, and
    nothing overtakes it."""
    alice = await browsers.logged_in(site.base, "alice")
    log = await open_channel(alice, "general")
    down = True

    async def outage(route: Route) -> None:
        if route.request.method == "POST" and down:
            await route.abort("connectionrefused")
        else:
            await route.continue_()

    await alice.route(f"**/api/channels/{GENERAL}/messages", outage)
    box = alice.get_by_role("textbox", name="Message", exact=True)
    await say(alice, "typed first")
    await say(alice, "typed second")
    # (the first gives up after its minute of tries: then the server is back)
    await expect(box).to_have_value(re.compile("^typed first"), timeout=90_000)
    down = False
    await expect(box).to_have_value("typed first\ntyped second")
    await expect(log.locator("li.msg-pending")).to_have_count(0)
    await say(alice, "after the outage")
    await expect(message(log, "after the outage")).to_have_count(1)
    await expect(message(log, "typed second")).to_have_count(0)


async def unavailable_for_longer_than_the_client_waits(route: Route) -> None:
    """A 503 whose Retry-After is past the composer's minute of tries: it gives up at once."""
    await route.fulfill(
        status=503,
        headers={"Retry-After": "120"},
        json={"code": "DATABASE_UNAVAILABLE", "message": "the database is unavailable"},
    )


class LostAnswers:
    """Sends to #general that reach the server while their answers are lost (a proxy's
    503 asking for longer than the client waits: it gives up at once, not after its
    minute of tries), and their gateway frames (those naming `text`) dropped, until
    `lose` is False."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.lose = True

    def relay(self, ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()
        ws.on_message(server.send)
        server.on_message(
            lambda frame: None if self.lose and self.text in str(frame) else ws.send(frame)
        )

    async def answer(self, route: Route) -> None:
        if route.request.method == "POST" and self.lose:
            await route.fetch()  # (it reaches the server, which stores it)
            await unavailable_for_longer_than_the_client_waits(route)
        else:
            await route.continue_()


async def test_a_send_whose_answers_were_lost_is_not_posted_twice(
    site: Site, browsers: Browsers
) -> None:
    """A helper session's find: a send that reached the server but whose answers were
    lost for a minute (and whose message the real-time connection did not bring either)
    came back to the box with a new nonce, and Enter posted it a second time. It comes
    back with its nonce now: sent again unchanged, it is answered as the same send."""
    alice = await browsers.page(site.base)
    lost = LostAnswers("lost answer")
    await alice.route_web_socket("**/api/gateway", lost.relay)
    await log_in(alice, "alice")
    log = await open_channel(alice, "general")
    await alice.route(f"**/api/channels/{GENERAL}/messages", lost.answer)
    box = alice.get_by_role("textbox", name="Message", exact=True)
    await say(alice, "lost answer")
    await expect(box).to_have_value("lost answer")  # (given up)
    lost.lose = False
    await box.press("Enter")
    await expect(message(log, "lost answer")).to_have_count(1)
    await expect(log.locator("li.msg-pending")).to_have_count(0)
    async with api_as(site.base, "bob") as bob:
        history = await bob.get(f"/api/channels/{GENERAL}/messages")
    assert [m["content"] for m in history.json()].count("lost answer") == 1


async def test_a_send_given_up_and_changed_in_the_box_is_a_new_send(
    site: Site, browsers: Browsers
) -> None:
    """A send given up came back with its nonce, and the box's files (the same array,
    changed in place by a chip's remove button) were taken as unchanged: its file
    removed, the text sent again carried the nonce with another body, and the server
    refused it (409 NONCE_CONFLICT, "Not sent"). A send that differs from the one the
    nonce carried takes a new nonce."""
    alice = await browsers.page(site.base)
    lost = LostAnswers("changed send")
    await alice.route_web_socket("**/api/gateway", lost.relay)
    await log_in(alice, "alice")
    log = await open_channel(alice, "general")
    await record_toasts(alice)
    await alice.route(f"**/api/channels/{GENERAL}/messages", lost.answer)
    box = alice.get_by_role("textbox", name="Message", exact=True)
    await alice.locator("input[type=file]").set_input_files(
        [{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"the notes"}]
    )
    await say(alice, "changed send")
    await expect(box).to_have_value("changed send")  # (given up, its file back too)
    files = alice.get_by_role("list", name="Files to send").get_by_role("listitem")
    await expect(files).to_have_count(1)
    await alice.get_by_role("button", name="Remove notes.txt").click()
    await expect(files).to_have_count(0)
    lost.lose = False
    await box.press("Enter")
    await expect(message(log, "changed send")).to_have_count(1)
    await expect(log.locator("li.msg-pending")).to_have_count(0)
    await expect(box).to_have_value("")
    async with api_as(site.base, "bob") as bob:
        history = await bob.get(f"/api/channels/{GENERAL}/messages")
    sent = [m for m in history.json() if m["content"] == "changed send"]
    assert await not_sent_toasts(alice) == ["Not sent: the database is unavailable"], sent
    assert sorted(len(m["attachments"]) for m in sent) == [0, 1]


async def test_a_send_given_up_after_its_channel_was_left_comes_back_there(
    site: Site, browsers: Browsers
) -> None:
    """A send still being tried when its channel was left (another one opened) was
    given up into the box of the view left behind, which nobody sees again: the
    channel's next view started empty, what was typed lost with no message posted. It
    waits for that channel's next box now."""
    alice = await browsers.page(site.base)
    release = asyncio.Event()
    held: list[str] = []

    async def held_then_refused(route: Route) -> None:
        if route.request.method == "POST":
            held.append(route.request.url)
            await release.wait()  # (never reaches the server)
            await unavailable_for_longer_than_the_client_waits(route)
        else:
            await route.continue_()

    await log_in(alice, "alice")
    await open_channel(alice, "general")
    await alice.route(f"**/api/channels/{GENERAL}/messages", held_then_refused)
    await say(alice, "typed then left")
    for _ in range(100):
        if held:
            break
        await asyncio.sleep(0.1)
    assert held
    await open_channel(alice, "gaming")
    await record_toasts(alice)
    release.set()
    for _ in range(100):
        if await not_sent_toasts(alice):
            break
        await asyncio.sleep(0.1)
    assert await not_sent_toasts(alice) == ["Not sent: the database is unavailable"]
    box = alice.get_by_role("textbox", name="Message", exact=True)
    await expect(box).to_have_value("")  # (gaming's own box)
    await open_channel(alice, "general")
    await expect(box).to_have_value("typed then left")


async def test_a_gateway_token_expiry_whose_refresh_fails_reconnects_later(
    site: Site, browsers: Browsers
) -> None:
    """The gateway says 4015 (the token expired) and the refresh cannot reach the server:
    the page waits and tries again, and stays logged in and live."""
    page = await browsers.page(site.base)
    answered = await fail_refresh_once(page, "network")
    opened = 0

    async def gateway(ws: WebSocketRoute) -> None:
        nonlocal opened
        opened += 1
        if opened == 1:
            await ws.close(code=4015, reason="token expired")
        else:
            ws.connect_to_server()

    await page.route_web_socket("**/api/gateway", gateway)
    await log_in(page, "bob")
    log = await open_channel(page, "general")
    await until_answered(answered, [200])
    async with api_as(site.base, "alice") as alice:
        sent = await alice.post(f"/api/channels/{GENERAL}/messages", json={"content": "still live"})
        assert sent.status_code == 201
    await expect(message(log, "still live")).to_have_count(1)
    await expect(page.get_by_text("Your session expired")).to_have_count(0)
    assert await page.evaluate("localStorage.getItem('xfchat.session')") is not None


async def test_a_login_as_another_account_in_another_tab_is_this_tabs_too(
    site: Site, browsers: Browsers
) -> None:
    """Was: tabs share the stored session, and a tab that showed Bob, after Alice logged
    in in another tab, sent its messages with Alice's tokens at its next refresh (drawn
    under Alice's name) and forgot Bob. Now it starts over as the account logged in."""
    bob = await browsers.logged_in(site.base, "bob")
    await expect(bob.locator(".user-panel")).to_contain_text("Bob")
    other = await bob.context.new_page()
    await other.goto(site.base)
    await expect(other.locator(".user-panel")).to_contain_text("Bob")  # (the shared session)
    # Alice logs in there, her tokens stored as the login form stores them.
    await other.evaluate(
        """async () => {
            const r = await fetch("/api/auth/login", {method: "POST",
                headers: {"Content-Type": "application/json"},
                body: JSON.stringify({login: "alice", password: "password123"})});
            const t = await r.json();
            localStorage.setItem("xfchat.session",
                JSON.stringify({refresh_token: t.refresh_token, user_id: t.user.id}));
        }"""
    )
    await expect(bob.locator(".user-panel")).to_contain_text("Alice")
    log = await open_channel(bob, "general")
    await say(bob, "from the first tab")
    sent = message(log, "from the first tab")
    await expect(sent).to_contain_text("Alice")
    async with api_as(site.base, "bob") as api:
        held = (await api.get(f"/api/channels/{GENERAL}/messages?limit=5")).json()
    mine = [m for m in held if m["content"] == "from the first tab"]
    assert [m["author"]["username"] for m in mine] == ["alice"]
