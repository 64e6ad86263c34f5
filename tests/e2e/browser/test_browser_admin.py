"""A community admin setting a server up and running it in the browser (a QA pass, each
test failing before its fix): the settings dialog goes with the server, offers only what
its user may do, keeps the keyboard's place, and says what the audit log is about;
slowmode, ownership and an invite's limits are set there; a member is told why the
composer is shut or slow."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from playwright.async_api import Locator, Page, expect

from tests.e2e.browser.client import (
    GENERAL,
    SERVER,
    USER_IDS,
    api_as,
    expect_focused,
    message,
    open_channel,
    open_settings,
)
from tests.e2e.browser.conftest import Browsers, Site

CHARLIE = "00000000-0000-0000-0000-000000000003"
DIANA = "00000000-0000-0000-0000-000000000004"
EVE = "00000000-0000-0000-0000-000000000005"
ROLES = {
    "Member": "00000000-0000-0000-0000-000000000201",
    "Moderator": "00000000-0000-0000-0000-000000000202",
    "Admin": "00000000-0000-0000-0000-000000000203",
}


async def focus_in(dialog: Locator) -> bool:
    return await dialog.evaluate("d => d.contains(document.activeElement)")


async def bobs_settings(site: Site, browsers: Browsers) -> tuple[Page, Locator]:
    """Bob, a Moderator (kick, timeout, the audit log; not ban, not roles), in the
    Members tab of the settings."""
    bob = await browsers.logged_in(site.base, "bob")
    settings = await open_settings(bob)
    await settings.get_by_role("tab", name="Members").click()
    await expect(settings.get_by_role("listitem").filter(has_text="@charlie")).to_be_visible()
    return bob, settings


async def test_the_settings_close_with_the_server_or_the_right_to_them(
    site: Site, browsers: Browsers
) -> None:
    """Was: a server deleted from its settings left them open over the friends page (every
    tab then answered 404); so did a kick, or a role taken away, for a moderator who had
    them open."""
    alice = await browsers.logged_in(site.base, "alice")
    await alice.get_by_role("button", name="Add a server").click()
    adding = alice.get_by_role("dialog", name="Add a server")
    await adding.get_by_label("Server name").fill("Short lived")
    await adding.get_by_role("button", name="Create").click()
    await expect(alice.get_by_role("heading", level=1, name="general", exact=True)).to_be_visible()
    await alice.get_by_role("button", name="Server settings").click()
    settings = alice.get_by_role("dialog", name="Short lived settings")
    await settings.get_by_role("button", name="Delete server").click()
    await (
        alice.get_by_role("dialog", name="Delete server")
        .get_by_role("button", name="Delete")
        .click()
    )
    await expect(alice.get_by_text("Short lived was deleted.")).to_be_visible()
    await expect(settings).to_have_count(0)

    bob, settings = await bobs_settings(site, browsers)
    async with api_as(site.base, "alice") as api:
        path = f"/api/servers/{SERVER}/members/{USER_IDS['bob']}/roles/{ROLES['Moderator']}"
        taken = await api.delete(path)
        assert taken.status_code == 204, taken.text
        await expect(settings).to_have_count(0)
        given = await api.put(path)
        assert given.status_code == 204, given.text
        settings = await open_settings(bob)
        kicked = await api.delete(f"/api/servers/{SERVER}/members/{USER_IDS['bob']}")
        assert kicked.status_code == 204, kicked.text
    await expect(bob.get_by_text("You were kicked from Gaming Squad.")).to_be_visible()
    await expect(settings).to_have_count(0)


async def test_the_members_tab_offers_only_what_you_may_do(site: Site, browsers: Browsers) -> None:
    """Was: a moderator saw Ban on every member, Kick, Ban and Timeout on the owner, and
    every role as a toggle, each answered by a refusal in the API's words ("you need
    BAN_MEMBERS in this server", "nobody can do that to the server's owner")."""
    _, settings = await bobs_settings(site, browsers)
    alice = settings.get_by_role("listitem").filter(has_text="@alice")
    charlie = settings.get_by_role("listitem").filter(has_text="@charlie")
    await expect(charlie.get_by_role("button", name="Kick")).to_be_visible()
    await expect(charlie.get_by_role("button", name="Timeout 10 min")).to_be_visible()
    await expect(settings.get_by_role("button", name="Ban")).to_have_count(0)
    for action in ("Kick", "Timeout 10 min"):
        await expect(alice.get_by_role("button", name=action)).to_have_count(0)
    # He may not give or take roles: they show which he has, and cannot be pressed.
    member = charlie.get_by_role("button", name="Member role for Charlie")
    await expect(member).to_have_attribute("aria-pressed", "true")
    await expect(member).to_be_disabled()
    # Charlie made an Admin (above Bob's Moderator) is no longer his to act on, live.
    async with api_as(site.base, "alice") as api:
        path = f"/api/servers/{SERVER}/members/{CHARLIE}/roles/{ROLES['Admin']}"
        assert (await api.put(path)).status_code == 204
    await expect(charlie.get_by_role("button", name="Kick")).to_have_count(0)
    await expect(charlie.get_by_role("button", name="Timeout 10 min")).to_have_count(0)


