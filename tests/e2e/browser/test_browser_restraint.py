"""The client holds back: a bulk delete is not answered by a request per message, an
unchanged edit sends nothing, a malformed mention spoils no lookup, and a refused or busy
refresh is neither retried forever nor in step with every other tab."""

from __future__ import annotations

import asyncio
import itertools
import time

from playwright.async_api import Page, Request, Route, expect

from tests.e2e.browser.client import GENERAL, api_as, message, open_channel, say
from tests.e2e.browser.conftest import Browsers, Site
from tests.e2e.browser.test_browser_names import PASSWORD, SERVER, register


def requests_of(page: Page, part: str) -> list[str]:
    seen: list[str] = []

    def note(req: Request) -> None:
        if part in req.url:
            seen.append(req.url)

    page.on("request", note)
    return seen


async def test_a_bulk_delete_of_unloaded_unread_messages_is_recounted_once(
    site: Site, browsers: Browsers
) -> None:
    bob = await browsers.logged_in(site.base, "bob")
    await bob.evaluate("location.hash = '#/friends'")
    recounts = requests_of(bob, "/messages?after=")
    async with api_as(site.base, "alice") as alice:
        ids = []
        for i in range(40):
            sent = await alice.post(f"/api/channels/{GENERAL}/messages", json={"content": f"n{i}"})
            ids.append(sent.json()["id"])
        gone = await alice.post(
            f"/api/channels/{GENERAL}/messages/bulk-delete", json={"messages": ids}
        )
        assert gone.is_success, gone.text
    async with asyncio.timeout(15):  # (the recount waits for a quiet spell of up to 2 s)
        while not recounts:
            await asyncio.sleep(0.1)
    await asyncio.sleep(2.5)  # (and no other follows it)
    assert 1 <= len(recounts) <= 2, recounts


async def test_an_unchanged_edit_keeps_the_mention_of_someone_who_left(
    site: Site, browsers: Browsers
) -> None:
    zed = await register(site.base, "zed")
    async with api_as(site.base, "alice") as alice:
        invite = (await alice.post(f"/api/servers/{SERVER}/invites", json={})).json()
        async with api_as(site.base, "zed", PASSWORD) as z:
            assert (await z.post(f"/api/invites/{invite['code']}")).is_success
    page = await browsers.logged_in(site.base, "alice")
    log = await open_channel(page, "general")
    await say(page, "ping @zed please")
    await expect(message(log, "please").locator(".mention")).to_have_text("@zed")
    async with api_as(site.base, "alice") as alice:
        assert (await alice.delete(f"/api/servers/{SERVER}/members/{zed}")).is_success
    patches: list[str] = []
    page.on("request", lambda r: patches.append(r.url) if r.method == "PATCH" else None)
    box = page.get_by_role("textbox", name="Message", exact=True)
    await box.focus()
    await box.press("ArrowUp")  # (Up edits your last message)
    edit = page.get_by_role("textbox", name="Edit message")
    await expect(edit).to_have_value("ping @zed please")
    await edit.press("Enter")
    await expect(edit).to_be_hidden()
    await page.wait_for_timeout(500)
    assert not patches, patches
    async with api_as(site.base, "alice") as alice:
        latest = (await alice.get(f"/api/channels/{GENERAL}/messages?limit=1")).json()[0]
    assert latest["content"] == f"ping <@{zed}> please"
    assert latest["edited_at"] is None


async def test_a_malformed_mention_spoils_no_lookup_and_is_not_asked_again(
    site: Site, browsers: Browsers
) -> None:
    yan = await register(site.base, "yan")  # (not in the server: looked up by id)
    async with api_as(site.base, "alice") as alice:
        bogus = "<@" + "-" * 36 + ">"
        sent = await alice.post(
            f"/api/channels/{GENERAL}/messages", json={"content": f"bogus {bogus} and <@{yan}>"}
        )
        assert sent.status_code == 201, sent.text
    bob = await browsers.logged_in(site.base, "bob")
    lookups = requests_of(bob, "/api/users?ids=")
    log = await open_channel(bob, "general")
    await expect(message(log, "bogus").locator(".mention")).to_have_text(["@yan"])
    async with api_as(site.base, "alice") as alice:
        for i in range(3):  # (each redraws the channel)
            await alice.post(f"/api/channels/{GENERAL}/messages", json={"content": f"later {i}"})
    await expect(message(log, "later 2")).to_be_visible()
    assert len(lookups) == 1, lookups


