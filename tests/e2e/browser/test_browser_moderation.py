"""What a moderated member sees: a timeout said as such, and lifted on time by itself."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from playwright.async_api import Locator, Page, expect

from tests.e2e.browser.client import SERVER, USER_IDS, api_as, open_channel
from tests.e2e.browser.conftest import Browsers, Site
from xfchat.domain.permissions import Permission


async def test_a_timeout_is_named_and_ends_on_time_without_a_redraw(
    site: Site, browsers: Browsers
) -> None:
    bob = await browsers.logged_in(site.base, "bob")
    await open_channel(bob, "general")
    box = bob.get_by_role("textbox", name="Message", exact=True)
    await expect(box).to_be_enabled()
    # (8 s: the disabled box is looked for once the event has come, and on a busy box
    # that can be seconds; a timeout already over by then never shows it)
    until = datetime.now(UTC) + timedelta(seconds=8)
    async with api_as(site.base, "alice") as alice:
        got = await alice.patch(
            f"/api/servers/{SERVER}/members/{USER_IDS['bob']}",
            json={"timed_out_until": until.isoformat()},
        )
        assert got.status_code == 200, got.text
    await expect(box).to_be_disabled()
    await expect(box).to_have_attribute("placeholder", re.compile("You are timed out until"))
    await expect(box).to_be_enabled(timeout=20_000)  # (no event says it ended)
    await expect(box).to_have_attribute("placeholder", "Message #general")


async def test_typing_in_a_dm_closed_to_you_says_so_once(site: Site, browsers: Browsers) -> None:
    alice = await browsers.logged_in(site.base, "alice")
    async with api_as(site.base, "alice") as api:
        conv = await api.post(
            "/api/conversations", json={"kind": "direct", "user_id": USER_IDS["bob"]}
        )
        assert conv.is_success, conv.text
    await alice.goto(f"{site.base}/#/dm/{conv.json()['id']}")
    box = alice.get_by_role("textbox", name="Message", exact=True)
    await expect(box).to_be_enabled()
    async with api_as(site.base, "bob") as bob:
        blocked = await bob.put(f"/api/users/@me/blocks/{USER_IDS['alice']}")
        assert blocked.status_code == 204, blocked.text
    typing: list[str] = []
    alice.on("request", lambda r: typing.append(r.url) if r.url.endswith("/typing") else None)
    await box.press_sequentially("are you")
    await expect(alice.get_by_text("does not take direct messages from you, so")).to_be_visible()
    await alice.wait_for_timeout(8500)  # (typing is sent at most every 8 s)
    await box.press_sequentially(" there")
    await alice.wait_for_timeout(500)
    assert len(typing) == 1, typing


async def test_a_kick_a_ban_and_a_deletion_are_said(site: Site, browsers: Browsers) -> None:
    bob = await browsers.logged_in(site.base, "bob")
    charlie = await browsers.logged_in(site.base, "charlie")
    await open_channel(bob, "general")
    await open_channel(charlie, "general")
    async with api_as(site.base, "alice") as alice:
        kicked = await alice.delete(f"/api/servers/{SERVER}/members/{USER_IDS['bob']}")
        assert kicked.status_code == 204, kicked.text
        await expect(bob.get_by_text("You were kicked from Gaming Squad.")).to_be_visible()
        await expect(bob.get_by_role("heading", name="Friends")).to_be_visible()
        charlie_id = "00000000-0000-0000-0000-000000000003"
        banned = await alice.put(f"/api/servers/{SERVER}/bans/{charlie_id}", json={})
        assert banned.status_code == 204, banned.text
        await expect(charlie.get_by_text("You were banned from Gaming Squad.")).to_be_visible()
        created = await alice.post("/api/servers", json={"name": "Short lived"})
        assert created.status_code == 201, created.text
        invite = await alice.post(f"/api/servers/{created.json()['id']}/invites", json={})
        async with api_as(site.base, "bob") as bob_api:
            joined = await bob_api.post(f"/api/invites/{invite.json()['code']}")
            assert joined.is_success, joined.text
        gone = await alice.delete(f"/api/servers/{created.json()['id']}")
        assert gone.status_code == 204, gone.text
        await expect(bob.get_by_text("Short lived was deleted.")).to_be_visible()


async def test_the_member_list_shows_server_mute_and_deafen(site: Site, browsers: Browsers) -> None:
    alice = await browsers.logged_in(site.base, "alice")
    await open_channel(alice, "general")
    members = alice.get_by_role("complementary", name="Details")
    bob = members.get_by_role("button", name=re.compile("^Bob"))
    await expect(bob).to_have_accessible_name(re.compile(r"^Bob \((online|offline|idle)\)$"))
    async with api_as(site.base, "alice") as api:
        got = await api.patch(
            f"/api/servers/{SERVER}/members/{USER_IDS['bob']}/voice",
            json={"mute": True, "deaf": True},
        )
        assert got.status_code == 200, got.text
    await expect(bob).to_have_accessible_name(re.compile(r"\(server muted\) \(server deafened\)$"))


async def audit_log(page: Page) -> tuple[Locator, Locator]:
    """The server settings' audit log tab, opened from #general: the dialog, its entries."""
    await open_channel(page, "general")
    await page.get_by_role("button", name="Server settings").click()
    settings = page.get_by_role("dialog", name="Gaming Squad settings")
    await settings.get_by_role("tab", name="Audit log").click()
    return settings, settings.locator("ol.audit > li")


