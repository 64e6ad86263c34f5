"""A long channel: the newest page first, older ones loaded as you scroll up (each
message once, in order), unread and mention badges, the "New" divider above what was
unread when a channel was opened or arrived while the page was away, and a reply that
jumps to an original far above."""

from __future__ import annotations

import asyncio
import re

import httpx
from playwright.async_api import expect

from tests.e2e.browser.client import (
    GAMING,
    GENERAL,
    SERVER,
    USER_IDS,
    api_as,
    assert_accessible,
    come_back,
    expect_focused,
    go_away,
    message,
    open_channel,
    say,
    shown_texts,
)
from tests.e2e.browser.conftest import PHONE, Browsers, Site, log_in

BOB = USER_IDS["bob"]


async def test_scrolling_up_loads_history_once_in_order_and_badges_count(
    site: Site, browsers: Browsers
) -> None:
    bob = await browsers.logged_in(site.base, "bob")
    await open_channel(bob, "general")
    texts = [f"history {i:03}" for i in range(1, 121)]
    async with api_as(site.base, "charlie") as charlie:
        first_id = ""
        for text in texts:
            sent = await charlie.post(f"/api/channels/{GAMING}/messages", json={"content": text})
            assert sent.status_code == 201, sent.text
            first_id = first_id or sent.json()["id"]
        reply = {"content": f"<@{BOB}> remember the first?", "reply_to_id": first_id}
        assert (await charlie.post(f"/api/channels/{GAMING}/messages", json=reply)).is_success

    gaming = bob.get_by_role("navigation", name="Channels").get_by_role("link", name="gaming")
    await expect(gaming).to_have_accessible_name("gaming, unread, 1 mention")
    await expect(gaming.locator(".badge")).to_have_text("1")

    log = await open_channel(bob, "gaming")
    await expect(message(log, "remember the first?").locator(".mention-me")).to_have_text("@Bob")
    await expect(gaming.locator(".badge")).to_have_count(0)  # read now
    assert len(await shown_texts(bob)) == 50  # the newest page only
    while not await message(log, "history 001").count():  # scroll up: older pages come
        shown = await log.locator("li.msg").count()
        await log.evaluate("el => { el.scrollTop = 0; }")
        await bob.wait_for_function(
            "n => document.querySelectorAll('.messages li.msg').length > n", arg=shown
        )
    assert await shown_texts(bob) == [*texts, "@Bob remember the first?"]

    await log.evaluate("el => { el.scrollTop = el.scrollHeight; }")
    await open_channel(bob, "general")
    log = await open_channel(bob, "gaming")  # the newest page again, then a jump far up
    await expect(message(log, "history 001")).to_have_count(0)
    await (
        message(log, "remember the first?")
        .get_by_role("button", name="Replying to Charlie: history 001")
        .click()
    )
    await expect_focused(message(log, "history 001"))


async def test_a_phone_opens_a_server_at_its_newest_messages(
    site: Site, browsers: Browsers
) -> None:
    """On a phone, picking a server keeps the drawer open over its first channel, which
    is drawn hidden: shown, it is at the newest message, not the top of the page."""
    async with api_as(site.base, "charlie") as charlie:
        for i in range(1, 41):
            sent = await charlie.post(
                f"/api/channels/{GENERAL}/messages", json={"content": f"phone {i:03}"}
            )
            assert sent.status_code == 201, sent.text
    bob = await browsers.logged_in(site.base, "bob", PHONE)
    await bob.get_by_role("button", name="Open navigation").click()
    acks: list[str] = []
    bob.on(
        "request",
        lambda r: acks.append(r.url) if r.method == "PUT" and r.url.endswith("/ack") else None,
    )
    log = await open_channel(bob, "general")
    await expect(message(log, "phone 040")).to_be_in_viewport()
    await expect(message(log, "phone 001")).not_to_be_in_viewport()
    async with asyncio.timeout(10):  # (an ack waits 300 ms)
        while not any(GENERAL in url for url in acks):
            await asyncio.sleep(0.05)


