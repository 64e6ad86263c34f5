"""What a moderated member sees: a timeout said as such, and lifted on time by itself."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from playwright.async_api import expect

from tests.e2e.browser.client import USER_IDS, api_as, open_channel
from tests.e2e.browser.conftest import Browsers, Site

SERVER = "00000000-0000-0000-0000-000000000100"


async def test_a_timeout_is_named_and_ends_on_time_without_a_redraw(
    site: Site, browsers: Browsers
) -> None:
    bob = await browsers.logged_in(site.base, "bob")
    await open_channel(bob, "general")
    box = bob.get_by_role("textbox", name="Message", exact=True)
    await expect(box).to_be_enabled()
    until = datetime.now(UTC) + timedelta(seconds=5)
    async with api_as(site.base, "alice") as alice:
        got = await alice.patch(
            f"/api/servers/{SERVER}/members/{USER_IDS['bob']}",
            json={"timed_out_until": until.isoformat()},
        )
        assert got.status_code == 200, got.text
    await expect(box).to_be_disabled()
    await expect(box).to_have_attribute("placeholder", re.compile("You are timed out until"))
    await expect(box).to_be_enabled(timeout=15_000)  # (no event says it ended)
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
