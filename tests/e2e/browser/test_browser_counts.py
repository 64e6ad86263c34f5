"""Unread and mention counts that no event moves: a role of yours given or taken (its
mentions count for whoever holds it), a channel's history hidden from you or shown
again (then only what was sent since you joined counts, or all of it). The page asks
the server to count them again (ui/app.js, countServersAgain)."""

from __future__ import annotations

from playwright.async_api import expect

from tests.e2e.browser.client import GAMING, SERVER, USER_IDS, api_as, open_channel
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
        await expect(
            channels.get_by_role("link", name="gaming, unread", exact=True)
        ).to_be_visible()

        given = await alice.put(f"/api/servers/{SERVER}/members/{USER_IDS['bob']}/roles/{role}")
        assert given.status_code == 204, given.text
        mentioned = channels.get_by_role("link", name="gaming, unread, 1 mention", exact=True)
        await expect(mentioned).to_be_visible(timeout=WITHIN_MS)

        taken = await alice.delete(f"/api/servers/{SERVER}/members/{USER_IDS['bob']}/roles/{role}")
        assert taken.status_code == 204, taken.text
        unmentioned = channels.get_by_role("link", name="gaming, unread", exact=True)
        await expect(unmentioned).to_be_visible(timeout=WITHIN_MS)

        # Given again, then the role deleted: its mentions go with it.
        given = await alice.put(f"/api/servers/{SERVER}/members/{USER_IDS['bob']}/roles/{role}")
        assert given.status_code == 204, given.text
        await expect(mentioned).to_be_visible(timeout=WITHIN_MS)
        gone = await alice.delete(f"/api/servers/{SERVER}/roles/{role}")
        assert gone.status_code == 204, gone.text
        await expect(unmentioned).to_be_visible(timeout=WITHIN_MS)


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
        hidden = await alice.put(f"/api/channels/{general}/overrides/role/{everyone}", json=deny)
        assert hidden.status_code == 200, hidden.text
        read = rail.get_by_role("link", name="Raid Club", exact=True)
        await expect(read).to_be_visible(timeout=WITHIN_MS)

        shown = await alice.delete(f"/api/channels/{general}/overrides/role/{everyone}")
        assert shown.status_code == 200, shown.text
        await expect(unread).to_be_visible(timeout=WITHIN_MS)
