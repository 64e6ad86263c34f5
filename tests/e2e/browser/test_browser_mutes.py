"""Muting: a muted channel or server shows no unread (its mentions still count), a mute
made or ended in another session shows live, and one that ends while the page is open
stops applying."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from playwright.async_api import expect

from tests.e2e.browser.client import (
    GAMING,
    SERVER,
    USER_IDS,
    api_as,
    assert_accessible,
    expect_focused,
    open_channel,
)
from tests.e2e.browser.conftest import Browsers, Site


async def test_muting_hides_unread_not_mentions_and_syncs_live(
    site: Site, browsers: Browsers, axe_source: str
) -> None:
    alice = await browsers.logged_in(site.base, "alice")
    await open_channel(alice, "general")
    channels = alice.get_by_role("navigation", name="Channels")
    rail = alice.get_by_role("navigation", name="Servers")
    gaming = channels.locator(f'a[href$="/{GAMING}"]')
    async with api_as(site.base, "bob") as bob:
        sent = await bob.post(f"/api/channels/{GAMING}/messages", json={"content": "gg"})
        assert sent.status_code == 201, sent.text
        await expect(gaming).to_have_accessible_name("gaming, unread")
        await expect(gaming).to_have_class("channel unread")

        # Mute the whole server from its header, with the keyboard.
        await channels.get_by_role("button", name="Mute server").focus()
        await alice.keyboard.press("Enter")
        dialog = alice.get_by_role("dialog", name="Mute server")
        # (as the page's active element, as everywhere else: to_be_focused also needs the
        # page to hold the browser's own focus, which is no part of what is tested)
        await expect_focused(dialog.get_by_role("button", name="For 15 minutes"))
        await dialog.get_by_role("button", name="For 1 hour").focus()
        await alice.keyboard.press("Enter")
        await expect(dialog).to_have_count(0)
        unmute = channels.get_by_role("button", name="Unmute server")
        await expect(unmute).to_have_attribute("aria-pressed", "true")
        await expect(gaming).to_have_accessible_name("gaming, muted")
        await expect(gaming.get_by_role("img", name="muted")).to_be_visible()
        await expect(gaming).not_to_have_class("channel unread")
        await expect(rail.get_by_role("link", name="Gaming Squad, muted")).to_be_visible()
        squad_item = rail.locator("li", has=alice.get_by_role("link", name="Gaming Squad"))
        await expect(squad_item).to_have_class("is-muted")  # (not has-unread: no dot)
        await assert_accessible(alice, axe_source, "a muted server's channels")

        # A mention still counts and shows.
        mention = {"content": f"<@{USER_IDS['alice']}> you there?"}
        assert (await bob.post(f"/api/channels/{GAMING}/messages", json=mention)).status_code == 201
        await expect(gaming).to_have_accessible_name("gaming, muted, 1 mention")
        await expect(
            rail.get_by_role("link", name="Gaming Squad, muted, 1 mention")
        ).to_be_visible()

    # Unmuted in another session: shown live.
    async with api_as(site.base, "alice") as other:
        gone = await other.delete(f"/api/users/@me/mutes/server/{SERVER}")
        assert gone.status_code == 204, gone.text
        await expect(gaming).to_have_accessible_name("gaming, unread, 1 mention")
        await expect(channels.get_by_role("button", name="Mute server")).to_be_visible()
        await expect(squad_item).to_have_class("has-unread")

        # Muted elsewhere for a few seconds: it applies, then ends on its own. (8 s: the
        # mute is looked for once its event has come, which a busy box can take seconds
        # to bring; one over by then is never seen.)
        until = (datetime.now(UTC) + timedelta(seconds=8)).isoformat()
        put = await other.put(f"/api/users/@me/mutes/channel/{GAMING}", json={"until": until})
        assert put.status_code == 200, put.text
    await expect(gaming).to_have_accessible_name("gaming, muted, 1 mention")
    await expect(gaming).to_have_accessible_name("gaming, unread, 1 mention", timeout=20_000)

    # The open channel's own button: mute it until unmuted, then unmute.
    head = alice.get_by_role("main")
    await head.get_by_role("button", name="Mute channel").click()
    await (
        alice.get_by_role("dialog", name="Mute channel")
        .get_by_role("button", name="Until I turn it back on")
        .click()
    )
    general = channels.get_by_role("link", name="general, muted")
    await expect(general).to_be_visible()
    await head.get_by_role("button", name="Unmute channel").click()
    await expect(channels.get_by_role("link", name="general", exact=True)).to_be_visible()
