"""A busy channel, as the person reading it lives it: messages keep arriving while a page
of history loads, while they read back, while they press a reaction or reply, and while
they drag the view up; what they saw is marked read as they watch."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator

import httpx
from playwright.async_api import Page, Request, Route, expect

from tests.e2e.browser.client import (
    GAMING,
    GENERAL,
    USER_IDS,
    act,
    api_as,
    expect_focused,
    message,
    open_channel,
)
from tests.e2e.browser.conftest import Browsers, Site
from tests.e2e.browser.test_browser_chat import png

URL = f"/api/channels/{GENERAL}/messages"


async def say(api: httpx.AsyncClient, text: str) -> dict[str, object]:
    sent = await api.post(URL, json={"content": text})
    assert sent.status_code == 201, sent.text
    return dict(sent.json())


@contextlib.asynccontextmanager
async def flood(api: httpx.AsyncClient, prefix: str, rate: float = 12) -> AsyncIterator[list[str]]:
    """`prefix 1`, `prefix 2`... sent at about `rate` a second while the block runs; the
    texts sent (each acknowledged) are in the list it gives."""
    sent: list[str] = []

    async def run() -> None:
        while True:
            text = f"{prefix} {len(sent) + 1}"
            await say(api, text)
            sent.append(text)
            await asyncio.sleep(1 / rate)

    task = asyncio.create_task(run())
    try:
        yield sent
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def from_bottom(page: Page) -> float:
    return float(
        await page.evaluate(
            "() => { const s = document.querySelector('.scroller');"
            " return s.scrollHeight - s.scrollTop - s.clientHeight; }"
        )
    )


async def test_messages_that_arrive_while_a_page_loads_are_all_shown(
    site: Site, browsers: Browsers
) -> None:
    """The channel is opened while messages pour in, its first page slowed (a slow link):
    the messages that came after the page was read and before it arrived are shown too,
    each once and in order (they were dropped: the page, cut before them, never had them)."""
    alice = await browsers.logged_in(site.base, "alice")

    async def slow(route: Route) -> None:
        answer = await route.fetch()  # (read now: the page is cut here)
        await asyncio.sleep(0.8)
        await route.fulfill(response=answer)

    await alice.route(f"**{URL}?*", slow)
    async with api_as(site.base, "bob") as bob:
        async with flood(bob, "pour") as sent:
            log = await open_channel(alice, "general")
            await asyncio.sleep(1.5)
        await expect(message(log, sent[-1])).to_have_count(1)
        # (what the server holds: a send cut off by the end of the flood may be in it)
        held = (await bob.get(f"{URL}?limit=100")).json()
    stored = [m["content"] for m in reversed(held) if m["content"].startswith("pour ")]
    assert stored[: len(sent)] == sent
    await expect(message(log, stored[-1])).to_have_count(1)
    shown = await log.locator("li.msg .msg-content").all_inner_texts()
    assert [t.strip() for t in shown if t.startswith("pour ")] == stored


async def test_a_busy_channel_is_marked_read_while_it_is_watched(
    site: Site, browsers: Browsers
) -> None:
    """Watched at its newest in a focused window, a channel that never stops is acked as
    it goes (the ack waited for a quiet 300 ms, which a busy channel never has)."""
    alice = await browsers.logged_in(site.base, "alice")
    log = await open_channel(alice, "general")
    await alice.bring_to_front()
    acks: list[Request] = []
    alice.on(
        "request",
        lambda r: acks.append(r) if r.method == "PUT" and r.url.endswith("/ack") else None,
    )
    async with api_as(site.base, "bob") as bob:
        async with flood(bob, "steady", rate=10) as sent:
            await asyncio.sleep(3)
            during = len(acks)
        await expect(message(log, sent[-1])).to_have_count(1)
    assert during >= 3, during


async def test_what_arrives_below_a_view_read_back_is_unread_until_seen(
    site: Site, browsers: Browsers
) -> None:
    """Scrolled up to read back, the messages that arrive below are not seen: the channel
    shows them unread (a mention counted), the jump bar offers the present, and going
    there reads them."""
    async with api_as(site.base, "bob") as bob:
        for n in range(30):
            await say(bob, f"back {n:02}")
        alice = await browsers.logged_in(site.base, "alice")
        log = await open_channel(alice, "general")
        await alice.bring_to_front()
        await expect(message(log, "back 29")).to_be_in_viewport()
        await alice.locator(".scroller").evaluate("s => { s.scrollTop = 0; }")
        await say(bob, "below one")
        await say(bob, f"below two <@{USER_IDS['alice']}>")
    channels = alice.get_by_role("navigation", name="Channels")
    general = channels.get_by_role("link", name=re.compile("^general"))
    await expect(general).to_have_accessible_name("general, unread, 1 mention")
    await alice.get_by_role("button", name="Jump to present").click()
    await expect(message(log, "below two")).to_be_in_viewport()
    await expect(general).to_have_accessible_name("general")
    await expect(alice.get_by_role("button", name="Jump to present")).to_be_hidden()


async def test_a_press_on_a_reaction_survives_its_count_moving(
    site: Site, browsers: Browsers
) -> None:
    """A reaction pressed while someone else adds the same one (its count, and so its
    label, change between the press and the release) still adds yours."""
    alice = await browsers.logged_in(site.base, "alice")
    log = await open_channel(alice, "general")
    async with api_as(site.base, "bob") as bob, api_as(site.base, "charlie") as charlie:
        said = await say(bob, "react to this")
        react = f"{URL}/{said['id']}/reactions/%F0%9F%8E%89/@me"
        assert (await bob.put(react)).status_code == 204
        pill = message(log, "react to this").get_by_role(
            "button", name=re.compile("^🎉 1 reaction")
        )
        box = await pill.bounding_box()
        assert box is not None
        await alice.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        await alice.mouse.down()
        assert (await charlie.put(react)).status_code == 204
        row = message(log, "react to this")
        await expect(row.get_by_role("button", name="🎉 2 reactions", exact=True)).to_be_visible()
        await alice.mouse.up()
        await expect(
            row.get_by_role("button", name="🎉 3 reactions, including you")
        ).to_be_visible()


async def test_a_reply_to_a_message_deleted_meanwhile_ends_and_says_so(
    site: Site, browsers: Browsers
) -> None:
    alice = await browsers.logged_in(site.base, "alice")
    log = await open_channel(alice, "general")
    async with api_as(site.base, "bob") as bob:
        said = await say(bob, "soon gone")
        await act(message(log, "soon gone"), "Reply")
        await expect(alice.get_by_role("button", name="Cancel reply")).to_be_visible()
        assert (await bob.delete(f"{URL}/{said['id']}")).status_code == 204
    await expect(alice.get_by_text("The message you were replying to was deleted.")).to_be_visible()
    await expect(alice.get_by_role("button", name="Cancel reply")).to_have_count(0)


async def test_a_drag_up_while_messages_arrive_is_not_undone(
    site: Site, browsers: Browsers
) -> None:
    """A message arrives while a press on the history (a drag of the scrollbar, here the
    wheel with the button held) then scrolls it up: the release leaves the view where it
    was taken, not back at the newest it would have followed."""
    async with api_as(site.base, "bob") as bob:
        for n in range(30):
            await say(bob, f"drag {n:02}")
        alice = await browsers.logged_in(site.base, "alice")
        log = await open_channel(alice, "general")
        await expect(message(log, "drag 29")).to_be_in_viewport()
        box = await message(log, "drag 29").bounding_box()
        assert box is not None
        await alice.mouse.move(box["x"] + 40, box["y"] + box["height"] / 2)
        await alice.mouse.down()
        await say(bob, "while dragging")  # (at the newest: to be followed on release)
        await expect(message(log, "while dragging")).to_have_count(1)
        await alice.mouse.wheel(0, -600)
        for _ in range(50):
            if await from_bottom(alice) > 300:
                break
            await asyncio.sleep(0.05)
        assert await from_bottom(alice) > 300
        await alice.mouse.up()
    await asyncio.sleep(0.3)  # (the release's follow, if any, runs at the next task)
    assert await from_bottom(alice) > 300


async def test_a_change_above_moves_nothing_being_read(site: Site, browsers: Browsers) -> None:
    """Read back in the middle of the history, a message above grows (a reaction): what
    is on screen stays where it is (the browser's scroll anchoring, now that the history
    keeps its elements)."""
    async with api_as(site.base, "bob") as bob:
        ids = [str((await say(bob, f"still {n:02}"))["id"]) for n in range(40)]
        alice = await browsers.logged_in(site.base, "alice")
        log = await open_channel(alice, "general")
        await expect(message(log, "still 39")).to_be_in_viewport()
        read = message(log, "still 25")
        await read.scroll_into_view_if_needed()
        await alice.locator(".scroller").evaluate("s => { s.scrollTop -= s.clientHeight / 3; }")
        await expect(read).to_be_in_viewport()
        before = await read.bounding_box()
        assert (await bob.put(f"{URL}/{ids[5]}/reactions/%F0%9F%8E%89/@me")).status_code == 204
        await expect(
            message(log, "still 05").get_by_role("button", name=re.compile("^🎉"))
        ).to_have_count(1)
    after = await read.bounding_box()
    assert before is not None and after is not None
    assert abs(after["y"] - before["y"]) < 2, (before, after)


async def test_an_edit_goes_on_across_the_history_loaded_again(
    site: Site, browsers: Browsers
) -> None:
    """An edit open while the history is loaded again (a jump to an old message, then to
    the present) is open again after it with what was typed, and Escape closes it."""
    async with api_as(site.base, "bob") as bob, api_as(site.base, "alice") as mine:
        old = await say(bob, "the very old original")
        for n in range(60):
            await say(bob, f"filler {n:02}")
        await say(mine, "mine to edit")
        reply = await bob.post(URL, json={"content": "about that", "reply_to_id": old["id"]})
        assert reply.status_code == 201, reply.text
    alice = await browsers.logged_in(site.base, "alice")
    log = await open_channel(alice, "general")
    await act(message(log, "mine to edit"), "Edit")
    box = alice.get_by_role("textbox", name="Edit message")
    await box.press_sequentially(" DRAFT")
    await log.locator(".reply-preview", has_text="the very old original").click()
    await expect(message(log, "the very old original")).to_be_in_viewport()
    await alice.get_by_role("button", name="Jump to present").click()
    await expect(box).to_have_value("mine to edit DRAFT")
    await box.focus()
    for key in ("Home", "ArrowUp", "ArrowDown", "End"):  # (the caret's, not the history's)
        await alice.keyboard.press(key)  # (to whatever has the focus: box.press would give it)
    await alice.keyboard.type("!")
    await expect(box).to_have_value("mine to edit DRAFT!")
    await box.press("Escape")
    await expect(alice.locator(".edit-box")).to_have_count(0)
    await expect(message(log, "mine to edit")).to_have_count(1)


async def test_a_focused_reaction_keeps_the_focus_when_one_before_it_goes(
    site: Site, browsers: Browsers
) -> None:
    """The reaction before the focused one is taken back: the focus stays on the one it
    was on, and Enter there counts yours (the row's buttons are matched by what they are
    for, not where they stand: drawn by place, the focus fell to the page)."""
    alice = await browsers.logged_in(site.base, "alice")
    log = await open_channel(alice, "general")
    await alice.bring_to_front()
    async with api_as(site.base, "bob") as bob, api_as(site.base, "charlie") as charlie:
        said = await say(bob, "two reactions")
        thumbs = f"{URL}/{said['id']}/reactions/%F0%9F%91%8D/@me"
        party = f"{URL}/{said['id']}/reactions/%F0%9F%8E%89/@me"
        assert (await charlie.put(thumbs)).status_code == 204
        assert (await bob.put(party)).status_code == 204
        row = message(log, "two reactions")
        pill = row.get_by_role("button", name="🎉 1 reaction", exact=True)
        await pill.focus()
        assert (await charlie.delete(thumbs)).status_code == 204
        await expect(row.get_by_role("button", name=re.compile("^👍"))).to_have_count(0)
    await expect_focused(pill)
    await alice.keyboard.press("Enter")
    await expect_focused(row.get_by_role("button", name="🎉 2 reactions, including you"))


async def test_a_message_seen_just_before_leaving_is_read(site: Site, browsers: Browsers) -> None:
    """A message seen as it came, the channel left at once (within the ack's 300 ms): the
    ack still goes, so another device (here the API) has it read."""
    alice = await browsers.logged_in(site.base, "alice")
    log = await open_channel(alice, "general")
    await alice.bring_to_front()
    async with api_as(site.base, "bob") as bob, api_as(site.base, "alice") as mine:
        said = await say(bob, "seen in passing")
        await expect(message(log, "seen in passing")).to_have_count(1)
        await (
            alice.get_by_role("navigation", name="Channels")
            .get_by_role("link", name="gaming")
            .click()
        )
        me = USER_IDS["alice"]
        for _ in range(50):
            states = (await mine.get(f"/api/channels/{GENERAL}/read-states")).json()
            read = next((r["last_read_seq"] for r in states if r["user_id"] == me), 0)
            if read >= said["seq"]:
                break
            await asyncio.sleep(0.1)
        assert read >= said["seq"], states


async def test_a_change_while_the_page_loads_shows(site: Site, browsers: Browsers) -> None:
    """A message deleted and another edited while the channel's first page is on its way
    (read before them): the page shown is without the one and with the other's edit."""
    async with api_as(site.base, "bob") as bob:
        gone = await say(bob, "about to go")
        changed = await say(bob, "about to change")
        alice = await browsers.logged_in(site.base, "alice")
        loading = asyncio.Event()

        async def slow(route: Route) -> None:
            answer = await route.fetch()
            loading.set()
            await asyncio.sleep(1.0)
            await route.fulfill(response=answer)

        await alice.route(f"**{URL}?*", slow)
        opening = asyncio.create_task(open_channel(alice, "general"))
        await loading.wait()
        assert (await bob.delete(f"{URL}/{gone['id']}")).status_code == 204
        got = await bob.patch(f"{URL}/{changed['id']}", json={"content": "changed meanwhile"})
        assert got.status_code == 200, got.text
        log = await opening
    await expect(message(log, "changed meanwhile")).to_contain_text("(edited)")
    await expect(message(log, "about to go")).to_have_count(0)


async def test_the_later_of_two_jumps_is_the_one_shown(site: Site, browsers: Browsers) -> None:
    """Two reply previews clicked one after the other, the first one's page slow to come:
    the view shows the second's original, and the first page, landing last, changes
    nothing (it replaced the window and pulled the view back)."""
    async with api_as(site.base, "bob") as bob:
        first = await say(bob, "first original")
        for n in range(60):
            await say(bob, f"gap a {n:02}")
        second = await say(bob, "second original")
        for n in range(60):
            await say(bob, f"gap b {n:02}")
        for target, text in ((first, "about the first"), (second, "about the second")):
            got = await bob.post(URL, json={"content": text, "reply_to_id": target["id"]})
            assert got.status_code == 201, got.text
    alice = await browsers.logged_in(site.base, "alice")
    go = asyncio.Event()

    async def slow(route: Route) -> None:
        await go.wait()  # (the first page comes once the second is shown)
        await route.continue_()

    around_first = f"{URL}?around={first['seq']}"
    await alice.route(f"**{around_first}*", slow)
    log = await open_channel(alice, "general")
    await log.locator(".reply-preview", has_text="first original").click()
    await log.locator(".reply-preview", has_text="second original").click()
    await expect(message(log, "second original")).to_be_in_viewport()
    async with alice.expect_response(lambda r: around_first in r.url) as landing:
        go.set()
    await (await landing.value).finished()
    await alice.evaluate("new Promise(r => requestAnimationFrame(() => setTimeout(r, 200)))")
    await expect(message(log, "second original")).to_be_in_viewport()
    await expect(message(log, "first original")).to_have_count(0)


async def test_an_image_that_could_not_be_fetched_stays_marked_broken(
    site: Site, browsers: Browsers
) -> None:
    """A thumbnail whose fetch failed is marked broken, and stays so when its message is
    drawn again (a reaction); once the file can be fetched, the next drawing after a
    while shows it (the kept drawing gets the picture, not a copy that was thrown away)."""
    alice = await browsers.logged_in(site.base, "alice")
    log = await open_channel(alice, "general")
    refused: list[str] = []

    async def refuse(route: Route) -> None:
        refused.append(route.request.url)
        await route.fulfill(status=503, json={"code": "UNAVAILABLE", "message": "try later"})

    await alice.route("**/api/attachments/*/thumbnail", refuse)
    async with api_as(site.base, "bob") as bob:
        data = {"payload_json": '{"content": "a picture"}'}
        files = [("files", ("pic.png", png(), "image/png"))]
        sent = await bob.post(URL, data=data, files=files)
        assert sent.status_code == 201, sent.text
        row = message(log, "a picture")
        image = row.get_by_role("img", name="pic.png")
        await expect(image).to_have_class(re.compile(r"\bbroken\b"))
        react = f"{URL}/{sent.json()['id']}/reactions/%F0%9F%8E%89/@me"
        assert (await bob.put(react)).status_code == 204
        await expect(row.get_by_role("button", name=re.compile("^🎉 1 reaction"))).to_be_visible()
        await expect(image).to_have_class(re.compile(r"\bbroken\b"))
        assert len(refused) == 1  # not fetched again at once

        await alice.unroute("**/api/attachments/*/thumbnail")
        await alice.evaluate("() => { const now = Date.now(); Date.now = () => now + 60_000; }")
        assert (await bob.delete(react)).status_code == 204
        await expect(image).to_have_attribute("src", re.compile("^blob:"))
        await expect(image).not_to_have_class(re.compile(r"\bbroken\b"))
        await alice.wait_for_function(
            "img => img.complete && img.naturalWidth > 0", arg=await image.element_handle()
        )


async def test_a_jump_into_another_channel_shows_its_message(
    site: Site, browsers: Browsers
) -> None:
    """A search hit in a channel not opened yet: the channel opens with its newest page
    and the jump asks for the page around the hit. The newest page landing first made
    the jump's page, asked for after it, drop (the view stayed at the newest messages)."""
    gaming = f"/api/channels/{GAMING}/messages"
    async with api_as(site.base, "bob") as bob:
        for text in ["an old remark about zeppelins", *(f"later {n:02}" for n in range(60))]:
            sent = await bob.post(gaming, json={"content": text})
            assert sent.status_code == 201, sent.text
    alice = await browsers.logged_in(site.base, "alice")
    await open_channel(alice, "general")

    newest_shown = asyncio.Event()

    async def slow(route: Route) -> None:
        await newest_shown.wait()  # (the jump's page comes after the newest page)
        await route.continue_()

    await alice.route(f"**{gaming}?around=*", slow)
    search = alice.get_by_role("searchbox", name="Search messages")
    await search.fill("zeppelins")
    await search.press("Enter")
    hit = alice.get_by_role("list", name="Search results").get_by_role("button")
    await hit.filter(has_text="zeppelins").click()
    log = alice.get_by_role("log", name="Messages")
    await expect(message(log, "later 59")).to_be_attached()  # (the newest page, first)
    newest_shown.set()
    target = message(log, "an old remark about zeppelins")
    await expect(target).to_be_in_viewport()
    await expect_focused(target)


async def test_a_partial_read_elsewhere_leaves_the_counts_of_what_is_still_unread(
    site: Site, browsers: Browsers
) -> None:
    """Alice reads part of a busy channel on another device while this page holds only
    its newest page of it: the counts are those of what is still unread (they were
    counted from that page alone, and lost the mention above it)."""
    alice = await browsers.logged_in(site.base, "alice")
    await open_channel(alice, "general")
    await open_channel(alice, "gaming")  # (general left behind: its newest page kept)
    async with api_as(site.base, "bob") as bob, api_as(site.base, "alice") as phone:
        sent = [await say(bob, f"busy {n:02}") for n in range(10)]
        sent.append(await say(bob, f"busy 10 <@{USER_IDS['alice']}>"))
        sent += [await say(bob, f"busy {n:02}") for n in range(11, 70)]
        channels = alice.get_by_role("navigation", name="Channels")
        await expect(
            channels.get_by_role("link", name="general, unread, 1 mention")
        ).to_be_visible()
        ack = await phone.put(f"/api/channels/{GENERAL}/ack", json={"seq": sent[4]["seq"]})
        assert ack.status_code in (200, 204), ack.text
        # 65 unread on: the mention (busy 10) among them, though not on the page held
        await asyncio.sleep(3)  # (a recount comes after a quiet spell: 0.5-2 s)
        await expect(
            channels.get_by_role("link", name="general, unread, 1 mention")
        ).to_be_visible()
