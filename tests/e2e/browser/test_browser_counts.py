"""Unread and mention counts that no event moves: a role of yours given or taken (its
mentions count for whoever holds it), a channel's history hidden from you or shown
again (then only what was sent since you joined counts, or all of it). The page asks
the server to count them again (ui/app.js, countServersAgain). And "Mark unread", which
takes your read position back and holds it there while you stay."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import httpx
from playwright.async_api import Locator, expect

from tests.e2e.browser.client import (
    GAMING,
    GENERAL,
    SERVER,
    USER_IDS,
    act,
    api_as,
    expect_focused,
    message,
    open_channel,
)
from tests.e2e.browser.conftest import Browsers, Site

READ_MESSAGE_HISTORY = 1 << 2
WITHIN_MS = 20_000  # (the page waits 1-6 s before it asks, so that changes come as one)


async def test_a_role_given_and_taken_moves_its_mentions(site: Site, browsers: Browsers) -> None:
    bob = await browsers.logged_in(site.base, "bob")
    await open_channel(bob, "general")
    channels = bob.get_by_role("navigation", name="Channels")
    async with api_as(site.base, "alice") as alice:
        made = await alice.post(
            f"/api/servers/{SERVER}/roles", json={"name": "Raiders", "mentionable": True}
        )
        assert made.status_code == 201, made.text
        role = made.json()["id"]
        sent = await alice.put(
            f"/api/channels/{GAMING}/messages/00000000-0000-4000-8000-00000000c0de",
            json={"content": f"<@&{role}> raid at nine?"},
        )
        assert sent.status_code == 201, sent.text
        assert sent.json()["mention_roles"] == [role]
        member_role = f"/api/servers/{SERVER}/members/{USER_IDS['bob']}/roles/{role}"
        mentioned = channels.get_by_role("link", name="gaming, unread, 1 mention", exact=True)
        unmentioned = channels.get_by_role("link", name="gaming, unread", exact=True)
        await expect(unmentioned).to_be_visible()
        await then_shown(alice.put(member_role), 204, mentioned)
        await then_shown(alice.delete(member_role), 204, unmentioned)
        # Given again, then the role deleted: its mentions go with it.
        await then_shown(alice.put(member_role), 204, mentioned)
        await then_shown(alice.delete(f"/api/servers/{SERVER}/roles/{role}"), 204, unmentioned)


async def test_a_history_hidden_and_shown_again_recounts(site: Site, browsers: Browsers) -> None:
    """Bob joins a server after three messages: unread. History hidden from him, they
    were sent before he joined and count no more; shown again (an event-less change,
    judged by the page from the override), they count again."""
    bob = await browsers.logged_in(site.base, "bob")
    await open_channel(bob, "general")
    rail = bob.get_by_role("navigation", name="Servers")
    async with api_as(site.base, "alice") as alice:
        made = await alice.post("/api/servers", json={"name": "Raid Club"})
        assert made.status_code == 201, made.text
        club = made.json()
        (general,) = [c["id"] for c in club["channels"] if c["name"] == "general"]
        everyone = next(r["id"] for r in club["roles"] if r["is_default"])
        for i in range(3):
            sent = await alice.put(
                f"/api/channels/{general}/messages/00000000-0000-4000-8000-00000000000{i}",
                json={"content": f"before you came, {i}"},
            )
            assert sent.status_code == 201, sent.text
        invite = await alice.post(f"/api/servers/{club['id']}/invites", json={})
        async with api_as(site.base, "bob") as bob_api:
            joined = await bob_api.post(f"/api/invites/{invite.json()['code']}")
            assert joined.is_success, joined.text
        unread = rail.get_by_role("link", name="Raid Club, unread messages", exact=True)
        await expect(unread).to_be_visible()

        deny = {"allow": "0", "deny": str(READ_MESSAGE_HISTORY)}
        override = f"/api/channels/{general}/overrides/role/{everyone}"
        read = rail.get_by_role("link", name="Raid Club", exact=True)
        await then_shown(alice.put(override, json=deny), 200, read)
        await then_shown(alice.delete(override), 200, unread)


async def then_shown(call: Awaitable[httpx.Response], status: int, shown: Locator) -> None:
    """`call` answers `status`, and the page then shows `shown` (once it asked again)."""
    got = await call
    assert got.status_code == status, got.text
    await expect(shown).to_be_visible(timeout=WITHIN_MS)


async def test_a_channel_whose_history_you_may_not_read_shows_what_comes(
    site: Site, browsers: Browsers
) -> None:
    """Without READ_MESSAGE_HISTORY (Discord's "Read Message History" off) the history
    is not an error: the channel says so and shows its messages as they come; given
    back while open, the history loads; taken while open, the channel says so again and
    shows what it showed as it came."""
    async with api_as(site.base, "alice") as alice:
        roles = (await alice.get(f"/api/servers/{SERVER}/roles")).json()
        everyone = next(r["id"] for r in roles if r["is_default"])
        override = f"/api/channels/{GAMING}/overrides/role/{everyone}"
        deny = {"allow": "0", "deny": str(READ_MESSAGE_HISTORY)}
        before = await alice.put(
            f"/api/channels/{GAMING}/messages/00000000-0000-4000-8000-0000000f1e56",
            json={"content": "said before it was hidden"},
        )
        assert before.status_code == 201, before.text
        assert (await alice.put(override, json=deny)).status_code == 200
        bob = await browsers.logged_in(site.base, "bob")
        log = await open_channel(bob, "gaming")
        notice = log.get_by_text("You cannot read the history of #gaming")
        await expect(notice).to_be_visible()
        await expect(log.get_by_text("Could not load messages")).to_have_count(0)
        await expect(log.locator("li.msg")).to_have_count(0)
        sent = await alice.put(
            f"/api/channels/{GAMING}/messages/00000000-0000-4000-8000-0000000f1e57",
            json={"content": "fresh from the raid"},
        )
        assert sent.status_code == 201, sent.text
        await expect(log.locator("li.msg")).to_have_count(1)
        fresh = log.locator("li.msg", has_text="fresh from the raid")
        await expect(fresh).to_be_visible()
        # (what the server refuses without the history is not offered: a reply, a reaction)
        await fresh.hover()
        offered = fresh.get_by_role("toolbar", name="Message actions").get_by_role("button")
        await expect(offered).to_have_count(0)

        await then_shown(alice.delete(override), 200, log.get_by_text("Welcome to #gaming!"))
        await expect(notice).to_have_count(0)
        await expect(log.locator("li.msg")).to_have_count(2)  # (the history before it too)
        await expect(log.get_by_text("said before it was hidden")).to_be_visible()
        await then_shown(alice.put(override, json=deny), 200, notice)
        # (what came live while the page was open stays: it was shown as it came)
        await expect(log.get_by_text("said before it was hidden")).to_have_count(0)
        await expect(log.locator("li.msg")).to_have_count(1)

        # Given back while another channel is open: #gaming is not shown as it was kept.
        await open_channel(bob, "general")
        # (the page asks for its counts again once it took the change in: then it is in)
        asked = bob.expect_request(lambda r: r.url.endswith("/api/users/@me/state"))
        async with asked:
            assert (await alice.delete(override)).status_code == 200
        log = await open_channel(bob, "gaming")
        await expect(log.get_by_text("said before it was hidden")).to_be_visible()
        await expect(notice).to_have_count(0)


async def test_mark_unread_takes_the_read_position_back_and_keeps_it_there(
    site: Site, browsers: Browsers
) -> None:
    """ "Mark unread" on a message (Discord's): bob's read position goes back to just
    before it, the "New" line moves above it, and the channel stays unread while he is
    still in it (a message that comes meanwhile reads nothing again); it shows unread
    once he is elsewhere, and reads as ever when he comes back."""
    bob = await browsers.logged_in(site.base, "bob")
    log = await open_channel(bob, "general")
    channels = bob.get_by_role("navigation", name="Channels")
    async with api_as(site.base, "alice") as alice, api_as(site.base, "bob") as bob_api:
        seqs = {}
        for text in ("one for later", "two for later", "three for later"):
            sent = await alice.post(f"/api/channels/{GENERAL}/messages", json={"content": text})
            assert sent.status_code == 201, sent.text
            seqs[text] = sent.json()["seq"]
        await expect(message(log, "three for later")).to_be_visible()

        async def read_position() -> int:
            got = await bob_api.get(f"/api/channels/{GENERAL}/read-states")
            assert got.status_code == 200, got.text
            return int(got.json()[0]["last_read_seq"])

        # (read as they came: the page acks what is shown)
        await wait_for(read_position, seqs["three for later"])
        await act(message(log, "two for later"), "Mark unread")
        new_line = log.get_by_role("separator", name="New messages")
        above = log.locator("li.new-divider + li.msg", has_text="two for later")
        await expect(new_line).to_be_visible()
        await expect(above).to_be_visible()
        await wait_for(read_position, seqs["two for later"] - 1)
        sent = await alice.post(f"/api/channels/{GENERAL}/messages", json={"content": "meanwhile"})
        assert sent.status_code == 201, sent.text
        await expect(message(log, "meanwhile")).to_be_visible()
        await open_channel(bob, "gaming")
        await expect(
            channels.get_by_role("link", name="general, unread", exact=True)
        ).to_be_visible()
        assert await read_position() == seqs["two for later"] - 1
        await open_channel(bob, "general")
        await expect(channels.get_by_role("link", name="general", exact=True)).to_be_visible()
        await wait_for(read_position, sent.json()["seq"])


async def wait_for(read: Callable[[], Awaitable[int]], want: int) -> None:
    deadline = time.monotonic() + 15
    while (got := await read()) != want:
        assert time.monotonic() < deadline, f"read position {got}, never {want}"
        await asyncio.sleep(0.1)


async def test_mark_unread_far_up_a_long_channel_leaves_it_unread(
    site: Site, browsers: Browsers
) -> None:
    """ "Mark unread" on a message reached by a jump (the page around it holds neither
    the newest messages nor, so, all that became unread): the channel is unread once
    bob is elsewhere, as the server counts it. Was: the page could not count them from
    what it held, left the count at 0 and never asked the server (its own ack's echo
    named the position it had already set), so the channel showed read."""
    bob = await browsers.logged_in(site.base, "bob")
    await open_channel(bob, "general")
    async with api_as(site.base, "charlie") as charlie, api_as(site.base, "bob") as bob_api:
        first_id = ""
        for i in range(1, 81):
            said = await charlie.post(
                f"/api/channels/{GAMING}/messages", json={"content": f"far history {i:03}"}
            )
            assert said.status_code == 201, said.text
            first_id = first_id or said.json()["id"]
        first_seq = (await charlie.get(f"/api/channels/{GAMING}/messages/{first_id}")).json()["seq"]
        reply = {"content": "remember the very first?", "reply_to_id": first_id}
        newest = await charlie.post(f"/api/channels/{GAMING}/messages", json=reply)
        assert newest.status_code == 201, newest.text
        log = await open_channel(bob, "gaming")
        await expect(message(log, "remember the very first?")).to_be_visible()

        async def read_position() -> int:
            got = await bob_api.get(f"/api/channels/{GAMING}/read-states")
            assert got.status_code == 200, got.text
            return int(got.json()[0]["last_read_seq"]) if got.json() else 0

        await wait_for(read_position, newest.json()["seq"])  # (read as shown)
        await (
            message(log, "remember the very first?")
            .get_by_role("button", name="Replying to Charlie: far history 001")
            .click()
        )
        await expect_focused(message(log, "far history 001"))
        await expect(message(log, "remember the very first?")).to_have_count(0)
        await act(message(log, "far history 001"), "Mark unread")
        await wait_for(read_position, first_seq - 1)
        await open_channel(bob, "general")
        channels = bob.get_by_role("navigation", name="Channels")
        await expect(
            channels.get_by_role("link", name="gaming, unread", exact=True)
        ).to_be_visible()
