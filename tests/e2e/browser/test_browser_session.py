"""A refresh that fails for want of the server (a network error, a 503, a 429) keeps the
session: only a 401 from the refresh (or the gateway's 4012) ends it."""

from __future__ import annotations

import asyncio

import pytest
from playwright.async_api import Page, Route, WebSocketRoute, expect

from tests.e2e.browser.client import GENERAL, api_as, message, open_channel
from tests.e2e.browser.conftest import Browsers, Site, log_in

EXPIRED = {"code": "TOKEN_EXPIRED", "message": "the access token has expired"}


async def until_answered(answered: list[int], want: list[int], seconds: float = 10) -> None:
    for _ in range(int(seconds * 10)):
        if answered == want:
            return
        await asyncio.sleep(0.1)
    assert answered == want


async def fail_refresh_once(page: Page, how: str) -> list[int]:
    """The next refresh fails as `how` says; later ones reach the server. Returns the
    statuses of the refreshes that reached it (appended as they are answered)."""
    answered: list[int] = []
    failed = False

    async def handle(route: Route) -> None:
        nonlocal failed
        if not failed:
            failed = True
            if how == "network":
                await route.abort("connectionrefused")
            else:
                await route.fulfill(
                    status=503,
                    headers={"Retry-After": "1"},
                    json={"code": "DATABASE_BUSY", "message": "busy"},
                )
            return
        response = await route.fetch()
        answered.append(response.status)
        await route.fulfill(response=response)

    await page.route("**/api/auth/refresh", handle)
    return answered


@pytest.mark.parametrize("how", ["network", "503"])
async def test_a_send_whose_refresh_fails_keeps_the_session_and_the_text(
    site: Site, browsers: Browsers, how: str
) -> None:
    alice = await browsers.logged_in(site.base, "alice")
    log = await open_channel(alice, "general")
    answered = await fail_refresh_once(alice, how)
    expired_once = False

    async def expire(route: Route) -> None:  # the access token ran out before this send
        nonlocal expired_once
        if route.request.method == "POST" and not expired_once:
            expired_once = True
            await route.fulfill(status=401, json=EXPIRED)
        else:
            await route.continue_()

    await alice.route(f"**/api/channels/{GENERAL}/messages", expire)
    box = alice.get_by_role("textbox", name="Message", exact=True)
    await box.fill("typed while the server was away")
    await box.press("Enter")

    await expect(alice.get_by_text("Not sent:")).to_be_visible()
    await expect(box).to_have_value("typed while the server was away")
    await expect(alice.get_by_text("Your session expired")).to_have_count(0)
    assert await alice.evaluate("localStorage.getItem('xfchat.session')") is not None
    # The refresh is tried again by itself, after a back-off (or the Retry-After).
    await until_answered(answered, [200])
    await box.press("Enter")
    await expect(message(log, "typed while the server was away")).to_have_count(1)
    await expect(alice.get_by_label("Username or email")).to_have_count(0)


async def test_a_gateway_token_expiry_whose_refresh_fails_reconnects_later(
    site: Site, browsers: Browsers
) -> None:
    """The gateway says 4015 (the token expired) and the refresh cannot reach the server:
    the page waits and tries again, and stays logged in and live."""
    page = await browsers.page(site.base)
    answered = await fail_refresh_once(page, "network")
    opened = 0

    async def gateway(ws: WebSocketRoute) -> None:
        nonlocal opened
        opened += 1
        if opened == 1:
            await ws.close(code=4015, reason="token expired")
        else:
            ws.connect_to_server()

    await page.route_web_socket("**/api/gateway", gateway)
    await log_in(page, "bob")
    log = await open_channel(page, "general")
    await until_answered(answered, [200])
    async with api_as(site.base, "alice") as alice:
        sent = await alice.post(f"/api/channels/{GENERAL}/messages", json={"content": "still live"})
        assert sent.status_code == 201
    await expect(message(log, "still live")).to_have_count(1)
    await expect(page.get_by_text("Your session expired")).to_have_count(0)
    assert await page.evaluate("localStorage.getItem('xfchat.session')") is not None
