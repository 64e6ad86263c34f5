"""How a subscription follows the user's world as it changes: joining a conversation
adds its stream, being removed from one drops it (at exactly that point of its stream,
so nothing after the removal reaches the removed user), and a revoked session ends its
connections."""

from __future__ import annotations

from uuid import UUID

from xfchat.realtime.events import Stream, StreamKind
from xfchat.realtime.hub import Delivery, Subscriber

JOINED = frozenset({"conversation.created", "conversation.added"})


def react(sub: Subscriber, d: Delivery) -> None:
    data = d.data if isinstance(d.data, dict) else {}
    if d.stream.kind is StreamKind.USER and d.stream.entity_id == sub.user_id:
        if d.type in JOINED:
            sub.follow(Stream.channel(UUID(data["id"])), data.get("stream_pos"))
        elif d.type == "conversation.removed":
            sub.unfollow(Stream.channel(UUID(data["id"])))
        elif d.type == "session.revoked" and data.get("session_id") == str(sub.session_id):
            sub.close("session_revoked")
    elif (
        d.stream.kind is StreamKind.CHANNEL
        and d.type == "participant.removed"
        and data.get("user_id") == str(sub.user_id)
    ):
        sub.unfollow(d.stream)
