"""Desktop notifications: a new message from someone else notifies where the channel's
notification level lets it (all; mentions only when it mentions you), never where it is
`nothing`; permission is never asked for on load; clicking one opens its channel."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from playwright.async_api import Page, expect

from tests.e2e.browser.client import (
    GAMING,
    GENERAL,
    SERVER,
    USER_IDS,
    api_as,
    assert_accessible,
    come_back,
    go_away,
    open_channel,
    open_settings,
)
from tests.e2e.browser.conftest import Browsers, Site, log_in

# The page's Notification, observed: each notification made is kept in
# window.__notes (a stand-in that can be clicked), those on screen in window.__shown, each permission request counted and
# answered as a person allowing it would. (Headless Chromium answers "denied" for
# notifications whatever the context was granted, so the answer is the stand-in's.)
OBSERVE = """(() => {
    window.__notes = [];
    window.__shown = new Map();
    window.__asked = 0;
    window.__permission = "default";
    class Observed extends EventTarget {
        constructor(title, options = {}) {
            super();
            this.title = title;
            this.body = options.body;
            window.__notes.push(this);
            // As a browser shows them: one of a tag replaces the one shown of that tag.
            window.__shown.set(options.tag ? options.tag : Symbol(), this);
        }
        close() {}
        static get permission() { return window.__permission; }
        static requestPermission() {
            window.__asked += 1;
            window.__permission = "granted";
            return Promise.resolve("granted");
        }
    }
    window.Notification = Observed;
})()"""


async def notes(page: Page) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = await page.evaluate(
        "() => window.__notes.map((n) => ({title: n.title, body: n.body}))"
    )
    return got


async def notes_come(page: Page, count: int) -> list[dict[str, Any]]:
    await page.wait_for_function(f"() => window.__notes.length >= {count}")
    return await notes(page)


async def test_notifications_follow_each_channels_level(
    site: Site, browsers: Browsers, axe_source: str
) -> None:
    alice = await browsers.page(site.base)
    await alice.context.add_init_script(OBSERVE)
    await alice.reload()
    await log_in(alice, "alice")

    # #gaming set to Nothing from its header.
    await open_channel(alice, "gaming")
    await alice.get_by_role("main").get_by_role("button", name="Channel notifications").click()
    dialog = alice.get_by_role("dialog", name="Notifications for this channel")
    await dialog.get_by_role("radio", name="Nothing").check()
    async with api_as(site.base, "alice") as mine:
        while await _levels(mine) != {GAMING: "nothing"}:  # (the PUT under way)
            await asyncio.sleep(0.05)
    await assert_accessible(alice, axe_source, "a channel's notification settings")
    # Permission is asked for only from the settings' own button, never on load.
    assert await alice.evaluate("() => window.__asked") == 0
    await dialog.get_by_role("button", name="Enable desktop notifications").click()
    await expect(dialog.get_by_role("status")).to_have_text("Desktop notifications are on.")
    assert await alice.evaluate("() => window.__asked") == 1
    await dialog.get_by_role("button", name="Close").click()
    await open_channel(alice, "general")

    async with api_as(site.base, "bob") as bob:
        quiet = await bob.post(f"/api/channels/{GAMING}/messages", json={"content": "shh"})
        assert quiet.status_code == 201, quiet.text
        # #general is `all` (the default): notified while the page is hidden.
        await go_away(alice, hidden=True)
        hello = await bob.post(f"/api/channels/{GENERAL}/messages", json={"content": "hi <b>"})
        assert hello.status_code == 201, hello.text
        assert await notes_come(alice, 1) == [{"title": "Bob (general)", "body": "hi <b>"}]
        await come_back(alice)

        # #gaming at Only @mentions (set in another session): a plain message does not
        # notify, a mention of alice does (its text, mentions as names, cut at 200
        # characters; was: the raw `<@id>`).
        async with api_as(site.base, "alice") as other:
            put = await other.put(
                f"/api/users/@me/notification-settings/channel/{GAMING}",
                json={"level": "mentions"},
            )
            assert put.status_code == 200, put.text
        plain = await bob.post(f"/api/channels/{GAMING}/messages", json={"content": "plain"})
        assert plain.status_code == 201, plain.text
        long = f"<@{USER_IDS['alice']}> " + "x" * 300
        ping = await bob.post(f"/api/channels/{GAMING}/messages", json={"content": long})
        assert ping.status_code == 201, ping.text
        got = await notes_come(alice, 2)
        assert len(got) == 2 and got[1]["title"] == "Bob (gaming)", got
        assert got[1]["body"] == ("@Alice " + "x" * 300)[:199] + "…"

    # Clicking it opens its channel.
    await alice.evaluate("() => window.__notes[1].dispatchEvent(new Event('click'))")
    await expect(alice.get_by_role("heading", level=1, name="gaming", exact=True)).to_be_visible()
    assert alice.url.endswith(f"#/s/{SERVER}/{GAMING}")
    assert len(await notes(alice)) == 2

    # The server at Only @mentions, @everyone suppressed (its menu): #general, with no
    # setting of its own, follows it; @everyone there does not notify, alice's name does.
    channels = alice.get_by_role("navigation", name="Channels")
    await channels.get_by_role("button", name="Server notifications").click()
    dialog = alice.get_by_role("dialog", name="Notifications for this server")
    await dialog.get_by_role("radio", name="Only @mentions").check()
    await dialog.get_by_role("checkbox", name="Suppress @everyone and @here").check()
    async with api_as(site.base, "alice") as mine:
        while await _levels(mine) != {GAMING: "mentions", SERVER: "mentions"}:
            await asyncio.sleep(0.05)
        listed = (await mine.get("/api/users/@me/notification-settings")).json()
        while not [s for s in listed if s["id"] == SERVER and s["suppress_everyone"]]:
            await asyncio.sleep(0.05)
            listed = (await mine.get("/api/users/@me/notification-settings")).json()
    await dialog.get_by_role("button", name="Close").click()
    async with api_as(site.base, "bob") as bob:
        for content in ("@everyone look", f"<@{USER_IDS['alice']}> you"):
            sent = await bob.post(f"/api/channels/{GENERAL}/messages", json={"content": content})
            assert sent.status_code == 201, sent.text
    got = await notes_come(alice, 3)
    assert got[2:] == [{"title": "Bob (general)", "body": "@Alice you"}]


async def _levels(client: Any) -> dict[str, str]:
    got = await client.get("/api/users/@me/notification-settings")
    return {s["id"]: s["level"] for s in got.json()}


async def test_a_message_replayed_late_notifies_of_nothing(site: Site, browsers: Browsers) -> None:
    """A message older than two minutes when it arrives (a connection resumed after a
    sleep replays what it missed) shows as unread, not as a desktop notification: here
    the device's clock is put ten minutes ahead, so what arrives is that old to it."""
    alice = await browsers.page(site.base)
    await alice.context.add_init_script(OBSERVE + ';window.__permission = "granted";')
    await alice.clock.install()
    await alice.reload()
    await log_in(alice, "alice")
    await open_channel(alice, "gaming")
    now = datetime.now(UTC)
    await alice.clock.set_system_time(now + timedelta(minutes=10))
    async with api_as(site.base, "bob") as bob:
        late = await bob.post(f"/api/channels/{GENERAL}/messages", json={"content": "old news"})
        assert late.status_code == 201, late.text
        channels = alice.get_by_role("navigation", name="Channels")
        general = channels.locator(f'a[href$="/{GENERAL}"]')
        await expect(general).to_have_accessible_name("general, unread")
        await alice.clock.set_system_time(datetime.now(UTC))
        fresh = await bob.post(f"/api/channels/{GENERAL}/messages", json={"content": "fresh"})
        assert fresh.status_code == 201, fresh.text
    assert await notes_come(alice, 1) == [{"title": "Bob (general)", "body": "fresh"}]


