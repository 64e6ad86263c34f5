"""Settings changed in another session show live, over either transport."""

from __future__ import annotations

import pytest
from playwright.async_api import WebSocketRoute, expect

from tests.e2e.browser.client import api_as
from tests.e2e.browser.conftest import Browsers, Site, log_in


@pytest.mark.parametrize("transport", ["gateway", "sse"])
async def test_a_privacy_change_elsewhere_shows_in_open_settings(
    site: Site, browsers: Browsers, transport: str
) -> None:
    page = await browsers.page(site.base)
    if transport == "sse":

        async def refuse(ws: WebSocketRoute) -> None:
            await ws.close(code=1011, reason="no websockets here")

        await page.route_web_socket("**/api/gateway", refuse)
    await log_in(page, "alice")
    servers = page.get_by_role("navigation", name="Servers")
    await expect(servers.get_by_role("link", name="Gaming Squad")).to_be_visible()  # (ready)
    await page.get_by_role("button", name="User settings").click()
    settings = page.get_by_role("dialog", name="User settings")
    await settings.get_by_role("tab", name="Privacy").click()
    await expect(settings.get_by_role("radio", name="Everyone")).to_be_checked()
    assert await page.evaluate("window.xfchatDebug.transport()") == transport
    async with api_as(site.base, "alice") as other:  # another session
        got = await other.put("/api/users/@me/privacy", json={"direct_messages": "friends"})
        assert got.status_code == 200, got.text
    await expect(settings.get_by_role("radio", name="Only my friends")).to_be_checked()