async def test_the_settings_tabs_move_with_the_arrow_keys(site: Site, browsers: Browsers) -> None:
    """Was: the tabs (role tab, in a vertical tablist) ignored the arrow keys, Home and
    End, and each was a stop of its own for Tab."""
    alice = await browsers.logged_in(site.base, "alice")
    settings = await open_settings(alice)
    overview = settings.get_by_role("tab", name="Overview")
    await overview.focus()
    await alice.keyboard.press("ArrowDown")
    channels = settings.get_by_role("tab", name="Channels")
    await expect_focused(channels)
    await expect(channels).to_have_attribute("aria-selected", "true")
    await expect(settings.get_by_role("heading", name="Channels")).to_be_visible()
    await alice.keyboard.press("End")
    await expect_focused(settings.get_by_role("tab", name="Audit log"))
    await alice.keyboard.press("ArrowDown")  # (round to the first)
    await expect_focused(overview)
    await alice.keyboard.press("ArrowUp")
    await expect_focused(settings.get_by_role("tab", name="Audit log"))
    # One stop for Tab: from the selected tab, Tab leaves the list.
    await alice.keyboard.press("Tab")
    assert await settings.get_by_role("tab").evaluate_all(
        "tabs => !tabs.includes(document.activeElement)"
    )


async def test_creating_and_deleting_in_the_settings_keeps_the_focus_there(
    site: Site, browsers: Browsers
) -> None:
    """Was: a channel created with Enter, a channel deleted, a role created each left the
    focus on the page's body, under the modal: the next Tab started over."""
    alice = await browsers.logged_in(site.base, "alice")
    settings = await open_settings(alice)
    await settings.get_by_role("tab", name="Channels").click()
    name = settings.get_by_label("Name", exact=True)
    await name.fill("lobby")
    await name.press("Enter")
    await expect(settings.get_by_role("button", name="Delete lobby")).to_be_visible()
    # Ready for the next one: the new form's (empty) name.
    await expect(settings.get_by_label("Name", exact=True)).to_have_value("")
    await expect_focused(settings.get_by_label("Name", exact=True))

    await settings.get_by_role("button", name="Delete lobby").focus()
    await alice.keyboard.press("Enter")
    confirm = alice.get_by_role("dialog", name="Delete channel")
    await confirm.get_by_role("button", name="Delete").focus()
    await alice.keyboard.press("Enter")
    await expect(settings.get_by_role("button", name="Delete lobby")).to_have_count(0)
    await expect(confirm).to_have_count(0)
    await alice.wait_for_timeout(300)
    assert await focus_in(settings)

    await settings.get_by_role("tab", name="Roles").click()
    await settings.get_by_role("button", name="Create role").focus()
    await alice.keyboard.press("Enter")
    await expect(settings.get_by_role("heading", name="Edit new role")).to_be_visible()
    await expect_focused(settings.get_by_label("Name", exact=True))


