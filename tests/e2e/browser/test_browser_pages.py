"""The client as a person first meets it: registering, a session that survives a
reload, logging out, friends and search; readable and operable (axe-core finds no
serious violation) at desktop and phone width; and the README's screenshots."""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image
from playwright.async_api import Locator, Page, expect

from tests.e2e.browser.client import (
    GENERAL,
    api_as,
    assert_accessible,
    expect_focused,
    message,
    open_channel,
)
from tests.e2e.browser.conftest import DESKTOP, PHONE, Browsers, Site, log_in
from tests.support import ROOT

SCREENSHOTS = ROOT / "docs" / "screenshots"


async def test_register_reload_and_log_out(site: Site, browsers: Browsers, axe_source: str) -> None:
    page = await browsers.page(site.base)
    await assert_accessible(page, axe_source, "page")
    await page.get_by_role("button", name="Register").click()
    await assert_accessible(page, axe_source, "page")
    await page.get_by_label("Username").fill("zoe")
    await page.get_by_label("Email").fill("zoe@example.com")
    await page.get_by_label("Password").fill("a long password")
    await page.get_by_role("button", name="Create account").click()
    await expect(page.get_by_role("heading", name="Friends")).to_be_visible()

    await page.reload()  # the session lives on: the refresh token is kept
    await expect(page.get_by_role("navigation", name="Channels")).to_contain_text("zoe")
    await page.get_by_role("button", name="Log out").click()
    await expect(page.get_by_role("button", name="Log in")).to_be_visible()
    await page.reload()
    await expect(page.get_by_role("button", name="Log in")).to_be_visible()
    await log_in(page, "zoe", "a long password")

    # Revoked from elsewhere (another device's session list): the page is logged out at
    # once, and a reload does not bring the session back.
    async with api_as(site.base, "zoe", "a long password") as api:
        sessions = (await api.get("/api/users/@me/sessions")).json()
        for other in (s for s in sessions if not s["current"]):
            assert (await api.delete(f"/api/users/@me/sessions/{other['id']}")).status_code == 204
    await expect(page.get_by_role("button", name="Log in")).to_be_visible()
    await expect(page.get_by_text("Your session ended. Log in again.")).to_be_visible()
    await page.reload()
    await expect(page.get_by_role("button", name="Log in")).to_be_visible()


async def redraw_with_topic(site: Site, page: Page, topic: str) -> None:
    """Change #general's topic by the API, and wait until `page` has redrawn its head."""
    async with api_as(site.base, "alice") as api:
        changed = await api.patch(f"/api/channels/{GENERAL}", json={"topic": topic})
        assert changed.status_code == 200, changed.text
    await expect(page.locator(".topic")).to_have_text(topic)


# Every element given the jump's highlight, with its classes then, as it is given (the
# class goes again 2.5 s later).
HIGHLIGHTS = """() => {
    window.__highlighted = [];
    new MutationObserver((changes) => {
        for (const c of changes) {
            if (c.target.classList.contains("msg-highlight") && !(c.oldValue || "").includes("msg-highlight")) {
                window.__highlighted.push([c.target.id, c.target.className]);
            }
        }
    }).observe(document.body, {subtree: true, attributes: true, attributeOldValue: true, attributeFilter: ["class"]});
}"""


async def bob_says(site: Site, text: str) -> str:
    """Bob's message of `text` in #general, sent by the API: its element's id."""
    async with api_as(site.base, "bob") as bob:
        sent = await bob.post(f"/api/channels/{GENERAL}/messages", json={"content": text})
        assert sent.status_code in (200, 201), sent.text
        return f"msg-{sent.json()['id']}"


# The jump's highlight of a message as it comes ("on") and goes ("off"), in order, and
# whether the message's element was changed within (a reaction drawn or taken away)
# while it was lit.
HIGHLIGHT_CHANGES = """(id) => {
    if (window.__litWatch) window.__litWatch.disconnect();
    window.__lit = [];
    window.__redrawn = false;
    window.__litWatch = new MutationObserver((changes) => {
        for (const c of changes) {
            const el = document.getElementById(id);
            if (c.type === "attributes" && c.target.id === id) {
                const was = (c.oldValue || "").includes("msg-highlight");
                const is = c.target.classList.contains("msg-highlight");
                if (was !== is) window.__lit.push(is ? "on" : "off");
            } else if (c.type === "childList" && window.__lit.length === 1 && el && el.contains(c.target)) {
                window.__redrawn = true;
            }
        }
    });
    window.__litWatch.observe(document.body, {subtree: true, childList: true, attributes: true, attributeOldValue: true, attributeFilter: ["class"]});
}"""