async def test_the_settings_dialog_follows_a_change_made_in_another_session(
    site: Site, browsers: Browsers
) -> None:
    """The dialog open shows the setting in force, and a save sends it: one changed in
    another session meanwhile is not put back (was: the dialog kept what it showed at
    opening, and ticking "Suppress @everyone and @here" sent that stale level)."""
    alice = await browsers.page(site.base)
    await log_in(alice, "alice")
    await open_channel(alice, "general")
    channels = alice.get_by_role("navigation", name="Channels")
    await channels.get_by_role("button", name="Server notifications").click()
    dialog = alice.get_by_role("dialog", name="Notifications for this server")
    await expect(dialog.get_by_role("radio", name="All messages")).to_be_checked()
    async with api_as(site.base, "alice") as other:
        put = await other.put(
            f"/api/users/@me/notification-settings/server/{SERVER}", json={"level": "nothing"}
        )
        assert put.status_code == 200, put.text
        await expect(dialog.get_by_role("radio", name="Nothing")).to_be_checked()
        await dialog.get_by_role("checkbox", name="Suppress @everyone and @here").check()
        listed = (await other.get("/api/users/@me/notification-settings")).json()
        while not listed[0]["suppress_everyone"]:  # (the PUT under way)
            await asyncio.sleep(0.05)
            listed = (await other.get("/api/users/@me/notification-settings")).json()
        assert listed == [
            {"kind": "server", "id": SERVER, "level": "nothing", "suppress_everyone": True}
        ]


