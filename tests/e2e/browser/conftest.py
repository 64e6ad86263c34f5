"""The browser client in a real browser: Debian's Chromium driven by Playwright, against
real `xfchat serve` processes on a database loaded with the demo data.

The browser is Chromium's headless shell (Debian's chromium-headless-shell: the same
Chromium, Blink and V8 release as its `chromium`, without the desktop browser around
them). Measured on the 2-core box over the 109 browser tests (-n 4): 3 min 50 s, where
the full `chromium` in headless mode took 6 min 7 s; over two of the files, Chromium's
CPU 15.6 s against 50.0 s. The set-up installs it (and an emoji font, so screenshots
show emoji) with apt-get when it is missing, once per session; Playwright's own browser
download is never used.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from tests.conftest import Cluster, new_database, remove_database
from tests.support import (
    ROOT,
    ServerProcess,
    Servers,
    clean_env,
    one_at_a_time,
    random_secret,
    run_cli,
)

CHROMIUM = Path("/usr/bin/chromium-headless-shell")
EMOJI_FONT = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
APT_PACKAGES = ("chromium-headless-shell", "fonts-noto-color-emoji")
AXE = ROOT / "tests" / "js" / "node_modules" / "axe-core" / "axe.min.js"
PASSWORD = "password123"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
# Generous limits: the tests log in, upload and reconnect far faster than a person.
BROWSER_ENV = {
    "XFCHAT_RATE_LOGIN_IP": "10000/60",
    "XFCHAT_RATE_LOGIN_ACCOUNT": "10000/60",
    "XFCHAT_RATE_REFRESH_IP": "10000/60",
    "XFCHAT_RATE_REGISTER_IP": "10000/60",
    "XFCHAT_RATE_ATTACHMENTS_USER": "10000/60",
    "XFCHAT_RATE_SEARCH_USER": "10000/60",
    "XFCHAT_RATE_REACTIONS_USER": "10000/60",  # (the storms of test_browser_client_dos)
    "XFCHAT_RATE_PINS_USER": "10000/60",
    "XFCHAT_RATE_GROUPS_USER": "10000/60",
    "XFCHAT_RATE_JOINS_USER": "10000/60",
    "XFCHAT_RATE_ANONYMOUS_IP": "100000/60",  # (every page load fetches the client's files)
}

expect.set_options(timeout=15_000)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(args, capture_output=True, text=True, timeout=900, env=env, check=False)


def install_chromium() -> None:
    """`apt-get install` Chromium and the emoji font; a clear failure if that cannot be."""
    if os.geteuid() != 0:
        pytest.fail(
            f"Chromium is missing at {CHROMIUM} and the tests are not root: run "
            f"`sudo apt-get install -y {' '.join(APT_PACKAGES)}` once"
        )
    for step in (("apt-get", "update"), ("apt-get", "install", "-y", *APT_PACKAGES)):
        done = _run(*step)
        if done.returncode != 0:
            pytest.fail(
                f"`{' '.join(step)}` failed ({done.returncode}), so the browser tests cannot "
                f"run:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
            )


_install_failure: list[str] = []


def pytest_collection_finish(session: pytest.Session) -> None:
    """Install Chromium before the first test runs when a browser test is about to, so
    the minute it takes on a fresh machine counts against no test's timeout."""
    here = Path(__file__).parent
    wanted = any(Path(str(item.path)).is_relative_to(here) for item in session.items)
    if not wanted:
        return
    with one_at_a_time("apt"):
        if not (CHROMIUM.exists() and EMOJI_FONT.exists()):
            try:
                install_chromium()
            except pytest.fail.Exception as exc:
                _install_failure.append(str(exc))


@pytest.fixture(scope="session")
def chromium() -> str:
    if _install_failure:
        pytest.fail(_install_failure[0])
    if not (CHROMIUM.exists() and EMOJI_FONT.exists()):
        install_chromium()
    assert CHROMIUM.exists(), f"apt-get said it installed {APT_PACKAGES[0]}, but it is not there"
    return str(CHROMIUM)


@pytest.fixture(scope="session")
def axe_source() -> Iterator[str]:
    with one_at_a_time("npm"):
        if not AXE.exists():
            done = _run("npm", "install", "--prefix", str(AXE.parents[2]), "--no-package-lock")
            assert done.returncode == 0, f"npm install (tests/js) failed:\n{done.stderr[-2000:]}"
    yield AXE.read_text()


