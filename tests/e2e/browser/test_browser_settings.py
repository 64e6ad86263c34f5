"""Server settings in the browser, as the owner uses them: roles and their permissions,
members' roles, a timeout, a ban and its lifting, invites, the audit log; and what the
members see of it, live."""

from __future__ import annotations

from playwright.async_api import expect

from tests.e2e.browser.client import (
    GENERAL,
    SERVER,
    api_as,
    open_channel,
    open_settings,
)
from tests.e2e.browser.conftest import Browsers, Site
from xfchat.domain.permissions import Permission


async def test_owner_manages_roles_members_invites_bans_and_reads_the_audit_log(
    site: Site, browsers: Browsers
) -> None:
    await browsers.logged_in(site.base, "charlie")  # online; no friend of bob's
    alice = await browsers.logged_in(site.base, "alice")
    bob = await browsers.logged_in(site.base, "bob")
    await open_channel(bob, "general")
    members = bob.get_by_role("complementary", name="Details")
    await expect(members.get_by_role("heading", name="Member — 3")).to_be_visible()
    await expect(members.get_by_role("button", name="Charlie (online)")).to_be_visible()
    await expect(members.get_by_role("button", name="Diana (offline)")).to_be_visible()

    settings = await open_settings(alice)

    await settings.get_by_role("tab", name="Roles").click()
    await settings.get_by_role("button", name="Create role").click()
    await settings.get_by_label("Name", exact=True).fill("Raiders")
    await settings.get_by_label("Show members separately (hoist)").check()
    await settings.get_by_label("Kick members").check()
    await settings.get_by_role("button", name="Save role").click()
    await expect(settings.get_by_role("button", name="Raiders", exact=True)).to_be_visible()

    await settings.get_by_role("tab", name="Members").click()
    await settings.get_by_role("button", name="Raiders role for Charlie").click()
    await expect(settings.get_by_role("button", name="Raiders role for Charlie")).to_have_attribute(
        "aria-pressed", "true"
    )
    await settings.get_by_role("button", name="Member role for Charlie").click()
    # Bob's member list regroups live: Charlie's highest hoisted role is now Raiders.
    await expect(members.get_by_role("heading", name="Raiders — 1")).to_be_visible()
    await expect(members.get_by_role("heading", name="Member — 2")).to_be_visible()

    eve = settings.get_by_role("listitem").filter(has_text="@eve")
    await eve.get_by_role("button", name="Timeout 10 min").click()
    await expect(eve.get_by_text("timed out until")).to_be_visible()
    # A ban may take the member's recent messages with them (delete_message_seconds).
    async with api_as(site.base, "diana") as api:
        sent = await api.post(f"/api/channels/{GENERAL}/messages", json={"content": "spam spam"})
        assert sent.status_code == 201, sent.text
    log = bob.get_by_role("log", name="Messages")
    await expect(log.get_by_text("spam spam")).to_be_visible()
    diana = settings.get_by_role("listitem").filter(has_text="@diana")
    await diana.get_by_role("button", name="Ban").click()
    ban = alice.get_by_role("dialog", name="Ban")
    await ban.get_by_label("Delete their messages from").select_option(label="Previous hour")
    await ban.get_by_role("button", name="Ban").click()
    await expect(members.get_by_text("Diana")).to_have_count(0)
    await expect(log.get_by_text("spam spam")).to_have_count(0)

    await settings.get_by_role("tab", name="Bans").click()
    banned = settings.get_by_role("listitem").filter(has_text="Diana")
    await banned.get_by_role("button", name="Unban").click()
    await expect(settings.get_by_text("Nobody is banned.")).to_be_visible()

    await settings.get_by_role("tab", name="Invites").click()
    await settings.get_by_role("button", name="Create invite").click()
    await expect(settings.locator(".settings-list code")).to_have_count(1)

    await settings.get_by_role("tab", name="Audit log").click()
    log = settings.get_by_role("list").filter(has_text="role.created")
    for action in (
        "role.created",
        "member.role_added",
        "member.timed_out",
        "member.banned",
        "member.unbanned",
        "invite.created",
    ):
        await expect(log.get_by_text(action, exact=True)).to_be_visible()


async def test_an_event_while_editing_keeps_what_was_typed(site: Site, browsers: Browsers) -> None:
    """The settings redraw at every event of the server; a form the owner has changed
    keeps their changes through it (here: a role created by someone else while the
    owner renames theirs), and shows the server's state again once saved."""
    alice = await browsers.logged_in(site.base, "alice")
    settings = await open_settings(alice)
    await settings.get_by_role("tab", name="Roles").click()
    await settings.get_by_role("button", name="Create role").click()
    await expect(settings.get_by_role("heading", name="Edit new role")).to_be_visible()
    name = settings.get_by_label("Name", exact=True)
    await name.evaluate("el => { el.marked = true; }")
    async with api_as(site.base, "alice") as api:  # (another of her sessions)
        # Not yet typed in: an event about something else leaves the form in place
        # (the same element, which a fill under way would otherwise lose).
        made = await api.post(f"/api/servers/{SERVER}/roles", json={"name": "Elsewhere"})
        assert made.status_code == 201, made.text
        await expect(settings.get_by_role("button", name="Elsewhere", exact=True)).to_be_visible()
        assert await name.evaluate("el => el.marked === true")
        await name.fill("Raiders")
        await settings.get_by_label("Kick members").check()
        # Another admin gives the role a permission meanwhile: the save keeps it.
        roles = (await api.get(f"/api/servers/{SERVER}/roles")).json()
        role = next(r for r in roles if r["name"] == "new role")
        bits = str(int(role["permissions"]) | Permission.MANAGE_MESSAGES)
        path = f"/api/servers/{SERVER}/roles/{role['id']}"
        assert (await api.patch(path, json={"permissions": bits})).status_code == 200
        # (a role made after it: once the page shows it, it has the change too, as
        # events come in order; the page's save must not race the change)
        made = await api.post(f"/api/servers/{SERVER}/roles", json={"name": "Later"})
        assert made.status_code == 201, made.text
        await expect(settings.get_by_role("button", name="Later", exact=True)).to_be_visible()
        await expect(settings.get_by_label("Name", exact=True)).to_have_value("Raiders")
        await expect(settings.get_by_label("Kick members")).to_be_checked()
        await settings.get_by_role("button", name="Save role").click()
        await expect(settings.get_by_role("button", name="Raiders", exact=True)).to_be_visible()
        await expect(settings.get_by_role("heading", name="Edit Raiders")).to_be_visible()
        await expect(settings.get_by_label("Manage messages")).to_be_checked()
        roles = (await api.get(f"/api/servers/{SERVER}/roles")).json()
        saved = next(r for r in roles if r["id"] == role["id"])
    wanted = Permission.MANAGE_MESSAGES | Permission.KICK_MEMBERS
    assert int(saved["permissions"]) & wanted == wanted
    assert saved["name"] == "Raiders"