async def test_a_role_toggled_from_the_keyboard_keeps_the_focus(
    site: Site, browsers: Browsers
) -> None:
    """Was: the Members tab was drawn anew (through "Loading…") at every event of the
    server, its own role toggles' too, so the toggle pressed with Enter lost the focus
    and a second Enter did nothing."""
    alice = await browsers.logged_in(site.base, "alice")
    settings = await open_settings(alice)
    await settings.get_by_role("tab", name="Members").click()
    toggle = settings.get_by_role("button", name="Moderator role for Charlie")
    await toggle.focus()
    await alice.keyboard.press("Enter")
    await expect(toggle).to_have_attribute("aria-pressed", "true")
    await expect_focused(toggle)
    await alice.keyboard.press("Enter")
    await expect(toggle).to_have_attribute("aria-pressed", "false")
    await expect_focused(toggle)


async def test_the_audit_log_says_whom_each_entry_is_about(site: Site, browsers: Browsers) -> None:
    """Was: each entry named the moderator and the action alone ("Alice member.kicked"):
    not whom they kicked, which role they made, which channel went."""
    async with api_as(site.base, "alice") as api:
        base = f"/api/servers/{SERVER}"
        assert (await api.delete(f"{base}/members/{CHARLIE}")).status_code == 204
        assert (await api.put(f"{base}/bans/{DIANA}", json={})).status_code == 204
        assert (await api.post(f"{base}/roles", json={"name": "Raiders"})).status_code == 201
        given = await api.put(f"{base}/members/{EVE}/roles/{ROLES['Moderator']}")
        assert given.status_code == 204
        gaming = "00000000-0000-0000-0000-000000000103"
        assert (await api.delete(f"/api/channels/{gaming}")).status_code == 204
    alice = await browsers.logged_in(site.base, "alice")
    settings = await open_settings(alice)
    await settings.get_by_role("tab", name="Audit log").click()
    entries = settings.locator("ol.audit > li")
    for action, about in (
        ("member.kicked", "Charlie"),
        ("member.banned", "Diana"),
        ("role.created", "Raiders"),
        ("member.role_added", "Eve"),
        ("member.role_added", "Moderator"),
        ("channel.deleted", "gaming"),
    ):
        entry = entries.filter(has=alice.get_by_text(action, exact=True))
        await expect(entry).to_contain_text(about)


async def test_the_audit_log_says_whose_message_a_moderator_deleted_and_where(
    site: Site, browsers: Browsers
) -> None:
    """Was: a moderator's deletion showed as "Alice message.deleted" and nothing else:
    not whose message it was nor in which channel, which the entry's changes carry."""
    async with api_as(site.base, "eve") as api:
        said = await api.post(f"/api/channels/{GENERAL}/messages", json={"content": "spam"})
        assert said.status_code == 201
    async with api_as(site.base, "alice") as api:
        gone = await api.delete(f"/api/channels/{GENERAL}/messages/{said.json()['id']}")
        assert gone.status_code == 204
    alice = await browsers.logged_in(site.base, "alice")
    settings = await open_settings(alice)
    await settings.get_by_role("tab", name="Audit log").click()
    entry = settings.locator("ol.audit > li").filter(
        has=alice.get_by_text("message.deleted", exact=True)
    )
    await expect(entry).to_contain_text("Eve · #general")


async def test_a_moderator_takes_away_someones_reaction(site: Site, browsers: Browsers) -> None:
    """Was: only a reaction's giver could take it back (the API had no route for anyone
    else's, and the client no button): a raider's reaction stayed until the message went."""
    async with api_as(site.base, "eve") as eve:
        sent = await eve.post(f"/api/channels/{GENERAL}/messages", json={"content": "rate me"})
        mid = sent.json()["id"]
        for emoji in ("%F0%9F%91%8E", "%F0%9F%91%8D"):  # 👎 👍
            assert (
                await eve.put(f"/api/channels/{GENERAL}/messages/{mid}/reactions/{emoji}/@me")
            ).status_code == 204
    alice = await browsers.logged_in(site.base, "alice")
    log = await open_channel(alice, "general")
    row = message(log, "rate me")
    await row.hover()
    await row.get_by_role("button", name="Remove reactions").click()
    shown = alice.get_by_role("dialog", name="Reactions")
    await shown.get_by_role("button", name="Remove Eve's 👎").click()
    await expect(shown.get_by_role("button", name="Remove Eve's 👎")).to_have_count(0)
    await expect(row.get_by_role("button", name=re.compile("^👎"))).to_have_count(0)
    await expect(row.get_by_role("button", name=re.compile("^👍 1 reaction"))).to_be_visible()
    async with api_as(site.base, "eve") as eve:
        held = (await eve.get(f"/api/channels/{GENERAL}/messages/{mid}")).json()
    assert [r["emoji"] for r in held["reactions"]] == ["👍"]