@dataclass
class Site:
    """The demo world served by real processes on one database."""

    servers: Servers
    db_url: str
    base: str
    proc: ServerProcess

    def start(self, port: int | None = None) -> tuple[ServerProcess, str]:
        return self.servers.start(port, **BROWSER_ENV)


@pytest.fixture(scope="session")
def demo_template(pg_cluster: Cluster, template_db: str) -> Iterator[str]:
    """A database with the demo data loaded once (`xfchat seed`), to clone per test."""
    name = asyncio.run(new_database(pg_cluster, template_db))
    seeded = run_cli("seed", env=clean_env(DATABASE_URL=pg_cluster.url(name)))
    assert seeded.returncode == 0, seeded.stderr
    yield name
    asyncio.run(remove_database(pg_cluster, name))


@pytest.fixture
async def site(pg_cluster: Cluster, demo_template: str, tmp_path: Path) -> AsyncIterator[Site]:
    name = await new_database(pg_cluster, demo_template)
    servers = Servers(pg_cluster.url(name), random_secret(), tmp_path)
    try:
        proc, base = servers.start(**BROWSER_ENV)
        yield Site(servers, pg_cluster.url(name), base, proc)
    finally:
        servers.stop_all()
        await remove_database(pg_cluster, name)


REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (e) =>
  window.__xfchatViolation(`${e.violatedDirective}: ${e.blockedURI} ${e.sample}`));
"""


@dataclass
class Browsers:
    """Pages of one Chromium; every page's script errors and CSP violations are kept,
    and a test ends by finding none."""

    browser: Browser
    contexts: list[BrowserContext] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    async def page(self, base: str, viewport: dict[str, int] = DESKTOP) -> Page:
        context = await self.browser.new_context(
            viewport=viewport,  # type: ignore[arg-type]
            base_url=base,
            locale="en-US",
            timezone_id="UTC",
        )
        context.set_default_timeout(15_000)
        self.contexts.append(context)
        # Every violation of the page's CSP, Trusted Types' included (Chromium's console
        # messages for those do not name the CSP), reported from the page itself.
        await context.expose_function(
            "__xfchatViolation", lambda text: self.problems.append(f"CSP violation: {text}")
        )
        await context.add_init_script(REPORT_VIOLATIONS)
        page = await context.new_page()
        page.on("pageerror", lambda err: self.problems.append(f"page error: {err}"))
        page.on(
            "console",
            lambda msg: (
                self.problems.append(f"console: {msg.text}")
                if msg.type == "error" and "Content Security Policy" in msg.text
                else None
            ),
        )
        await page.goto(base)
        return page

    async def logged_in(self, base: str, username: str, viewport: dict[str, int] = DESKTOP) -> Page:
        page = await self.page(base, viewport)
        await log_in(page, username)
        return page


async def log_in(page: Page, username: str, password: str = PASSWORD) -> None:
    await page.get_by_label("Username or email").fill(username)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Log in").click()
    await expect(page.locator("nav.rail")).to_be_attached()  # (a phone hides it in a drawer)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The browser tests run on the test process's one event loop, where its one
    Chromium lives (`chromium_browser`): starting Playwright's driver and Chromium for
    each test took a second or two of the box's CPU each time."""
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.path)).is_relative_to(here):
            item.add_marker(pytest.mark.asyncio(loop_scope="session"), append=False)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def chromium_browser(chromium: str) -> AsyncIterator[Browser]:
    """One Chromium per test process; each test's pages are in contexts of their own
    (no cookie, storage or cache shared), closed at its end."""
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=chromium,
            args=[
                "--no-sandbox",
                "--use-fake-device-for-media-stream",
                "--use-fake-ui-for-media-stream",
                "--autoplay-policy=no-user-gesture-required",
            ],
        )
        try:
            yield browser
        finally:
            await browser.close()


@pytest_asyncio.fixture(loop_scope="session")
async def browsers(chromium_browser: Browser) -> AsyncIterator[Browsers]:
    held = Browsers(chromium_browser)
    try:
        yield held
    finally:
        for context in held.contexts:
            with contextlib.suppress(Exception):  # (one a test closed already)
                await context.close()
    assert not held.problems, "\n".join(held.problems)