async def jump_by_search(page: Page, word: str, text: str, target_id: str) -> Locator:
    """Search for `word` and jump to the result reading `text`: the message's element,
    once it has the focus."""
    search = page.get_by_role("searchbox", name="Search messages")
    await search.fill(word)
    await search.press("Enter")
    results = page.get_by_role("list", name="Search results")
    await results.get_by_role("button").filter(has_text=text).click()
    target = page.locator(f"#{target_id}")
    await expect_focused(target)
    return target


async def test_a_jumps_highlight_lasts_through_a_redraw_of_its_message(
    site: Site, browsers: Browsers
) -> None:
    """The message a search result jumps to keeps its highlight when it is drawn again
    meanwhile (here: a reaction added to it, which patches its element; the highlight
    went at that redraw before)."""
    alice = await browsers.logged_in(site.base, "alice")
    await open_channel(alice, "general")
    # (again, on a message of its own, if a busy box reacted only after the 2.5 s)
    for word in ("lanternalpha", "lanternbravo", "lanterncharlie"):
        target_id = await bob_says(site, f"the {word} jump test")
        await alice.evaluate(HIGHLIGHT_CHANGES, target_id)
        target = await jump_by_search(alice, word, f"the {word} jump test", target_id)
        # A reaction by keyboard, drawn at once: the message's element is patched.
        await alice.keyboard.press("Tab")
        await expect_focused(target.get_by_role("button", name="Add reaction"))
        await alice.keyboard.press("Enter")
        await expect_focused(alice.get_by_role("button", name="React with 👍"))
        await alice.keyboard.press("Enter")
        await alice.wait_for_function("() => window.__lit.at(-1) === 'off'", timeout=10_000)
        lit, redrawn = await alice.evaluate("[window.__lit, window.__redrawn]")
        assert lit == ["on", "off"], lit  # (never off and on again in between)
        if redrawn:
            return  # (the redraw came while it was lit, and it stayed)
    raise AssertionError("the highlight went before or at the message's redraw each time")


async def test_a_jump_in_a_view_since_left_does_not_end_a_later_views_highlight(
    site: Site, browsers: Browsers
) -> None:
    """A jump, a trip to another channel and back, and the same jump again within 2.5
    s: the second highlight outlives the first view's timer (which took it at the first
    one's end: a helper's attack)."""
    target_id = await bob_says(site, "the beacon jump test")
    alice = await browsers.logged_in(site.base, "alice")
    await open_channel(alice, "general")
    now = "performance.now()"
    for _ in range(3):  # (again if a busy box took the second's 2.5 s too meanwhile)
        await jump_by_search(alice, "beacon", "the beacon jump test", target_id)
        first = await alice.evaluate(now)
        await open_channel(alice, "gaming")
        await open_channel(alice, "general")
        # (the second jump 0.8 s or more after the first: the check below falls between
        # the end of the first's 2.5 s and the end of the second's)
        await alice.wait_for_function(f"() => {now} > {first} + 800")
        await jump_by_search(alice, "beacon", "the beacon jump test", target_id)
        second = await alice.evaluate(now)
        # (past the first view's 2.5 s; the second's not over yet, unless the box was slow)
        await alice.wait_for_function(f"() => {now} > {first} + 2700")
        lit, early = await alice.evaluate(
            f"() => [document.getElementById('{target_id}').classList.contains('msg-highlight'),"
            f" {now} < {second} + 2300]"
        )
        if early:
            assert lit  # (the first view's timer left the second view's highlight alone)
            return
    raise AssertionError("the second jump's highlight was over before the first's each time")