async def test_the_audit_log_loads_more_than_its_newest_page(
    site: Site, browsers: Browsers
) -> None:
    async with api_as(site.base, "alice") as api:
        for i in range(105):
            got = await api.patch(f"/api/servers/{SERVER}", json={"description": f"take {i}"})
            assert got.status_code == 200, got.text
    settings, entries = await audit_log(await browsers.logged_in(site.base, "alice"))
    await expect(entries).to_have_count(100)
    await settings.get_by_role("button", name="Load more").click()
    await expect(entries).to_have_count(105)
    await expect(settings.get_by_role("button", name="Load more")).to_be_hidden()


async def test_the_audit_log_reads_past_a_page_of_entries_one_may_not_see(
    site: Site, browsers: Browsers
) -> None:
    """Bob (a Moderator: the audit log) cannot see #staff, about which the 100 newest
    entries are: its page holds none of them. Was: that page said "no more", and Bob's
    log read "Nothing yet." over the older entries he may read."""
    async with api_as(site.base, "alice") as api:
        for i in range(3):
            got = await api.patch(f"/api/servers/{SERVER}", json={"description": f"take {i}"})
            assert got.status_code == 200, got.text
        staff = await api.post(f"/api/servers/{SERVER}/channels", json={"name": "staff"})
        assert staff.status_code == 201, staff.text
        hidden = staff.json()["id"]
        denied = await api.put(
            f"/api/channels/{hidden}/overrides/member/{USER_IDS['bob']}",
            json={"allow": "0", "deny": str(int(Permission.VIEW_CHANNEL))},
        )
        assert denied.is_success, denied.text
        for i in range(100):
            got = await api.patch(f"/api/channels/{hidden}", json={"topic": f"t{i}"})
            assert got.status_code == 200, got.text
    settings, entries = await audit_log(await browsers.logged_in(site.base, "bob"))
    await expect(entries).to_have_count(3)
    await expect(entries.first).to_contain_text("server.updated")
    await expect(settings.get_by_text("Nothing yet.")).to_be_hidden()


async def test_the_audit_log_shows_what_an_update_replaced(site: Site, browsers: Browsers) -> None:
    """An update's entry shows each changed field as old -> new (its `diff`)."""
    async with api_as(site.base, "alice") as api:
        for description in ("before", "after"):
            got = await api.patch(f"/api/servers/{SERVER}", json={"description": description})
            assert got.status_code == 200, got.text
    _, entries = await audit_log(await browsers.logged_in(site.base, "alice"))
    changed = entries.first.locator(".audit-diff > li")
    await expect(changed).to_have_count(1)
    await expect(changed).to_have_text("description: before → after")
    await expect(changed.locator(".audit-old")).to_have_text("before")
