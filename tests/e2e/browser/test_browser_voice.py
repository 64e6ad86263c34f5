"""Voice: two pages join one voice channel and hear each other. Audio flows browser to
browser over WebRTC (Chromium's fake microphone), signalled through the gateway."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Any
from urllib.parse import urlsplit

from playwright.async_api import Page, expect

from tests.e2e.browser.client import USER_IDS, api_as, open_channel
from tests.e2e.browser.conftest import BROWSER_ENV, Browsers, Site


async def packets_from(page: Page, user_id: str) -> int:
    stats = await page.evaluate("window.xfchatDebug.voiceStats()")
    return int(stats.get(user_id, {}).get("packetsReceived", 0))


async def until_packets(page: Page, user_id: str, more_than: int) -> None:
    """Wait (20 s at most) until the page's connection to `user_id` has received that
    many audio packets (the fake microphone sends about 50 a second)."""
    got = 0
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(20):
            while (got := await packets_from(page, user_id)) <= more_than:
                await asyncio.sleep(0.25)
    stats = await page.evaluate("window.xfchatDebug.voiceStats()")
    assert got > more_than, f"audio packets from {user_id}: {got}; {stats}"


async def voice_stats(page: Page, peer: str, *, with_host: bool) -> dict[str, Any]:
    """The page's stats of its call with `peer`, once there (and with a host candidate
    gathered, if `with_host`)."""
    async with asyncio.timeout(15):
        while True:
            stats = (await page.evaluate("window.xfchatDebug.voiceStats()")).get(peer)
            if stats and (not with_host or "host" in stats["localCandidates"]):
                return dict(stats)
            await asyncio.sleep(0.1)


async def test_two_pages_in_a_voice_channel_receive_each_others_audio(
    site: Site, browsers: Browsers
) -> None:
    alice = await browsers.logged_in(site.base, "alice")
    bob = await browsers.logged_in(site.base, "bob")
    for page in (alice, bob):
        await open_channel(page, "general")
    await alice.get_by_role("button", name="General Voice (voice channel)").click()
    await expect(alice.get_by_role("region", name="Voice connection")).to_contain_text(
        "General Voice"
    )
    await bob.get_by_role("button", name="General Voice (voice channel)").click()

    for page in (alice, bob):  # each sees both in the channel
        connected = page.get_by_role("list", name="Connected")
        await expect(connected.get_by_text("Alice")).to_be_visible()
        await expect(connected.get_by_text("Bob")).to_be_visible()
    for page, other in ((alice, "bob"), (bob, "alice")):
        await until_packets(page, USER_IDS[other], more_than=20)

    # Chromium's fake microphone beeps: each side sees the other light up as speaking.
    await expect(
        alice.locator(f".voice-member.speaking[data-user-id='{USER_IDS['bob']}']")
    ).to_be_visible()
    await expect(
        bob.locator(f".voice-member.speaking[data-user-id='{USER_IDS['alice']}']")
    ).to_be_visible()

    # Without SPEAK bob is suppressed: alice no longer plays him, both pages show him
    # muted; with it back, he is heard again.
    voice_id = await bob.evaluate("window.xfchatDebug.voiceChannel()")
    played = f"document.querySelector(\"audio[data-user-id='{USER_IDS['bob']}']\").muted"
    override = f"/api/channels/{voice_id}/overrides/member/{USER_IDS['bob']}"
    async with api_as(site.base, "alice") as api:
        denied = await api.put(override, json={"allow": "0", "deny": "512"})
        assert denied.is_success, denied.text
        for page in (alice, bob):
            muted = page.get_by_role("list", name="Connected").get_by_label("muted")
            await expect(muted).to_be_visible()
        assert await alice.evaluate(played) is True
        assert (await api.delete(override)).is_success
        await expect(
            alice.get_by_role("list", name="Connected").get_by_label("muted")
        ).to_have_count(0)
        assert await alice.evaluate(played) is False

    await bob.get_by_role("button", name="Mute", exact=True).click()
    await expect(alice.get_by_role("list", name="Connected").get_by_label("muted")).to_be_visible()
    await bob.get_by_role("button", name="Disconnect from voice").click()
    await expect(alice.get_by_role("list", name="Connected").get_by_text("Bob")).to_have_count(0)


async def test_voice_comes_back_by_itself_after_the_server_restarts(
    site: Site, browsers: Browsers
) -> None:
    """Bob's server process dies under his call; his page reconnects, joins again, and
    the audio flows again both ways, with nothing for him to do."""
    _, other = site.start()
    alice = await browsers.logged_in(other, "alice")
    bob = await browsers.logged_in(site.base, "bob")
    for page in (alice, bob):
        await open_channel(page, "general")
        await page.get_by_role("button", name="General Voice (voice channel)").click()
    await until_packets(alice, USER_IDS["bob"], more_than=20)

    site.proc.proc.send_signal(signal.SIGKILL)
    site.proc.proc.wait(10)
    port = urlsplit(site.base).port
    assert port is not None
    site.start(port)

    await expect(bob.get_by_role("region", name="Voice connection")).to_contain_text(
        "General Voice"
    )
    for page, other_user in ((alice, "bob"), (bob, "alice")):
        await until_packets(page, USER_IDS[other_user], more_than=20)


async def test_relay_only_voice_gathers_no_address_of_the_caller(
    site: Site, browsers: Browsers
) -> None:
    """XFCHAT_VOICE_RELAY_ONLY: the pages are told to use only the TURN server's
    candidates, so neither gathers (nor signals) a candidate with its own address. (The
    TURN server here does not exist, so no call connects: what is checked is what each
    side would reveal.) On the default server they gather host candidates."""
    _, relay_base = site.servers.start(
        **BROWSER_ENV,
        XFCHAT_TURN_URLS="turn:127.0.0.1:9?transport=udp",
        XFCHAT_TURN_SECRET="a-coturn-static-auth-secret",
        XFCHAT_VOICE_RELAY_ONLY="true",
    )
    seen, answered = {}, {}
    for base in (site.base, relay_base):
        alice = await browsers.logged_in(base, "alice")
        bob = await browsers.logged_in(base, "bob")
        for page in (alice, bob):
            await open_channel(page, "general")
            await page.get_by_role("button", name="General Voice (voice channel)").click()
            await expect(page.get_by_role("region", name="Voice connection")).to_contain_text(
                "General Voice"
            )
        # Both sides: bob's call, and alice's answer to it. Host candidates come within
        # a second on loopback; relay-only ones never (the TURN server is no server).
        relay = base == relay_base
        if relay:
            await asyncio.sleep(3)
        seen[base] = await voice_stats(bob, USER_IDS["alice"], with_host=not relay)
        answered[base] = await voice_stats(alice, USER_IDS["bob"], with_host=not relay)
        for page in (alice, bob):
            await page.get_by_role("button", name="Disconnect from voice").click()
    assert seen[site.base]["policy"] == "all" and "host" in seen[site.base]["localCandidates"]
    for side in (seen, answered):
        assert side[site.base]["policy"] == "all"
        assert side[relay_base]["policy"] == "relay"
        assert side[relay_base]["localCandidates"] == []
    assert "host" in answered[site.base]["localCandidates"]
