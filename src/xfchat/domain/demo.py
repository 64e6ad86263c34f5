"""Demo data (seed 004): five users, the "Gaming Squad" server, a DM, a friend request.

Loaded by `xfchat seed` and by `xfchat dev` on its first run. Everyone's password is
`password123` (argon2id-hashed like any other).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from uuid import UUID

import asyncpg

from xfchat.db.queries import channels as channels_q
from xfchat.db.queries import friends as friends_q
from xfchat.db.queries import locks
from xfchat.db.queries import messages as messages_q
from xfchat.db.queries import roles as roles_q
from xfchat.db.queries import servers as servers_q
from xfchat.db.queries import users as users_q
from xfchat.domain.passwords import hash_password_async
from xfchat.domain.permissions import EVERYONE_DEFAULT, MODERATOR_DEFAULT, Permission

DEMO_PASSWORD = "password123"  # noqa: S105 - documented demo credential
DEMO_SERVER_ID = UUID("00000000-0000-0000-0000-000000000100")
DEMO_USERS = ("alice", "bob", "charlie", "diana", "eve")
# Fixed ids make the demo easy to point at (and documentable).
USER_IDS = {name: UUID(f"00000000-0000-0000-0000-{i:012d}") for i, name in enumerate(DEMO_USERS, 1)}
_LOCK_KEY = 0x5EED_DE30


class AlreadySeeded(Exception):
    pass


@dataclass(frozen=True)
class DemoSummary:
    users: int
    channels: int
    roles: int
    messages: int


def _uid(n: int) -> UUID:
    return UUID(f"00000000-0000-0000-0000-{n:012d}")


async def is_seeded(conn: asyncpg.Connection) -> bool:
    return await servers_q.get_server(conn, server_id=DEMO_SERVER_ID) is not None


async def seed_demo(conn: asyncpg.Connection) -> DemoSummary:
    """Load the demo data in one transaction.

    Raises:
        AlreadySeeded: the demo server or one of the demo usernames already exists.
    """
    hashes = await asyncio.gather(*(hash_password_async(DEMO_PASSWORD) for _ in DEMO_USERS))
    async with conn.transaction():
        await locks.lock_transaction(conn, key=_LOCK_KEY)
        if await is_seeded(conn):
            raise AlreadySeeded("the demo data is already in this database")
        for name in DEMO_USERS:
            if await users_q.get_user_by_username(conn, username=name) is not None:
                raise AlreadySeeded(f"a user named {name!r} already exists in this database")
        return await _insert_all(conn, list(hashes))


async def _insert_all(conn: asyncpg.Connection, hashes: list[str]) -> DemoSummary:
    u = USER_IDS
    for name, pw_hash in zip(DEMO_USERS, hashes, strict=True):
        await users_q.insert_user(
            conn,
            user_id=u[name],
            username=name,
            email=f"{name}@example.com",
            email_key=f"{name}@example.com",
            password_hash=pw_hash,
            display_name=name.capitalize(),
        )
    sid = DEMO_SERVER_ID
    await servers_q.insert_server(
        conn,
        server_id=sid,
        name="Gaming Squad",
        owner_id=u["alice"],
        description="Demo server: games, memes and voice nights",
    )
    for name in DEMO_USERS:
        await servers_q.insert_server_member(conn, server_id=sid, user_id=u[name])
    role_ids = await _insert_roles(conn, sid)
    channel_ids = await _insert_channels(conn, sid, role_ids)
    said = await _insert_general_chat(conn, channel_ids["general"])
    said += await _insert_direct_chat(conn)
    await friends_q.insert_friendship(conn, user_a=u["alice"], user_b=u["bob"])
    await friends_q.insert_friendship(conn, user_a=u["alice"], user_b=u["charlie"])
    await friends_q.insert_friend_request(conn, from_user_id=u["eve"], to_user_id=u["alice"])
    return DemoSummary(
        users=len(DEMO_USERS),
        channels=len(channel_ids) + 1,  # (and the direct conversation)
        roles=len(role_ids),
        messages=said,
    )


async def _insert_roles(conn: asyncpg.Connection, sid: UUID) -> dict[str, UUID]:
    """The server's roles, and each demo user's: role ids by name."""
    roles = [
        ("@everyone", EVERYONE_DEFAULT, 0, 0, True),
        ("Member", EVERYONE_DEFAULT, 1, 0x2ECC71, False),
        ("Moderator", MODERATOR_DEFAULT, 2, 0x3498DB, False),
        ("Admin", Permission.ADMINISTRATOR, 3, 0xE74C3C, False),
    ]
    role_ids = {}
    for i, (name, perms, position, color, is_default) in enumerate(roles):
        role = await roles_q.insert_role(
            conn,
            role_id=_uid(200 + i),
            server_id=sid,
            name=name,
            permissions=int(perms),
            position=position,
            color=color,
            hoist=not is_default,
            is_default=is_default,
        )
        role_ids[name] = role.id
    for user, role_name in [
        ("alice", "Admin"),
        ("bob", "Moderator"),
        ("charlie", "Member"),
        ("diana", "Member"),
        ("eve", "Member"),
    ]:
        await roles_q.insert_member_role(
            conn, server_id=sid, user_id=USER_IDS[user], role_id=role_ids[role_name]
        )
    return role_ids


async def _insert_channels(
    conn: asyncpg.Connection, sid: UUID, role_ids: dict[str, UUID]
) -> dict[str, UUID]:
    """The server's categories and channels, with their overrides: ids by name."""
    text = ["general", "announcements", "gaming", "mod-lounge"]
    voice = ["General Voice", "Gaming Voice", "AFK"]
    channel_ids = {}
    for i, name in enumerate(("Text Channels", "Voice Channels")):
        cat = await channels_q.insert_channel(
            conn, channel_id=_uid(121 + i), server_id=sid, kind="category", name=name, position=i
        )
        channel_ids[name] = cat.id
    for kind, names, category, first_id in (
        ("text", text, "Text Channels", 101),
        ("voice", voice, "Voice Channels", 111),
    ):
        for i, name in enumerate(names):
            ch = await channels_q.insert_channel(
                conn,
                channel_id=_uid(first_id + i),
                server_id=sid,
                kind=kind,
                name=name,
                position=i,
                parent_id=channel_ids[category],
            )
            channel_ids[name] = ch.id
    # Moderators (and the owner and admins) only; announcements are read-only for the
    # rest.
    view, send = int(Permission.VIEW_CHANNEL), int(Permission.SEND_MESSAGES)
    for channel, role_name, allow, deny in (
        ("mod-lounge", "@everyone", 0, view),
        ("mod-lounge", "Moderator", view, 0),
        ("announcements", "@everyone", 0, send),
        ("announcements", "Moderator", send, 0),
    ):
        await servers_q.upsert_permission_override(
            conn,
            channel_id=channel_ids[channel],
            role_id=role_ids[role_name],
            allow=allow,
            deny=deny,
        )
    return channel_ids