async def test_a_flood_of_messages_shows_one_notification_a_channel(
    site: Site, browsers: Browsers
) -> None:
    """Many new messages of a channel (a spammer's, a busy group's) each notify, but
    replace the channel's notification on screen: one a channel, the newest (was: one
    a message, stacking without bound)."""
    alice = await browsers.page(site.base)
    await alice.context.add_init_script(OBSERVE + ';window.__permission = "granted";')
    await alice.reload()
    await log_in(alice, "alice")
    await open_channel(alice, "gaming")
    await go_away(alice, hidden=True)
    async with api_as(site.base, "bob") as bob:
        for n in range(5):
            sent = await bob.post(f"/api/channels/{GENERAL}/messages", json={"content": f"{n}"})
            assert sent.status_code == 201, sent.text
        sent = await bob.post(f"/api/channels/{GAMING}/messages", json={"content": "elsewhere"})
        assert sent.status_code == 201, sent.text
    assert len(await notes_come(alice, 6)) == 6
    shown = await alice.evaluate("() => [...window.__shown.values()].map((n) => n.body)")
    assert sorted(shown) == ["4", "elsewhere"]


async def test_a_long_text_is_cut_between_characters(site: Site, browsers: Browsers) -> None:
    """The 200 characters of a notification's text are characters, not UTF-16 units: an
    emoji at the cut is kept whole or left out (was: its first half, a lone surrogate)."""
    alice = await browsers.page(site.base)
    await alice.context.add_init_script(OBSERVE + ';window.__permission = "granted";')
    await alice.reload()
    await log_in(alice, "alice")
    await open_channel(alice, "gaming")
    text = "x" * 198 + "\N{GRINNING FACE}" * 3
    async with api_as(site.base, "bob") as bob:
        sent = await bob.post(f"/api/channels/{GENERAL}/messages", json={"content": text})
        assert sent.status_code == 201, sent.text
    await notes_come(alice, 1)
    whole = await alice.evaluate(
        "() => window.__notes[0].body === 'x'.repeat(198) + '\\u{1F600}\\u2026'"
    )
    assert whole, await notes(alice)


async def test_a_muted_channel_notifies_of_mentions_by_nickname(
    site: Site, browsers: Browsers
) -> None:
    """A muted channel notifies of its mentions of you alone (as Discord's mute, and as
    its mention badge shows), and a notification names its author as the channel does:
    by their nickname in the server."""
    async with api_as(site.base, "bob") as bob, api_as(site.base, "alice") as mine:
        named = await bob.patch(f"/api/servers/{SERVER}/members/@me", json={"nickname": "Bobby"})
        assert named.status_code == 200, named.text
        muted = await mine.put(f"/api/users/@me/mutes/channel/{GENERAL}", json={"until": None})
        assert muted.status_code == 200, muted.text
    alice = await browsers.page(site.base)
    await alice.context.add_init_script(OBSERVE + ';window.__permission = "granted";')
    await alice.reload()
    await log_in(alice, "alice")
    await open_channel(alice, "gaming")
    async with api_as(site.base, "bob") as bob:
        for content in ("muted chatter", f"<@{USER_IDS['alice']}> look"):
            sent = await bob.post(f"/api/channels/{GENERAL}/messages", json={"content": content})
            assert sent.status_code == 201, sent.text
    assert await notes_come(alice, 1) == [{"title": "Bobby (general)", "body": "@Alice look"}]