async def test_the_settings_tabs_stay_put_from_tab_to_tab(site: Site, browsers: Browsers) -> None:
    """Was: the dialog was centred, so its tabs moved with each tab's height (87 px on
    a phone from Overview to Channels), and a quick second press landed elsewhere."""
    for viewport in ({"width": 1280, "height": 800}, {"width": 390, "height": 844}):
        alice = await browsers.logged_in(site.base, "alice")
        settings = await open_settings(alice)
        await alice.set_viewport_size(viewport)
        tabs = settings.get_by_role("tablist")
        places = []
        for tab in ("Overview", "Channels", "Roles", "Overview"):
            await settings.get_by_role("tab", name=tab).click()
            await expect(settings.get_by_role("tab", name=tab)).to_have_attribute(
                "aria-selected", "true"
            )
            box = await tabs.bounding_box()
            assert box is not None
            places.append(round(box["y"]))
        assert len(set(places)) == 1, (viewport, places)


async def test_each_new_channel_label_sits_beside_its_field(site: Site, browsers: Browsers) -> None:
    """Was: the new channel's labels and fields flowed as one line, so on a phone Kind
    ended the Name line, its select on the line below, and Category the Kind line (at
    900 px, Category ended the first line)."""
    alice = await browsers.logged_in(site.base, "alice")
    settings = await open_settings(alice)
    await settings.get_by_role("tab", name="Channels").click()
    for viewport in (
        {"width": 1280, "height": 800},
        {"width": 900, "height": 800},
        {"width": 390, "height": 844},
    ):
        await alice.set_viewport_size(viewport)
        fields = {
            name: settings.get_by_label(name, exact=True) for name in ("Name", "Kind", "Category")
        }
        await expect(fields["Kind"]).to_be_visible()
        boxes = {}
        for name, field in fields.items():
            label = await settings.get_by_text(name, exact=True).bounding_box()
            box = await field.bounding_box()
            assert label is not None and box is not None
            middle = label["y"] + label["height"] / 2
            # On the field's line, and just before it.
            assert box["y"] <= middle <= box["y"] + box["height"], (viewport, name, label, box)
            assert label["x"] + label["width"] <= box["x"], (viewport, name, label, box)
            assert box["x"] + box["width"] <= viewport["width"], (viewport, name, box)
            boxes[name] = (label, box)
        lines = [round(box["y"]) for _, box in boxes.values()]
        assert lines == sorted(lines), (viewport, boxes)  # (in their order)


CHARLIE = "00000000-0000-0000-0000-000000000003"  # (a Member: no settings of the server)


async def test_a_category_manager_makes_channels_there_from_the_settings(
    site: Site, browsers: Browsers
) -> None:
    """Was: the settings opened only for MANAGE_CHANNELS held server-wide, so a member
    granted it by a category's override (which the API takes: there alone) had no way
    to it in the client. Now the Channels tab offers them that category, and only it."""
    async with api_as(site.base, "alice") as api:
        role = (await api.post(f"/api/servers/{SERVER}/roles", json={"name": "Builders"})).json()
        given = await api.put(f"/api/servers/{SERVER}/members/{CHARLIE}/roles/{role['id']}")
        assert given.status_code == 204, given.text
        made = await api.post(
            f"/api/servers/{SERVER}/channels", json={"name": "Projects", "kind": "category"}
        )
        assert made.status_code == 201, made.text
        granted = await api.put(
            f"/api/channels/{made.json()['id']}/overrides/role/{role['id']}",
            json={"allow": str(int(Permission.MANAGE_CHANNELS)), "deny": "0"},
        )
        assert granted.status_code == 200, granted.text
    charlie = await browsers.logged_in(site.base, "charlie")  # (a plain member)
    await open_channel(charlie, "general")
    await charlie.get_by_role("button", name="Server settings").click()
    settings = charlie.get_by_role("dialog", name="Gaming Squad settings")
    await expect(settings.get_by_role("tab")).to_have_count(1)
    await settings.get_by_role("tab", name="Channels").click()
    parent = settings.get_by_label("Category")
    await expect(parent.locator("option")).to_have_text(["Projects"])
    await expect(settings.get_by_label("Kind").locator("option")).to_have_text(["text", "voice"])
    await settings.get_by_label("Name", exact=True).fill("plans")
    await settings.get_by_role("button", name="Create").click()
    await charlie.keyboard.press("Escape")
    channels = charlie.get_by_role("navigation", name="Channels")
    await expect(channels.get_by_role("link", name="plans")).to_be_visible()