async def test_the_audit_log_keeps_its_pages_through_an_event(
    site: Site, browsers: Browsers
) -> None:
    """Was: any event of the server (a channel made, someone joining) loaded the audit
    log again from its newest page: the older pages read with "Load more" went."""
    async with api_as(site.base, "alice") as api:
        for i in range(105):
            got = await api.patch(f"/api/servers/{SERVER}", json={"description": f"take {i}"})
            assert got.status_code == 200, got.text
        alice = await browsers.logged_in(site.base, "alice")
        settings = await open_settings(alice)
        await settings.get_by_role("tab", name="Audit log").click()
        entries = settings.locator("ol.audit > li")
        await expect(entries).to_have_count(100)
        await settings.get_by_role("button", name="Load more").click()
        await expect(entries).to_have_count(105)
        made = await api.post(f"/api/servers/{SERVER}/channels", json={"name": "meanwhile"})
        assert made.status_code == 201, made.text
    await expect(alice.locator("nav.sidebar a", has_text="meanwhile")).to_be_attached()
    await alice.wait_for_timeout(500)
    await expect(entries).to_have_count(105)


async def test_a_timed_out_member_is_told_why_over_a_draft(site: Site, browsers: Browsers) -> None:
    """Was: the timeout was said only by the box's placeholder, which a draft hides: the
    member saw their text greyed out and Send still on offer, and no reason."""
    charlie = await browsers.logged_in(site.base, "charlie")
    await open_channel(charlie, "general")
    box = charlie.get_by_role("textbox", name="Message", exact=True)
    await box.fill("half a thought")
    until = datetime.now(UTC) + timedelta(minutes=10)
    async with api_as(site.base, "alice") as api:
        got = await api.patch(
            f"/api/servers/{SERVER}/members/{CHARLIE}", json={"timed_out_until": until.isoformat()}
        )
        assert got.status_code == 200, got.text
    await expect(box).to_be_disabled()
    await expect(box).to_have_value("half a thought")
    note = charlie.get_by_text(re.compile("^You are timed out until"))
    await expect(note).to_be_visible()
    await expect(charlie.get_by_role("button", name="Send")).to_be_disabled()
    async with api_as(site.base, "alice") as api:
        got = await api.patch(
            f"/api/servers/{SERVER}/members/{CHARLIE}", json={"timed_out_until": None}
        )
        assert got.status_code == 200, got.text
    await expect(note).to_be_hidden()
    await expect(box).to_be_enabled()
    await expect(box).to_have_value("half a thought")
    await expect(charlie.get_by_role("button", name="Send")).to_be_enabled()


async def test_slowmode_is_set_in_the_settings_and_told_to_members(
    site: Site, browsers: Browsers
) -> None:
    """Was: no setting for it (the API's rate_limit_per_user), and a member's second
    message hung greyed out with no word of why until the slowmode let it go."""
    charlie = await browsers.logged_in(site.base, "charlie")
    await open_channel(charlie, "general")
    alice = await browsers.logged_in(site.base, "alice")
    settings = await open_settings(alice)
    await settings.get_by_role("tab", name="Channels").click()
    await settings.get_by_role("button", name="# general").click()
    await settings.get_by_label("Slowmode").select_option(label="30 seconds")
    await settings.get_by_role("button", name="Save", exact=True).click()
    await expect(alice.get_by_text("Saved", exact=True)).to_be_visible()
    async with api_as(site.base, "alice") as api:
        channel = (await api.get(f"/api/channels/{GENERAL}")).json()
    assert channel["rate_limit_per_user"] == 30
    await expect(
        charlie.get_by_text("Slowmode is on: one message every 30 seconds.")
    ).to_be_visible()
    # The owner is not held by it, and is not told it.
    await expect(alice.get_by_text("Slowmode is on")).to_have_count(0)


