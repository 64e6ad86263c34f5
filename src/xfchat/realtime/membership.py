"""How a subscription follows the user's world as it changes: joining a conversation
adds its stream; being removed from one drops it at exactly its `participant.removed`
event in that conversation's own stream (not at `conversation.removed` in the user's
stream, which may be handled earlier): everything before the removal is delivered,
nothing after it. A revoked session ends its connections."""

from __future__ import annotations

from uuid import UUID

from xfchat.realtime.events import Stream, StreamKind
from xfchat.realtime.subscriber import Delivery, Subscriber

JOINED = frozenset({"conversation.created", "conversation.added"})


def react(sub: Subscriber, d: Delivery) -> None:
    data = d.data if isinstance(d.data, dict) else {}
    if d.stream.kind is StreamKind.USER and d.stream.entity_id == sub.user_id:
        if d.type in JOINED:
            sub.follow(Stream.channel(UUID(data["id"])), data.get("stream_pos"))
        elif d.type == "session.revoked" and data.get("session_id") == str(sub.session_id):
            sub.close("session_revoked")
    elif (
        d.stream.kind is StreamKind.CHANNEL
        and d.type == "participant.removed"
        and data.get("user_id") == str(sub.user_id)
    ):
        sub.unfollow(d.stream)
        rejoin = sub.rejoined.pop(d.stream, None)
        if rejoin is not None and d.pos is not None and rejoin >= d.pos:
            sub.follow(d.stream, rejoin)  # back in later: from the rejoin, not before
