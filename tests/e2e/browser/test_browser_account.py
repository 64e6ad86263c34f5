"""User settings in the browser, as a person uses them: a display name, an avatar, a
status; two-factor sign-in enrolled by scanning the QR code the page draws (decoded
here from a screenshot, its code computed with pyotp); a password change that ends a
half-done login elsewhere; the sessions list and "log out everywhere else"; then logging
in with a code, with a recovery code (spent after), and being told to wait after too
many codes."""

from __future__ import annotations

import io
import re
import time

import httpx
import pyotp
import zxingcpp
from PIL import Image
from playwright.async_api import Locator, Page, expect

from tests.e2e.browser.client import assert_accessible, expect_focused
from tests.e2e.browser.conftest import PASSWORD, Browsers, Site, log_in

NEW_PASSWORD = "a much longer password"


async def scan_qr(canvas: Locator) -> str:
    """What a phone's camera reads from the QR code on the screen."""
    found = zxingcpp.read_barcodes(Image.open(io.BytesIO(await canvas.screenshot())))
    assert [f.format for f in found] == [zxingcpp.BarcodeFormat.QRCode]
    return found[0].text


def fresh_code(totp: pyotp.TOTP, used: int) -> tuple[str, int]:
    """A code of a time step after `used` (each step is accepted once; the server takes
    the step after now too, for clocks that drift)."""
    step = max(int(time.time()) // 30, used + 1)
    return totp.at(step * 30), step


def wrong_code(totp: pyotp.TOTP) -> str:
    now = int(time.time())
    taken = {totp.at(now + d) for d in (-60, -30, 0, 30, 60)}
    return next(c for c in ("000000", "111111", "222222") if c not in taken)


async def password_step(page: Page, username: str, password: str) -> None:
    await page.get_by_label("Username or email").fill(username)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Log in", exact=True).click()


async def code_step(page: Page, code: str, *, recovery: bool = False) -> None:
    if recovery:
        await page.get_by_role("button", name="Use a recovery code instead").click()
    box = page.get_by_label("Recovery code" if recovery else "Authentication code")
    await box.fill(code)
    await page.get_by_role("button", name="Log in", exact=True).click()


async def open_user_settings(page: Page, tab: str) -> Locator:
    await page.get_by_role("button", name="User settings").click()
    settings = page.get_by_role("dialog", name="User settings")
    await settings.get_by_role("tab", name=tab).click()
    return settings


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 40, 120)).save(out, "PNG")
    return out.getvalue()


def recovery_codes(settings: Locator) -> Locator:
    return settings.get_by_role("list", name="Recovery codes").get_by_role("listitem")


async def test_profile_two_factor_sessions_and_logins_with_codes(
    site: Site, browsers: Browsers, axe_source: str
) -> None:
    # (Diana tries 9 codes in all, right or wrong: under the 10 that `auth.two_factor`
    # allows in 15 minutes, which bob runs into at the end.)
    diana = await browsers.logged_in(site.base, "diana")
    settings = await open_user_settings(diana, "Profile")
    await profile_and_status(diana, settings, axe_source)
    totp, used, recovery = await enrol(diana, settings, axe_source)
    other = await password_change_ends_a_pending_login(
        site, browsers, settings, totp, used, recovery[-2], axe_source
    )
    await log_out_elsewhere(diana, settings, other, axe_source)
    await logins_with_codes(diana, totp, recovery)
    await new_codes_then_turned_off(diana, recovery)
    await a_stale_code_step_and_too_many_codes(site, browsers)  # (on the same site: faster)


async def profile_and_status(diana: Page, settings: Locator, axe_source: str) -> None:
    await settings.get_by_label("Display name").fill("Diana Prince")
    await settings.get_by_role("button", name="Save").click()
    user_panel = diana.locator(".user-panel")
    await expect(user_panel).to_contain_text("Diana Prince")
    await settings.get_by_label("Upload an avatar").set_input_files(
        files=[{"name": "me.png", "mimeType": "image/png", "buffer": png()}]
    )
    await expect(user_panel.locator("img.avatar")).to_have_attribute(
        "src", re.compile(r"^/api/media/")
    )
    await assert_accessible(diana, axe_source, "user settings")

    await settings.get_by_role("tab", name="Status").click()
    await settings.get_by_label("Do not disturb").check()
    await settings.get_by_label("Custom status").fill("Raiding tonight")
    await settings.get_by_role("button", name="Save status").click()
    await expect(user_panel.get_by_role("img", name="dnd")).to_be_visible()


