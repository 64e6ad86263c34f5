"""Voice states die with their owner: what the sweep, a process's heartbeat and its
stop drop, and what they leave alone."""

from __future__ import annotations

import uuid

import asyncpg

from tests import factories
from tests.factories import MakeUser, voice_join
from xfchat.db.queries import presence as presence_q
from xfchat.domain import presence, voice


async def holders(conn: asyncpg.Connection) -> dict[uuid.UUID, uuid.UUID]:
    """user_id -> the process holding their voice state."""
    rows = await conn.fetch("SELECT user_id, process_id FROM voice_states")
    return {r["user_id"]: r["process_id"] for r in rows}


async def age(conn: asyncpg.Connection, process_id: uuid.UUID, seconds: int) -> None:
    """Pretend the process started, and was last seen, `seconds` ago."""
    await conn.execute(
        "UPDATE presence_processes SET started_at = now() - make_interval(secs => $2),"
        " seen_at = now() - make_interval(secs => $2) WHERE id = $1",
        process_id,
        seconds,
    )


async def test_the_sweep_drops_the_states_of_dead_processes_and_orphans_only_when_safe(
    pool: asyncpg.Pool, conn: asyncpg.Connection, make_user: MakeUser
) -> None:
    ann, ben, cid = [await make_user(n) for n in ("ann", "ben", "cid")]
    srv = await factories.server(pool, ann, ben, cid, voice=("room",))
    room = srv.channels["room"]
    me, dead, lost = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    for process in (me, dead):
        await presence_q.touch_process(conn, process_id=process)
    await voice_join(pool, ann, room, holder=voice.Holder(me, uuid.uuid4()))
    await voice_join(pool, ben, room, holder=voice.Holder(dead, uuid.uuid4()))
    # cid's process has no presence row at all (it crashed while the database had lost
    # its unlogged tables, or has not registered again yet).
    await voice_join(pool, cid, room, holder=voice.Holder(lost, uuid.uuid4()))
    await age(conn, dead, 60)
    await presence.sweep(conn, 30, me)
    # The dead one's state went; the orphan stays while the sweeper itself is younger
    # than the timeout (a live process may not have registered again yet).
    assert await holders(conn) == {ann.id: me, cid.id: lost}
    await conn.execute(
        "UPDATE presence_processes SET started_at = now() - interval '60 s' WHERE id = $1", me
    )
    await presence.sweep(conn, 30, me)
    assert await holders(conn) == {ann.id: me}
    left = [
        d["user_id"]
        for t, d in await factories.events_of(conn, "channel", room)
        if t == "voice.state_updated" and d["left"]
    ]
    assert left == [str(ben.id), str(cid.id)]


async def test_a_process_drops_its_orphans_after_a_grace_and_all_its_states_on_stop(
    pool: asyncpg.Pool, conn: asyncpg.Connection, make_user: MakeUser
) -> None:
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await factories.server(pool, ann, ben, voice=("room",))
    room = srv.channels["room"]
    me, other = uuid.uuid4(), uuid.uuid4()
    live, ended = uuid.uuid4(), uuid.uuid4()
    await voice_join(pool, ann, room, holder=voice.Holder(me, live))
    await voice_join(pool, ben, room, holder=voice.Holder(me, ended))
    # Just written: a join may have begun as the live set was read.
    assert await voice.drop_orphaned_states(conn, me, [live], grace_s=5) == 0
    assert await voice.drop_orphaned_states(conn, me, [live], grace_s=0) == 1
    assert await holders(conn) == {ann.id: me}
    assert await voice.drop_orphaned_states(conn, other, [], grace_s=0) == 0  # not its own
    await presence_q.touch_process(conn, process_id=me)
    await presence.leave(conn, me, 30)
    assert await holders(conn) == {}
