"""What a person never notices: the server restarting under an open page, a proxy that
refuses WebSockets, and permissions changing while they look."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import uuid
from typing import Any
from urllib.parse import urlsplit

from playwright.async_api import Locator, Page, WebSocketRoute, expect

from tests.e2e.browser.client import (
    GENERAL,
    SERVER,
    USER_IDS,
    act,
    api_as,
    expect_focused,
    message,
    open_channel,
    open_settings,
    shown_texts,
)
from tests.e2e.browser.conftest import BROWSER_ENV, PASSWORD, Browsers, Site, log_in

DEMO_GENERAL = [
    "Welcome to Gaming Squad! Say hi 👋",
    "Hey everyone! Who's up for a game tonight?",
    "I'm in. What are we playing?",
    "Count me in too 🙌",
    "Let's meet in General Voice at 9.",
    "Sounds good, see you there!",
]


async def test_a_server_restart_under_an_open_page_loses_and_repeats_nothing(
    site: Site, browsers: Browsers
) -> None:
    _, other = site.start()  # a second process: the API stays up while the first is down
    bob = await browsers.logged_in(site.base, "bob")
    log = await open_channel(bob, "general")
    async with api_as(other, "alice") as alice:

        async def send(text: str) -> None:
            got = await alice.post(f"/api/channels/{GENERAL}/messages", json={"content": text})
            assert got.status_code == 201, got.text

        await send("before the crash")
        await expect(message(log, "before the crash")).to_be_visible()

        site.proc.proc.send_signal(signal.SIGKILL)  # bob's server, mid-connection
        site.proc.proc.wait(10)
        during = [f"while down {i}" for i in range(1, 6)]
        for text in during:
            await send(text)
        await expect(bob.get_by_role("status")).to_have_text("Reconnecting…")

        port = urlsplit(site.base).port
        assert port is not None
        site.start(port)  # back on the same address, as a restarted service would be
        await expect(message(log, during[-1])).to_be_visible(timeout=30_000)
        await send("after the restart")
        await expect(message(log, "after the restart")).to_be_visible()

    expected = [*DEMO_GENERAL, "before the crash", *during, "after the restart"]
    assert await shown_texts(bob) == expected  # each once, in order
    await expect(bob.get_by_role("status")).to_be_hidden()


async def test_a_gateway_connection_gone_silent_is_taken_for_dead_and_resumed(
    site: Site, browsers: Browsers
) -> None:
    """A connection whose packets stop getting through (a laptop's Wi-Fi gone to sleep, a
    NAT that forgot it) is never closed by the browser until TCP gives up, minutes later:
    the heartbeats it sends go unanswered meanwhile. A heartbeat not acknowledged by the
    next one says the connection is dead, and the client resumes on a new one, missing
    nothing. (Before, the page sat on the dead connection, "connected", showing nothing
    of what was said.)"""
    _, base = site.servers.start(None, **BROWSER_ENV, XFCHAT_GATEWAY_HEARTBEAT="2")
    silent = asyncio.Event()
    opened: list[WebSocketRoute] = []

    def relay(ws: WebSocketRoute) -> None:
        opened.append(ws)
        server = ws.connect_to_server()
        if len(opened) > 1:
            return  # (a new connection gets through)

        def up(frame: str | bytes) -> None:
            if not silent.is_set():
                server.send(frame)

        def down(frame: str | bytes) -> None:
            if not silent.is_set():
                ws.send(frame)

        ws.on_message(up)
        server.on_message(down)
        # Neither side hears the other close: nothing gets through any more.
        ws.on_close(lambda code, reason: None)
        server.on_close(lambda code, reason: None)

    bob = await browsers.page(base)
    await bob.route_web_socket("**/api/gateway", relay)
    await log_in(bob, "bob")
    log = await open_channel(bob, "general")
    async with api_as(base, "alice") as alice:

        async def send(text: str) -> None:
            got = await alice.post(f"/api/channels/{GENERAL}/messages", json={"content": text})
            assert got.status_code == 201, got.text

        await send("before the silence")
        await expect(message(log, "before the silence")).to_be_visible()
        silent.set()
        await send("said into the silence")
        await expect(message(log, "said into the silence")).to_be_visible(timeout=30_000)
        await send("after it")
        await expect(message(log, "after it")).to_be_visible()
    assert len(opened) == 2
    expected = [*DEMO_GENERAL, "before the silence", "said into the silence", "after it"]
    assert await shown_texts(bob) == expected


async def test_a_resume_refused_by_the_rate_limit_waits_as_long_as_it_says(
    site: Site, browsers: Browsers
) -> None:
    """A RESUME over XFCHAT_RATE_REALTIME_USER is closed 4008 "retry in N s" (the README:
    wait that long, then resume). Was: the client tried again within 3 s, again and
    again until the window ended, every try counted. Now it waits as it is told, and
    its one try after that resumes, nothing missed."""
    _, base = site.servers.start(None, **BROWSER_ENV, XFCHAT_RATE_REALTIME_USER="1/10")
    opened: list[tuple[WebSocketRoute, WebSocketRoute]] = []
    closes: list[int | None] = []

    def relay(ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()
        opened.append((ws, server))

        async def closed(code: int | None, reason: str | None) -> None:
            closes.append(code)
            await ws.close(code=code or 1000, reason=reason or "")

        server.on_close(closed)

    bob = await browsers.page(base)
    await bob.route_web_socket("**/api/gateway", relay)
    await log_in(bob, "bob")  # (his IDENTIFY: the one connection of the window)
    log = await open_channel(bob, "general")
    ws, server = opened[0]
    await server.close()
    await ws.close(code=4000, reason="gone")
    async with api_as(base, "alice") as alice:
        got = await alice.post(f"/api/channels/{GENERAL}/messages", json={"content": "meanwhile"})
        assert got.status_code == 201, got.text
    await expect(message(log, "meanwhile")).to_be_visible(timeout=30_000)
    assert closes.count(4008) == 1, closes  # (refused once, then resumed)
    assert len(opened) == 3


class RefusedResume:
    """A page's gateway connections, relayed: `cut()` ends the first, and the page's
    reconnection waits for `back`; its RESUME is then made unreadable (close 4007, as
    for any refused resume: the page away longer than the log keeps, a restored backup),
    so the page identifies afresh and gets a full ready, the events of the gap untold."""

    def __init__(self) -> None:
        self.back = asyncio.Event()
        self.opened: list[tuple[WebSocketRoute, WebSocketRoute]] = []

    async def relay(self, ws: WebSocketRoute) -> None:
        if self.opened:
            await self.back.wait()
        server = ws.connect_to_server()
        self.opened.append((ws, server))
        if len(self.opened) != 2:
            return

        def up(frame: str | bytes) -> None:
            data = json.loads(frame)
            if data.get("op") == 6:
                data["d"]["seq"] = "not a token"
            server.send(json.dumps(data))

        ws.on_message(up)

    async def page(self, site: Site, browsers: Browsers, username: str) -> Page:
        page = await browsers.page(site.base)
        await page.route_web_socket("**/api/gateway", self.relay)
        await log_in(page, username)
        return page

    async def cut(self) -> None:
        ws, server = self.opened[0]
        await server.close()
        await ws.close(code=4000, reason="gone")


async def test_a_resync_reloads_the_member_lists_it_held(site: Site, browsers: Browsers) -> None:
    """A full ready is "reload your state". Was: the client kept the member lists it had
    loaded, so a member kicked while it was away stayed listed (and whatever else the
    missed member events said was lost). Now the lists held are asked for again."""
    charlie = "00000000-0000-0000-0000-000000000003"
    gateway = RefusedResume()
    bob = await gateway.page(site, browsers, "bob")
    await open_channel(bob, "general")
    members = bob.get_by_role("complementary", name="Details")
    await expect(members.get_by_role("button", name=re.compile("^Charlie"))).to_be_visible()
    await gateway.cut()
    async with api_as(site.base, "alice") as alice:
        kicked = await alice.delete(f"/api/servers/{SERVER}/members/{charlie}")
        assert kicked.status_code == 204, kicked.text
    gateway.back.set()
    await expect(members.get_by_role("button", name=re.compile("^Charlie"))).to_have_count(0)
    assert len(gateway.opened) == 3  # (the refused resume, then a new identify)
    await expect(members.get_by_role("button", name=re.compile("^Diana"))).to_be_visible()


async def test_a_resync_redraws_the_pins_shown(site: Site, browsers: Browsers) -> None:
    """Was: the pins panel, drawn again only when a pin event came, kept showing what was
    pinned before the gap after a full ready. Now it is asked for again."""
    gateway = RefusedResume()
    bob = await gateway.page(site, browsers, "bob")
    log = await open_channel(bob, "general")
    await bob.get_by_role("button", name="Pinned messages").click()
    pins = bob.get_by_role("complementary", name="Details")
    await expect(pins.get_by_text("No pinned messages yet.")).to_be_visible()
    await gateway.cut()
    async with api_as(site.base, "alice") as alice:
        got = await alice.get(f"/api/channels/{GENERAL}/messages?limit=1")
        newest = got.json()[0]
        pinned = await alice.put(f"/api/channels/{GENERAL}/pins/{newest['id']}")
        assert pinned.status_code == 204, pinned.text
    gateway.back.set()
    await expect(log.locator("li.msg-system")).to_have_count(1)  # (the full ready is in)
    await expect(pins.locator(".pin")).to_have_count(1)
    await expect(pins.locator(".pin")).to_contain_text(newest["content"])


async def test_when_websockets_are_refused_the_client_falls_back_to_sse(
    site: Site, browsers: Browsers
) -> None:
    page = await browsers.page(site.base)

    async def refuse(ws: WebSocketRoute) -> None:
        await ws.close(code=1011, reason="no websockets here")

    await page.route_web_socket("**/api/gateway", refuse)
    await page.get_by_label("Username or email").fill("bob")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    log = await open_channel(page, "general")
    assert await page.evaluate("window.xfchatDebug.transport()") == "sse"
    async with api_as(site.base, "alice") as alice:
        got = await alice.post(
            f"/api/channels/{GENERAL}/messages", json={"content": "over server-sent events"}
        )
        assert got.status_code == 201
    await expect(message(log, "over server-sent events")).to_have_count(1)


async def test_an_sse_stream_gone_silent_is_taken_for_dead_and_opened_again(
    site: Site, browsers: Browsers
) -> None:
    """A helper session's find: a page on SSE (WebSockets refused on the way) could not
    tell a quiet stream from one whose packets no longer get through, the server's
    keep-alive being a comment EventSource never shows. It asks for heartbeats now
    (`?heartbeat=true`), and a stream that says nothing for twice `heartbeat_interval` is
    given up and opened again from the last id. Here its server stops (SIGSTOP: the
    connection stays open, nothing comes) for three such intervals while alice speaks
    through another process: the page opens a second stream, and after the server goes
    on shows each message once, in order. (Before, it stayed on the first stream.)"""
    proc, base = site.servers.start(None, **BROWSER_ENV, XFCHAT_SSE_KEEPALIVE="1")
    page = await browsers.page(base)

    async def refuse(ws: WebSocketRoute) -> None:
        await ws.close(code=1011, reason="no websockets here")

    await page.route_web_socket("**/api/gateway", refuse)
    streams: list[str] = []
    page.on("request", lambda r: streams.append(r.url) if "/api/events" in r.url else None)
    await log_in(page, "bob")
    log = await open_channel(page, "general")
    assert await page.evaluate("window.xfchatDebug.transport()") == "sse"
    async with api_as(site.base, "alice") as alice:

        async def send(text: str) -> None:
            got = await alice.post(f"/api/channels/{GENERAL}/messages", json={"content": text})
            assert got.status_code == 201, got.text

        await send("before the silence")
        await expect(message(log, "before the silence")).to_be_visible()
        assert len(streams) == 1 and "heartbeat=true" in streams[0], streams
        proc.proc.send_signal(signal.SIGSTOP)
        try:
            await send("said into the silence")
            async with asyncio.timeout(15):  # (given up after 2 s of silence)
                while len(streams) < 2:
                    await asyncio.sleep(0.1)
        finally:
            proc.proc.send_signal(signal.SIGCONT)
        await expect(message(log, "said into the silence")).to_be_visible(timeout=30_000)
        await send("after it")
        await expect(message(log, "after it")).to_be_visible()
    expected = [*DEMO_GENERAL, "before the silence", "said into the silence", "after it"]
    assert await shown_texts(page) == expected


async def test_a_permission_change_hides_a_channel_from_bob_live(
    site: Site, browsers: Browsers
) -> None:
    alice = await browsers.logged_in(site.base, "alice")
    bob = await browsers.logged_in(site.base, "bob")
    await open_channel(bob, "gaming")
    channels = bob.get_by_role("navigation", name="Channels")
    await expect(channels.get_by_role("link", name="gaming")).to_be_visible()

    settings = await open_settings(alice)
    await settings.get_by_role("tab", name="Channels").click()
    await settings.get_by_role("button", name="# gaming").click()
    await settings.get_by_label("For role or member").select_option(label="@Bob")
    view = settings.get_by_role("group", name="View channel")
    await view.get_by_role("radio", name="deny").check()
    await settings.get_by_role("button", name="Save permissions").click()

    # He was reading it: he is told (first: the notice is a toast, gone 5 s after the
    # event, and looked for after the other checks a busy box could take that long),
    # and taken elsewhere rather than left looking at it.
    await expect(bob.get_by_text("You can no longer see #gaming.")).to_be_visible()
    await expect(channels.get_by_role("link", name="gaming")).to_have_count(0)
    await expect(channels.get_by_role("link", name="general")).to_be_visible()
    await expect(bob.get_by_role("heading", level=1, name="gaming", exact=True)).to_have_count(0)


async def test_a_large_reveal_shows_its_channels_live(site: Site, browsers: Browsers) -> None:
    """An override change that reveals more than the event repeats (256 KiB over the
    members): `channel.revealed` names them with `channels: []`, and each comes as its
    `channel.updated`; the sidebar shows them all, live, and what was said in them
    while hidden as unread (counted by the server when the page asks)."""
    server = "00000000-0000-0000-0000-000000000100"
    async with api_as(site.base, "alice") as alice:
        roles = (await alice.get(f"/api/servers/{server}")).json()["roles"]
        everyone = next(r["id"] for r in roles if r["is_default"])
        made = await alice.post(
            f"/api/servers/{server}/channels", json={"name": "vault", "kind": "category"}
        )
        assert made.status_code == 201, made.text
        vault = made.json()["id"]
        hide = {"allow": "0", "deny": "1"}
        got = await alice.put(f"/api/channels/{vault}/overrides/role/{everyone}", json=hide)
        assert got.status_code == 200, got.text
        for i in range(80):
            body = {"name": f"vault-{i:02}", "parent_id": vault, "topic": "t" * 1000}
            got = await alice.post(f"/api/servers/{server}/channels", json=body)
            assert got.status_code == 201, got.text
            if i == 3:
                sent = await alice.put(
                    f"/api/channels/{got.json()['id']}/messages/{uuid.uuid4()}",
                    json={"content": "said while you could not see it"},
                )
                assert sent.status_code == 201, sent.text

        bob = await browsers.logged_in(site.base, "bob")
        await open_channel(bob, "general")
        frames: list[str] = []
        bob.on(
            "websocket",
            lambda ws: ws.on(
                "framereceived",
                lambda f: (
                    frames.append(f) if isinstance(f, str) and "channel.revealed" in f else None
                ),
            ),
        )
        channels = bob.get_by_role("navigation", name="Channels")
        await expect(channels.get_by_role("link", name="vault-79")).to_have_count(0)
        # (a reconnect lets the page's gateway be watched from its start)
        await bob.reload()
        await expect(channels.get_by_role("link", name="general")).to_be_visible()
        got = await alice.delete(f"/api/channels/{vault}/overrides/role/{everyone}")
        assert got.status_code == 200, got.text
        await expect(channels.get_by_role("link", name="vault-79")).to_be_visible()
        await expect(channels.get_by_role("link", name="vault-00")).to_be_visible()
        # The events carry no read states: the page asks the server to count them.
        unread = channels.get_by_role("link", name="vault-03, unread", exact=True)
        await expect(unread).to_be_visible(timeout=20_000)
        await expect(channels.get_by_role("link", name="vault-04", exact=True)).to_be_visible()
    assert frames and all('"channels":[]' in f.replace(" ", "") for f in frames), frames[:1]


async def in_client(site: Site, browsers: Browsers, script: str) -> Any:
    """What `script` (an async function, as text) returns, run in a page of the client."""
    page = await browsers.browser.new_page(base_url=site.base)
    try:
        await page.goto(site.base)
        return await page.evaluate(script)
    finally:
        await page.close()


async def press(target: Locator) -> None:
    """The mouse button down at the middle of `target`, and held."""
    box = await target.bounding_box()
    assert box is not None
    await target.page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    await target.page.mouse.down()


async def test_a_click_across_a_redraw_still_lands(site: Site, browsers: Browsers) -> None:
    """The server rail is drawn again at every event that changes it (here a mention's
    badge): a click pressed before the redraw and released after it still opens what was
    pressed (a rail drawn anew would have lost it: the press and the release on two
    different elements make no click)."""
    alice = await browsers.logged_in(site.base, "alice")
    rail = alice.get_by_role("navigation", name="Servers")
    await press(rail.get_by_role("link", name="Gaming Squad"))
    async with api_as(site.base, "bob") as bob:
        mention = {"content": f"<@{USER_IDS['alice']}> over here"}
        sent = await bob.post(f"/api/channels/{GENERAL}/messages", json=mention)
        assert sent.status_code == 201, sent.text
    await expect(rail.get_by_role("link", name="Gaming Squad, 1 mention")).to_be_visible()
    await alice.mouse.up()
    await expect(alice.get_by_role("heading", level=1, name="general", exact=True)).to_be_visible()


async def test_a_click_on_a_member_across_a_redraw_still_lands(
    site: Site, browsers: Browsers
) -> None:
    """The member list is drawn again at every change of a member (here Eve's nickname):
    a click on Diana pressed before it and released after it opens Diana's profile."""
    alice = await browsers.logged_in(site.base, "alice")
    await open_channel(alice, "general")
    members = alice.get_by_role("complementary", name="Details")
    await press(members.get_by_role("button", name="Diana (offline)"))
    async with api_as(site.base, "alice") as api:
        eve = "00000000-0000-0000-0000-000000000005"
        got = await api.patch(f"/api/servers/{SERVER}/members/{eve}", json={"nickname": "Evie"})
        assert got.status_code == 200, got.text
    await expect(members.get_by_role("button", name="Evie (offline)")).to_be_visible()
    await alice.mouse.up()
    await expect(alice.get_by_role("dialog", name="Diana")).to_be_visible()


async def test_a_click_on_a_message_across_a_new_message_still_lands(
    site: Site, browsers: Browsers
) -> None:
    """In a busy channel, read at its newest: a Reply pressed on a message before
    another message arrives, and released after, still starts the reply. The history
    neither is drawn anew nor scrolls to the newcomer while the button is held (either
    would take the click away from what was pressed); it follows once it is released.
    The composer is drawn again at every message too: Cancel reply, pressed across one,
    still cancels."""
    async with api_as(site.base, "bob") as bob:
        for n in range(30):  # (a history taller than the view)
            sent = await bob.post(
                f"/api/channels/{GENERAL}/messages", json={"content": f"busy {n:02}"}
            )
            assert sent.status_code == 201, sent.text
        alice = await browsers.logged_in(site.base, "alice")
        log = await open_channel(alice, "general")
        target = message(log, "busy 29")
        await target.hover()
        actions = target.get_by_role("toolbar", name="Message actions")
        await press(actions.get_by_role("button", name="Reply"))
        sent = await bob.post(f"/api/channels/{GENERAL}/messages", json={"content": "meanwhile"})
        assert sent.status_code == 201, sent.text
        newcomer = message(log, "meanwhile")
        await expect(newcomer).to_have_count(1)
        await alice.mouse.up()
        cancel = alice.get_by_role("button", name="Cancel reply")
        await expect(cancel).to_be_visible()
        await expect(newcomer).to_be_in_viewport()

        await press(cancel)
        sent = await bob.post(f"/api/channels/{GENERAL}/messages", json={"content": "and more"})
        assert sent.status_code == 201, sent.text
        await expect(message(log, "and more")).to_have_count(1)
        await alice.mouse.up()
        await expect(cancel).to_have_count(0)


async def test_a_click_on_the_head_across_a_new_message_still_lands(
    site: Site, browsers: Browsers
) -> None:
    """The head (title, Pinned messages, Member list) is drawn again with the rest of the
    chrome at every new message: Pinned messages pressed across one still opens the pins."""
    alice = await browsers.logged_in(site.base, "alice")
    log = await open_channel(alice, "general")
    await press(alice.get_by_role("button", name="Pinned messages"))
    async with api_as(site.base, "bob") as bob:
        sent = await bob.post(f"/api/channels/{GENERAL}/messages", json={"content": "meanwhile"})
        assert sent.status_code == 201, sent.text
    await expect(message(log, "meanwhile")).to_have_count(1)
    await alice.mouse.up()
    details = alice.get_by_role("complementary", name="Details")
    await expect(details.get_by_role("heading", name="Pinned messages")).to_be_visible()


async def test_a_click_on_a_message_across_another_messages_change_still_lands(
    site: Site, browsers: Browsers
) -> None:
    """In a busy channel the history changes under the pointer: a Reply pressed on one
    message before another message is edited, and released after, still starts the
    reply (a history drawn anew at every change would have lost it). The edited message
    is above the pressed one, which so stays where it is."""
    alice = await browsers.logged_in(site.base, "alice")
    log = await open_channel(alice, "general")
    target = message(log, DEMO_GENERAL[2])
    await target.hover()
    actions = target.get_by_role("toolbar", name="Message actions")
    await press(actions.get_by_role("button", name="Reply"))
    async with api_as(site.base, "bob") as bob:
        page = await bob.get(f"/api/channels/{GENERAL}/messages?limit=50")
        his = next(m["id"] for m in page.json() if m["content"] == DEMO_GENERAL[1])
        got = await bob.patch(
            f"/api/channels/{GENERAL}/messages/{his}",
            json={"content": "Hey everyone! Who's up for a game today?"},
        )
        assert got.status_code == 200, got.text
    await expect(message(log, "a game today?")).to_contain_text("(edited)")
    await alice.mouse.up()
    await expect(alice.get_by_role("button", name="Cancel reply")).to_be_visible()


async def test_an_edit_keeps_what_was_typed_while_the_channel_moves(
    site: Site, browsers: Browsers
) -> None:
    """A message being edited keeps the text typed so far, and the focus, when other
    messages arrive and when the edited message itself is redrawn (a reaction to it)."""
    alice = await browsers.logged_in(site.base, "alice")
    log = await open_channel(alice, "general")
    async with api_as(site.base, "alice") as api:
        sent = await api.post(f"/api/channels/{GENERAL}/messages", json={"content": "first draft"})
        assert sent.status_code == 201, sent.text
        mine = sent.json()["id"]
    await act(message(log, "first draft"), "Edit")
    box = alice.get_by_role("textbox", name="Edit message")
    await box.fill("second dr")
    async with api_as(site.base, "bob") as bob:
        got = await bob.post(f"/api/channels/{GENERAL}/messages", json={"content": "meanwhile"})
        assert got.status_code == 201, got.text
        await expect(message(log, "meanwhile")).to_have_count(1)
        got = await bob.put(f"/api/channels/{GENERAL}/messages/{mine}/reactions/%F0%9F%8E%89/@me")
        assert got.status_code == 204, got.text
    edited = log.locator(f"#msg-{mine}")
    await expect(edited.get_by_role("button", name=re.compile("^🎉 1 reaction"))).to_be_visible()
    await expect(box).to_have_value("second dr")
    await expect_focused(box)
    await box.press_sequentially("aft")
    await box.press("Enter")
    await expect(message(log, "second draft")).to_contain_text("(edited)")


async def test_a_name_half_typed_in_add_friend_survives_a_redraw(
    site: Site, browsers: Browsers
) -> None:
    """The friends page is drawn again at every friend event and every presence: a name
    half typed into "Add friend" keeps its text and the focus across one (here Diana's
    request, which moves the Pending badge), and Enter sends what was typed."""
    alice = await browsers.logged_in(site.base, "alice")
    await alice.get_by_role("tab", name="Add friend").click()
    box = alice.get_by_role("textbox", name="Add a friend by their username")
    await box.fill("dia")
    async with api_as(site.base, "diana") as diana:
        got = await diana.post("/api/users/@me/friend-requests", json={"username": "alice"})
        assert got.status_code in (200, 201), got.text
    await expect(alice.get_by_role("tab", name="Pending")).to_have_text("Pending2")
    await expect(box).to_have_value("dia")
    await expect_focused(box)
    await box.press_sequentially("na")
    await box.press("Enter")
    await expect(alice.get_by_text("Friend request sent to diana")).to_be_visible()
    await expect(box).to_have_value("")


async def test_morph_keeps_the_same_control_only(site: Site, browsers: Browsers) -> None:
    """dom.morph, which the redraws use: an element drawn again as the same control (same
    tag and label) is kept and answers with its new handler; one drawn in its place for
    another action is a new element, so a press or the focus on the old one never goes
    to it; what the new drawing lacks is gone."""
    got = await in_client(
        site,
        browsers,
        """async () => {
          const { h, morph } = await import("/web/js/dom.js");
          const box = h("div");
          const calls = [];
          const draw = (tag, labels) => morph(box, labels.map((l) =>
            h("button", { "aria-label": l, class: tag, onclick: () => calls.push(`${tag} ${l}`) }, l)));
          draw("old", ["Settings", "Leave"]);
          const [settings, leave] = box.children;
          draw("new", ["Leave"]);
          const keptLeave = box.children[0] === leave;
          const firstIsNew = box.children[0] !== settings;
          draw("newer", ["Settings", "Leave"]);
          const keptSettings = box.children[0] === settings;
          const drawn = box.children[0];
          draw("again", ["Settings", "Leave"]);
          const keptSame = box.children[0] === drawn;
          box.children[0].click();
          return { keptLeave, firstIsNew, keptSettings, keptSame, calls,
                   count: box.children.length, cls: box.children[0].className };
        }""",
    )
    assert got == {
        "keptLeave": False,  # (drawn where Settings was: not the same control)
        "firstIsNew": True,
        "keptSettings": False,  # (Settings was replaced by Leave, then drawn anew)
        "keptSame": True,  # (the same control again: kept, with the new handler)
        "calls": ["again Settings"],
        "count": 2,
        "cls": "again",
    }


async def test_place_moves_no_element_it_keeps(site: Site, browsers: Browsers) -> None:
    """dom.place, which the history uses: elements kept from before stay where they are
    (none is taken out and put back, which would lose a press on it) when new ones come
    at either end or one between them goes; the children end as asked, in order."""
    got = await in_client(
        site,
        browsers,
        """async () => {
          const { h, place } = await import("/web/js/dom.js");
          const box = h("ol");
          const [a, b, c, d, e] = ["a", "b", "c", "d", "e"].map((x) => h("li", null, x));
          place(box, [b, c, d]);
          const removed = [];
          const watch = new MutationObserver((records) => {
            for (const r of records) removed.push(...[...r.removedNodes].map((n) => n.textContent));
          });
          watch.observe(box, { childList: true });
          place(box, [a, b, c, d, e]);  // one more at each end
          place(box, [a, b, d, e]);  // one from the middle
          await Promise.resolve();
          watch.disconnect();
          return { removed, order: [...box.children].map((n) => n.textContent).join("") };
        }""",
    )
    assert got == {"removed": ["c"], "order": "abde"}


async def test_a_channel_left_behind_holds_a_page_not_all_that_was_said(
    site: Site, browsers: Browsers
) -> None:
    """A tab left open in a busy server: the channels not on screen keep their newest page
    (50) and nothing more, however much arrives; one whose page is still loading keeps
    all (what arrives meanwhile joins it); the one on screen, scrolled up, stops at 200
    (store.js LIVE_WINDOW: it kept every message that came, without bound) and the rest
    wait to be scrolled to (tests/e2e/browser/test_browser_client_dos.py)."""
    got = await in_client(
        site,
        browsers,
        """async () => {
          const { Store } = await import("/web/js/store.js");
          const s = new Store();
          s.me = { id: "me" };
          const author = { id: "bob", username: "bob" };
          const msg = (ch, seq) => ({ id: `${ch}-${seq}`, channel_id: ch, seq, author,
                                      content: "hi", reactions: [], attachments: [],
                                      mentions: [], mention_roles: [] });
          const page = (ch, from, to) => {
            const list = [];
            for (let q = from; q <= to; q++) list.push(msg(ch, q));
            return list;
          };
          for (const ch of ["seen", "away", "loading"]) {
            s.timeline(ch).set(page(ch, 1, 50), { hasOlder: false, atEnd: true });
          }
          s.viewing = "seen";
          s.timeline("loading").loading = 1;
          for (let q = 51; q <= 1500; q++) {
            for (const ch of ["seen", "away", "loading"]) s.messageArrived(msg(ch, q));
          }
          const away = s.timeline("away");
          const loading = s.timeline("loading");
          loading.loading = 0;
          const sizes = (t) => [t.list.length, t.recent.size, t.list[0].seq, t.newest, t.hasOlder];
          const out = { seen: sizes(s.timeline("seen")), away: sizes(away), loading: sizes(loading) };
          s.messageArrived(msg("loading", 1501));
          out.loadedThenAway = sizes(loading);
          return out;
        }""",
    )
    assert got == {
        "seen": [200, 1000, 1, 200, False],
        "away": [50, 0, 1451, 1500, True],
        "loading": [1500, 1000, 1, 1500, False],
        "loadedThenAway": [50, 0, 1452, 1501, True],
    }


async def test_a_channel_deleted_while_read_says_it_was_deleted(
    site: Site, browsers: Browsers
) -> None:
    """Was: "You can no longer see #temp-room." for a channel that no longer is."""
    bob = await browsers.logged_in(site.base, "bob")
    async with api_as(site.base, "alice") as api:
        server_id = (await api.get(f"/api/channels/{GENERAL}")).json()["server_id"]
        made = await api.post(f"/api/servers/{server_id}/channels", json={"name": "temp-room"})
        assert made.status_code == 201, made.text
        await open_channel(bob, "temp-room")
        gone = await api.delete(f"/api/channels/{made.json()['id']}")
        assert gone.status_code == 204, gone.text
    await expect(bob.get_by_text("#temp-room was deleted.")).to_be_visible()
    await expect(bob.get_by_role("heading", level=1, name="temp-room", exact=True)).to_have_count(0)