async def enrol(
    diana: Page, settings: Locator, axe_source: str
) -> tuple[pyotp.TOTP, int, list[str]]:
    """Scan the QR code, type the app's code (a wrong one first), keep the recovery codes."""
    await settings.get_by_role("tab", name="Two-factor sign-in").click()
    await settings.get_by_label("Your password").fill(PASSWORD)
    await settings.get_by_role("button", name="Set up two-factor sign-in").click()
    uri = await scan_qr(settings.get_by_role("img", name="QR code of your authenticator key"))
    assert uri.startswith("otpauth://totp/")
    await expect(settings.get_by_label("Authenticator link")).to_have_text(uri)
    await assert_accessible(diana, axe_source, "two-factor set-up")
    totp = pyotp.parse_uri(uri)
    assert isinstance(totp, pyotp.TOTP)
    await settings.get_by_label("Code from your app").fill(wrong_code(totp))
    await settings.get_by_role("button", name="Turn on").click()
    await expect(settings.get_by_role("alert")).to_contain_text("That code is not right.")
    code, used = fresh_code(totp, 0)
    await settings.get_by_label("Code from your app").fill(code)
    await settings.get_by_role("button", name="Turn on").click()
    await expect(recovery_codes(settings)).to_have_count(10)
    recovery = [c.strip() for c in await recovery_codes(settings).all_inner_texts()]
    await settings.get_by_role("button", name="I have saved them").click()
    await expect(settings.get_by_text("10 recovery codes left.")).to_be_visible()
    return totp, used, recovery


async def password_change_ends_a_pending_login(
    site: Site,
    browsers: Browsers,
    settings: Locator,
    totp: pyotp.TOTP,
    used: int,
    spare: str,
    axe_source: str,
) -> Page:
    """A login waits at its code step while the password changes (with a recovery code,
    `spare`: two-factor sign-in is on): its ticket is dead, and the page says so and
    starts again; then it logs in with a code."""
    other = await browsers.page(site.base)
    await password_step(other, "diana", PASSWORD)
    await expect_focused(other.get_by_label("Authentication code"))
    await assert_accessible(other, axe_source, "code step")
    await settings.get_by_role("tab", name="Password").click()
    await settings.get_by_label("Current password").fill(PASSWORD)
    await settings.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    await settings.get_by_label("New password again").fill(NEW_PASSWORD)
    await settings.get_by_label("Two-factor code or recovery code").fill(spare)
    await settings.get_by_role("button", name="Change password").click()
    await expect(settings.page.get_by_text("Password changed.")).to_be_visible()
    await code_step(other, fresh_code(totp, used)[0])
    await expect(other.get_by_role("alert")).to_contain_text("took too long")
    await password_step(other, "diana", NEW_PASSWORD)
    await code_step(other, fresh_code(totp, used)[0])
    await expect(other.locator("nav.rail")).to_be_attached()
    return other


async def log_out_elsewhere(diana: Page, settings: Locator, other: Page, axe_source: str) -> None:
    await settings.get_by_role("tab", name="Sessions").click()
    sessions = settings.get_by_role("list", name="Sessions").get_by_role("listitem")
    await expect(sessions).to_have_count(2)
    await expect(sessions.filter(has_text="This device")).to_have_count(1)
    await assert_accessible(diana, axe_source, "sessions")
    await settings.get_by_role("button", name="Log out everywhere else").click()
    await (
        diana.get_by_role("dialog", name="Log out everywhere else")
        .get_by_role("button", name="Log out")
        .click()
    )
    await expect(other.get_by_text("Your session ended. Log in again.")).to_be_visible()
    await expect(sessions).to_have_count(1)
    await diana.keyboard.press("Escape")


async def logins_with_codes(diana: Page, totp: pyotp.TOTP, recovery: list[str]) -> None:
    """A wrong code is told as such; a recovery code works once."""
    await diana.get_by_role("button", name="Log out").click()
    await password_step(diana, "diana", NEW_PASSWORD)
    await code_step(diana, wrong_code(totp))
    await expect(diana.get_by_role("alert")).to_have_text(re.compile("That code is not right"))
    await code_step(diana, recovery[0], recovery=True)
    await expect(diana.locator("nav.rail")).to_be_attached()
    await diana.get_by_role("button", name="Log out").click()
    await password_step(diana, "diana", NEW_PASSWORD)
    await code_step(diana, recovery[0], recovery=True)
    await expect(diana.get_by_role("alert")).to_have_text(
        "That recovery code is not right, or it was used already."
    )
    await diana.get_by_label("Recovery code").fill(recovery[1].upper())  # (case is ignored)
    await diana.get_by_role("button", name="Log in", exact=True).click()
    await expect(diana.locator("nav.rail")).to_be_attached()


