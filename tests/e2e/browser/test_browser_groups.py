"""Group conversations and invites in the browser: a group started from friends (a
picker), a non-friend refused with CANNOT_ADD_USER said plainly, a direct message to
someone who takes them from friends only refused with CANNOT_MESSAGE_USER said
plainly, removing someone and leaving; a server joined by opening an invite link, and
by pasting a code into the "+" dialog."""

from __future__ import annotations

from playwright.async_api import Locator, Page, expect

from tests.e2e.browser.client import USER_IDS, api_as, assert_accessible, message, say
from tests.e2e.browser.conftest import Browsers, Site, log_in


def dm_link(page: Page, name: str) -> Locator:
    return page.get_by_role("navigation", name="Channels").get_by_role("link", name=name)


async def confirm(page: Page, title: str, action: str) -> None:
    await page.get_by_role("dialog", name=title).get_by_role("button", name=action).click()


async def test_group_dms_from_friends_and_joining_by_invite(
    site: Site, browsers: Browsers, axe_source: str
) -> None:
    """One site for both (a site and a browser cost seconds to start)."""
    # Eve (nobody's friend) opened a conversation with bob, then took direct messages
    # from friends only.
    async with api_as(site.base, "eve") as eve:
        dm = {"kind": "direct", "user_id": USER_IDS["bob"]}
        assert (await eve.post("/api/conversations", json=dm)).status_code == 201
        closed = {"direct_messages": "friends"}
        assert (await eve.put("/api/users/@me/privacy", json=closed)).status_code == 200
    alice = await browsers.logged_in(site.base, "alice")  # friends with bob and charlie
    bob = await browsers.logged_in(site.base, "bob")
    charlie = await browsers.logged_in(site.base, "charlie")
    await take_messages_from_friends_only(charlie)  # (bob is not one)
    await group_from_friends_refuses_a_stranger(alice, bob, charlie, axe_source)
    await messages_refused_by_name(site.base, bob)
    await removed_left_and_renamed(alice, bob, charlie)
    await join_a_server_by_invite_link_and_by_code(site, browsers, alice, bob, axe_source)


async def take_messages_from_friends_only(page: Page) -> None:
    """The privacy setting, chosen in the user settings."""
    await page.get_by_role("button", name="User settings").click()
    mine = page.get_by_role("dialog", name="User settings")
    await mine.get_by_role("tab", name="Privacy").click()
    await mine.get_by_label("Only my friends").check()
    await expect(mine.get_by_text("Saved: only your friends can message you.")).to_be_visible()
    await page.keyboard.press("Escape")


async def group_from_friends_refuses_a_stranger(
    alice: Page, bob: Page, charlie: Page, axe_source: str
) -> None:
    """Alice picks two friends; the group shows for them live; Diana (nobody's friend here)
    is refused by name and not added."""
    await alice.get_by_role("button", name="Create a group DM").click()
    new = alice.get_by_role("dialog", name="New group")
    await new.get_by_label("Bob").check()
    await new.get_by_label("Charlie").check()
    await new.get_by_label("Group name").fill("Raid night")
    await assert_accessible(alice, axe_source, "new group")
    await new.get_by_role("button", name="Create group").click()
    await expect(alice.get_by_role("heading", level=1, name="Raid night")).to_be_visible()
    await expect(dm_link(bob, "Raid night")).to_be_visible()  # live, for both
    await expect(dm_link(charlie, "Raid night")).to_be_visible()
    # Bob and Charlie shared nothing before (no conversation, not friends: only a server
    # whose members neither page has listed), so no presence.updated told either that
    # the other is online: the pages ask, and each shows the other online, no reload.
    for page, other in ((charlie, "Bob"), (bob, "Charlie")):
        await dm_link(page, "Raid night").click()
        details = page.get_by_role("complementary", name="Details")
        await expect(details.get_by_role("button", name=f"{other} (online)")).to_be_visible()

    people = alice.get_by_role("complementary", name="Details")
    await people.get_by_role("button", name="Add people").click()
    add = alice.get_by_role("dialog", name="Add people to Raid night")
    await add.get_by_label("Or add someone by username").fill("diana")
    await add.get_by_role("button", name="Add", exact=True).click()
    await expect(add.get_by_role("alert")).to_have_text(
        "Diana cannot be added. You can add only your friends, and only people who may be in "
        "a conversation with everyone in it."
    )
    await assert_accessible(alice, axe_source, "add people")
    await alice.keyboard.press("Escape")
    await expect(people.get_by_role("heading", name="Members — 3")).to_be_visible()


async def messages_refused_by_name(base: str, bob: Page) -> None:
    """Bob would message Charlie (from the group) and Eve (in the conversation she opened):
    each refusal names them; the open conversation's composer says why, keeps what was
    typed, and sends it once Eve takes direct messages from everyone again."""
    await dm_link(bob, "Raid night").click()
    await (
        bob.get_by_role("complementary", name="Details")
        .get_by_role("button", name="Charlie")
        .click()
    )
    await bob.get_by_role("dialog", name="Charlie").get_by_role("button", name="Message").click()
    await expect(bob.get_by_text("Charlie does not take direct messages from you.")).to_be_visible()
    await bob.keyboard.press("Escape")
    await dm_link(bob, "Eve").click()
    # (the view changes on the hashchange, a task after the click: typed sooner, the text
    # went to the group's composer; CI caught it once)
    await expect(bob.get_by_role("heading", level=1, name="Eve")).to_be_visible()
    await say(bob, "hello?")
    await expect(
        bob.get_by_text("Not sent: Eve does not take direct messages from you.")
    ).to_be_visible()
    composer = bob.get_by_role("textbox", name="Message", exact=True)
    note = bob.locator("form.composer").get_by_role("status")
    await expect(note).to_contain_text("Eve does not take direct messages from you")
    # The composer stays open, with what was typed: Eve may change her mind unseen.
    await expect(composer).to_be_enabled()
    await expect(composer).to_have_value("hello?")
    async with api_as(base, "eve") as eve:
        opened = {"direct_messages": "everyone"}
        assert (await eve.put("/api/users/@me/privacy", json=opened)).status_code == 200
    await composer.press("Enter")
    await expect(message(bob.get_by_role("log", name="Messages"), "hello?")).to_have_count(1)
    await expect(note).to_be_hidden()
    await expect(composer).to_have_value("")


