"""The gateway's voice opcodes.

VOICE_STATE_UPDATE (4), client -> server: `{"channel_id": "<id>" | null, "self_mute",
"self_deaf", "self_video"}` (the flags default to false): join a voice channel or a
conversation's call (leaving the one you were in), change your own flags there, or leave
(null). The state belongs to this connection: it ends with it. A join answers with the
dispatch `voice.connected` `{state, voice_states, ice_servers, ice_expires_at,
ice_transport_policy}` (your state, everyone in the channel, whom you now call, and the
ICE servers and policy to call them with); every change reaches whoever may see the
channel as `voice.state_updated`.

VOICE_SIGNAL (12), client -> server: `{"to": "<user id>", "kind": "offer" | "answer" |
"candidate", "data": {...}}`: relayed to that person's voice connection as `voice.signal`
`{channel_id, from, kind, data}`, only while both of you are in the same channel.

A refused or failed op is answered with the dispatch `voice.error` `{op, code, message}`
(and `to` for a signal whose `to` is at most 38 characters, `retry_after` when rate
limited); the connection stays open.
Neither dispatch carries a resume token: they are not events of the log.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any
from uuid import UUID

from fastapi import WebSocket

from xfchat.db.pool import DATABASE_ERRORS
from xfchat.domain import voice, voice_signals
from xfchat.domain.accounts import Actor
from xfchat.domain.events import VOICE_CONNECTED, VOICE_ERROR, Stream
from xfchat.domain.ice import ice_servers
from xfchat.errors import BadRequest, XFChatError
from xfchat.realtime.subscriber import Delivery, Subscriber

log = logging.getLogger("xfchat.gateway")

VOICE_STATE_UPDATE, VOICE_SIGNAL = 4, 12
VOICE_OPS = (VOICE_STATE_UPDATE, VOICE_SIGNAL)
OP_TIMEOUT_S = 10.0
# A refused signal's error names its `to` when it is no longer than a user id written
# with braces (38): the error is for matching it with the signal, not an echo of a frame.
TO_ECHOED = 38
# Per user (all their connections to this process together: a user cannot multiply
# them by opening tabs): a burst, then a steady rate (a mesh of 8 sends ~80 signals on
# joining).
SIGNAL_BURST, SIGNAL_PER_S = 120, 30.0
STATE_BURST, STATE_PER_S = 10, 0.5


class Bucket:
    """A token bucket: `burst` at once, refilled at `per_s` a second."""

    def __init__(self, burst: int, per_s: float) -> None:
        self.burst, self.per_s = burst, per_s
        self.tokens = float(burst)
        self.at = time.monotonic()

    def take(self) -> float:
        """0 if allowed (a token is taken); else the seconds until one is free."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.per_s)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.per_s

    def refill_s(self, now: float) -> float:
        """The seconds from `now` until the bucket is full again."""
        tokens = min(self.burst, self.tokens + (now - self.at) * self.per_s)
        return (self.burst - tokens) / self.per_s


class UserBuckets:
    """Each user's signal and state-update buckets, shared by their connections to this
    process. A user's buckets outlive their last connection until they would have
    refilled: closing and reopening a connection gives no fresh burst. Kept only that
    long (released entries are pruned, oldest first, on each acquire and release), so
    memory stays bounded by the connections and the last REFILL_S seconds' releases."""

    def __init__(self) -> None:
        self.held: dict[UUID, tuple[Bucket, Bucket, int]] = {}
        # Released users, in order of release: their buckets, and when those are full.
        self.released: dict[UUID, tuple[Bucket, Bucket, float]] = {}

    def _prune(self, now: float) -> None:
        while self.released:
            user_id, (_, _, full_at) = next(iter(self.released.items()))
            if full_at > now:
                return
            del self.released[user_id]

    def acquire(self, user_id: UUID) -> tuple[Bucket, Bucket]:
        self._prune(time.monotonic())
        if user_id in self.held:
            signals, updates, users = self.held[user_id]
        elif user_id in self.released:
            signals, updates, _ = self.released.pop(user_id)
            users = 0
        else:
            signals, updates = Bucket(SIGNAL_BURST, SIGNAL_PER_S), Bucket(STATE_BURST, STATE_PER_S)
            users = 0
        self.held[user_id] = (signals, updates, users + 1)
        return signals, updates

    def release(self, user_id: UUID) -> None:
        signals, updates, users = self.held[user_id]
        if users > 1:
            self.held[user_id] = (signals, updates, users - 1)
            return
        del self.held[user_id]
        now = time.monotonic()
        full_at = max(now + signals.refill_s(now), now + updates.refill_s(now))
        self.released[user_id] = (signals, updates, full_at)
        self._prune(now)


