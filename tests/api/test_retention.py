"""The retention job: what nothing reads any more is deleted, what is still read stays.

Rows are made through the API and aged by moving their times back (the job compares
them with the database's clock)."""

from __future__ import annotations

import asyncpg
import httpx

from tests import factories
from tests.factories import MakeUser
from xfchat.domain.retention import prune_event_log, prune_rows
from xfchat.settings import Settings

# Moving a row's time `$2` days back.
AGE = {
    "revoked": "UPDATE sessions SET revoked_at = now() - make_interval(days => $2) WHERE id = $1",
    "expired": "UPDATE sessions SET expires_at = now() - make_interval(days => $2) WHERE id = $1",
    "answered": "UPDATE friend_requests SET responded_at = now() - make_interval(days => $2) "
    "WHERE id = $1::uuid",
    "asked": "UPDATE friend_requests SET created_at = now() - make_interval(days => $2) "
    "WHERE id = $1::uuid",
    "audited": "UPDATE audit_log SET created_at = now() - make_interval(days => $2) WHERE id = $1",
}


async def age(conn: asyncpg.Connection, what: str, row_id: object, days: float) -> None:
    assert (await conn.execute(AGE[what], row_id, days)).split()[-1] == "1", what


async def test_sessions_ended_longer_ago_than_a_refresh_token_lives_are_deleted(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    conn: asyncpg.Connection,
    pool: asyncpg.Pool,
    settings: Settings,
) -> None:
    """Sessions and their refresh tokens were kept for ever (every refresh a row, 96 a
    day per client): one ended more than XFCHAT_REFRESH_TOKEN_TTL_DAYS ago is deleted,
    which no login's "known address" check looks back to."""
    user = await make_user()
    logged_out, expired, recent = [await factories.login(pool, settings, user) for _ in range(3)]
    for ended in (logged_out, recent):
        assert (await client.post("/api/auth/logout", headers=ended.headers)).status_code == 204
    ttl = settings.refresh_token_ttl_days
    await age(
        conn,
        "revoked",
        logged_out.session_id,
        ttl + 1,
    )
    await age(conn, "expired", expired.session_id, ttl + 1)
    await age(conn, "revoked", recent.session_id, ttl - 1)

    removed = await prune_rows(pool, settings)

    assert removed["sessions"] == 2
    left = {
        r["id"] for r in await conn.fetch("SELECT id FROM sessions WHERE user_id = $1", user.id)
    }
    assert left == {user.session_id, recent.session_id}
    gone = [logged_out.session_id, expired.session_id]
    assert (
        await conn.fetchval(
            "SELECT count(*) FROM refresh_tokens WHERE session_id = ANY($1::uuid[])", gone
        )
        == 0
    )
    assert (await client.get("/api/users/@me", headers=user.headers)).status_code == 200
    refreshed = await client.post("/api/auth/refresh", json={"refresh_token": user.refresh_token})
    assert refreshed.status_code == 200, refreshed.text
    old = await client.post("/api/auth/refresh", json={"refresh_token": expired.refresh_token})
    assert old.status_code == 401


async def test_answered_friend_requests_and_old_usage_days_are_deleted(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    conn: asyncpg.Connection,
    pool: asyncpg.Pool,
    settings: Settings,
) -> None:
    """Declined and cancelled requests were kept for ever (a send and cancel loop, 480
    rows a day per account), and usage rows past what the usage route can show."""
    ann, ben, cat, dan = [await make_user() for _ in range(4)]
    requests = {}
    for sender in (ben, cat, dan):
        sent = await client.post(
            "/api/users/@me/friend-requests",
            headers=sender.headers,
            json={"username": ann.username},
        )
        assert sent.status_code == 201, sent.text
        requests[sender.username] = sent.json()["id"]
    declined = requests[ben.username]
    assert (
        await client.post(f"/api/users/@me/friend-requests/{declined}/decline", headers=ann.headers)
    ).status_code == 204
    recently = requests[cat.username]
    assert (
        await client.delete(f"/api/users/@me/friend-requests/{recently}", headers=cat.headers)
    ).status_code == 204
    await age(conn, "answered", declined, 31)
    await age(conn, "answered", recently, 29)
    pending = requests[dan.username]
    await age(conn, "asked", pending, 400)
    for days_ago in (367, 365):
        await conn.execute(
            "INSERT INTO usage_tracking (user_id, day, requests) "
            "VALUES ($1, (now() AT TIME ZONE 'UTC')::date - $2::int, 1)",
            ann.id,
            days_ago,
        )

    removed = await prune_rows(pool, settings)

    assert removed["friend_requests"] == 1 and removed["usage"] == 1
    left = {str(r["id"]) for r in await conn.fetch("SELECT id FROM friend_requests")}
    assert left == {recently, pending}
    incoming = await client.get("/api/users/@me/friend-requests", headers=ann.headers)
    assert [r["id"] for r in incoming.json()["incoming"]] == [pending]
    usage = await client.get("/api/users/@me/usage?days=366", headers=ann.headers)
    assert len([d for d in usage.json() if d["requests"] == 1]) == 1


async def test_the_audit_log_is_kept_unless_a_retention_is_set(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    conn: asyncpg.Connection,
    pool: asyncpg.Pool,
    settings: Settings,
) -> None:
    owner = await make_user()
    srv = await factories.community(client, owner)
    for name in ("one", "two"):
        await factories.server_channel(client, srv, owner, name)
    entries = [r["id"] for r in await conn.fetch("SELECT id FROM audit_log ORDER BY id")]
    assert len(entries) >= 2
    await age(conn, "audited", entries[0], 100)

    assert "audit_log" not in await prune_rows(pool, settings)  # 0: kept for ever
    kept = settings.model_copy(update={"audit_retention_days": 90.0})
    assert (await prune_rows(pool, kept))["audit_log"] == 1

    log = await client.get(srv.url("/audit-log"), headers=owner.headers)
    assert [int(e["id"]) for e in log.json()] == sorted(entries[1:], reverse=True)


async def test_streams_of_deleted_channels_go_once_their_events_are_gone(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    conn: asyncpg.Connection,
    pool: asyncpg.Pool,
    settings: Settings,
) -> None:
    """A channel made, written in and deleted left its stream row for ever."""
    owner = await make_user()
    srv = await factories.community(client, owner)
    doomed = await factories.server_channel(client, srv, owner, "doomed")
    for channel in (doomed["id"], srv.general):
        await factories.say(client, owner, channel, "hello")
    assert (
        await client.delete(f"/api/channels/{doomed['id']}", headers=owner.headers)
    ).status_code == 204
    streams = "SELECT entity_id::text FROM event_streams WHERE kind = 'channel'"

    assert (await prune_rows(pool, settings))["event_streams"] == 0  # its events are still read
    await prune_event_log(pool, retention_days=0)
    assert (await prune_rows(pool, settings))["event_streams"] == 1

    left = {r["entity_id"] for r in await conn.fetch(streams)}
    assert doomed["id"] not in left and srv.general in left
    await factories.say(client, owner, srv.general, "still here")
