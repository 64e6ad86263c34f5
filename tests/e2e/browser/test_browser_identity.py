"""Changing one's username and email in the browser's settings: the tab asks for the
password (the server refuses a wrong one, said beside the form), then both change at
once and the account logs in by its new email."""

from __future__ import annotations

import httpx
from playwright.async_api import expect

from tests.e2e.browser.conftest import PASSWORD, Browsers, Site
from tests.e2e.browser.test_browser_account import open_user_settings


async def test_username_and_email_are_changed_with_the_password(
    site: Site, browsers: Browsers
) -> None:
    diana = await browsers.logged_in(site.base, "diana")
    settings = await open_user_settings(diana, "Username and email")
    await settings.get_by_label("Username", exact=True).fill("diana_p")
    await settings.get_by_label("Email", exact=True).fill("diana.p@example.org")
    await settings.get_by_label("Current password").fill("not her password")
    await settings.get_by_role("button", name="Save").click()
    await expect(settings.get_by_role("alert")).to_contain_text("the password is wrong")
    await settings.get_by_label("Current password").fill(PASSWORD)
    await settings.get_by_role("button", name="Save").click()
    await expect(diana.get_by_text("Your other sessions were logged out.")).to_be_visible()
    await expect(settings.get_by_label("Username", exact=True)).to_have_value("diana_p")
    await expect(settings.get_by_label("Email", exact=True)).to_have_value("diana.p@example.org")
    async with httpx.AsyncClient(base_url=site.base) as http:
        login = {"login": "diana.p@example.org", "password": PASSWORD}
        by_email = await http.post("/api/auth/login", json=login)
    assert by_email.status_code == 200, by_email.text
