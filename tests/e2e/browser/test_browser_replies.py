"""Replies preview their original as it is now (edited, deleted, loaded or not), with
mentions shown as names; editing shows and takes mentions as the composer does."""

from __future__ import annotations

from playwright.async_api import expect

from tests.e2e.browser.client import (
    GENERAL,
    USER_IDS,
    act,
    api_as,
    expect_focused,
    message,
    open_channel,
    say,
)
from tests.e2e.browser.conftest import Browsers, Site

BOB = USER_IDS["bob"]


async def test_a_reply_previews_its_unloaded_original_as_edited_then_deleted(
    site: Site, browsers: Browsers
) -> None:
    url = f"/api/channels/{GENERAL}/messages"
    async with api_as(site.base, "alice") as alice:
        original = (await alice.post(url, json={"content": f"hey <@{BOB}> look"})).json()
        for i in range(55):  # the original is far above the newest page
            assert (await alice.post(url, json={"content": f"filler {i}"})).is_success
        reply = {"content": "answering that", "reply_to_id": original["id"]}
        assert (await alice.post(url, json=reply)).is_success

        bob = await browsers.logged_in(site.base, "bob")
        log = await open_channel(bob, "general")
        answer = message(log, "answering that")
        preview = answer.locator(".reply-preview")
        await expect(preview).to_have_accessible_name("Replying to Alice: hey @Bob look")
        await expect(message(log, "hey")).to_have_count(0)  # (not loaded)

        edited = await alice.patch(f"{url}/{original['id']}", json={"content": "changed my mind"})
        assert edited.status_code == 200, edited.text
        await expect(preview).to_have_accessible_name("Replying to Alice: changed my mind")
        assert (await alice.delete(f"{url}/{original['id']}")).status_code == 204
        await expect(preview.locator(".reply-text")).to_have_text("Original message was deleted")


async def test_editing_shows_and_takes_mentions_by_name(site: Site, browsers: Browsers) -> None:
    alice = await browsers.logged_in(site.base, "alice")
    log = await open_channel(alice, "general")
    await say(alice, "@bob ping")
    mine = message(log, "ping")
    await expect(mine.locator(".mention")).to_have_text("@Bob")
    await act(mine, "Edit")
    box = alice.get_by_role("textbox", name="Edit message")
    await expect(box).to_have_value("@bob ping")
    await box.fill("@bob ping again")
    await box.press("Enter")
    await expect(message(log, "ping again").locator(".mention")).to_have_text("@Bob")
    await expect(message(log, "ping again")).not_to_contain_text("<@")


async def test_an_edit_to_nothing_offers_to_delete(site: Site, browsers: Browsers) -> None:
    alice = await browsers.logged_in(site.base, "alice")
    log = await open_channel(alice, "general")
    await say(alice, "soon nothing")
    await act(message(log, "soon nothing"), "Edit")
    box = alice.get_by_role("textbox", name="Edit message")
    await box.fill("")
    await box.press("Enter")
    confirm = alice.get_by_role("dialog", name="Delete message")
    await confirm.get_by_role("button", name="Cancel").click()
    await expect_focused(box)  # still editing
    await box.press("Enter")
    await confirm.get_by_role("button", name="Delete").click()
    await expect(message(log, "soon nothing")).to_have_count(0)


async def test_a_pin_notice_of_a_deleted_message_says_so(site: Site, browsers: Browsers) -> None:
    alice = await browsers.logged_in(site.base, "alice")
    log = await open_channel(alice, "general")
    await say(alice, "pin then delete")
    await act(message(log, "pin then delete"), "Pin")
    notice = log.locator("li.msg-system", has_text="pinned")
    await expect(notice).to_have_count(1)
    await act(message(log, "pin then delete"), "Delete")
    await alice.get_by_role("dialog").get_by_role("button", name="Delete").click()
    await expect(message(log, "pin then delete")).to_have_count(0)
    await notice.get_by_role("button", name="a message").click()
    await expect(alice.get_by_text("That message has been deleted.")).to_be_visible()