async def test_friends_search_and_jump(site: Site, browsers: Browsers, axe_source: str) -> None:
    alice = await browsers.logged_in(site.base, "alice")
    eve = await browsers.logged_in(site.base, "eve")
    await alice.get_by_role("tab", name="Pending").click()
    incoming = alice.get_by_role("list", name="Incoming requests")
    await expect(incoming.get_by_text("Eve", exact=True)).to_be_visible()
    await assert_accessible(alice, axe_source, "page")
    await incoming.get_by_role("button", name="Accept").click()
    await expect(incoming.get_by_role("listitem")).to_have_count(0)
    await eve.get_by_role("tab", name="All").click()
    friends = eve.get_by_role("list", name="Friends")
    await expect(friends.get_by_text("Alice", exact=True)).to_be_visible()  # live, for eve
    await friends.get_by_role("button", name="Message").click()
    await eve.get_by_role("textbox", name="Message", exact=True).fill("thanks for accepting!")
    await eve.get_by_role("textbox", name="Message", exact=True).press("Enter")
    sent = message(eve.get_by_role("log", name="Messages"), "thanks for accepting!")
    await expect(sent).to_be_visible()
    await eve.context.close()

    await open_channel(alice, "general")
    # Keyboard focus in the channel list survives a redraw of the chrome (a topic
    # change redraws the head and the lists, as any event does).
    general = alice.get_by_role("navigation", name="Channels").get_by_role("link", name="general")
    # (Checked as the page's active element: in a busy suite run the browser's own focus
    # was elsewhere four times, bring_to_front or not, Eve's page closed or not, and then
    # Playwright calls Alice's focused link "inactive", whatever the client does.)
    # (And checked as a link to #general, not as the element focused: the link is drawn
    # anew when its label changes, "general, unread" to "general" as the read mark of the
    # channel just opened comes back, and the client puts the focus on the new one. The
    # element's handle, taken before a late read mark, then never had it again: CI.)
    await alice.bring_to_front()
    await general.focus()
    href = await general.get_attribute("href")
    await redraw_with_topic(site, alice, "focus stays")
    await alice.wait_for_function(
        """href => {
            const el = document.activeElement;
            return el !== null && el.closest('nav[aria-label="Channels"]') !== null && el.getAttribute("href") === href;
        }""",
        arg=href,
    )

    search = alice.get_by_role("searchbox", name="Search messages")
    await search.fill("from:bob game")
    # An event re-renders the header while the query is half-typed: the box keeps the
    # text and the focus, and Enter (to whatever has the focus) searches.
    await redraw_with_topic(site, alice, "tonight's game")
    await expect(search).to_have_value("from:bob game")
    await expect_focused(search)
    await alice.keyboard.press("Enter")
    results = alice.get_by_role("list", name="Search results")
    hit = results.get_by_role("button").filter(has_text="Who's up for a")
    await expect(hit.locator("mark")).to_have_text("game")  # the hit, as marked text
    # Was: the highlight checked as the message's class, which goes 2.5 s after the jump:
    # a box busy that long between the focus check and this one failed it (a 3 s pause
    # there fails it each time). The page notes the message it is put on, as it is.
    await alice.evaluate(HIGHLIGHTS)
    await hit.click()
    target = message(alice.get_by_role("log", name="Messages"), "Who's up for a game tonight?")
    await expect_focused(target)
    await alice.wait_for_function("() => window.__highlighted.length > 0")
    lit = await alice.evaluate("window.__highlighted")
    assert lit == [[await target.get_attribute("id"), "msg msg-head-row msg-highlight"]], lit

    # On from there by keyboard alone: Down to the next message, Tab to its actions (with
    # a visible focus ring), Enter for the picker, Enter for its first emoji.
    await alice.keyboard.press("ArrowDown")
    next_one = message(alice.get_by_role("log", name="Messages"), "I'm in. What are we playing?")
    await expect_focused(next_one)
    await alice.keyboard.press("Tab")
    await expect_focused(next_one.get_by_role("button", name="Add reaction"))
    ring = await alice.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert ring != "none"
    await alice.keyboard.press("Enter")
    await expect_focused(alice.get_by_role("button", name="React with 👍"))
    await alice.keyboard.press("Enter")
    await expect(
        next_one.get_by_role("button", name="👍 1 reaction, including you")
    ).to_be_visible()

    conv = alice.get_by_role("navigation", name="Channels")
    await alice.get_by_role("link", name="Direct messages").click()
    await conv.get_by_role("link", name="Eve").click()
    await expect(
        message(alice.get_by_role("log", name="Messages"), "thanks for accepting!")
    ).to_be_visible()

    # A query left half-typed is dropped by a trip through Friends, which has no box.
    await search.fill("half typed")
    await alice.get_by_role("link", name="Direct messages").click()
    await expect(search).to_be_hidden()
    await conv.get_by_role("link", name="Eve").click()
    await expect(alice.get_by_role("button", name="Start a voice call")).to_be_visible()
    await expect(search).to_have_value("")


