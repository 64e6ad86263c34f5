"""The client by keyboard alone and with a screen reader: where the focus goes (into the
phone's drawer and back out, round the reaction picker, along the friends tabs), what
is said with a message and with the message box, and role colours readable on every
background they are drawn on (WCAG 2.2 AA)."""

from __future__ import annotations

import asyncio
import re
import time

from playwright.async_api import Page, expect

from tests.e2e.browser.client import (
    GENERAL,
    SERVER,
    USER_IDS,
    act,
    api_as,
    expect_focused,
    message,
    open_channel,
    say,
)
from tests.e2e.browser.conftest import PASSWORD, PHONE, Browsers, Site


async def test_a_message_under_its_authors_others_names_its_author(
    site: Site, browsers: Browsers
) -> None:
    """Was: a message sent after another of its author's (drawn under it, without the
    name) was, to a screen reader, its text alone: reached by Up and Down, as a search
    hit or as it came into the log, nothing said whose it was."""
    alice = await browsers.logged_in(site.base, "alice")
    log = await open_channel(alice, "general")
    await say(alice, "the first of mine")
    await say(alice, "and one more")
    second = message(log, "and one more")
    await expect(second).to_have_class(re.compile(r"\bmsg-cont\b"))
    # (read again while the row is drawn anew, as the send's answer replaces it: a
    # snapshot taken in between was empty on a busy box)
    deadline = time.monotonic() + 10
    while "Alice" not in (said := await second.aria_snapshot()):
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    assert "Alice" in said, said
    # (the name shown once: the eye sees the message as before)
    await expect(second.locator(".msg-author")).to_have_count(0)
    await expect(message(log, "the first of mine").get_by_text("Alice", exact=True)).to_be_visible()


async def test_the_phone_drawer_takes_the_focus_and_gives_it_back(
    site: Site, browsers: Browsers
) -> None:
    """Was: ☰ opened the servers and channels over the page and hid itself, and the
    focus fell to the page (the next Tab started from the top); Escape did not close
    the drawer; a channel picked in it closed it with the focus, again, on the page."""
    alice = await browsers.logged_in(site.base, "alice", PHONE)
    toggle = alice.get_by_role("button", name="Open navigation")
    await expect(toggle).to_have_attribute("aria-expanded", "false")
    await toggle.focus()
    await alice.keyboard.press("Enter")
    channels = alice.get_by_role("navigation", name="Channels")
    await expect_focused(channels.get_by_role("link", name="Friends"))  # (the page shown)
    await alice.keyboard.press("Escape")
    await expect(channels).to_be_hidden()
    await expect_focused(toggle)

    await alice.keyboard.press("Enter")
    server = alice.get_by_role("navigation", name="Servers").get_by_role(
        "link", name=re.compile("^Gaming Squad")
    )
    await server.focus()
    await alice.keyboard.press("Enter")  # (a server: the drawer stays, for its channels)
    general = channels.get_by_role("link", name=re.compile("^general"))
    await expect(general).to_be_visible()
    await general.focus()
    await alice.keyboard.press("Enter")
    # (on the heading of the page picked, said by a screen reader; not the message box,
    # which would bring a phone's keyboard up)
    title = alice.get_by_role("heading", level=1, name="general", exact=True)
    await expect(title).to_be_visible()
    await expect(channels).to_be_hidden()
    await expect_focused(title)


async def test_a_button_pressed_keeps_the_focus_while_its_request_runs(
    site: Site, browsers: Browsers
) -> None:
    """Was: a form's button was disabled while its request ran, and a disabled button
    loses the focus: a keyboard user who pressed "Log in" (a wrong password) or a
    setting's "Save" was sent to the page, or to the top of the dialog, by the next Tab."""
    page = await browsers.page(site.base)
    await page.get_by_label("Username or email").fill("alice")
    await page.get_by_label("Password").fill("not the password")
    button = page.get_by_role("button", name="Log in")
    await button.focus()
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("alert")).to_have_text(re.compile(r"\w"))
    await expect_focused(button)
    await expect(button).not_to_have_attribute("aria-disabled", "true")

    await page.get_by_label("Password").fill(PASSWORD)
    await page.keyboard.press("Enter")
    await page.get_by_role("button", name="User settings").click()
    settings = page.get_by_role("dialog", name="User settings")
    await settings.get_by_label("Display name").fill("Alicia")
    save = settings.get_by_role("button", name="Save")
    await save.focus()
    await page.keyboard.press("Enter")
    await expect(settings.get_by_text("Profile saved")).to_be_visible()
    await expect_focused(save)


async def test_the_reaction_picker_keeps_the_focus_until_it_closes(
    site: Site, browsers: Browsers
) -> None:
    """Was: Tab past the picker's last emoji (or Shift+Tab before its first) left it
    for the end of the page, the picker still open over the messages."""
    alice = await browsers.logged_in(site.base, "alice")
    log = await open_channel(alice, "general")
    await say(alice, "react to me")
    mine = message(log, "react to me")
    await act(mine, "Add reaction")
    picker = alice.get_by_role("dialog", name="Pick a reaction")
    first = picker.get_by_role("button", name="React with 👍")
    await expect_focused(first)
    await alice.keyboard.press("Shift+Tab")
    await expect_focused(picker.get_by_role("button", name="React with 🙏"))
    await alice.keyboard.press("Tab")
    await expect_focused(first)
    await alice.keyboard.press("ArrowRight")
    await expect_focused(picker.get_by_role("button", name="React with 👎"))
    await alice.keyboard.press("ArrowDown")  # (a row is eight emoji)
    await expect_focused(picker.get_by_role("button", name="React with 🙌"))
    await alice.keyboard.press("End")
    await expect_focused(picker.get_by_role("button", name="React with 🙏"))
    await alice.keyboard.press("Home")
    await alice.keyboard.press("Enter")
    await expect(picker).to_have_count(0)
    await expect(mine.get_by_role("button", name="👍 1 reaction, including you")).to_be_visible()
    assert await mine.evaluate("el => el.contains(document.activeElement)")


