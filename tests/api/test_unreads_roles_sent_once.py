"""A reader's roles, in list_unreads (ready, server.joined), are sent and parsed
once, not once per channel (or per message walked)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import asyncpg

from tests import factories
from tests.factories import MakeUser
from xfchat.db.queries import messages as messages_q

ROLES = 250  # roles.MAX_ROLES: a member may hold them all
CHANNELS = 300  # of a server's 500
WALKED = 2_000  # messages mentioning a role, in one channel


class Spy:
    """The connection, with the bytes of the text arguments of each fetch counted."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.sent = 0

    async def fetch(self, sql: str, *args: Any) -> Any:
        for a in args:
            if isinstance(a, list):
                self.sent += sum(len(x) for x in a if isinstance(x, str))
        return await self.conn.fetch(sql, *args)


async def test_a_readers_roles_are_sent_once_not_once_a_channel(
    pool: asyncpg.Pool, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    ann = await make_user("ann")
    names = tuple(f"c{i}" for i in range(CHANNELS))
    srv = await factories.server(pool, ann, text=names)
    roles = [uuid.uuid4() for _ in range(ROLES)]
    await conn.execute(
        """
        INSERT INTO roles (id, server_id, name, permissions, position)
        SELECT r, $1, 'r', 0, i FROM unnest($2::uuid[]) WITH ORDINALITY AS t(r, i)
        """,
        srv.id,
        roles,
    )
    await conn.execute(
        """
        INSERT INTO messages (id, channel_id, seq, author_id, content, mention_roles)
        SELECT gen_random_uuid(), $1, i, NULL, 'x', ARRAY[gen_random_uuid()]
        FROM generate_series(1, $2::int) AS i
        """,
        srv.channels["c0"],
        WALKED,
    )
    await conn.execute(
        "UPDATE channels SET last_seq = $2 WHERE id = $1", srv.channels["c0"], WALKED
    )
    spy = Spy(conn)
    t0 = time.monotonic()
    rows = await messages_q.list_unreads(
        spy,  # type: ignore[arg-type]
        user_id=ann.id,
        role_ids=roles,
        channel_ids=list(srv.channels.values()),
    )
    took = time.monotonic() - t0
    assert len(rows) == CHANNELS
    assert {r.channel_id: r.unread for r in rows}[srv.channels["c0"]] == 100
    # 250 role ids are 9.25 KB as text: once, not once for each of the 300 channels.
    assert spy.sent <= 2 * 37 * ROLES, (spy.sent, took)
