"""What one connection may see, as it changes: the streams it follows, event by event.

A connection follows its user's own stream, the channels the user may see and the
streams of the servers the user is a member of. Access changes are events of the user's
own stream (domain/events.py marks them: `conversation.created` grants a channel,
`server.joined` a server and its visible channels, `channel.hidden` revokes one, ...),
so they have their exact place in the log. Every event is judged by the state at its
own place: a channel's or a server's events are delivered only while it is followed.
Live delivery (the hub) and a resume (the subscriber's replay) apply the same rules to
the same sequence, so they hand over exactly the same events.

A resume from an earlier place starts from the streams followed *then*: the current
ones with the changes since undone, newest first (`rewind`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID

from xfchat.domain.events import AccessChange, Stream, StreamKind, access_changes

Change = tuple[AccessChange, Stream]


class Follows:
    def __init__(
        self,
        user_id: UUID,
        channels: Iterable[UUID],
        only: UUID | None = None,
        servers: Iterable[UUID] = (),
    ) -> None:
        self.user = Stream.user(user_id)
        # Follow this one channel at most (a Braid subscription), as long as its history
        # may be read: no server streams.
        self.only = only
        self.followed: set[Stream] = {
            Stream.channel(c) for c in channels if only is None or c == only
        }
        if only is None:
            self.followed.update(Stream.server(s) for s in servers)
        # The one channel was taken away (`only`): the subscription ends at that place,
        # and a grant after it does not bring the channel back (what was said meanwhile,
        # while the user could not see it, must not follow).
        self.lost = False

    @property
    def channels(self) -> set[UUID]:
        return {s.entity_id for s in self.followed if s.kind is StreamKind.CHANNEL}

    def streams(self) -> list[Stream]:
        return [self.user, *self.followed]

    def _mine(self, event_type: str, data: Any) -> list[Change]:
        changes = access_changes(event_type, data)
        if self.only is None:  # (the feeds follow what may be seen, history or not)
            return [c for c in changes if c[0] is not AccessChange.REVOKE_HISTORY]
        # A channel's history subscription ends when its history may not be read.
        return [
            (AccessChange.REVOKE if kind is AccessChange.REVOKE_HISTORY else kind, target)
            for kind, target in changes
            if target == Stream.channel(self.only)
        ]

    def apply(self, stream: Stream, event_type: str, data: Any) -> tuple[bool, list[Change]]:
        """Whether the event at this place is visible, and the changes of followed
        streams it makes (already applied)."""
        if stream != self.user:
            return stream in self.followed, []
        made: list[Change] = []
        for kind, target in self._mine(event_type, data):
            if kind is AccessChange.GRANT:
                if target not in self.followed and not self.lost:
                    self.followed.add(target)
                    made.append((kind, target))
            elif target in self.followed:
                self.followed.discard(target)
                made.append((kind, target))
                self.lost = self.only is not None
        return True, made

    def granted_by(self, changes: Iterable[tuple[str, Any]]) -> set[Stream]:
        """The streams these changes grant (whose events may have to be read)."""
        return {
            target
            for event_type, data in changes
            for kind, target in self._mine(event_type, data)
            if kind is AccessChange.GRANT
        }

    def rewind(self, changes: Iterable[tuple[str, Any]]) -> set[Stream]:
        """Undo these changes (user-stream events, oldest first) to get back to before
        them; returns the streams they grant (their events may follow)."""
        granted: set[Stream] = set()
        for event_type, data in reversed(list(changes)):
            for kind, target in reversed(self._mine(event_type, data)):
                if kind is AccessChange.GRANT:
                    self.followed.discard(target)
                    granted.add(target)
                else:
                    self.followed.add(target)
        return granted