async def new_codes_then_turned_off(diana: Page, recovery: list[str]) -> None:
    """New recovery codes, then two-factor sign-in turned off with one of them."""
    settings = await open_user_settings(diana, "Two-factor sign-in")
    await expect(settings.get_by_text("7 recovery codes left.")).to_be_visible()
    renew = settings.get_by_role("form", name="New recovery codes")
    await renew.get_by_label("Your password").fill(NEW_PASSWORD)
    await renew.get_by_label("Code from your app, or a recovery code").fill(recovery[-1])
    await renew.get_by_role("button", name="Get new recovery codes").click()
    await expect(recovery_codes(settings)).to_have_count(10)
    fresh = [c.strip() for c in await recovery_codes(settings).all_inner_texts()]
    assert not set(fresh) & set(recovery)
    await settings.get_by_role("button", name="I have saved them").click()
    off = settings.get_by_role("form", name="Turn off")
    await off.get_by_label("Your password").fill(NEW_PASSWORD)
    await off.get_by_label("Code from your app, or a recovery code").fill(fresh[0])
    await off.get_by_role("button", name="Turn off two-factor sign-in").click()
    await expect(settings.get_by_role("button", name="Set up two-factor sign-in")).to_be_visible()
    await diana.keyboard.press("Escape")
    await diana.get_by_role("button", name="Log out").click()
    await log_in(diana, "diana", NEW_PASSWORD)  # no code asked any more


async def a_stale_code_step_and_too_many_codes(site: Site, browsers: Browsers) -> None:
    """A code step that outlives its ticket starts again; and bob's codes ran out
    (`auth.two_factor`, 10 in 15 minutes): his page says to wait."""
    async with httpx.AsyncClient(base_url=site.base, timeout=10) as api:
        login = {"login": "bob", "password": PASSWORD}
        tokens = (await api.post("/api/auth/login", json=login)).json()
        me = {"Authorization": f"Bearer {tokens['access_token']}"}
        setup = await api.post(
            "/api/users/@me/two-factor/setup", json={"password": PASSWORD}, headers=me
        )
        totp = pyotp.parse_uri(setup.json()["otpauth_uri"])
        enabled = await api.post(
            "/api/users/@me/two-factor/enable", json={"code": totp.now()}, headers=me
        )
        assert enabled.status_code == 200, enabled.text
        ticket = (await api.post("/api/auth/login", json=login)).json()["ticket"]
        for _ in range(12):
            tried = await api.post(
                "/api/auth/login/two-factor", json={"ticket": ticket, "code": wrong_code(totp)}
            )
            if tried.status_code == 429:
                break
        assert tried.status_code == 429, tried.text

    page = await browsers.page(site.base)
    # A code step left open past its ticket's 300 s goes back to the password, saying why
    # (the page's clock is moved on; the server's ticket would be dead by then).
    await page.clock.install()
    await password_step(page, "bob", PASSWORD)
    await expect(page.get_by_label("Authentication code")).to_be_visible()
    await page.clock.fast_forward("05:01")
    await expect(page.get_by_role("alert")).to_contain_text("Your sign-in took too long")
    await expect(page.get_by_label("Username or email")).to_have_value("bob")
    await password_step(page, "bob", PASSWORD)
    await code_step(page, totp.now())
    await expect(page.get_by_role("alert")).to_have_text(
        re.compile(r"^Too many tries\. For your safety, wait \d+ minutes before the next one\.$")
    )


async def test_a_user_deletes_their_account_after_confirming(
    site: Site, browsers: Browsers
) -> None:
    """A wrong password is said beside the form; the right one, confirmed, deletes the
    account and leaves the login page; the name no longer logs in."""
    page = await browsers.logged_in(site.base, "eve")
    settings = await open_user_settings(page, "Delete account")
    await settings.get_by_label("Password").fill("not my password")
    await settings.get_by_role("button", name="Delete account").click()
    confirm = page.get_by_role("dialog", name="Delete your account?")
    await confirm.get_by_role("button", name="Delete account").click()
    await expect(settings.get_by_text("the password is wrong")).to_be_visible()
    await settings.get_by_label("Password").fill(PASSWORD)
    await settings.get_by_role("button", name="Delete account").click()
    await confirm.get_by_role("button", name="Delete account").click()
    await expect(page.get_by_text("Your account was deleted.")).to_be_visible()
    await expect(page.get_by_role("button", name="Log in", exact=True)).to_be_visible()
    async with httpx.AsyncClient(base_url=site.base, timeout=10) as api:
        login = await api.post("/api/auth/login", json={"login": "eve", "password": PASSWORD})
        assert login.status_code == 401 and login.json()["code"] == "INVALID_CREDENTIALS"
