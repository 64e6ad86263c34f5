"""A small populated world for the hostile-input tests: one owner's server and group
conversation with messages, files, a reaction, a pin, a role, an invite and a pending
friend request; and the people who must learn nothing of it: a stranger (a user of
another server, in none of the owner's conversations), a member who was kicked, one who
left, and a participant removed from the group. And a member who sees #general, and may
moderate it, without READ_MESSAGE_HISTORY: they must learn nothing of its messages.

Everything is made through the API, as users would make it, on a real server."""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
from PIL import Image

from tests import factories
from tests.factories import MakeUser, TestUser
from xfchat.domain.permissions import Permission as P
from xfchat.settings import Settings


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (4, 4), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


PNG = _png()  # a valid image for avatars, icons and image attachments


# `xfchat serve` for these tests: no rate limit a run of every route can reach (every
# XFCHAT_RATE_* setting there is, so one added later is covered too).
LIMITS = {
    f"XFCHAT_{name.upper()}": "100000/60"
    for name in Settings.model_fields
    if name.startswith("rate_")
}


@dataclass
class World:
    owner: TestUser
    stranger: TestUser
    kicked: TestUser
    left: TestUser
    removed: TestUser
    # A member with MANAGE_MESSAGES who sees #general without READ_MESSAGE_HISTORY.
    forgetful: TestUser
    # Path parameter values, one set per place: the owner's server and its #general,
    # and the owner's group conversation.
    places: dict[str, dict[str, str]] = field(default_factory=dict)
    # What the hostile callers must never see in any answer.
    secrets: set[str] = field(default_factory=set)
    # Words to ask for: one of the owner's messages, the owner's username.
    words: dict[str, str] = field(default_factory=dict)

    @property
    def hostile(self) -> dict[str, TestUser]:
        return {
            "stranger": self.stranger,
            "kicked": self.kicked,
            "left": self.left,
            "removed": self.removed,
        }


async def _ok(response: httpx.Response, *statuses: int) -> Any:
    assert response.status_code in (statuses or (200, 201, 204)), response.text
    return response.json() if response.content else None


async def _attach(client: httpx.AsyncClient, who: TestUser, channel: str, text: str) -> Any:
    return await _ok(
        await client.post(
            f"/api/channels/{channel}/messages",
            headers=who.headers,
            data={"content": text},
            files=[("file", (f"{text}.png", PNG, "image/png"))],
        ),
        201,
    )


async def build(client: httpx.AsyncClient, make_user: MakeUser) -> World:
    """The world, on the server `client` talks to."""
    tag = uuid.uuid4().hex[:8]
    owner, friend = await make_user(f"owner{tag}"), await make_user(f"friend{tag}")
    stranger, kicked = await make_user(f"stranger{tag}"), await make_user(f"kicked{tag}")
    left, removed = await make_user(f"left{tag}"), await make_user(f"removed{tag}")
    forgetful = await make_user(f"forgetful{tag}")
    world = World(owner, stranger, kicked, left, removed, forgetful)
    h = owner.headers

    srv = await factories.community(
        client, owner, friend, kicked, left, forgetful, name=f"hush{tag}"
    )
    await factories.community(client, stranger, name=f"elsewhere{tag}")
    role = await factories.role(client, srv, owner, f"rank{tag}", 0, friend)
    await factories.role(client, srv, owner, f"mods{tag}", int(P.MANAGE_MESSAGES), forgetful)
    history = int(P.READ_MESSAGE_HISTORY)
    await _ok(
        await factories.override(client, owner, srv.general, "member", forgetful.id, deny=history)
    )
    said = await factories.say(client, owner, srv.general, f"whisper{tag} in the server")
    await _ok(
        await client.put(
            f"/api/channels/{srv.general}/messages/{said['id']}/reactions/%F0%9F%91%8D/@me",
            headers=h,
        )
    )
    await _ok(await client.put(f"/api/channels/{srv.general}/pins/{said['id']}", headers=h))
    hook = await _ok(
        await client.post(
            f"/api/channels/{srv.general}/webhooks", headers=h, json={"name": f"hook{tag}"}
        ),
        201,
    )
    filed = await _attach(client, owner, srv.general, f"plans{tag}")
    await _ok(await client.delete(srv.url(f"/members/{kicked.id}"), headers=h))
    await _ok(await client.delete(srv.url("/members/@me"), headers=left.headers))

    group = await factories.group(client, owner, friend, removed, name=f"cabal{tag}")
    talk = await factories.say(client, owner, group["id"], f"murmur{tag} in the group")
    group_file = await _attach(client, owner, group["id"], f"notes{tag}")
    await _ok(
        await client.delete(
            f"/api/conversations/{group['id']}/participants/{removed.id}", headers=h
        )
    )
    pal = await make_user(f"pal{tag}")  # (a group made the friend a friend already)
    asked = await _ok(
        await client.post(
            "/api/users/@me/friend-requests", headers=h, json={"username": pal.username}
        ),
        201,
    )
    own = {
        "user_id": str(owner.id),
        "session_id": str(owner.session_id),
        "request_id": str(asked["id"]),
        "emoji": "👍",
        "kind": "role",
    }
    world.places["server"] = {
        **own,
        "server_id": srv.id,
        "channel_id": srv.general,
        "message_id": str(said["id"]),
        "role_id": role,
        "target_id": role,
        "code": srv.invite,
        "attachment_id": str(filed["attachments"][0]["id"]),
        "webhook_id": hook["id"],
        "token": hook["token"],
    }
    world.places["conversation"] = {
        "user_id": str(owner.id),
        "conversation_id": str(group["id"]),
        "channel_id": str(group["id"]),
        "message_id": str(talk["id"]),
        "attachment_id": str(group_file["attachments"][0]["id"]),
    }
    world.words = {"word": f"whisper{tag}", "owner": owner.username, "owner_id": str(owner.id)}
    names = ("hush", "rank", "whisper", "plans", "cabal", "murmur", "notes", "hook")
    world.secrets = {f"{name}{tag}" for name in names} | {
        value
        for place in world.places.values()
        for key, value in place.items()
        if key.endswith("_id") and key != "user_id"  # a user's id is public
    }
    world.secrets |= {srv.invite, hook["token"]}
    return world
