"""Driving the browser client the way a person does (by role and label), and the API
beside it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import httpx
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Locator, Page, expect

from tests.e2e.browser.conftest import PASSWORD

SERVER = "00000000-0000-0000-0000-000000000100"  # Gaming Squad
GENERAL = "00000000-0000-0000-0000-000000000101"
GAMING = "00000000-0000-0000-0000-000000000103"
USER_IDS = {
    "alice": "00000000-0000-0000-0000-000000000001",
    "bob": "00000000-0000-0000-0000-000000000002",
}


async def expect_focused(locator: Locator, within_s: float = 15) -> None:
    """`locator` becomes its page's active element. Not Playwright's to_be_focused, which
    also needs the page to hold the browser's own focus: with a second page open in a
    suite run, that focus was elsewhere now and then, whatever the client did."""
    deadline = time.monotonic() + within_s
    while True:
        with contextlib.suppress(PlaywrightError):  # (not there yet, or two of it)
            if await locator.evaluate("el => el === document.activeElement", timeout=1000):
                return
        assert time.monotonic() < deadline, f"{locator} never had the focus"
        await asyncio.sleep(0.05)


async def open_channel(page: Page, name: str) -> Locator:
    await (
        page.get_by_role("navigation", name="Servers")
        .get_by_role("link", name="Gaming Squad")
        .click()
    )
    await page.get_by_role("navigation", name="Channels").get_by_role("link", name=name).click()
    await expect(page.get_by_role("heading", level=1, name=name, exact=True)).to_be_visible()
    return page.get_by_role("log", name="Messages")


async def open_settings(page: Page) -> Locator:
    """The owner's server settings, opened from #general."""
    await open_channel(page, "general")
    await page.get_by_role("button", name="Server settings").click()
    return page.get_by_role("dialog", name="Gaming Squad settings")


async def say(page: Page, text: str) -> None:
    box = page.get_by_role("textbox", name="Message", exact=True)
    await box.fill(text)
    await box.press("Enter")


def message(log: Locator, text: str) -> Locator:
    """The message whose own text (not a reply's preview of it) contains `text`."""
    return log.locator("li.msg", has=log.page.locator(".msg-content", has_text=text))


async def act(msg: Locator, action: str) -> None:
    await msg.hover()
    await (
        msg.get_by_role("toolbar", name="Message actions")
        .get_by_role("button", name=action)
        .click()
    )


# Playwright's pages all count as visible and focused (it emulates focus for each), and
# it has no way to hide one or take its focus: the page is told so as a browser would
# tell it, by what document.visibilityState and document.hasFocus() say and the events
# that announce a change.
_AWAY = """hidden => {
    Object.defineProperty(document, "hasFocus", {configurable: true, value: () => false});
    if (hidden) {
        Object.defineProperty(document, "visibilityState", {configurable: true, get: () => "hidden"});
        Object.defineProperty(document, "hidden", {configurable: true, get: () => true});
        document.dispatchEvent(new Event("visibilitychange"));
    }
    window.dispatchEvent(new FocusEvent("blur"));
}"""
_BACK = """() => {
    const hidden = Object.hasOwn(document, "visibilityState");
    for (const key of ["hasFocus", "visibilityState", "hidden"]) delete document[key];
    if (hidden) document.dispatchEvent(new Event("visibilitychange"));
    window.dispatchEvent(new FocusEvent("focus"));
}"""


async def go_away(page: Page, *, hidden: bool) -> None:
    """The person leaves the page: to another tab (`hidden`), or to another window with
    this one still in sight (its window loses the focus)."""
    await page.evaluate(_AWAY, hidden)


async def come_back(page: Page) -> None:
    """The person is back on the page: shown, its window focused."""
    await page.evaluate(_BACK)


@contextlib.asynccontextmanager
async def api_as(
    base: str, username: str, password: str = PASSWORD
) -> AsyncIterator[httpx.AsyncClient]:
    """An API client logged in as `username`."""
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        login = {"login": username, "password": password}
        tokens = (await client.post("/api/auth/login", json=login)).json()
        client.headers["Authorization"] = f"Bearer {tokens['access_token']}"
        yield client


async def shown_texts(page: Page) -> list[str]:
    log = page.get_by_role("log", name="Messages")
    return [t.strip() for t in await log.locator("li.msg .msg-content").all_inner_texts()]


async def assert_accessible(page: Page, axe_source: str, where: str) -> None:
    """axe-core (WCAG 2.1 A and AA rules) finds nothing of serious or critical impact."""
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        await page.evaluate(axe_source)
    found = await page.evaluate(
        """async () => {
            const r = await axe.run(document, {runOnly: {type: "tag",
                values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}});
            return r.violations.filter(v => v.impact === "serious" || v.impact === "critical")
                .map(v => `${v.id}: ${v.help} (${v.nodes.map(n => n.target.join(" ")).join(", ")})`);
        }"""
    )
    assert not found, f"{where}:\n" + "\n".join(found)