async def test_the_owner_hands_the_server_over(site: Site, browsers: Browsers) -> None:
    """Was: no way to transfer a server in the client (the API's POST .../transfer), while
    deleting your account said to transfer the server you own first."""
    bob = await browsers.logged_in(site.base, "bob")
    await open_channel(bob, "general")
    await expect(bob.get_by_role("button", name="Leave server")).to_be_visible()
    alice = await browsers.logged_in(site.base, "alice")
    settings = await open_settings(alice)
    await settings.get_by_label("New owner").select_option(label="Bob (@bob)")
    await settings.get_by_role("button", name="Transfer ownership").click()
    confirm = alice.get_by_role("dialog", name="Transfer ownership")
    await expect(confirm).to_contain_text("Bob")
    await confirm.get_by_role("button", name="Transfer").click()
    await expect(bob.get_by_role("button", name="Leave server")).to_have_count(0)
    await expect(settings.get_by_role("button", name="Delete server")).to_have_count(0)
    await expect(alice.get_by_role("button", name="Leave server")).to_be_attached()
    async with api_as(site.base, "bob") as api:
        server = (await api.get(f"/api/servers/{SERVER}")).json()
    assert server["owner_id"] == USER_IDS["bob"]


async def test_an_invite_is_made_with_an_expiry_and_a_use_limit(
    site: Site, browsers: Browsers
) -> None:
    """Was: the invites made in the client were all one day and any number of uses."""
    alice = await browsers.logged_in(site.base, "alice")
    settings = await open_settings(alice)
    await settings.get_by_role("tab", name="Invites").click()
    await settings.get_by_label("Expire after").select_option(label="1 hour")
    await settings.get_by_label("Max uses").select_option(label="1 use")
    await settings.get_by_role("button", name="Create invite").click()
    made = settings.locator(".settings-list li")
    await expect(made).to_have_count(1)
    await expect(made).to_contain_text("0/1 uses")
    async with api_as(site.base, "alice") as api:
        (invite,) = (await api.get(f"/api/servers/{SERVER}/invites")).json()
    assert invite["max_uses"] == 1
    expires = datetime.fromisoformat(invite["expires_at"])
    assert timedelta(minutes=59) < expires - datetime.now(UTC) <= timedelta(hours=1)


async def test_the_settings_title_follows_a_rename(site: Site, browsers: Browsers) -> None:
    """Was: the dialog kept the old name ("Gaming Squad settings") after the server was
    renamed in it, or by another admin, until it was opened again."""
    bob, _ = await bobs_settings(site, browsers)
    alice = await browsers.logged_in(site.base, "alice")
    settings = await open_settings(alice)
    await settings.get_by_label("Server name").fill("Raid Squad")
    await settings.get_by_role("button", name="Save", exact=True).click()
    await expect(alice.get_by_role("dialog", name="Raid Squad settings")).to_be_visible()
    await expect(bob.get_by_role("dialog", name="Raid Squad settings")).to_be_visible()


async def test_invite_people_gives_the_same_link_again(site: Site, browsers: Browsers) -> None:
    """Was: every opening of Invite people made a new invite (a day long): the server's
    list and audit log filled with them, and a member without MANAGE_SERVER, who may hold
    20, was refused one (TOO_MANY_INVITES) from the 21st opening that day."""
    charlie = await browsers.logged_in(site.base, "charlie")
    await open_channel(charlie, "general")
    links = []
    for _ in range(2):
        await charlie.get_by_role("button", name="Invite people").click()
        dialog = charlie.get_by_role("dialog", name="Invite people to Gaming Squad")
        links.append(await dialog.get_by_label("Share this link").input_value())
        await charlie.keyboard.press("Escape")
        await expect(dialog).to_have_count(0)
    assert links[0] == links[1]
    async with api_as(site.base, "alice") as api:
        invites = (await api.get(f"/api/servers/{SERVER}/invites")).json()
        assert [i["code"] for i in invites] == [links[0].rsplit("/", 1)[1]]
        # Revoked meanwhile: the next opening makes a new one.
        gone = await api.delete(f"/api/servers/{SERVER}/invites/{invites[0]['code']}")
        assert gone.status_code == 204, gone.text
    await charlie.get_by_role("button", name="Invite people").click()
    dialog = charlie.get_by_role("dialog", name="Invite people to Gaming Squad")
    await expect(dialog.get_by_label("Share this link")).not_to_have_value(links[0])