async def test_a_deleted_mention_takes_its_badge_with_it(site: Site, browsers: Browsers) -> None:
    bob = await browsers.logged_in(site.base, "bob")
    gaming = bob.get_by_role("navigation", name="Channels").get_by_role("link", name="gaming")
    url = f"/api/channels/{GAMING}/messages"
    async with api_as(site.base, "charlie") as charlie:
        # Never opened here (its messages not loaded), then opened and left (loaded).
        for opened in (False, True):
            if opened:
                await open_channel(bob, "gaming")
            await open_channel(bob, "general")
            sent = await charlie.post(url, json={"content": f"<@{BOB}> look ({opened})"})
            assert sent.status_code == 201, sent.text
            await expect(gaming.locator(".badge")).to_have_text("1")
            assert (await charlie.delete(f"{url}/{sent.json()['id']}")).status_code == 204
            await expect(gaming.locator(".badge")).to_have_count(0)
            await expect(gaming).to_have_accessible_name("gaming")


async def test_a_new_divider_marks_what_was_unread_when_the_channel_was_opened(
    site: Site, browsers: Browsers, axe_source: str
) -> None:
    """Opened with unread messages, a channel draws a "New messages" separator just
    above the first of them. It stays there once they are read (the ack moves the read
    position, not the divider) and as more arrive live; back in the channel with nothing
    unread there is none, and neither a message arriving live nor one's own makes one;
    back after messages came meanwhile, it is above the first of those."""
    url = f"/api/channels/{GENERAL}/messages"
    async with api_as(site.base, "alice") as alice, api_as(site.base, "bob") as bob:
        seen = await bob.post(url, json={"content": "already read"})
        assert seen.status_code == 201, seen.text
        read = await alice.put(f"/api/channels/{GENERAL}/ack", json={"seq": seen.json()["seq"]})
        assert read.is_success, read.text
        for text in ("unread one", "unread two", "unread three"):
            assert (await bob.post(url, json={"content": text})).status_code == 201

        page = await browsers.logged_in(site.base, "alice")
        async with page.expect_request(
            lambda r: r.method == "PUT" and r.url.endswith(f"{GENERAL}/ack")
        ) as acked:
            log = await open_channel(page, "general")
            await page.bring_to_front()
        divider = log.get_by_role("separator", name="New messages")
        under = log.locator("li:has(> [role=separator]) + li.msg")
        await expect(divider).to_have_count(1)
        await expect(divider).to_be_visible()
        await expect(under).to_contain_text("unread one")
        # (the first unread message begins a group of its own below it, author and all)
        await expect(message(log, "unread one").locator(".msg-author")).to_have_count(1)
        assert await (await acked.value).response()  # (read: the server's echo is on its way)
        assert (await bob.post(url, json={"content": "live one"})).status_code == 201
        await expect(message(log, "live one")).to_be_visible()  # (after the ack's echo)
        await expect(divider).to_have_count(1)
        await expect(under).to_contain_text("unread one")
        await assert_accessible(page, axe_source, "a channel with its New divider")

        channels = page.get_by_role("navigation", name="Channels")
        general = channels.get_by_role("link", name=re.compile("^general"))
        await expect(general).to_have_accessible_name("general")
        await open_channel(page, "gaming")
        await open_channel(page, "general")
        await expect(message(log, "live one")).to_be_visible()
        await expect(divider).to_have_count(0)
        assert (await bob.post(url, json={"content": "live two"})).status_code == 201
        await expect(message(log, "live two")).to_be_visible()
        await say(page, "my own")
        await expect(message(log, "my own")).to_be_visible()
        await expect(divider).to_have_count(0)

        await open_channel(page, "gaming")
        assert (await bob.post(url, json={"content": "while away"})).status_code == 201
        await expect(general).to_have_accessible_name("general, unread")
        await open_channel(page, "general")
        await expect(divider).to_have_count(1)
        await expect(under).to_contain_text("while away")