async def test_desktop_and_phone_screenshots_are_accessible(
    site: Site, browsers: Browsers, axe_source: str, tmp_path: Path
) -> None:
    """The README's pictures, on the demo data. They are written to docs/screenshots when
    missing or with XFCHAT_UPDATE_SCREENSHOTS=1, else to a temporary folder (each run's
    times differ, so a plain test run leaves the repository as it was)."""
    update = os.environ.get("XFCHAT_UPDATE_SCREENSHOTS") == "1"
    missing = not all((SCREENSHOTS / f"{n}.png").exists() for n in ("desktop", "phone"))
    out = SCREENSHOTS if update or missing else tmp_path
    out.mkdir(parents=True, exist_ok=True)
    for name, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        page = await browsers.logged_in(site.base, "alice", viewport)
        if viewport is PHONE:
            # Friends: a phone shows the head for its ☰ alone, no channel's buttons.
            await expect(page.get_by_role("heading", name="Friends")).to_be_visible()
            await expect(page.get_by_role("searchbox", name="Search messages")).to_be_hidden()
            await expect(page.get_by_role("button", name="Pinned messages")).to_have_count(0)
            await page.get_by_role("button", name="Open navigation").click()
        log = await open_channel(page, "general")
        await expect(log.get_by_text("Sounds good, see you there!")).to_be_visible()
        await page.mouse.move(0, 0)
        await assert_accessible(page, axe_source, name)
        path = out / f"{name}.png"
        await page.screenshot(path=str(path))
        with Image.open(path) as image:
            assert image.size == (viewport["width"], viewport["height"])
        if viewport is PHONE:
            await page.get_by_role("button", name="Open navigation").click()
            await page.get_by_role("button", name="User settings").click()
            await expect(page.get_by_role("dialog", name="User settings")).to_be_visible()
            await assert_accessible(page, axe_source, "user settings (phone)")
        if viewport is DESKTOP:
            await page.get_by_role("button", name="Server settings").click()
            await expect(page.get_by_role("dialog")).to_be_visible()
            await assert_accessible(page, axe_source, "settings")


async def test_focus_on_a_channel_link_stays_when_its_label_changes(
    site: Site, browsers: Browsers
) -> None:
    """A keyboard user on #general's link while a message comes in there: the link is
    drawn again as "general, unread", and the focus stays on it (it was matched by its
    label, found none, and fell to the page)."""
    alice = await browsers.logged_in(site.base, "alice")
    await open_channel(alice, "gaming")
    channels = alice.get_by_role("navigation", name="Channels")
    general = channels.locator(f'a[href$="/{GENERAL}"]')
    await general.focus()
    async with api_as(site.base, "bob") as bob:
        sent = await bob.post(f"/api/channels/{GENERAL}/messages", json={"content": "psst"})
        assert sent.status_code == 201, sent.text
    await expect(general).to_have_attribute("aria-label", "general, unread")
    await expect_focused(general)


async def test_on_a_phone_a_search_hit_opens_in_front_of_the_results(
    site: Site, browsers: Browsers
) -> None:
    """Was: at phone width a hit in the channel on screen was scrolled to and marked
    behind the results, which covered it until search was closed."""
    alice = await browsers.logged_in(site.base, "alice")
    log = await open_channel(alice, "general")
    await alice.set_viewport_size({"width": 390, "height": 844})
    search = alice.get_by_role("searchbox", name="Search messages")
    await search.fill("from:bob game")
    await search.press("Enter")
    hit = (
        alice.get_by_role("list", name="Search results")
        .get_by_role("button")
        .filter(has_text="Who's up for a")
    )
    await hit.click()
    target = message(log, "Who's up for a game tonight?")
    await expect_focused(target)
    await expect(alice.get_by_role("list", name="Search results")).to_be_hidden()
    box = await target.bounding_box()
    assert box is not None and 0 <= box["x"] < 390


async def test_the_friends_tabs_fit_a_phone(site: Site, browsers: Browsers) -> None:
    """Was: at 390 px the tabs wrapped inside the 48 px head, so All, Pending and Blocked
    stuck out over its top and Add friend over the list below it."""
    alice = await browsers.logged_in(site.base, "alice", PHONE)
    tablist = alice.get_by_role("tablist", name="Friends")
    await expect(tablist.get_by_role("tab", name="Add friend")).to_be_visible()
    head = await alice.locator(".friends .main-head").bounding_box()
    title = await alice.get_by_role("heading", level=1, name="Friends", exact=True).bounding_box()
    friends = await alice.get_by_role("list", name="Friends").bounding_box()
    assert head is not None and title is not None and friends is not None
    boxes = []
    for tab in await tablist.get_by_role("tab").all():
        box = await tab.bounding_box()
        assert box is not None
        assert await tab.evaluate("t => t.scrollWidth <= t.clientWidth"), box  # (no text cut)
        assert 0 <= box["x"] and box["x"] + box["width"] <= PHONE["width"], box
        assert head["y"] <= box["y"] and box["y"] + box["height"] <= head["y"] + head["height"], (
            box,
            head,
        )
        boxes.append(box)
    assert friends["y"] >= head["y"] + head["height"], (friends, head)

    def apart(a: dict[str, float], b: dict[str, float]) -> bool:
        return (
            a["x"] + a["width"] <= b["x"]
            or b["x"] + b["width"] <= a["x"]
            or a["y"] + a["height"] <= b["y"]
            or b["y"] + b["height"] <= a["y"]
        )

    for i, box in enumerate(boxes):
        assert apart(box, title), (box, title)
        assert all(apart(box, other) for other in boxes[i + 1 :]), boxes
