"""What the client shows as relations between people change under it: a presence that
nothing keeps current any more (a group left, a server left) shown offline, not as it
was last told; one a server still carries kept through an unfriending, through
leaving another server whose members were never listed, and through a reconnection
(whose resumed `ready` carries only friends' and groups' presences); a friend request
to someone who declined it lately refused in plain words; mention badges counted again
when a block or an unblock changes what counts; a former member's lingering denies
lifted from the override editor."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import asyncpg
import httpx
from playwright.async_api import Locator, Page, Request, Route, WebSocketRoute, expect

from tests.e2e.browser.client import GAMING, GENERAL, SERVER, api_as, message, open_channel
from tests.e2e.browser.conftest import Browsers, Site, log_in

IDS = {
    name: f"00000000-0000-0000-0000-{n:012d}"
    for n, name in enumerate(("alice", "bob", "charlie", "diana", "eve"), 1)
}


def dm_status(page: Page, name: str) -> Locator:
    """The status dot of the direct conversation with `name`, in the home sidebar."""
    nav = page.get_by_role("navigation", name="Channels")
    return nav.locator("a.channel.dm", has_text=name).get_by_role("img")


async def ok(response: httpx.Response) -> None:
    assert response.status_code < 300, response.text


async def test_a_presence_no_group_or_server_carries_any_more_is_not_kept(
    site: Site, browsers: Browsers
) -> None:
    """Charlie shares no server with bob, and no friendship: only alice's group told bob
    his presence. Once he leaves it, nothing tells bob of his changes (a direct
    conversation carries none), so bob's page shows him offline from then on, not
    online for ever after he is gone."""
    async with (
        api_as(site.base, "alice") as alice,
        api_as(site.base, "bob") as bob,
        api_as(site.base, "charlie") as charlie,
    ):
        await ok(await charlie.delete(f"/api/servers/{SERVER}/members/@me"))
        group = {"kind": "group", "participant_ids": [IDS["bob"], IDS["charlie"]]}
        made = await alice.post("/api/conversations", json=group)
        await ok(made)
        await ok(
            await bob.post("/api/conversations", json={"kind": "direct", "user_id": IDS["charlie"]})
        )
        bob_page = await browsers.logged_in(site.base, "bob")
        charlie_page = await browsers.logged_in(site.base, "charlie")
        await expect(dm_status(bob_page, "Charlie")).to_have_attribute("aria-label", "online")
        await ok(await charlie.delete(f"/api/conversations/{made.json()['id']}/participants/@me"))
        await charlie_page.context.close()  # (he goes offline: nobody tells bob now)
        await expect(dm_status(bob_page, "Charlie")).to_have_attribute("aria-label", "offline")


async def test_unfriending_a_member_of_a_shown_server_keeps_their_presence(
    site: Site, browsers: Browsers
) -> None:
    """Charlie is in Gaming Squad with alice: the server goes on telling her of his
    changes after their friendship ends, so its member list still shows him online."""
    alice_page = await browsers.logged_in(site.base, "alice")
    await browsers.logged_in(site.base, "charlie")
    log = await open_channel(alice_page, "general")
    members = alice_page.get_by_role("complementary", name="Details")
    await expect(members.get_by_role("button", name="Charlie (online)")).to_be_visible()
    async with api_as(site.base, "alice") as alice, api_as(site.base, "bob") as bob:
        await ok(await alice.delete(f"/api/users/@me/friends/{IDS['charlie']}"))
        # (a message after it: once it is shown, the friend.removed came before it)
        await ok(await bob.post(f"/api/channels/{GENERAL}/messages", json={"content": "after"}))
    await expect(message(log, "after")).to_be_visible()
    await expect(members.get_by_role("button", name="Charlie (online)")).to_be_visible()


async def test_leaving_a_server_keeps_the_presences_another_server_still_carries(
    site: Site, browsers: Browsers
) -> None:
    """Bob is in Gaming Squad and in Diana's Den, and has listed the members of neither;
    he is friends with neither Diana nor Charlie, so only those servers tell him of
    their changes (their direct conversations carry none). He leaves the Den: Charlie,
    who left Gaming Squad, is in nothing bob shares now and shows offline, while Diana,
    still in Gaming Squad with him, stays online (she showed offline until her next
    change: every presence no loaded member list held was dropped)."""
    async with (
        api_as(site.base, "bob") as bob,
        api_as(site.base, "charlie") as charlie,
        api_as(site.base, "diana") as diana,
    ):
        await ok(await charlie.delete(f"/api/servers/{SERVER}/members/@me"))
        den = await diana.post("/api/servers", json={"name": "Diana's Den"})
        await ok(den)
        invite = await diana.post(f"/api/servers/{den.json()['id']}/invites", json={})
        await ok(invite)
        for joining in (bob, charlie):
            await ok(await joining.post(f"/api/invites/{invite.json()['code']}"))
        for other in ("charlie", "diana"):
            opened = {"kind": "direct", "user_id": IDS[other]}
            await ok(await bob.post("/api/conversations", json=opened))
        bob_page = await browsers.logged_in(site.base, "bob")
        # (his ready is in: what comes online after it is told to him live)
        await expect(dm_status(bob_page, "Diana")).to_have_attribute("aria-label", "offline")
        for other in ("charlie", "diana"):
            await browsers.logged_in(site.base, other)
        await expect(dm_status(bob_page, "Charlie")).to_have_attribute("aria-label", "online")
        await expect(dm_status(bob_page, "Diana")).to_have_attribute("aria-label", "online")
        await ok(await bob.delete(f"/api/servers/{den.json()['id']}/members/@me"))
        rail = bob_page.get_by_role("navigation", name="Servers")
        await expect(rail.get_by_role("link", name="Diana's Den")).to_have_count(0)
        # (decided together: once Charlie shows offline, Diana's presence was judged too)
        await expect(dm_status(bob_page, "Charlie")).to_have_attribute("aria-label", "offline")
        await expect(dm_status(bob_page, "Diana")).to_have_attribute("aria-label", "online")


async def test_a_reconnection_keeps_the_presences_a_server_still_carries(
    site: Site, browsers: Browsers
) -> None:
    """Bob shares only Gaming Squad with Charlie and Diana (friends with neither, no
    group together), and has not listed its members: the server told him live that they
    came online. His connection drops; while it is down Charlie goes offline; it
    resumes, and the resumed `ready` carries friends' and groups' presences only. Diana,
    still online, stays online (she showed offline until her next change: the resumed
    ready replaced every presence), and Charlie, whose going offline nobody told bob,
    shows offline: the server was asked, once, which of them it would show online."""
    async with (
        api_as(site.base, "alice") as alice,
        api_as(site.base, "bob") as bob,
    ):
        for other in ("charlie", "diana"):
            opened = {"kind": "direct", "user_id": IDS[other]}
            await ok(await bob.post("/api/conversations", json=opened))

        bob_page = await browsers.page(site.base)
        up = asyncio.Event()  # (cleared: a reconnection waits)
        up.set()
        routes: list[tuple[WebSocketRoute, WebSocketRoute]] = []
        frames: list[dict[str, Any]] = []

        async def through(ws: WebSocketRoute) -> None:
            await up.wait()
            server = ws.connect_to_server()
            routes.append((ws, server))

            def down(text: str | bytes) -> None:
                frames.append(json.loads(text))
                ws.send(text)

            server.on_message(down)

        await bob_page.route_web_socket("**/api/gateway", through)
        await log_in(bob_page, "bob")
        # (his ready is in: what comes online after it is told to him live)
        await expect(dm_status(bob_page, "Diana")).to_have_attribute("aria-label", "offline")
        charlie_page = await browsers.logged_in(site.base, "charlie")
        await browsers.logged_in(site.base, "diana")
        await expect(dm_status(bob_page, "Charlie")).to_have_attribute("aria-label", "online")
        await expect(dm_status(bob_page, "Diana")).to_have_attribute("aria-label", "online")

        asked: list[Request] = []
        bob_page.on(
            "request",
            lambda r: asked.append(r) if "/presences" in r.url else None,
        )
        up.clear()
        page_side, server_side = routes[-1]
        await server_side.close(code=1001, reason="gone")
        await page_side.close(code=1001, reason="gone")
        await charlie_page.context.close()
        deadline = time.monotonic() + 15
        while True:  # (Charlie is offline before bob is back: nobody told bob)
            online = (await alice.get(f"/api/servers/{SERVER}/presences")).json()
            if IDS["charlie"] not in {p["user_id"] for p in online}:
                break
            assert time.monotonic() < deadline, "Charlie never went offline"
            await asyncio.sleep(0.1)
        up.set()

        def resumed() -> bool:
            return any(f.get("t") == "ready" and f["d"].get("resumed") for f in frames)

        deadline = time.monotonic() + 15
        while not resumed():
            assert time.monotonic() < deadline, "bob's page never resumed"
            await asyncio.sleep(0.1)
        # (decided together: once Charlie shows offline, Diana's presence was judged too)
        await expect(dm_status(bob_page, "Charlie")).to_have_attribute("aria-label", "offline")
        await expect(dm_status(bob_page, "Diana")).to_have_attribute("aria-label", "online")
        # (one request, for the two whose presence no loaded list vouches for)
        assert [r.url.split("/api/")[1] for r in asked] == [
            f"users/@me/presences?user_ids={','.join(sorted((IDS['charlie'], IDS['diana'])))}"
        ], [r.url for r in asked]


async def test_a_request_to_someone_who_declined_lately_is_refused_in_plain_words(
    site: Site, browsers: Browsers
) -> None:
    async with api_as(site.base, "eve") as eve, api_as(site.base, "diana") as diana:
        sent = await eve.post("/api/users/@me/friend-requests", json={"username": "diana"})
        await ok(sent)
        await ok(await diana.post(f"/api/users/@me/friend-requests/{sent.json()['id']}/decline"))
    page = await browsers.logged_in(site.base, "eve")
    await page.get_by_role("tab", name="Add friend").click()
    await page.get_by_label("Add a friend by their username").fill("diana")
    await page.get_by_role("button", name="Send request").click()
    await expect(page.locator(".toast")).to_have_text(
        "diana declined your last friend request. You can ask again in 24 hours."
    )


async def test_a_block_and_an_unblock_count_the_mention_badges_again(
    site: Site, browsers: Browsers
) -> None:
    """A mention by someone you block counts for nothing (as the server counts): the
    badge goes at the block and comes back at the unblock, without a reload."""
    page = await browsers.logged_in(site.base, "alice")
    await open_channel(page, "general")
    channels = page.get_by_role("navigation", name="Channels")
    async with api_as(site.base, "eve") as eve, api_as(site.base, "alice") as alice:
        said = {"content": f"look <@{IDS['alice']}>"}
        await ok(await eve.post(f"/api/channels/{GAMING}/messages", json=said))
        await expect(channels.get_by_role("link", name="gaming, unread, 1 mention")).to_be_visible()
        await ok(await alice.put(f"/api/users/@me/blocks/{IDS['eve']}"))
        await expect(
            channels.get_by_role("link", name="gaming, unread", exact=True)
        ).to_be_visible()
        await ok(await alice.delete(f"/api/users/@me/blocks/{IDS['eve']}"))
        await expect(channels.get_by_role("link", name="gaming, unread, 1 mention")).to_be_visible()


async def test_a_former_members_lingering_denies_are_lifted_as_a_whole(
    site: Site, browsers: Browsers
) -> None:
    """The server sets no override for someone who is not a member (404
    MEMBER_NOT_FOUND): lifting one of their denies failed with "no such member". The
    editor shows what they are denied and lifts it all."""
    async with api_as(site.base, "alice") as alice, api_as(site.base, "eve") as eve:
        deny = {"allow": "0", "deny": "3"}  # (VIEW_CHANNEL, SEND_MESSAGES)
        await ok(
            await alice.put(f"/api/channels/{GAMING}/overrides/member/{IDS['eve']}", json=deny)
        )
        await ok(await eve.delete(f"/api/servers/{SERVER}/members/@me"))
        page = await browsers.logged_in(site.base, "alice")
        await open_channel(page, "general")
        await page.get_by_role("button", name="Server settings").click()
        settings = page.get_by_role("dialog", name="Gaming Squad settings")
        await settings.get_by_role("tab", name="Channels").click()
        await settings.get_by_role("button", name="# gaming").click()
        target = settings.get_by_label("For role or member")
        await target.select_option(label="@Eve (not a member now)")
        await expect(settings.get_by_text("Eve is not a member now.")).to_contain_text(
            "View channel, Send messages"
        )
        await settings.get_by_role("button", name="Lift their denies").click()
        await expect(target.locator("option", has_text="not a member now")).to_have_count(0)
        channel = (await alice.get(f"/api/channels/{GAMING}")).json()
        assert [o for o in channel["overrides"] if o["kind"] == "member"] == []


async def test_a_custom_status_shows_in_the_member_list_and_the_friends_page(
    site: Site, browsers: Browsers
) -> None:
    """The custom status comes with the presence: shown under the name where the
    presence is (as Discord shows it), gone while its owner is invisible."""
    await browsers.logged_in(site.base, "alice")  # (online: else no status shows)
    bob_page = await browsers.logged_in(site.base, "bob")
    friends = bob_page.get_by_role("list", name="Friends")
    await expect(friends.get_by_text("@alice · online")).to_be_visible()
    async with api_as(site.base, "alice") as alice:
        await ok(
            await alice.put("/api/users/@me/presence", json={"status_text": "Raiding tonight"})
        )
        await expect(friends.get_by_text("Raiding tonight")).to_be_visible()
        await open_channel(bob_page, "general")
        members = bob_page.get_by_role("complementary", name="Details")
        shown = members.get_by_role("button", name="Alice (online) Raiding tonight")
        await expect(shown).to_be_visible()
        await ok(await alice.put("/api/users/@me/presence", json={"status": "invisible"}))
        await expect(
            members.get_by_role("button", name="Alice (offline)", exact=True)
        ).to_be_visible()
        await ok(await alice.put("/api/users/@me/presence", json={"status": "online"}))
        await expect(shown).to_be_visible()


async def test_a_member_who_joins_while_online_shows_online_at_once(
    site: Site, browsers: Browsers
) -> None:
    """Someone alice shares nothing with joins Gaming Squad by invite while connected:
    nothing changed in their presence, so no presence.updated tells alice's open member
    list that they are online. It shows them online at once all the same, as Discord's
    does (was: offline until their next change of status)."""
    await a_newcomer_shows_online(site, browsers, "newcomer", failing=0)


async def test_a_newcomers_presence_is_asked_again_after_a_failed_ask(
    site: Site, browsers: Browsers
) -> None:
    """Was: the one request for a newcomer's presence failing (two 503s here) left them
    shown offline until their next change of status; the page asks again, after a wait
    that doubles with each failure."""
    await a_newcomer_shows_online(site, browsers, "latecomer", failing=2)


async def presence_written(site: Site, user_id: str) -> None:
    """Until the server has written that the user has a connection (a task of its
    own does, soon after the connection opens)."""
    conn = await asyncpg.connect(site.db_url)
    try:
        for _ in range(100):
            held = "SELECT EXISTS (SELECT 1 FROM presence_connections WHERE user_id = $1)"
            if await conn.fetchval(held, uuid.UUID(user_id)):
                return
            await asyncio.sleep(0.1)
    finally:
        await conn.close()
    raise AssertionError("the presence was not written within 10 s")


async def a_newcomer_shows_online(site: Site, browsers: Browsers, name: str, failing: int) -> None:
    """`name` registers, logs in and joins alice's server while her member list is
    open, the first `failing` presence requests of her page answered 503."""
    async with api_as(site.base, "alice") as alice:
        invite = await alice.post(f"/api/servers/{SERVER}/invites", json={})
        await ok(invite)
    async with httpx.AsyncClient(base_url=site.base, timeout=10) as newcomer:
        account = {"username": name, "email": f"{name}@example.test"}
        made = await newcomer.post(
            "/api/auth/register",
            json={**account, "password": "a long new password", "display_name": name.title()},
        )
        await ok(made)
        newcomer.headers["Authorization"] = f"Bearer {made.json()['access_token']}"
        alice_page = await browsers.logged_in(site.base, "alice")
        await open_channel(alice_page, "general")
        members = alice_page.get_by_role("complementary", name="Details")
        await expect(members.get_by_role("button", name="Bob (offline)")).to_be_visible()
        refused: list[str] = []

        async def fail_first(route: Route) -> None:
            if len(refused) < failing:
                refused.append(route.request.url)
                body = {"code": "DATABASE_UNAVAILABLE", "message": "try again"}
                await route.fulfill(status=503, json=body)
            else:
                await route.continue_()

        await alice_page.route("**/api/users/@me/presences?*", fail_first)
        # Online before joining (its stream open, its presence written), so that no
        # presence.updated can reach alice's page after the join: only her page's own
        # asking shows it.
        async with newcomer.stream("GET", "/api/events") as stream:
            assert stream.status_code == 200
            await presence_written(site, made.json()["user"]["id"])
            await ok(await newcomer.post(f"/api/invites/{invite.json()['code']}"))
            online = members.get_by_role("button", name=f"{name.title()} (online)")
            await expect(online).to_be_visible(timeout=20_000)
        assert len(refused) == failing