async def test_a_new_divider_marks_what_arrived_while_the_page_was_away(
    site: Site, browsers: Browsers, axe_source: str
) -> None:
    """As Discord draws it: what others say in the open channel while the page is away
    (hidden behind another tab, or its window not focused) is unread, and back on the
    page the "New messages" separator stands above the first of it. One divider: while
    the one drawn when the channel was opened still marks unread messages (a channel
    opened in a background tab), it stays there; once they are read, the next absence
    moves it to the first message that came during it. Never for what came while the
    page was watched, nor for one's own (sent from elsewhere while away)."""
    url = f"/api/channels/{GENERAL}/messages"

    async def post(as_: httpx.AsyncClient, text: str) -> None:
        sent = await as_.post(url, json={"content": text})
        assert sent.status_code == 201, sent.text

    async with api_as(site.base, "alice") as alice, api_as(site.base, "bob") as bob:
        seen = await bob.post(url, json={"content": "already read"})
        assert seen.status_code == 201, seen.text
        read = await alice.put(f"/api/channels/{GENERAL}/ack", json={"seq": seen.json()["seq"]})
        assert read.is_success, read.text
        await post(bob, "unread one")

        # Opened in a tab in the background: its divider stays above what was unread
        # then, through what comes before the tab is looked at.
        page = await browsers.page(site.base)
        await page.evaluate(f"location.hash = '#/s/{SERVER}/{GENERAL}'")
        await go_away(page, hidden=True)
        await log_in(page, "alice")
        log = page.get_by_role("log", name="Messages")
        divider = log.get_by_role("separator", name="New messages")
        under = log.locator("li:has(> [role=separator]) + li.msg")
        general = page.get_by_role("navigation", name="Channels").get_by_role(
            "link", name=re.compile("^general")
        )
        await expect(under).to_contain_text("unread one")
        await post(bob, "later one")
        await expect(message(log, "later one")).to_be_visible()
        await expect(general).to_have_accessible_name("general, unread")
        await come_back(page)
        await page.bring_to_front()
        await expect(general).to_have_accessible_name("general")  # (read once looked at)
        await expect(divider).to_have_count(1)
        await expect(under).to_contain_text("unread one")

        # Watched: no divider moves for what comes.
        await post(bob, "watched one")
        await expect(message(log, "watched one")).to_be_visible()
        await expect(general).to_have_accessible_name("general")
        await expect(divider).to_have_count(1)
        await expect(under).to_contain_text("unread one")

        # Another tab in front: back, the divider is above what came meanwhile.
        await go_away(page, hidden=True)
        await post(bob, "away one")
        await post(bob, "away two")
        await expect(message(log, "away two")).to_be_visible()
        await expect(general).to_have_accessible_name("general, unread")
        await come_back(page)
        await expect(general).to_have_accessible_name("general")
        await expect(divider).to_have_count(1)
        await expect(under).to_contain_text("away one")
        await post(bob, "watched two")
        await expect(message(log, "watched two")).to_be_visible()
        await expect(under).to_contain_text("away one")

        # Another window focused, this one in sight: one's own message sent from
        # elsewhere is no new one (and reads what came before it); bob's after it is.
        await go_away(page, hidden=False)
        await post(alice, "mine from elsewhere")
        await expect(message(log, "mine from elsewhere")).to_be_visible()
        await expect(divider).to_have_count(1)
        await expect(under).to_contain_text("away one")
        await post(bob, "unfocused one")
        await expect(message(log, "unfocused one")).to_be_visible()
        await expect(general).to_have_accessible_name("general, unread")
        await come_back(page)
        await expect(general).to_have_accessible_name("general")
        await expect(divider).to_have_count(1)
        await expect(under).to_contain_text("unfocused one")
        await assert_accessible(page, axe_source, "the New divider of an absence")
