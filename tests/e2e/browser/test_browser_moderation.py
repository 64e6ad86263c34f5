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
