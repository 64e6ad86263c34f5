"""Roles, who holds them, and per-channel permission overrides.

The hierarchy: nobody manages a role at or above their own highest role (the owner
manages every role), and nobody grants a permission they do not hold themselves (the
owner and ADMINISTRATOR hold all). Every change that may change who sees a channel is
wrapped in `visibility.watch`/`settle`, so members' connections start or stop receiving
its events in the same commit.
"""

from __future__ import annotations

import re
from typing import Any, cast
from uuid import UUID

import asyncpg

from xfchat.db.queries import channels as channels_q
from xfchat.db.queries import roles as q
from xfchat.db.queries import servers as servers_q
from xfchat.domain.access import (
    ServerAccess,
    access_channel,
    access_server,
    holds_in_channels,
    may_change_overrides,
)
from xfchat.domain.accounts import Actor
from xfchat.domain.audit_diff import field_diff
from xfchat.domain.event_payloads import (
    RolePayload,
    ServerChannelPayload,
)
from xfchat.domain.events import (
    MEMBER_UPDATED,
    ROLE_CREATED,
    ROLE_DELETED,
    ROLE_UPDATED,
    emit,
    emit_many,
)
from xfchat.domain.members import check_outranks, member_not_found
from xfchat.domain.permissions import ALL, Permission
from xfchat.domain.server_views import (
    channels_json,
    check_shown_overrides,
    followers_of,
    member_json,
    overrides_changed,
    role_json,
)
from xfchat.domain.servers import audit, text_field
from xfchat.domain.validation import check_not_everyone
from xfchat.domain.visibility import settle, watch
from xfchat.errors import BadRequest, Forbidden, NotFound

MAX_ROLES = 250
MAX_ROLE_NAME = 100
MAX_POSITION = 10_000  # roles but @everyone (0) take 1 to this
MAX_OVERRIDES = 100  # a channel's overrides, roles' and members' together
# A server's overrides, all its channels' together: what a server's payload (its GET,
# `ready`, `server.joined`) carries stays near 1 MiB at 500 channels (5 an average).
MAX_SERVER_OVERRIDES = 2500


def role_not_found() -> NotFound:
    return NotFound("no such role", code="ROLE_NOT_FOUND")


# ASCII digits only: int() also reads full-width and Arabic-Indic digits, "1_0", " 8 ", "+8".
PERMISSION_DIGITS = re.compile(r"[0-9]{1,20}")


def parse_permissions(value: Any, field: str = "permissions") -> int:
    """A permission bit set, as the API carries it: a decimal string of ASCII digits
    (no sign, space or separator), within 64 bits, of known bits only."""
    if isinstance(value, str) and PERMISSION_DIGITS.fullmatch(value):
        bits = int(value)
    else:
        bits = -1
    if bits < 0 or bits >= 1 << 64 or bits & ~int(ALL):
        raise BadRequest(
            f"{field} is a decimal string of known permission bits",
            code="INVALID_PERMISSIONS",
            field=field,
        )
    return bits


def _grantable(held: Permission, bits: int, field: str = "permissions") -> None:
    """Nobody grants (or, in an override, denies) a permission they do not hold."""
    if bits & ~int(held):
        lacking = Permission(bits & ~int(held))
        names = ", ".join(p.name for p in Permission if p in lacking and p.name)
        raise Forbidden(
            f"you cannot grant permissions you lack: {names}",
            code="MISSING_PERMISSIONS",
            field=field,
            extra={"missing": names},
        )


async def _reach(
    conn: asyncpg.Connection, role: q.RoleRow, channels: list[channels_q.ChannelRow]
) -> list[tuple[UUID, int, int, bool]]:
    """Where the role's overrides apply, as (channel, allow, deny, its own override):
    the `channels` holding one, and the channels synced with any category among them.
    Three reads however many channels."""
    if not channels:
        return []
    rows = await channels_q.list_overrides(conn, channel_ids=[c.id for c in channels])
    own = {o.channel_id: (o.allow, o.deny) for o in rows if o.role_id == role.id}
    reach = [(c, allow, deny, True) for c, (allow, deny) in own.items()]
    for row in await followers_of(conn, channels):
        if row.parent_id in own:
            reach.append((row.id, *own[row.parent_id], False))
    return reach


