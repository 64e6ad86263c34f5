"""Muting a channel, a conversation or a server, as Discord does: a muted target's
unread messages are not shown as unread (nor do they light its server's dot), its
mentions of you still are. Only your own clients change what they show: the server
counts `unread` and `mention_count` as ever, and tells your sessions what is muted
(`ready`'s `mutes`, `mute.updated`, `mute.removed`).

A mute lasts until a time (at most MAX_AHEAD from now) or until unmuted; one whose
time has passed is no mute (the reads filter by time; each change deletes your ended
ones, the retention job everyone's). A user holds at most MAX_MUTES in force. What
you may mute is what you may see (domain/access.py): a target you may not see is the
same 404 as one that does not exist."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

import asyncpg

from xfchat.db.queries import mutes as q
from xfchat.domain.accounts import Actor
from xfchat.domain.event_payloads import MutePayload
from xfchat.domain.events import MUTE_REMOVED, MUTE_UPDATED, emit
from xfchat.domain.user_targets import TargetKind, kind_of, lock_user, resolve_target
from xfchat.errors import BadRequest

MAX_MUTES = 1000
MAX_AHEAD = timedelta(days=30)
MuteKind = TargetKind


def mute_json(row: q.MuteRow) -> MutePayload:
    until = row.muted_until.isoformat() if row.muted_until is not None else None
    return {"kind": kind_of(row.kind), "id": str(row.target_id), "until": until}


async def list_mutes(conn: asyncpg.Connection, actor: Actor) -> list[MutePayload]:
    """The actor's mutes in force (at most MAX_MUTES), in the order last set."""
    return [mute_json(r) for r in await q.list_mutes(conn, user_id=actor.user_id)]


def _until(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise BadRequest("until is a time with a zone", code="INVALID_MUTE_UNTIL", field="until")
    now = datetime.now(UTC)
    if not now < value <= now + MAX_AHEAD:
        raise BadRequest(
            f"a mute ends in the future, at most {MAX_AHEAD.days} days from now"
            " (null: until you unmute)",
            code="INVALID_MUTE_UNTIL",
            field="until",
        )
    return value


def _cannot_mute() -> BadRequest:
    return BadRequest(
        "only text channels and conversations are muted (or their whole server)",
        code="CANNOT_MUTE_CHANNEL",
    )


async def mute(
    conn: asyncpg.Connection,
    actor: Actor,
    kind: MuteKind,
    target_id: UUID,
    until: datetime | None,
) -> MutePayload:
    """Mute a channel, conversation or server until `until` (None: until unmuted),
    replacing any mute of it; the actor's sessions are told (`mute.updated`). The mute
    the actor has already is answered as it is: nothing written or told.

    Raises: NotFound (CHANNEL_NOT_FOUND, SERVER_NOT_FOUND: not there or not visible);
    BadRequest (INVALID_MUTE_UNTIL, CANNOT_MUTE_CHANNEL, TOO_MANY_MUTES); Unauthorized
    (SESSION_REVOKED: the account deleted meanwhile)."""
    until = _until(until)
    async with conn.transaction():
        channel_id, server_id = await resolve_target(
            conn, actor, kind, target_id, lock=True, refused=_cannot_mute
        )
        await lock_user(conn, b"mutes", actor.user_id)  # (one change at a time: MAX_MUTES)
        await q.delete_ended_mutes_of(conn, user_id=actor.user_id)
        held = await q.get_mute(conn, user_id=actor.user_id, target_id=target_id)
        if held is not None and held.muted_until == until:
            # As it is already: nothing written (its place in the order last set kept)
            # and nothing told (was: `mute.updated` to every session, for nothing).
            return mute_json(held)
        if held is None and await q.count_mutes(conn, user_id=actor.user_id) >= MAX_MUTES:
            raise BadRequest(
                f"you can mute at most {MAX_MUTES} channels, conversations and servers;"
                " unmute one first",
                code="TOO_MANY_MUTES",
            )
        row = await q.upsert_mute(
            conn, user_id=actor.user_id, channel_id=channel_id, server_id=server_id, until=until
        )
        payload = mute_json(row)
        await emit(conn, MUTE_UPDATED.to_user(actor.user_id, payload))
    return payload


async def unmute(conn: asyncpg.Connection, actor: Actor, kind: MuteKind, target_id: UUID) -> None:
    """Unmute a channel, conversation or server (unmuting what is not muted changes
    nothing); the actor's sessions are told (`mute.removed`). A mute of a target the
    actor no longer sees (a channel hidden since) can still be removed: it is theirs.

    Raises: NotFound (CHANNEL_NOT_FOUND, SERVER_NOT_FOUND) for a target neither muted
    nor visible; BadRequest (CANNOT_MUTE_CHANNEL) for a voice channel or a category."""
    async with conn.transaction():  # (no lock: an unmute never passes MAX_MUTES)
        held = await q.get_mute(conn, user_id=actor.user_id, target_id=target_id)
        if held is None or held.kind != kind:
            # (or 404: tells nothing)
            await resolve_target(conn, actor, kind, target_id, lock=False, refused=_cannot_mute)
        elif await q.delete_mute(conn, user_id=actor.user_id, target_id=target_id):
            gone = mute_json(held)
            await emit(
                conn, MUTE_REMOVED.to_user(actor.user_id, {"kind": gone["kind"], "id": gone["id"]})
            )
        await q.delete_ended_mutes_of(conn, user_id=actor.user_id)