async def removed_left_and_renamed(alice: Page, bob: Page, charlie: Page) -> None:
    """The owner removes Charlie; Bob leaves; each of their lists lets the group go, live."""
    people = alice.get_by_role("complementary", name="Details")
    await people.get_by_role("button", name="Remove Charlie from the group").click()
    await confirm(alice, "Remove from group", "Remove")
    await expect(dm_link(charlie, "Raid night")).to_have_count(0)
    await expect(people.get_by_role("heading", name="Members — 2")).to_be_visible()
    await dm_link(bob, "Raid night").click()
    await (
        bob.get_by_role("complementary", name="Details")
        .get_by_role("button", name="Leave group")
        .click()
    )
    await confirm(bob, "Leave group", "Leave")
    await expect(dm_link(bob, "Raid night")).to_have_count(0)
    await expect(bob.get_by_role("heading", name="Friends")).to_be_visible()
    await expect(people.get_by_role("heading", name="Members — 1")).to_be_visible()
    await people.get_by_role("button", name="Rename").click()
    rename = alice.get_by_role("dialog", name="Rename group")
    await rename.get_by_label("Group name").fill("Quiet night")
    await rename.get_by_role("button", name="Save").click()
    await expect(alice.get_by_role("heading", level=1, name="Quiet night")).to_be_visible()
    await expect(dm_link(alice, "Quiet night")).to_be_visible()


async def join_a_server_by_invite_link_and_by_code(
    site: Site, browsers: Browsers, alice: Page, bob: Page, axe_source: str
) -> None:
    await alice.get_by_role("button", name="Add a server").click()
    await alice.get_by_label("Server name").fill("Book Club")
    await alice.get_by_role("button", name="Create", exact=True).click()
    channels = alice.get_by_role("navigation", name="Channels")
    await expect(channels.get_by_role("heading", name="Book Club")).to_be_visible()
    await alice.get_by_role("button", name="Invite people").click()
    invite = alice.get_by_role("dialog", name="Invite people to Book Club")
    code = await invite.get_by_label("Or the invite code").input_value()
    link = await invite.get_by_label("Share this link").input_value()
    assert link == f"{site.base}/#/invite/{code}"
    await assert_accessible(alice, axe_source, "invite")
    await alice.keyboard.press("Escape")

    # Bob opens the link (a new page load, his session carried on): where it leads, then Join.
    await bob.goto("about:blank")
    await bob.goto(link)
    join = bob.get_by_role("dialog", name="Join a server")
    await expect(join.get_by_role("heading", name="Book Club")).to_be_visible()
    await expect(join.get_by_text("1 member")).to_be_visible()
    await assert_accessible(bob, axe_source, "invite preview")
    await join.get_by_role("button", name="Join Book Club").click()
    await expect(
        bob.get_by_role("navigation", name="Channels").get_by_role("heading", name="Book Club")
    ).to_be_visible()
    # A link whose code is garbage (a broken escape) is said to be no invite, asking nothing.
    await bob.goto(f"{site.base}/#/invite/%E0%A4%A")
    await expect(bob.get_by_role("dialog", name="Join a server").get_by_role("alert")).to_have_text(
        "This invite is invalid, has expired or has been used up."
    )
    await bob.keyboard.press("Escape")
    await join_by_code_after_a_link_opened_logged_out(site, browsers, alice, link, code)


async def join_by_code_after_a_link_opened_logged_out(
    site: Site, browsers: Browsers, alice: Page, link: str, code: str
) -> None:
    """Charlie opens the link logged out: after logging in he is shown where it leads."""
    charlie = await browsers.page(site.base)
    await charlie.goto(link)
    await log_in(charlie, "charlie")
    preview = charlie.get_by_role("dialog", name="Join a server")
    await expect(preview.get_by_role("heading", name="Book Club")).to_be_visible()
    await expect(preview.get_by_text("2 members")).to_be_visible()
    await charlie.keyboard.press("Escape")

    # He pastes into "+" instead: nonsense and an unknown code are told apart from a
    # good code, which gets him in.
    await charlie.get_by_role("button", name="Add a server").click()
    field = charlie.get_by_label("Invite code or link")
    joining = charlie.get_by_role("dialog", name="Add a server")
    for typed, said in (
        ("not a code!", "That is not an invite code or an invite link."),
        ("ZZZZZZZZ", "This invite is invalid, has expired or has been used up."),
    ):
        await field.fill(typed)
        await joining.get_by_role("button", name="Join", exact=True).click()
        await expect(joining.get_by_role("alert").filter(has_text=said)).to_be_visible()
    await field.fill(f"  {code} ")
    await joining.get_by_role("button", name="Join", exact=True).click()
    await expect(
        charlie.get_by_role("navigation", name="Channels").get_by_role("heading", name="Book Club")
    ).to_be_visible()
    await expect(
        alice.get_by_role("complementary", name="Details").get_by_role(
            "heading", name="Members — 3"
        )
    ).to_be_visible()