async def _may_grant_through_overrides(
    conn: asyncpg.Connection, actor: Actor, role: q.RoleRow, *, held: bool
) -> None:
    """Giving a role grants what its overrides allow, taking it what they deny (a deny
    lifted): each held by the actor in every channel it reaches (as the override routes
    ask)."""
    channels = await channels_q.list_channels_overriding_role(conn, role_id=role.id)
    needs: dict[UUID, Permission] = {}
    for channel_id, allow, deny, _ in await _reach(conn, role, channels):
        bits = allow if held else deny
        if bits:
            needs[channel_id] = needs.get(channel_id, Permission(0)) | Permission(bits)
    if needs:
        await holds_in_channels(
            conn, actor, needs, "in every channel the role's overrides apply to"
        )


async def _may_remove_overrides(
    conn: asyncpg.Connection,
    actor: Actor,
    role: q.RoleRow,
    channels: list[channels_q.ChannelRow],
) -> None:
    """Removing all the role's overrides at once (its deletion) asks what removing
    each would of the override route: MANAGE_ROLES and its bits in its channel, its
    bits (if any) in the channels synced with it."""
    needs: dict[UUID, Permission] = {}
    for channel_id, allow, deny, own in await _reach(conn, role, channels):
        if own or allow | deny:
            need = Permission.MANAGE_ROLES | Permission(allow | deny)
            needs[channel_id] = needs.get(channel_id, Permission(0)) | need
    if needs:
        await holds_in_channels(
            conn, actor, needs, "in every channel the role's overrides apply to"
        )


def _manageable(access: ServerAccess, role: q.RoleRow) -> None:
    if not access.outranks(role.position):
        raise Forbidden("that role is at or above your highest role", code="ROLE_HIERARCHY")


async def _role(conn: asyncpg.Connection, server_id: UUID, role_id: UUID) -> q.RoleRow:
    role = await q.get_role(conn, server_id=server_id, role_id=role_id)
    if role is None:
        raise role_not_found()
    return role