async def test_a_refused_refresh_ends_the_stored_session(site: Site, browsers: Browsers) -> None:
    page = await browsers.logged_in(site.base, "bob")

    async def refuse(route: Route) -> None:
        body = '{"code": "VALIDATION_ERROR", "message": "no"}'
        await route.fulfill(status=400, content_type="application/json", body=body)

    await page.route("**/api/auth/refresh", refuse)
    await page.reload()  # (the stored session is resumed by a refresh)
    await expect(page.get_by_label("Username or email")).to_be_visible()
    assert await page.evaluate("localStorage.getItem('xfchat.session')") is None


async def test_a_busy_refresh_backs_off_past_retry_after(site: Site, browsers: Browsers) -> None:
    page = await browsers.logged_in(site.base, "bob")
    stamps: list[float] = []

    async def busy(route: Route) -> None:
        stamps.append(time.monotonic())
        body = '{"code": "DATABASE_UNAVAILABLE", "message": "busy"}'
        await route.fulfill(
            status=503, headers={"Retry-After": "1"}, content_type="application/json", body=body
        )

    await page.route("**/api/auth/refresh", busy)
    await page.reload()
    await expect(page.get_by_text("XFChat cannot be reached. Retrying…")).to_be_visible()
    deadline = time.monotonic() + 15  # (about 7 s, 8.5 s at the most jitter)
    while len(stamps) < 3 and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    # A back-off (about 2 s, then 4 s, with jitter), not Retry-After's 1 s or a fixed 2 s.
    assert len(gaps) == 2 and gaps[0] >= 1.4 and gaps[1] >= 2.9, gaps
    await page.unroute("**/api/auth/refresh")


async def test_a_logout_whose_refresh_is_busy_keeps_the_session(
    site: Site, browsers: Browsers
) -> None:
    page = await browsers.logged_in(site.base, "bob")

    async def expired(route: Route) -> None:
        body = '{"code": "TOKEN_EXPIRED", "message": "expired"}'
        await route.fulfill(status=401, content_type="application/json", body=body)

    async def busy(route: Route) -> None:
        body = '{"code": "DATABASE_UNAVAILABLE", "message": "busy"}'
        await route.fulfill(
            status=503, headers={"Retry-After": "1"}, content_type="application/json", body=body
        )

    await page.route("**/api/auth/logout", expired)
    await page.route("**/api/auth/refresh", busy)
    await page.get_by_role("button", name="Log out").click()
    await expect(page.get_by_text("Could not reach the server to log out")).to_be_visible()
    await expect(page.locator("nav.rail")).to_be_attached()
    assert await page.evaluate("localStorage.getItem('xfchat.session')") is not None


async def test_a_send_clears_exactly_what_was_sent_while_names_resolve(
    site: Site, browsers: Browsers
) -> None:
    await register(site.base, "yan")  # (no member: the complete member list says so)
    page = await browsers.logged_in(site.base, "alice")
    log = await open_channel(page, "general")
    member_asks = requests_of(page, "/api/servers/" + SERVER + "/members/")

    typed = asyncio.Event()

    async def slow(route: Route) -> None:
        await typed.wait()  # (answered once the presses below are in)
        await route.continue_()

    await page.route("**/api/users/search*", slow)
    box = page.get_by_role("textbox", name="Message", exact=True)
    await box.fill("hello @yan")
    await box.press("Enter")
    await page.wait_for_timeout(300)
    await box.press("Enter")  # (during the look-up: no second send)
    await page.keyboard.type(" more")  # (nor is this mixed into what is sent)
    typed.set()
    await expect(message(log, "hello @yan")).to_be_visible()
    await expect(box).to_have_value("")
    await page.wait_for_timeout(500)
    assert await shown_count(page, "hello @yan") == 1
    assert not member_asks, member_asks


async def shown_count(page: Page, text: str) -> int:
    log = page.get_by_role("log", name="Messages")
    return await message(log, text).count()