async def test_a_reply_is_said_with_the_message_box(site: Site, browsers: Browsers) -> None:
    """Was: Reply put the focus in the message box, which a screen reader announced as
    "Message" alone: nothing said it was a reply, nor to whom, until it was sent."""
    alice = await browsers.logged_in(site.base, "alice")
    log = await open_channel(alice, "general")
    box = alice.get_by_role("textbox", name="Message", exact=True)
    await act(message(log, "Who's up for a game tonight?"), "Reply")
    await expect_focused(box)
    await expect(box).to_have_accessible_description("Replying to Bob")
    await alice.keyboard.press("Escape")
    await expect(alice.get_by_text("Replying to")).to_be_hidden()
    await expect(box).to_have_accessible_description("")


async def test_the_friends_tabs_move_with_the_arrow_keys(site: Site, browsers: Browsers) -> None:
    """Was: the friends page's tabs were each a stop for Tab, the arrow keys did
    nothing (a screen reader says "tab, 1 of 4" and a user then reaches for them), and
    what they showed was no tab panel."""
    alice = await browsers.logged_in(site.base, "alice")
    tablist = alice.get_by_role("tablist", name="Friends")
    everyone = tablist.get_by_role("tab", name="All")
    await everyone.focus()
    await alice.keyboard.press("ArrowRight")
    pending = tablist.get_by_role("tab", name="Pending")
    await expect_focused(pending)
    await expect(pending).to_have_attribute("aria-selected", "true")
    await expect(alice.get_by_role("tabpanel", name="Pending")).to_contain_text("Incoming")
    await expect(everyone).to_have_attribute("tabindex", "-1")
    await alice.keyboard.press("End")
    await expect_focused(tablist.get_by_role("tab", name="Add friend"))
    await expect(
        alice.get_by_role("tabpanel", name="Add friend").get_by_role(
            "textbox", name="Add a friend by their username"
        )
    ).to_be_visible()
    await alice.keyboard.press("ArrowRight")  # (round to the first)
    await expect_focused(everyone)
    await alice.keyboard.press("Tab")  # (one stop: on into the panel)
    await expect_focused(
        alice.get_by_role("list", name="Friends").get_by_role("button", name="Message").first
    )


def _rgb(css: str) -> tuple[float, float, float, float]:
    parts = [float(p) for p in re.findall(r"[\d.]+", css)]
    return (parts[0], parts[1], parts[2], parts[3] if len(parts) > 3 else 1.0)


def _over(top: str, under: tuple[float, float, float]) -> tuple[float, float, float]:
    r, g, b, a = _rgb(top)
    return (r * a + under[0] * (1 - a), g * a + under[1] * (1 - a), b * a + under[2] * (1 - a))


def _contrast(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    def lum(c: tuple[float, ...]) -> float:
        lin = [
            v / 255 / 12.92 if v / 255 <= 0.03928 else ((v / 255 + 0.055) / 1.055) ** 2.4
            for v in c[:3]
        ]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    hi, lo = sorted((lum(a), lum(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


async def _style(page: Page, selector: str, prop: str) -> str:
    return str(await page.locator(selector).first.evaluate(f"el => getComputedStyle(el).{prop}"))


async def test_role_colours_are_readable_on_every_background_they_are_drawn_on(
    site: Site, browsers: Browsers
) -> None:
    """Was: a role's colour was lightened until readable (4.5:1) on the member list's
    background only; a message's is lighter, so Discord's purple (#9b59b6) drew its
    members' names at 4.4:1 in the chat, 4.2:1 on a message that mentions you and 3.9:1
    on a hovered member."""
    async with api_as(site.base, "alice") as api:
        roles = (await api.get(f"/api/servers/{SERVER}/roles")).json()
        admin = next(r for r in roles if r["name"] == "Admin")
        changed = await api.patch(
            f"/api/servers/{SERVER}/roles/{admin['id']}", json={"color": 0x9B59B6}
        )
        assert changed.status_code == 200, changed.text
    bob = await browsers.logged_in(site.base, "bob")
    log = await open_channel(bob, "general")
    async with api_as(site.base, "alice") as api:
        sent = await api.post(
            f"/api/channels/{GENERAL}/messages",
            json={"content": f"<@{USER_IDS['bob']}> look at my colour"},
        )
        assert sent.status_code == 201, sent.text
    pinged = message(log, "look at my colour")
    await expect(pinged).to_have_class(re.compile(r"\bmsg-mentioned\b"))
    page_bg = _rgb(await _style(bob, "body", "backgroundColor"))[:3]
    name = _rgb(await pinged.locator(".msg-author").evaluate("el => getComputedStyle(el).color"))
    await bob.mouse.move(0, 0)
    on_message = _over(await pinged.evaluate("el => getComputedStyle(el).backgroundColor"), page_bg)
    assert _contrast(name, page_bg) >= 4.5, (name, page_bg)
    assert _contrast(name, on_message) >= 4.5, (name, on_message)

    member = bob.get_by_role("complementary", name="Details").get_by_role(
        "button", name=re.compile("^Alice")
    )
    await member.hover()
    shown = _rgb(await member.locator("bdi").evaluate("el => getComputedStyle(el).color"))
    hovered = _over(await member.evaluate("el => getComputedStyle(el).backgroundColor"), page_bg)
    assert _contrast(shown, hovered) >= 4.5, (shown, hovered)
