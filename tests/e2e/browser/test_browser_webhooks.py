"""Server settings' Webhooks tab (Discord's Integrations > Webhooks): a manager makes a
webhook, is shown its URL once, and renames, moves, regenerates and deletes it; the tab
is there only for those who hold MANAGE_WEBHOOKS in a text channel."""

from __future__ import annotations

import asyncio
import re

import httpx
from playwright.async_api import expect

from tests.e2e.browser.client import (
    GAMING,
    SERVER,
    api_as,
    assert_accessible,
    expect_focused,
    message,
    open_channel,
    open_settings,
)
from tests.e2e.browser.conftest import Browsers, Site

MANAGE_WEBHOOKS = 1 << 23
CHARLIE = "00000000-0000-0000-0000-000000000003"
URL = re.compile(r"^http://127\.0\.0\.1:\d+/api/webhooks/[0-9a-f-]{36}/[A-Za-z0-9_-]{43}$")


async def test_a_manager_makes_uses_renames_regenerates_and_deletes_a_webhook(
    site: Site, browsers: Browsers, axe_source: str
) -> None:
    alice = await browsers.logged_in(site.base, "alice")
    await alice.context.grant_permissions(["clipboard-read", "clipboard-write"])
    settings = await open_settings(alice)
    await settings.get_by_role("tab", name="Webhooks").click()
    await expect(settings.get_by_text("No webhooks yet.")).to_be_visible()
    await assert_accessible(alice, axe_source, "the Webhooks tab, empty")

    # Made from the keyboard: a name, a channel, Enter.
    new = settings.get_by_role("form", name="New webhook")
    await expect(new.get_by_label("Channel").locator("option")).to_have_text(
        ["#general", "#announcements", "#gaming", "#mod-lounge"]
    )
    await new.get_by_label("Channel").select_option(label="#general")
    await new.get_by_label("Name").fill("Deploy bot")
    await new.get_by_label("Name").press("Enter")
    field = settings.get_by_label("Webhook URL of Deploy bot")
    await expect(field).to_have_value(URL)
    await expect(field).to_have_attribute("readonly", "")
    await expect_focused(field)
    await expect(settings.get_by_text("it will not be shown again")).to_be_visible()
    await expect(settings.get_by_text("Anyone with this URL can post in #general")).to_be_visible()
    url = await field.input_value()
    await settings.get_by_role("button", name="Copy URL").click()
    await expect(alice.get_by_text("URL copied")).to_be_visible()
    assert await alice.evaluate("navigator.clipboard.readText()") == url
    await assert_accessible(alice, axe_source, "the Webhooks tab, a URL shown")

    # Posting with it: the message is the webhook's, tagged BOT, in #general.
    charlie = await browsers.logged_in(site.base, "charlie")
    log = await open_channel(charlie, "general")
    async with httpx.AsyncClient(timeout=10) as anyone:
        posted = await anyone.post(url, json={"content": "Deployed v1.2.3"})
        assert posted.status_code == 201, posted.text
    said = message(log, "Deployed v1.2.3")
    await expect(said).to_be_visible()
    await expect(said.locator(".bot-tag")).to_have_text("BOT")
    await expect(said).to_contain_text("Deploy bot")

    # Shown once: Done takes it away, and coming back to the tab does not bring it.
    await settings.get_by_role("button", name="Done").click()
    await expect(field).to_have_count(0)
    await settings.get_by_role("tab", name="Overview").click()
    await settings.get_by_role("tab", name="Webhooks").click()
    row = settings.get_by_role("listitem", name="Deploy bot")
    await expect(row).to_be_visible()
    await expect(settings.locator("#wh-url")).to_have_count(0)

    # Renamed and moved to #gaming in one save.
    await row.get_by_label("Name").fill("Release bot")
    await row.get_by_label("Channel").select_option(label="#gaming")
    await row.get_by_role("button", name="Save").click()
    moved = settings.get_by_role("region", name="Webhooks of #gaming").get_by_role(
        "listitem", name="Release bot"
    )
    await expect(moved).to_be_visible()
    await expect(settings.get_by_role("region", name="Webhooks of #general")).to_have_count(0)
    async with api_as(site.base, "alice") as api:
        [hook] = (await api.get(f"/api/servers/{SERVER}/webhooks")).json()
        assert (hook["name"], hook["channel_id"]) == ("Release bot", GAMING)

    # Regenerated, after a confirmation: a new URL, once; the old one is refused.
    await moved.get_by_role("button", name="Regenerate URL of Release bot").click()
    confirm = alice.get_by_role("dialog", name="Regenerate URL")
    await expect(confirm).to_contain_text("The old one stops working at once")
    await confirm.get_by_role("button", name="Regenerate URL").click()
    fresh = settings.get_by_label("Webhook URL of Release bot")
    await expect(fresh).to_have_value(URL)
    new_url = await fresh.input_value()
    assert new_url != url
    async with httpx.AsyncClient(timeout=10) as anyone:
        old = await anyone.post(url, json={"content": "with the old URL"})
        assert old.status_code == 404, old.text
        posted = await anyone.post(new_url, json={"content": "with the new URL"})
        assert posted.status_code == 201, posted.text

    # Deleted, after a confirmation (cancelled once: nothing happens).
    asked = alice.get_by_role("dialog", name="Delete webhook")
    await moved.get_by_role("button", name="Delete Release bot").click()
    await asked.get_by_role("button", name="Cancel").click()
    await expect(moved).to_be_visible()
    await moved.get_by_role("button", name="Delete Release bot").click()
    await asked.get_by_role("button", name="Delete").click()
    await expect(settings.get_by_text("No webhooks yet.")).to_be_visible()
    await expect(fresh).to_have_count(0)  # (its URL goes with it)
    async with api_as(site.base, "alice") as api:
        assert (await api.get(f"/api/servers/{SERVER}/webhooks")).json() == []
    async with httpx.AsyncClient(timeout=10) as anyone:
        gone = await anyone.post(new_url, json={"content": "after the delete"})
        assert gone.status_code == 404, gone.text