async def _insert_general_chat(conn: asyncpg.Connection, general: UUID) -> int:
    """#general's first lines and their reactions: how many messages."""
    lines = [
        ("alice", "Welcome to Gaming Squad! Say hi 👋"),
        ("bob", "Hey everyone! Who's up for a game tonight?"),
        ("charlie", "I'm in. What are we playing?"),
        ("diana", "Count me in too 🙌"),
        ("alice", "Let's meet in General Voice at 9."),
        ("eve", "Sounds good, see you there!"),
    ]
    msg_ids = []
    for i, (author, content) in enumerate(lines):
        msg = await messages_q.insert_message(
            conn,
            message_id=_uid(1001 + i),
            channel_id=general,
            author_id=USER_IDS[author],
            content=content,
        )
        msg_ids.append(msg.id)
    for index, user, emoji in [
        (0, "bob", "👋"),
        (0, "charlie", "👋"),
        (1, "charlie", "👍"),
        (1, "diana", "👍"),
        (5, "alice", "🎉"),
    ]:
        await messages_q.insert_reaction(
            conn, message_id=msg_ids[index], user_id=USER_IDS[user], emoji=emoji
        )
    return len(lines)


async def _insert_direct_chat(conn: asyncpg.Connection) -> int:
    """Alice and Bob's direct conversation: how many messages."""
    u = USER_IDS
    dm = await channels_q.insert_channel(
        conn, channel_id=_uid(301), kind="direct", dm_pair=(u["alice"], u["bob"])
    )
    for name in ("alice", "bob"):
        await channels_q.insert_conversation_participant(conn, channel_id=dm.id, user_id=u[name])
    lines = [("alice", "Hey Bob, ready for tonight?"), ("bob", "Always. I'll bring snacks.")]
    for i, (author, content) in enumerate(lines):
        await messages_q.insert_message(
            conn, message_id=_uid(2001 + i), channel_id=dm.id, author_id=u[author], content=content
        )
    return len(lines)
