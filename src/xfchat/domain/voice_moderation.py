"""Voice moderation: server mute and deafen (kept on the membership), moving a member to
another voice channel of the server, and disconnecting them."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg
from typing_extensions import TypedDict

from xfchat.db.queries import audit as audit_q
from xfchat.db.queries import servers as servers_q
from xfchat.db.queries import voice as q
from xfchat.domain.access import access_channel, access_server, permissions_in
from xfchat.domain.accounts import Actor
from xfchat.domain.audit_diff import field_diff
from xfchat.domain.event_payloads import VoiceStatePayload
from xfchat.domain.events import MEMBER_UPDATED, emit
from xfchat.domain.permissions import Permission
from xfchat.domain.server_views import member_json
from xfchat.domain.voice import (
    announce,
    check_room,
    lock_user,
    not_in_voice,
    same,
    state_json,
    suppressed,
)
from xfchat.errors import BadRequest, Forbidden, NotFound


class MemberVoicePayload(TypedDict):
    server_id: str
    user_id: str
    mute: bool  # server mute (MUTE_MEMBERS): kept until lifted, in voice or not
    deaf: bool  # server deafen (DEAFEN_MEMBERS)
    voice_state: VoiceStatePayload | None  # where they are now (None: not in voice here)


MOVE_INTO = Permission.MOVE_MEMBERS | Permission.CONNECT  # the mover's, in the destination


def _need(fields: dict[str, Any]) -> Permission:
    need = Permission(0)
    if "mute" in fields:
        need |= Permission.MUTE_MEMBERS
    if "deaf" in fields:
        need |= Permission.DEAFEN_MEMBERS
    if "channel_id" in fields:
        need |= Permission.MOVE_MEMBERS
    return need


async def moderate_voice(
    conn: asyncpg.Connection,
    actor: Actor,
    server_id: UUID,
    user_id: UUID,
    *,
    fields: dict[str, Any],
    reason: str | None,
) -> MemberVoicePayload:
    """Server mute (`mute`, MUTE_MEMBERS) or deafen (`deaf`, DEAFEN_MEMBERS) a member,
    in voice or not (it lasts until lifted); move them to another voice channel of the
    server (`channel_id`, MOVE_MEMBERS in both channels and CONNECT in the
    destination; past the destination's user limit too, never past MESH_LIMIT; they
    must be able to see it) or disconnect them
    (`channel_id` None). The permissions are those in the channel the member is in
    (overrides count), else the server-wide ones. Audited as `member.voice_updated`
    (a move or disconnect with `from_channel_id`, the channel they were in).

    Raises: NotFound (SERVER_NOT_FOUND, MEMBER_NOT_FOUND, CHANNEL_NOT_FOUND); Forbidden
    (MISSING_PERMISSIONS, MEMBER_CANNOT_SEE_CHANNEL, CHANNEL_FULL); BadRequest
    (NOT_IN_VOICE, NOT_A_VOICE_CHANNEL)."""
    need = _need(fields)
    if not need:
        raise BadRequest("give at least one of mute, deaf and channel_id", code="VALIDATION_ERROR")
    async with conn.transaction():
        server = await access_server(conn, actor, server_id, lock=True)
        flags = await servers_q.get_member_voice_flags(conn, server_id=server_id, user_id=user_id)
        if flags is None:
            raise NotFound("no such member", code="MEMBER_NOT_FOUND")
        await lock_user(conn, user_id)
        state = await q.get_voice_state(conn, user_id=user_id, lock=True)
        here = state if state is not None and state.server_id == server_id else None
        # In a channel the actor cannot see, the member looks as if not in voice at all
        # (the answer must not tell hidden channels' comings and goings).
        shown = here is not None and await _sees(conn, actor, here.channel_id)
        if shown:
            assert here is not None
            await access_channel(conn, actor, here.channel_id, need=need)
        elif need & ~server.permissions:
            await access_server(conn, actor, server_id, need=need)  # raises, naming it
        elif "channel_id" in fields:
            raise not_in_voice()
        before = flags
        # Only what changes is written, audited and announced, as for the member PATCH
        # (domain/members.py): a mute or deafen as it already is was a
        # `member.voice_updated` entry of nothing; a move into the channel they are in
        # is dropped below, once the move has been judged.
        fields = {k: v for k, v in fields.items() if k == "channel_id" or getattr(flags, k) != v}
        if "mute" in fields or "deaf" in fields:
            flags = await servers_q.update_member_voice_flags(
                conn,
                server_id=server_id,
                user_id=user_id,
                mute=fields.get("mute"),
                deaf=fields.get("deaf"),
            )
            assert flags is not None
        left: list[q.VoiceStateRow] = []
        now: list[q.VoiceStateRow] = []
        after = here
        if here is not None and "channel_id" in fields:
            assert state is not None
            after = await _move(conn, actor, server_id, state, fields["channel_id"], flags)
            left = [here] if after is None or after.channel_id != here.channel_id else []
            if not left:  # (into the channel they are in: no move)
                del fields["channel_id"]
        elif here is not None and flags != before:
            after = await q.update_server_voice_flags(
                conn, server_id=server_id, user_id=user_id, mute=flags.mute, deaf=flags.deaf
            )
        if after is not None and (here is None or not same(here, after)):
            now = [after]
        await announce(conn, left=left, now=now)
        if flags != before:  # (the member's object shows them, in voice or not)
            member = await servers_q.get_member(conn, server_id=server_id, user_id=user_id)
            assert member is not None
            await emit(conn, MEMBER_UPDATED.to_server(server_id, await member_json(conn, member)))
        changes = {k: (str(v) if isinstance(v, UUID) else v) for k, v in fields.items()}
        if "channel_id" in fields and here is not None:
            # Where they were: a reader who cannot see it must not read of the move.
            changes["from_channel_id"] = str(here.channel_id)
        if fields:
            await audit_q.insert_audit_entry(
                conn,
                server_id=server_id,
                actor_id=actor.user_id,
                action="member.voice_updated",
                target_type="user",
                target_id=user_id,
                changes=changes,
                reason=reason,
                # (read under the server's and the member's locks: what it replaced)
                diff=field_diff(
                    {
                        "mute": before.mute,
                        "deaf": before.deaf,
                        "channel_id": here.channel_id if here else None,
                    },
                    {
                        "mute": flags.mute,
                        "deaf": flags.deaf,
                        "channel_id": fields.get("channel_id"),
                    },
                    [k for k in ("mute", "deaf", "channel_id") if k in fields],
                ),
            )
    return {
        "server_id": str(server_id),
        "user_id": str(user_id),
        "mute": flags.mute,
        "deaf": flags.deaf,
        "voice_state": state_json(after) if after is not None and shown else None,
    }


async def _sees(conn: asyncpg.Connection, actor: Actor, channel_id: UUID) -> bool:
    try:
        await access_channel(conn, actor, channel_id)
    except NotFound:
        return False
    return True


async def _move(
    conn: asyncpg.Connection,
    actor: Actor,
    server_id: UUID,
    state: q.VoiceStateRow,
    to: UUID | None,
    flags: servers_q.VoiceFlags,
) -> q.VoiceStateRow | None:
    """The member's state in `to` (None: disconnected)."""
    if to is None:
        await q.delete_voice_state(conn, user_id=state.user_id)
        return None
    # The mover needs CONNECT there too, as in Discord: else MOVE_MEMBERS took a
    # moderator denied CONNECT into the channel (themselves, `@me`) or put others there.
    dest = await access_channel(conn, actor, to, need=MOVE_INTO, lock=True)
    if dest.channel.kind != "voice" or dest.channel.server_id != server_id:
        raise BadRequest(
            "move members to a voice channel of this server",
            code="NOT_A_VOICE_CHANNEL",
            field="channel_id",
        )
    theirs = await permissions_in(conn, to, state.user_id)
    if not theirs:
        raise Forbidden(
            "they cannot see that channel", code="MEMBER_CANNOT_SEE_CHANNEL", field="channel_id"
        )
    suppress = suppressed(dest.channel, theirs)
    kept = (state.server_mute, state.server_deaf, state.suppress)
    if to != state.channel_id:
        await check_room(conn, dest.channel, bypass_limit=True)
    elif kept == (flags.mute, flags.deaf, suppress):
        return state  # where they are, as they are: nothing to write
    return await q.upsert_voice_state(
        conn,
        user_id=state.user_id,
        channel_id=to,
        server_id=server_id,
        session_id=state.session_id,
        process_id=state.process_id,
        connection_id=state.connection_id,
        self_mute=state.self_mute,
        self_deaf=state.self_deaf,
        self_video=state.self_video,
        server_mute=flags.mute,
        server_deaf=flags.deaf,
        suppress=suppress,
    )