def _fields(fields: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "name" in fields:
        out["name"] = text_field(
            fields["name"], "name", MAX_ROLE_NAME, "INVALID_ROLE_NAME", name=True
        )
        if out["name"] is None:
            raise BadRequest("a role needs a name", code="INVALID_ROLE_NAME", field="name")
    if fields.get("permissions") is not None:
        out["permissions"] = parse_permissions(fields["permissions"])
    if fields.get("color") is not None:
        color = fields["color"]
        if isinstance(color, bool) or not isinstance(color, int) or not 0 <= color <= 0xFFFFFF:
            raise BadRequest("color is 0 to 16777215", code="INVALID_COLOR", field="color")
        out["color"] = fields["color"]
    for flag in ("hoist", "mentionable"):
        if fields.get(flag) is not None:
            out[flag] = bool(fields[flag])
    return out


async def list_roles(conn: asyncpg.Connection, actor: Actor, server_id: UUID) -> list[RolePayload]:
    """Raises: NotFound (SERVER_NOT_FOUND)."""
    await access_server(conn, actor, server_id)
    return [role_json(r) for r in await q.list_roles(conn, server_id=server_id)]


async def create_role(
    conn: asyncpg.Connection,
    actor: Actor,
    server_id: UUID,
    *,
    fields: dict[str, Any],
    reason: str | None,
) -> RolePayload:
    """A new role (MANAGE_ROLES), placed just above @everyone (the others move up one;
    see `_up_one`).

    Raises: NotFound (SERVER_NOT_FOUND); Forbidden (MISSING_PERMISSIONS, TOO_MANY_ROLES);
    BadRequest (INVALID_ROLE_NAME, INVALID_PERMISSIONS, INVALID_COLOR)."""
    values = _fields({"name": "new role", **fields})
    check_not_everyone(values["name"], field="name", code="INVALID_ROLE_NAME")
    async with conn.transaction():
        access = await access_server(
            conn, actor, server_id, need=Permission.MANAGE_ROLES, lock=True
        )
        _grantable(access.permissions, values.get("permissions", 0))
        if await q.count_roles(conn, server_id=server_id) >= MAX_ROLES:
            raise Forbidden(f"a server has at most {MAX_ROLES} roles", code="TOO_MANY_ROLES")
        others = [r for r in await q.list_roles(conn, server_id=server_id) if not r.is_default]
        moved = await q.update_role_positions(
            conn, server_id=server_id, role_ids=[r.id for r in others], positions=_up_one(others)
        )
        row = await q.insert_role(
            conn,
            server_id=server_id,
            name=values["name"],
            permissions=values.get("permissions", 0),
            position=1,
            color=values.get("color", 0),
            hoist=values.get("hoist", False),
            mentionable=values.get("mentionable", False),
        )
        payload = role_json(row)
        await emit(conn, ROLE_CREATED.to_server(server_id, payload))
        await emit_many(conn, [ROLE_UPDATED.to_server(server_id, role_json(r)) for r in moved])
        await audit(
            conn,
            access,
            "role.created",
            target_type="role",
            target_id=row.id,
            changes=_audited(values),
            reason=reason,
        )
    return payload


def _up_one(roles: list[q.RoleRow]) -> list[int]:
    """The roles' positions one up, to make room at 1. Where one would pass
    MAX_POSITION, they are first renumbered 1, 2, 3... in their order (equal positions
    staying equal): the hierarchy, which compares positions alone, is as it was."""
    if all(r.position < MAX_POSITION for r in roles):
        return [r.position + 1 for r in roles]
    rank = {p: n for n, p in enumerate(sorted({r.position for r in roles}), start=2)}
    return [rank[r.position] for r in roles]


def _audited(values: dict[str, Any]) -> dict[str, Any]:
    return {k: (str(v) if k == "permissions" else v) for k, v in values.items()}


async def update_role(
    conn: asyncpg.Connection,
    actor: Actor,
    server_id: UUID,
    role_id: UUID,
    *,
    fields: dict[str, Any],
    reason: str | None,
) -> RolePayload:
    """Change a role's name, colour, flags or permissions (MANAGE_ROLES, below your
    highest role; @everyone keeps its name). A change of nothing (no field, or each as
    it is) answers the role and writes and tells nothing.

    Raises: NotFound (SERVER_NOT_FOUND, ROLE_NOT_FOUND); Forbidden (MISSING_PERMISSIONS,
    ROLE_HIERARCHY); BadRequest."""
    values = _fields(fields)
    async with conn.transaction():
        access = await access_server(
            conn, actor, server_id, need=Permission.MANAGE_ROLES, lock=True
        )
        role = await _role(conn, server_id, role_id)
        renamed = values.get("name", role.name) != role.name  # (sent back as it is: not)
        if not role.is_default:
            _manageable(access, role)
        elif renamed:
            raise BadRequest("@everyone keeps its name", code="INVALID_ROLE_NAME", field="name")
        if renamed:  # (one stored before the rule stays)
            check_not_everyone(values["name"], field="name", code="INVALID_ROLE_NAME")
        if "permissions" in values:
            _grantable(access.permissions, values["permissions"] & ~role.permissions)
        if all(getattr(role, k) == v for k, v in values.items()):
            return role_json(role)  # changes nothing: none written, none told
        holders = None if role.is_default else await q.list_role_holders(conn, role_id=role_id)
        seen = await watch(conn, server_id, user_ids=holders) if "permissions" in values else None
        row = await q.update_role(conn, role_id=role_id, **values)
        assert row is not None
        if seen is not None:
            await settle(conn, seen, "permissions")
        payload = role_json(row)
        await emit(conn, ROLE_UPDATED.to_server(server_id, payload))
        await audit(
            conn,
            access,
            "role.updated",
            target_type="role",
            target_id=role_id,
            changes=_audited(values),
            reason=reason,
            # (`role` read under the server's lock: what this change replaced)
            diff=field_diff(
                _audited({k: getattr(role, k) for k in values}),
                _audited({k: getattr(row, k) for k in values}),
            ),
        )
    return payload


async def delete_role(
    conn: asyncpg.Connection, actor: Actor, server_id: UUID, role_id: UUID, reason: str | None
) -> None:
    """Delete a role (MANAGE_ROLES, below your highest) and its overrides: removing
    them asks what removing each would (`may_change_overrides`): MANAGE_ROLES and what
    it allows or denies, held in its channel and, for a category's, in each channel
    synced with it.

    Raises: NotFound (SERVER_NOT_FOUND, ROLE_NOT_FOUND); Forbidden
    (MISSING_PERMISSIONS, ROLE_HIERARCHY); BadRequest (CANNOT_DELETE_EVERYONE)."""
    async with conn.transaction():
        access = await access_server(
            conn, actor, server_id, need=Permission.MANAGE_ROLES, lock=True
        )
        role = await _role(conn, server_id, role_id)
        if role.is_default:
            raise BadRequest("@everyone cannot be deleted", code="CANNOT_DELETE_EVERYONE")
        _manageable(access, role)
        overriding = await channels_q.list_channels_overriding_role(conn, role_id=role_id)
        await _may_remove_overrides(conn, actor, role, overriding)
        holders = await q.list_role_holders(conn, role_id=role_id)
        seen = await watch(conn, server_id, user_ids=holders)
        await q.delete_role(conn, role_id=role_id)  # its overrides go with it
        await settle(conn, seen, "permissions")
        await emit(
            conn,
            ROLE_DELETED.to_server(server_id, {"server_id": str(server_id), "id": str(role_id)}),
        )
        await emit_many(conn, await overrides_changed(conn, overriding))
        await audit(
            conn,
            access,
            "role.deleted",
            target_type="role",
            target_id=role_id,
            changes={"name": role.name},
            reason=reason,
        )


async def reorder_roles(
    conn: asyncpg.Connection,
    actor: Actor,
    server_id: UUID,
    positions: dict[UUID, int],
    reason: str | None,
) -> list[RolePayload]:
    """Move several roles at once (MANAGE_ROLES): each moved role, and the place it
    moves to, must be below your highest role; @everyone stays at 0 and others are 1
    or more. Returns every role, highest first. Each where it is already (or none
    given): nothing written, audited or told.

    Raises: NotFound (SERVER_NOT_FOUND, ROLE_NOT_FOUND); Forbidden; BadRequest
    (INVALID_POSITION)."""
    async with conn.transaction():
        access = await access_server(
            conn, actor, server_id, need=Permission.MANAGE_ROLES, lock=True
        )
        roles = {r.id: r for r in await q.list_roles(conn, server_id=server_id)}
        for role_id, position in positions.items():
            role = roles.get(role_id)
            if role is None:
                raise role_not_found()
            if role.is_default or not 1 <= position <= MAX_POSITION:
                raise BadRequest(
                    "roles other than @everyone take positions 1 to 10000",
                    code="INVALID_POSITION",
                )
            _manageable(access, role)
            if not access.outranks(position):
                raise Forbidden(
                    "you cannot move a role to or above your own", code="ROLE_HIERARCHY"
                )
        diff = field_diff(
            {str(k): roles[k].position for k in positions},
            {str(k): v for k, v in positions.items()},
        )
        if not diff:  # each where it is (or none given): none written, audited or told
            return [role_json(r) for r in roles.values()]
        moved = await q.update_role_positions(
            conn,
            server_id=server_id,
            role_ids=list(positions),
            positions=list(positions.values()),
        )
        await emit_many(conn, [ROLE_UPDATED.to_server(server_id, role_json(r)) for r in moved])
        await audit(
            conn,
            access,
            "role.reordered",
            changes={str(k): v for k, v in positions.items()},
            reason=reason,
            diff=diff,
        )
        return [role_json(r) for r in await q.list_roles(conn, server_id=server_id)]


async def set_member_role(
    conn: asyncpg.Connection,
    actor: Actor,
    server_id: UUID,
    user_id: UUID,
    role_id: UUID,
    *,
    held: bool,
    reason: str | None,
) -> None:
    """Give (`held`) or take a role (MANAGE_ROLES, the role below your highest). Giving
    it needs its permissions held server-wide, and what its overrides allow held in each
    channel they apply to (a category's: in each channel synced with it too); taking it
    needs what they deny held there (a deny lifted grants). Doing it again changes
    nothing.

    Raises: NotFound (SERVER_NOT_FOUND, MEMBER_NOT_FOUND, ROLE_NOT_FOUND); Forbidden
    (MISSING_PERMISSIONS, ROLE_HIERARCHY); BadRequest (CANNOT_ASSIGN_EVERYONE)."""
    async with conn.transaction():
        access = await access_server(
            conn, actor, server_id, need=Permission.MANAGE_ROLES, lock=True
        )
        role = await _role(conn, server_id, role_id)
        if role.is_default:
            raise BadRequest("everyone holds @everyone", code="CANNOT_ASSIGN_EVERYONE")
        _manageable(access, role)
        if held:  # giving a role grants its permissions: only those you hold yourself
            _grantable(access.permissions, role.permissions)
        await _may_grant_through_overrides(conn, actor, role, held=held)
        member = await servers_q.get_member(conn, server_id=server_id, user_id=user_id)
        if member is None:
            raise member_not_found()
        if user_id != actor.user_id:
            check_outranks(access, member)
        if (role_id in member.role_ids) == held:
            return
        seen = await watch(conn, server_id, user_ids=[user_id])
        if held:
            await q.insert_member_role(conn, server_id=server_id, user_id=user_id, role_id=role_id)
        else:
            await q.delete_member_role(conn, server_id=server_id, user_id=user_id, role_id=role_id)
        await settle(conn, seen, "permissions")
        row = await servers_q.get_member(conn, server_id=server_id, user_id=user_id)
        assert row is not None
        await emit(conn, MEMBER_UPDATED.to_server(server_id, await member_json(conn, row)))
        await audit(
            conn,
            access,
            "member.role_added" if held else "member.role_removed",
            target_type="user",
            target_id=user_id,
            changes={"role_id": str(role_id)},
            reason=reason,
            diff=field_diff(
                {"role_ids": sorted(str(r) for r in member.role_ids)},
                {"role_ids": sorted(str(r) for r in row.role_ids)},
            ),
        )


async def set_override(
    conn: asyncpg.Connection,
    actor: Actor,
    channel_id: UUID,
    *,
    kind: str,
    target_id: UUID,
    allow: int | None,
    deny: int | None,
    reason: str | None,
) -> ServerChannelPayload:
    """Set (allow and deny given) or remove (both None) a channel's override for a role
    or a member: MANAGE_ROLES in the server, a role below your highest, and MANAGE_ROLES
    and every permission the change sets or lifts held in this channel and, for a
    category, in each channel following it (`may_change_overrides`). A change of
    nothing (the override as it is, or none to remove) answers the channel and writes,
    audits and tells nothing.

    Raises: NotFound (CHANNEL_NOT_FOUND, ROLE_NOT_FOUND, MEMBER_NOT_FOUND); Forbidden
    (TOO_MANY_OVERRIDES and others); BadRequest (INVALID_PERMISSIONS, OVERRIDE_CONFLICT,
    NOT_A_SERVER_CHANNEL)."""
    if allow is not None and deny is not None and allow & deny:
        raise BadRequest(
            "a permission is either allowed or denied", code="OVERRIDE_CONFLICT", field="deny"
        )
    async with conn.transaction():
        channel = await access_channel(conn, actor, channel_id)
        server_id = channel.channel.server_id
        if server_id is None:
            raise BadRequest("conversations have no overrides", code="NOT_A_SERVER_CHANNEL")
        access = await access_server(
            conn, actor, server_id, need=Permission.MANAGE_ROLES, lock=True
        )
        # Read again under the lock: a change that committed while it was awaited (its
        # category deleted, the channel moved or unsynced) is what this one applies to,
        # answers and tells.
        channel = await access_channel(conn, actor, channel_id)
        removing = allow is None and deny is None
        if kind == "role":
            _manageable(access, await _role(conn, server_id, target_id))
        else:
            member = await servers_q.get_member(conn, server_id=server_id, user_id=target_id)
            if member is None and not removing:  # (one left over may always be removed)
                raise member_not_found()
            if member is not None and member.user_id == actor.user_id:
                if not access.owner:
                    raise Forbidden(
                        "only the owner changes their own member override", code="ROLE_HIERARCHY"
                    )
            elif member is not None:
                check_outranks(access, member)
        followers = await followers_of(conn, [channel.channel])
        touched = [channel_id, *(f.id for f in followers)]
        role_id, user_id = (target_id, None) if kind == "role" else (None, target_id)
        overrides = await channels_q.list_overrides(conn, channel_ids=[channel_id])
        mine = [
            (o.allow, o.deny) for o in overrides if (o.role_id, o.user_id) == (role_id, user_id)
        ]
        if not mine and not removing:  # (exact: the server's row is locked)
            if len(overrides) >= MAX_OVERRIDES:
                raise Forbidden(
                    f"a channel has at most {MAX_OVERRIDES} overrides", code="TOO_MANY_OVERRIDES"
                )
            if await channels_q.count_server_overrides(conn, server_id=server_id) >= (
                MAX_SERVER_OVERRIDES
            ):
                raise Forbidden(
                    f"a server's channels have at most {MAX_SERVER_OVERRIDES} overrides",
                    code="TOO_MANY_OVERRIDES",
                )
            await check_shown_overrides(conn, server_id, len(touched))  # (it, and followers)
        old = mine[0] if mine else (0, 0)
        # what changes: set, lifted or both (removing a deny grants as much as an allow)
        changed = (old[0] ^ (allow or 0)) | (old[1] ^ (deny or 0))
        # (a change of nothing asks only of this channel: its synced ones keep all)
        await may_change_overrides(conn, actor, touched if changed else [channel_id], changed)
        unchanged = not mine if removing else mine == [(allow or 0, deny or 0)]
        if unchanged:  # (as it is, or none to remove): none written, audited or told
            return (await channels_json(conn, [channel.channel]))[0]
        seen = await watch(
            conn, server_id, channel_ids=touched, user_ids=[target_id] if kind == "member" else None
        )
        if removing:
            await channels_q.delete_permission_override(
                conn, channel_id=channel_id, role_id=role_id, user_id=user_id
            )
        else:
            await servers_q.upsert_permission_override(
                conn,
                channel_id=channel_id,
                role_id=role_id,
                user_id=user_id,
                allow=allow or 0,
                deny=deny or 0,
            )
        await settle(conn, seen, "permissions")
        updates = await overrides_changed(conn, [channel.channel], followers)
        await emit_many(conn, updates)
        payload = cast(ServerChannelPayload, updates[0].data)
        # (a removal records what the override allowed and denied: what was taken away)
        logged = old if removing else (allow or 0, deny or 0)
        await audit(
            conn,
            access,
            "override.deleted" if removing else "override.updated",
            target_type="channel",
            target_id=channel_id,
            changes={
                "kind": kind,
                "id": str(target_id),
                "allow": str(logged[0]),
                "deny": str(logged[1]),
            },
            reason=reason,
            # (`old` read under the server's lock, null where there was no override: one
            # made allowing and denying nothing is a change too; a removal's is what it
            # took away)
            diff=field_diff(
                {"allow": str(old[0]) if mine else None, "deny": str(old[1]) if mine else None},
                {"allow": str(allow or 0), "deny": str(deny or 0)},
            )
            if not removing
            else None,
        )
    return payload