def user_buckets(state: Any) -> UserBuckets:
    """The app's (one per process), made on first use."""
    buckets: UserBuckets | None = getattr(state, "voice_buckets", None)
    if buckets is None:
        buckets = state.voice_buckets = UserBuckets()
    return buckets


class VoiceOps:
    """The voice ops of one gateway connection (call `close` when it ends)."""

    def __init__(self, ws: WebSocket, actor: Actor, sub: Subscriber) -> None:
        self.state = ws.app.state
        self.actor = actor
        self.sub = sub
        self.signals, self.updates = user_buckets(self.state).acquire(actor.user_id)

    def close(self) -> None:
        user_buckets(self.state).release(self.actor.user_id)

    def _send(self, event_type: str, data: Any) -> None:
        """To this connection, in order with its events (through its subscription)."""
        self.sub.offer(Delivery(0, Stream.user(self.actor.user_id), 0, event_type, data))

    def _error(self, op: int, code: str, message: str, **extra: Any) -> None:
        self._send(VOICE_ERROR.name, {"op": op, "code": code, "message": message, **extra})

    async def handle(self, op: int, d: Any) -> None:
        extra: dict[str, Any] = {}
        to = d.get("to") if op == VOICE_SIGNAL and isinstance(d, dict) else None
        if isinstance(to, str) and len(to) <= TO_ECHOED:  # (a user id; never a frame back)
            extra["to"] = to
        wait = (self.signals if op == VOICE_SIGNAL else self.updates).take()
        if wait:
            self._error(op, "RATE_LIMITED", "too many voice ops", retry_after=wait, **extra)
            return
        try:
            async with asyncio.timeout(OP_TIMEOUT_S):
                if op == VOICE_STATE_UPDATE:
                    await self._update(d)
                else:
                    await self._signal(d)
        except XFChatError as exc:
            self._send(VOICE_ERROR.name, {"op": op, **exc.body(), **extra})
        except DATABASE_ERRORS as exc:
            log.warning("voice op %d failed: %s", op, exc)
            self._error(op, "DATABASE_UNAVAILABLE", "the database is unavailable", **extra)
        except Exception:  # a bug: say so, keep the connection
            log.exception("voice op %d failed", op)
            self._error(op, "INTERNAL_ERROR", "internal error", **extra)

    async def _update(self, d: Any) -> None:
        channel_id, flags = _parse_update(d)
        if self.sub.closed is not None:
            # Ended, and forgotten by the hub (which unmarks a connection only then): one
            # marked now would stay marked, and its state never be dropped, for as long
            # as the process runs. (The reader may still be taking frames it had read.)
            return
        presence = self.state.presence
        presence.voice_opened(self.sub.id)  # before the state exists (see realtime/presence.py)
        holder = voice.Holder(presence.process_id, self.sub.id)
        async with self.state.pool.acquire() as conn:
            joined = await voice.update_own_voice_state(
                conn, self.actor, holder, channel_id=channel_id, **flags
            )
        if joined is not None:
            ice = ice_servers(self.state.settings, self.actor.user_id)
            self._send(
                VOICE_CONNECTED.name,
                {
                    "state": joined.state,
                    "voice_states": joined.voice_states,
                    "ice_servers": ice["ice_servers"],
                    "ice_expires_at": ice["expires_at"],
                    "ice_transport_policy": ice["ice_transport_policy"],
                },
            )

    async def _signal(self, d: Any) -> None:
        to, kind, data = voice_signals.parse_signal(d)
        async with self.state.pool.acquire() as conn:
            await voice_signals.relay_signal(conn, self.actor, self.sub.id, to, kind, data)


def _invalid(message: str, field: str) -> BadRequest:
    return BadRequest(message, code="INVALID_VOICE_STATE", field=field)


def _parse_update(d: Any) -> tuple[UUID | None, dict[str, bool]]:
    if not isinstance(d, dict) or "channel_id" not in d:
        raise _invalid("a voice state is {channel_id, self_mute, self_deaf, self_video}", "d")
    raw = d["channel_id"]
    try:  # (a string only: see domain/voice_signals.py's `to`)
        channel_id = None if raw is None else UUID(raw if isinstance(raw, str) else "")
    except ValueError:
        raise _invalid("channel_id is a channel id or null", "channel_id") from None
    flags = {}
    for name in ("self_mute", "self_deaf", "self_video"):
        value = d.get(name, False)
        if not isinstance(value, bool):
            raise _invalid(f"{name} is true or false", name)
        flags[name] = value
    return channel_id, flags