async def test_a_missing_permission_is_named_plainly(site: Site, browsers: Browsers) -> None:
    """Was: said in the API's words, "you cannot grant permissions you lack: BAN_MEMBERS"
    (the settings call it "Ban members")."""
    async with api_as(site.base, "alice") as api:
        base = f"/api/servers/{SERVER}"
        helper = await api.post(
            f"{base}/roles", json={"name": "Helper", "permissions": str(1 << 19)}
        )  # (MANAGE_ROLES)
        assert helper.status_code == 201, helper.text
        moved = await api.patch(f"{base}/roles", json=[{"id": helper.json()["id"], "position": 10}])
        assert moved.status_code == 200, moved.text
        given = await api.put(f"{base}/members/{DIANA}/roles/{helper.json()['id']}")
        assert given.status_code == 204, given.text
    diana = await browsers.logged_in(site.base, "diana")
    settings = await open_settings(diana)
    await settings.get_by_role("button", name="Member", exact=True).click()
    await settings.get_by_label("Ban members").check()
    await settings.get_by_role("button", name="Save role").click()
    await expect(diana.get_by_text("You need the Ban members permission for that.")).to_be_visible()
    await expect(settings.get_by_label("Ban members")).to_be_checked()  # (kept, to change)


async def test_deleting_a_private_category_says_its_channels_keep_its_overrides(
    site: Site, browsers: Browsers
) -> None:
    """Was: "Delete Staff?" and no more: its channels, kept private by the category's
    overrides, were then open to everyone, unwarned. They keep a copy of them now, and
    the question says so."""
    async with api_as(site.base, "alice") as api:
        base = f"/api/servers/{SERVER}"
        staff = await api.post(f"{base}/channels", json={"name": "Staff", "kind": "category"})
        assert staff.status_code == 201, staff.text
        everyone = next(r for r in (await api.get(f"{base}/roles")).json() if r["is_default"])
        hidden = await api.put(
            f"/api/channels/{staff.json()['id']}/overrides/role/{everyone['id']}",
            json={"allow": "0", "deny": "1"},  # (VIEW_CHANNEL)
        )
        assert hidden.status_code == 200, hidden.text
        made = await api.post(
            f"{base}/channels", json={"name": "staff-chat", "parent_id": staff.json()["id"]}
        )
        assert made.status_code == 201, made.text
    alice = await browsers.logged_in(site.base, "alice")
    settings = await open_settings(alice)
    await settings.get_by_role("tab", name="Channels").click()
    await settings.get_by_role("button", name="Delete Staff", exact=True).click()
    confirm = alice.get_by_role("dialog", name="Delete channel")
    await expect(confirm).to_contain_text("staff-chat will keep a copy of its permission")


async def test_a_kicked_members_deny_is_listed_to_be_lifted(site: Site, browsers: Browsers) -> None:
    """Was: a member's deny outlives their kick (it holds again if they come back), but
    the override editor listed only members, so it could be neither seen nor lifted
    there. It is listed under their name, "not a member now", and lifted as a whole."""
    gaming = "00000000-0000-0000-0000-000000000103"
    async with api_as(site.base, "alice") as api:
        denied = await api.put(
            f"/api/channels/{gaming}/overrides/member/{EVE}", json={"allow": "0", "deny": "1"}
        )
        assert denied.status_code == 200, denied.text
        assert (await api.delete(f"/api/servers/{SERVER}/members/{EVE}")).status_code == 204
    alice = await browsers.logged_in(site.base, "alice")
    settings = await open_settings(alice)
    await settings.get_by_role("tab", name="Channels").click()
    await settings.get_by_role("button", name="# gaming").click()
    pick = settings.get_by_label("For role or member")
    await expect(pick.get_by_role("option", name="@Eve (not a member now)")).to_be_attached()
    await pick.select_option(label="@Eve (not a member now)")
    await expect(settings.get_by_text("Eve is not a member now.")).to_contain_text("View channel")
    await settings.get_by_role("button", name="Lift their denies").click()
    await expect(pick.get_by_role("option", name="@Eve (not a member now)")).to_have_count(0)
    async with api_as(site.base, "alice") as api:
        channel = (await api.get(f"/api/channels/{gaming}")).json()
    assert not [o for o in channel["overrides"] if o["id"] == EVE], channel["overrides"]
