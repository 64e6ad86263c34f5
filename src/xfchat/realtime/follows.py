"""What one connection may see, as it changes: the channels it follows, event by event.

Access changes are events of the user's own stream (domain/events.py marks them:
`conversation.created` and `conversation.added` grant a channel, `conversation.removed`
revokes it), so they have their exact place in the log. Every event is judged by the
state at its own place: a channel's events are delivered only while the channel is
followed. Live delivery (the hub) and a resume (the subscriber's replay) apply the same
rules to the same sequence, so they hand over exactly the same events.

A resume from an earlier place starts from the channels followed *then*: the current
ones with the changes since undone, newest first (`rewind`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID

from xfchat.domain.events import ACCESS_CHANGES, AccessChange, Stream, StreamKind


def _change(event_type: str, data: Any) -> tuple[AccessChange, UUID] | None:
    change = ACCESS_CHANGES.get(event_type)
    if change is None or not isinstance(data, dict):
        return None
    try:
        return change, UUID(str(data["id"]))
    except (KeyError, ValueError):
        return None


class Follows:
    def __init__(self, user_id: UUID, channels: Iterable[UUID], only: UUID | None = None) -> None:
        self.user = Stream.user(user_id)
        self.only = only  # follow this one channel at most (a Braid subscription)
        self.channels = {c for c in channels if only is None or c == only}

    def streams(self) -> list[Stream]:
        return [self.user, *(Stream.channel(c) for c in self.channels)]

    def sees(self, stream: Stream) -> bool:
        if stream.kind is StreamKind.CHANNEL:
            return stream.entity_id in self.channels
        return stream == self.user

    def apply(
        self, stream: Stream, event_type: str, data: Any
    ) -> tuple[bool, tuple[AccessChange, UUID] | None]:
        """Whether the event at this place is visible, and the change of followed
        channels it makes (already applied), if any."""
        if stream != self.user:
            return self.sees(stream), None
        change = _change(event_type, data)
        if change is None or (self.only is not None and change[1] != self.only):
            return True, None
        kind, channel = change
        if kind is AccessChange.GRANT:
            if channel in self.channels:
                return True, None
            self.channels.add(channel)
        else:
            if channel not in self.channels:
                return True, None
            self.channels.discard(channel)
        return True, change

    def granted_by(self, changes: Iterable[tuple[str, Any]]) -> set[UUID]:
        """The channels these changes grant (whose events may have to be read)."""
        out: set[UUID] = set()
        for event_type, data in changes:
            change = _change(event_type, data)
            if change is not None and change[0] is AccessChange.GRANT:
                if self.only is None or change[1] == self.only:
                    out.add(change[1])
        return out

    def rewind(self, changes: Iterable[tuple[str, Any]]) -> set[UUID]:
        """Undo these changes (user-stream events, oldest first) to get back to before
        them; returns the channels they grant (their events may follow)."""
        granted: set[UUID] = set()
        for event_type, data in reversed(list(changes)):
            change = _change(event_type, data)
            if change is None or (self.only is not None and change[1] != self.only):
                continue
            kind, channel = change
            if kind is AccessChange.GRANT:
                self.channels.discard(channel)
                granted.add(channel)
            else:
                self.channels.add(channel)
        return granted