async def test_a_server_defaulting_to_mentions_notifies_a_member_of_mentions_alone(
    site: Site, browsers: Browsers
) -> None:
    """The owner sets the server's default to Only @mentions in its settings (Overview):
    Charlie, who set nothing, is notified of a mention and not of a plain message; his
    dialog names the default he falls back to; his own `all` for the server overrides
    the default."""
    charlie = await browsers.page(site.base)
    await charlie.context.add_init_script(OBSERVE + ';window.__permission = "granted";')
    await charlie.reload()
    await log_in(charlie, "charlie")
    await open_channel(charlie, "gaming")  # (#general, where Bob speaks, not on screen)

    alice = await browsers.logged_in(site.base, "alice")
    settings = await open_settings(alice)
    notify = settings.get_by_label("Default notifications")
    await expect(notify).to_have_value("all")
    await notify.select_option(label="Only @mentions")
    await settings.get_by_role("button", name="Save").click()
    async with api_as(site.base, "alice") as mine:
        while (await mine.get(f"/api/servers/{SERVER}")).json()["default_notifications"] != (
            "mentions"
        ):  # (the PATCH under way)
            await asyncio.sleep(0.05)
        log = await mine.get(f"/api/servers/{SERVER}/audit-log?action=server.updated")
        assert log.json()[0]["diff"] == [
            {"key": "default_notifications", "old_value": "all", "new_value": "mentions"}
        ]

    # Charlie's dialog shows the default he falls back to (told by server.updated).
    channels = charlie.get_by_role("navigation", name="Channels")
    await channels.get_by_role("button", name="Server notifications").click()
    dialog = charlie.get_by_role("dialog", name="Notifications for this server")
    await expect(dialog.get_by_role("group")).to_contain_text("default: Only @mentions")
    await expect(dialog.get_by_role("radio", name="Only @mentions")).to_be_checked()
    await dialog.get_by_role("button", name="Close").click()

    async with api_as(site.base, "charlie") as him:
        charlie_id = (await him.get("/api/users/@me")).json()["id"]
        assert (await him.get("/api/users/@me/notification-settings")).json() == []
    async with api_as(site.base, "bob") as bob:
        for content in ("plain chatter", f"<@{charlie_id}> look"):
            sent = await bob.post(f"/api/channels/{GENERAL}/messages", json={"content": content})
            assert sent.status_code == 201, sent.text
        assert await notes_come(charlie, 1) == [{"title": "Bob (general)", "body": "@Charlie look"}]

        # His own All messages for the server overrides its default.
        await channels.get_by_role("button", name="Server notifications").click()
        await dialog.get_by_role("radio", name="All messages").check()
        async with api_as(site.base, "charlie") as him:
            while await _levels(him) != {SERVER: "all"}:  # (the PUT under way)
                await asyncio.sleep(0.05)
        await dialog.get_by_role("button", name="Close").click()
        sent = await bob.post(f"/api/channels/{GENERAL}/messages", json={"content": "now you"})
        assert sent.status_code == 201, sent.text
    got = await notes_come(charlie, 2)
    assert got == [
        {"title": "Bob (general)", "body": "@Charlie look"},
        {"title": "Bob (general)", "body": "now you"},
    ]


async def test_a_webhooks_notification_says_it_is_a_bot(site: Site, browsers: Browsers) -> None:
    """A webhook may post under any name, a member's too: its message shows a BOT tag
    in the channel, and its notification says so as well (was: "Bob (general)", as
    Bob's own message notifies, from a webhook posting as "Bob")."""
    async with api_as(site.base, "alice") as alice_api:
        made = await alice_api.post(f"/api/channels/{GENERAL}/webhooks", json={"name": "CI"})
        assert made.status_code == 201, made.text
        hook = made.json()
    alice = await browsers.page(site.base)
    await alice.context.add_init_script(OBSERVE + ';window.__permission = "granted";')
    await alice.reload()
    await log_in(alice, "alice")
    await open_channel(alice, "gaming")
    async with httpx.AsyncClient(base_url=site.base, timeout=10) as anonymous:
        posted = await anonymous.post(
            f"/api/webhooks/{hook['id']}/{hook['token']}",
            json={"content": "send me your password", "username": "Bob"},
        )
        assert posted.status_code == 201, posted.text
    got = await notes_come(alice, 1)
    assert got == [{"title": "Bob [BOT] (general)", "body": "send me your password"}], got