async def test_the_webhooks_tab_is_only_for_those_who_manage_webhooks_in_a_channel(
    site: Site, browsers: Browsers
) -> None:
    """Bob, a Moderator, has server settings (Members, Audit log) but not
    MANAGE_WEBHOOKS: no Webhooks tab. Charlie, a Member, has no server settings at all;
    granted MANAGE_WEBHOOKS in #gaming alone (an override), he gets them, with the one
    tab, offering #gaming alone and listing only #gaming's webhooks."""
    async with api_as(site.base, "alice") as api:
        made = await api.post(f"/api/channels/{GAMING}/webhooks", json={"name": "Scores"})
        assert made.status_code == 201, made.text
        general = "00000000-0000-0000-0000-000000000101"
        other = await api.post(f"/api/channels/{general}/webhooks", json={"name": "Elsewhere"})
        assert other.status_code == 201, other.text
    bob = await browsers.logged_in(site.base, "bob")
    settings = await open_settings(bob)
    await expect(settings.get_by_role("tab", name="Members")).to_be_visible()
    await expect(settings.get_by_role("tab", name="Webhooks")).to_have_count(0)
    await settings.get_by_role("button", name="Close").click()

    charlie = await browsers.logged_in(site.base, "charlie")
    await open_channel(charlie, "general")
    settings_button = charlie.get_by_role("button", name="Server settings")
    await expect(settings_button).to_have_count(0)
    async with api_as(site.base, "alice") as api:
        allowed = await api.put(
            f"/api/channels/{GAMING}/overrides/member/{CHARLIE}",
            json={"allow": str(MANAGE_WEBHOOKS), "deny": "0"},
        )
        assert allowed.status_code in (200, 204), allowed.text
    await settings_button.click()
    settings = charlie.get_by_role("dialog", name="Gaming Squad settings")
    await expect(settings.get_by_role("tab")).to_have_text(["Webhooks"])
    await settings.get_by_role("tab", name="Webhooks").click()
    await expect(settings.get_by_role("listitem", name="Scores")).to_be_visible()
    await expect(settings.get_by_role("listitem", name="Elsewhere")).to_have_count(0)
    new = settings.get_by_role("form", name="New webhook")
    await expect(new.get_by_label("Channel").locator("option")).to_have_text(["#gaming"])


async def test_a_text_channels_overrides_offer_manage_webhooks(
    site: Site, browsers: Browsers
) -> None:
    """A text channel's permission overrides offer "Manage webhooks", as Discord's
    channel permissions do (was: the grid's fixed list left it out, so it could be
    given in a channel only through the API)."""
    alice = await browsers.logged_in(site.base, "alice")
    settings = await open_settings(alice)
    await settings.get_by_role("tab", name="Channels").click()
    await settings.get_by_role("button", name="# gaming").click()
    await settings.get_by_label("For role or member").select_option(label="@Charlie")
    grid = settings.get_by_role("group", name="Manage webhooks")
    await grid.get_by_role("radio", name="allow").check()
    await settings.get_by_role("button", name="Save permissions").click()
    async with api_as(site.base, "alice") as api:
        path = f"/api/channels/{GAMING}"
        for _ in range(200):  # (until the PUT is done)
            got = (await api.get(path)).json()
            mine = [o for o in got["overrides"] if o["id"] == CHARLIE]
            if mine and int(mine[0]["allow"]) & MANAGE_WEBHOOKS:
                break
            await asyncio.sleep(0.05)
        assert mine and int(mine[0]["allow"]) == MANAGE_WEBHOOKS, got["overrides"]
