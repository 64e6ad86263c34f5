"""Test data built through the domain functions, as users would create it."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from uuid import UUID

import asyncpg
import httpx

from xfchat.db.queries import users as users_q
from xfchat.domain import accounts
from xfchat.domain import login as sign_in
from xfchat.domain.accounts import Actor, ClientInfo
from xfchat.settings import Settings

PASSWORD = "correct horse battery staple"
_counter = itertools.count(1)


@dataclass
class TestUser:
    __test__ = False  # not a pytest test class

    id: UUID
    username: str
    email: str
    password: str
    access_token: str
    refresh_token: str
    session_id: UUID
    # The test database's pool (for befriend); not part of the user's identity.
    pool: asyncpg.Pool | None = field(default=None, compare=False, repr=False)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}

    @property
    def actor(self) -> Actor:
        return Actor(self.id, self.session_id)


MakeUser = Callable[..., Awaitable[TestUser]]  # the make_user fixture
AppWith = Callable[..., Awaitable[httpx.AsyncClient]]  # the app_with fixture


async def user(
    pool: asyncpg.Pool, settings: Settings, username: str | None = None, **kwargs: Any
) -> TestUser:
    name = username or f"user{next(_counter)}"
    email = kwargs.pop("email", f"{name}@example.com")
    password = kwargs.pop("password", PASSWORD)
    issued = await accounts.register(
        pool,
        settings,
        username=name,
        email=email,
        password=password,
        display_name=kwargs.pop("display_name", None),
        client=ClientInfo(
            ip=kwargs.pop("ip", "127.0.0.1"), user_agent=kwargs.pop("user_agent", "pytest")
        ),
    )
    return TestUser(
        issued.user.id,
        name,
        email,
        password,
        issued.access_token,
        issued.refresh_token,
        issued.session_id,
        pool,
    )


async def login(
    pool: asyncpg.Pool,
    settings: Settings,
    who: TestUser,
    *,
    user_agent: str = "pytest",
    ip: str = "127.0.0.1",
) -> TestUser:
    """Another session (another device) for the same user."""
    target = await sign_in.find_account(pool, settings, login=who.username, ip=ip)
    issued = await sign_in.log_in(
        pool,
        settings,
        target=target,
        password=who.password,
        client=ClientInfo(ip=ip, user_agent=user_agent),
    )
    assert isinstance(issued, accounts.IssuedTokens)  # (no two-factor sign-in here)
    return TestUser(
        who.id,
        who.username,
        who.email,
        who.password,
        issued.access_token,
        issued.refresh_token,
        issued.session_id,
        pool,
    )


async def more_sessions(
    pool: asyncpg.Pool, settings: Settings, who: TestUser, count: int
) -> list[accounts.IssuedTokens]:
    """`count` more sessions of `who`, one login after another (start_session, as a
    login with the right password ends: without the argon2 work of each)."""
    issued = []
    for i in range(count):
        async with pool.acquire() as conn, conn.transaction():
            user = await users_q.get_user(conn, user_id=who.id)
            assert user is not None
            client = ClientInfo(ip="127.0.0.1", user_agent=f"Device/{i}")
            issued.append(await accounts.start_session(conn, settings, user, client))
    return issued


async def events_of(
    conn: asyncpg.Connection, kind: str, entity_id: UUID
) -> list[tuple[str, dict[str, Any]]]:
    """(type, data) of every event in one stream, in order."""
    rows = await conn.fetch(
        "SELECT e.type, e.data FROM events e JOIN event_streams s ON s.id = e.stream_id "
        "WHERE s.kind = $1 AND s.entity_id = $2 ORDER BY e.pos",
        kind,
        entity_id,
    )
    return [(r["type"], r["data"]) for r in rows]


async def befriend(user: TestUser, *others: TestUser) -> None:
    """Make `user` friends with each of `others` (a group takes only its adder's friends),
    without the request and accept (which would also open their direct conversation and
    emit events the tests do not expect): the query function, as `server` does."""
    from xfchat.db.queries import friends as friends_q

    assert user.pool is not None, "a user made by the make_user fixture"
    async with user.pool.acquire() as conn:
        for other in others:
            await friends_q.insert_friendship(conn, user_a=user.id, user_b=other.id)


async def group(
    client: Any, owner: TestUser, *members: TestUser, name: str | None = "crew"
) -> dict[str, Any]:
    """A group of `owner`'s (befriended with each member first)."""
    await befriend(owner, *members)
    response = await client.post(
        "/api/conversations",
        headers=owner.headers,
        json={"kind": "group", "name": name, "participant_ids": [str(m.id) for m in members]},
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def direct(client: Any, a: TestUser, b: TestUser) -> dict[str, Any]:
    response = await client.post(
        "/api/conversations", headers=a.headers, json={"kind": "direct", "user_id": str(b.id)}
    )
    assert response.status_code in (200, 201), response.text
    return dict(response.json())


async def send_message(
    client: httpx.AsyncClient,
    who: TestUser,
    conversation_id: str,
    content: str,
    *,
    message_id: str | None = None,
    **extra: Any,
) -> httpx.Response:
    """The raw answer to a send: PUT with the client's id when one is given, else POST."""
    url = f"/api/channels/{conversation_id}/messages"
    body = {"content": content, **extra}
    if message_id is None:
        return await client.post(url, headers=who.headers, json=body)
    return await client.put(f"{url}/{message_id}", headers=who.headers, json=body)


async def say(
    client: httpx.AsyncClient,
    who: TestUser,
    conversation_id: str,
    content: str,
    *,
    message_id: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Send a new message (PUT when an id is given) and return it; anything but 201 fails."""
    response = await send_message(
        client, who, conversation_id, content, message_id=message_id, **extra
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def pair(
    client: Any, make_user: MakeUser, kind: Literal["direct", "group"] = "direct"
) -> tuple[TestUser, TestUser, str]:
    """ann and ben, and a conversation of theirs (ann opened it)."""
    ann, ben = await make_user("ann"), await make_user("ben")
    made = await (direct(client, ann, ben) if kind == "direct" else group(client, ann, ben))
    return ann, ben, str(made["id"])


@dataclass
class TestServer:
    __test__ = False

    id: UUID
    everyone_role: UUID
    channels: dict[str, UUID]  # by name


async def server(
    pool: asyncpg.Pool,
    owner: TestUser,
    *members: TestUser,
    text: tuple[str, ...] = ("general",),
    voice: tuple[str, ...] = (),
) -> TestServer:
    """A server with an @everyone role of the default permissions, text and voice
    channels, and these members. (Made with the query functions until the servers
    issue brings their domain functions.)"""
    from xfchat.db.queries import channels as channels_q
    from xfchat.db.queries import roles as roles_q
    from xfchat.db.queries import servers as servers_q
    from xfchat.domain.permissions import EVERYONE_DEFAULT

    async with pool.acquire() as conn, conn.transaction():
        row = await servers_q.insert_server(conn, name="srv", owner_id=owner.id)
        everyone = await roles_q.insert_role(
            conn,
            server_id=row.id,
            name="@everyone",
            permissions=int(EVERYONE_DEFAULT),
            position=0,
            is_default=True,
        )
        for who in (owner, *members):
            await servers_q.insert_server_member(conn, server_id=row.id, user_id=who.id)
        made = {}
        for kind, names in (("text", text), ("voice", voice)):
            for i, name in enumerate(names):
                channel = await channels_q.insert_channel(
                    conn, server_id=row.id, kind=kind, name=name, position=i
                )
                made[name] = channel.id
    return TestServer(row.id, everyone.id, made)


async def lock_waiters(pool: asyncpg.Pool, at_least: int = 1, timeout: float = 10) -> None:
    """Wait until `at_least` sessions of this database wait for a lock (so a test knows,
    rather than guesses after a sleep, that a statement is blocked). It polls from a task
    of its own, so a test that holds connections may call it."""
    import asyncio

    async def poll() -> None:
        while True:
            async with pool.acquire() as conn:
                waiting = await conn.fetchval(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            if waiting >= at_least:
                return
            await asyncio.sleep(0.01)

    await asyncio.wait_for(asyncio.create_task(poll()), timeout)


@dataclass
class Community:
    """A server made through the API, with its members joined by invite."""

    __test__ = False

    id: str
    everyone_role: str
    general: str  # the #general channel's id
    invite: str  # an invite code with no limits

    def url(self, path: str = "") -> str:
        return f"/api/servers/{self.id}{path}"


async def community(
    client: Any, owner: TestUser, *members: TestUser, name: str = "srv"
) -> Community:
    made = await client.post("/api/servers", headers=owner.headers, json={"name": name})
    assert made.status_code == 201, made.text
    body = made.json()
    invite = await client.post(
        f"/api/servers/{body['id']}/invites",
        headers=owner.headers,
        json={"max_uses": None, "max_age_s": None},
    )
    assert invite.status_code == 201, invite.text
    code = invite.json()["code"]
    for who in members:
        joined = await client.post(f"/api/invites/{code}", headers=who.headers)
        assert joined.status_code == 201, joined.text
    everyone = next(r["id"] for r in body["roles"] if r["is_default"])
    general = next(c["id"] for c in body["channels"] if c["name"] == "general")
    return Community(body["id"], everyone, general, code)


async def role(
    client: Any, srv: Community, actor: TestUser, name: str, permissions: int, *holders: TestUser
) -> str:
    """A role with these permissions, given to `holders`."""
    made = await client.post(
        srv.url("/roles"),
        headers=actor.headers,
        json={"name": name, "permissions": str(permissions)},
    )
    assert made.status_code == 201, made.text
    role_id = str(made.json()["id"])
    for who in holders:
        given = await client.put(
            srv.url(f"/members/{who.id}/roles/{role_id}"), headers=actor.headers
        )
        assert given.status_code == 204, given.text
    return role_id


async def server_channel(
    client: Any, srv: Community, who: TestUser, name: str, **fields: Any
) -> dict[str, Any]:
    """A channel of the server, made through the API."""
    made = await client.post(
        srv.url("/channels"), headers=who.headers, json={"name": name, **fields}
    )
    assert made.status_code == 201, made.text
    return dict(made.json())


async def override(
    client: Any,
    who: TestUser,
    channel: str,
    kind: str,
    target: object,
    allow: int = 0,
    deny: int = 0,
) -> Any:
    """Set a channel's override for a role or a member; the response."""
    return await client.put(
        f"/api/channels/{channel}/overrides/{kind}/{target}",
        headers=who.headers,
        json={"allow": str(allow), "deny": str(deny)},
    )


async def voice_join(
    pool: asyncpg.Pool,
    who: TestUser,
    channel_id: object,
    *,
    holder: Any = None,
    self_mute: bool = False,
    self_deaf: bool = False,
) -> Any:
    """Join a voice channel (or a call; None leaves) as a gateway connection would (by
    default a connection of its own on a process of its own); what the domain returns."""
    import uuid

    from xfchat.domain import voice

    holder = holder or voice.Holder(uuid.uuid4(), uuid.uuid4())
    async with pool.acquire() as conn:
        return await voice.update_own_voice_state(
            conn,
            who.actor,
            holder,
            channel_id=None if channel_id is None else UUID(str(channel_id)),
            self_mute=self_mute,
            self_deaf=self_deaf,
            self_video=False,
        )


async def voice_refusal(pool: asyncpg.Pool, who: TestUser, channel: object) -> tuple[int, str]:
    """The status and code with which `who` joining `channel` (voice_join) is refused."""
    from xfchat.errors import XFChatError

    try:
        await voice_join(pool, who, channel)
    except XFChatError as refused:
        return refused.status, refused.code
    raise AssertionError(f"{who.username} joined {channel}")


async def in_voice(client: httpx.AsyncClient, who: TestUser, channel: object) -> list[str]:
    """Who is in the voice channel, as `who` is shown it."""
    got = await client.get(f"/api/channels/{channel}/voice-states", headers=who.headers)
    assert got.status_code == 200, got.text
    return [s["user_id"] for s in got.json()]


async def pages(client: Any, url: str, headers: dict[str, str]) -> list[httpx.Response]:
    """Every page of a paged list, following `Link: <...>; rel="next"` while
    `X-Has-More` says there is more."""
    got = [await client.get(url, headers=headers)]
    while got[-1].headers["x-has-more"] == "true":
        assert len(got) < 1000, "a list that never ends"
        got.append(await client.get(got[-1].links["next"]["url"], headers=headers))
    assert all(r.status_code == 200 for r in got), [r.text for r in got]
    assert "link" not in got[-1].headers
    return got


def located_photo(size: tuple[int, int]) -> tuple[Any, Any, bytes]:
    """A photo as a phone takes it: left red, right blue, EXIF saying it is shown turned
    90 degrees clockwise, a camera make ("SpyCam") and a GPS position, and an sRGB
    profile: (the image, its EXIF, the ICC profile), to save as a test needs."""
    from PIL import ExifTags, Image, ImageCms

    width, height = size
    image = Image.new("RGB", size, (255, 0, 0))
    image.paste((0, 0, 255), (width // 2, 0, width, height))
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    exif[ExifTags.Base.Make] = "SpyCam"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (48.0, 51.0, 29.0)
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    return image, exif, icc
