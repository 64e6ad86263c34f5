"""`server_viewers` decides a whole server set by set (members sharing roles share one
calculation). On random servers it must agree, member by member and channel by
channel, with the per-pair facts every other reader of access uses."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import asyncpg

from tests.db.test_schema import make_user
from xfchat.db.queries import access as access_q
from xfchat.db.queries import channels as channels_q
from xfchat.db.queries import roles as roles_q
from xfchat.db.queries import servers as servers_q
from xfchat.domain.access import server_viewers, viewers_in_servers
from xfchat.domain.permissions import Permission, compute_permissions

VIEW = int(Permission.VIEW_CHANNEL)
# The bits that matter to seeing: VIEW_CHANNEL and ADMINISTRATOR, plus one that does not.
BITS = [0, VIEW, int(Permission.ADMINISTRATOR), int(Permission.SEND_MESSAGES)]


def mask(rng: random.Random) -> int:
    return rng.choice(BITS) | rng.choice(BITS)


def allow_deny(rng: random.Random) -> dict[str, int]:
    allow = mask(rng)
    return {"allow": allow, "deny": mask(rng) & ~allow}  # disjoint, as the schema wants


async def random_server(
    conn: asyncpg.Connection, rng: random.Random, users: list[asyncpg.Record], n: int
) -> tuple[UUID, list[UUID], list[UUID]]:
    owner = users[0]
    srv = await servers_q.insert_server(conn, name=f"s{n}", owner_id=owner.id)
    everyone = await roles_q.insert_role(
        conn, server_id=srv.id, name="@everyone", permissions=mask(rng), position=0,
        is_default=True,
    )  # fmt: skip
    roles = [
        (await roles_q.insert_role(
            conn, server_id=srv.id, name=f"r{i}", permissions=mask(rng), position=i + 1
        )).id
        for i in range(4)
    ]  # fmt: skip
    members = [u.id for u in users if u is owner or rng.random() < 0.8]
    for user in members:
        await servers_q.insert_server_member(conn, server_id=srv.id, user_id=user)
        for role in roles:
            if rng.random() < 0.3:
                await roles_q.insert_member_role(conn, server_id=srv.id, user_id=user, role_id=role)
        if rng.random() < 0.2:
            await servers_q.update_member(
                conn, server_id=srv.id, user_id=user,
                timed_out_until=datetime.now(UTC) + timedelta(hours=1),
            )  # fmt: skip
    categories = [
        (await channels_q.insert_channel(conn, kind="category", server_id=srv.id, name=f"c{i}")).id
        for i in range(2)
    ]
    channels = list(categories)
    for i in range(6):
        made = await channels_q.insert_channel(
            conn, kind=rng.choice(["text", "voice"]), server_id=srv.id, name=f"t{i}",
            parent_id=rng.choice([None, *categories]),
        )  # fmt: skip
        await conn.execute(
            "UPDATE channels SET permissions_synced = $2 WHERE id = $1", made.id, rng.random() < 0.6
        )
        channels.append(made.id)
    for channel in channels:
        for role in [everyone.id, *roles]:
            if rng.random() < 0.4:
                await servers_q.upsert_permission_override(
                    conn, channel_id=channel, role_id=role, **allow_deny(rng)
                )
        for user in rng.sample(members, k=min(2, len(members))):
            if rng.random() < 0.5:
                await servers_q.upsert_permission_override(
                    conn, channel_id=channel, user_id=user, **allow_deny(rng)
                )
    return srv.id, channels, members


async def test_set_by_set_agrees_with_the_per_pair_facts(conn: asyncpg.Connection) -> None:
    rng = random.Random(20261123)
    users = [await make_user(conn, f"u{i}") for i in range(12)]
    outsider = users[-1].id
    compared = 0
    for n in range(15):
        server_id, channels, members = await random_server(conn, rng, users[:-1], n)
        subset = [*rng.sample(members, k=3), outsider]
        for among in (None, subset):
            got = await server_viewers(conn, server_id, channels, among)
            asked = members if among is None else among
            for channel in channels:
                facts = await access_q.list_access_facts(conn, channel_id=channel, user_ids=asked)
                want = {
                    f.user_id for f in facts if compute_permissions(f) & Permission.VIEW_CHANNEL
                }
                assert got[channel] == want, (n, channel)
                compared += len(asked)
    assert compared > 1000
    # Both sides are not trivially empty or full.
    seen = await server_viewers(conn, server_id, channels)
    assert any(seen.values()) and any(len(v) < len(members) for v in seen.values())


async def test_one_users_viewers_in_many_servers_agree_with_each_servers(
    conn: asyncpg.Connection,
) -> None:
    """viewers_in_servers (an account's deletion: four statements for all its servers)
    gives each user, in each server, what server_viewers gives them there: servers
    they are not a member of, unknown ones, channels left out, listed twice or listed
    under another server, and a channel following another server's category (which the
    routes never make) included."""
    rng = random.Random(20261128)
    users = [await make_user(conn, f"u{i}") for i in range(8)]
    servers = [await random_server(conn, rng, users, n) for n in range(12)]
    (first, first_channels, _), (_, second_channels, _) = servers[:2]
    await conn.execute(
        "UPDATE channels SET parent_id = $2, permissions_synced = true WHERE id = $1",
        first_channels[-1],
        second_channels[0],  # (a category: random_server makes them first)
    )
    await servers_q.upsert_permission_override(
        conn, channel_id=second_channels[0], user_id=users[1].id, allow=0, deny=VIEW
    )
    every = [c for _, channels, _ in servers for c in channels]
    compared = 0
    for user in users:
        channels_of = {s: rng.sample(c, k=rng.randint(0, len(c))) for s, c, _ in servers}
        channels_of[first] += [first_channels[-1], first_channels[-1], *rng.sample(every, k=3)]
        channels_of[uuid4()] = [uuid4()]
        got = await viewers_in_servers(conn, user.id, channels_of)
        assert list(got) == list(channels_of)
        for server_id, channels in channels_of.items():
            assert got[server_id] == await server_viewers(conn, server_id, channels, [user.id])
            compared += len(channels)
    assert compared > 200
