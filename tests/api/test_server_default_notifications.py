"""A server's default notification level (`default_notifications`, migration 0065): set by
MANAGE_SERVER through PATCH /api/servers/{id}, carried by the server object wherever it
goes, audited as the other server fields; clients apply it (README, "Notification
settings")."""

from __future__ import annotations

from uuid import UUID

import asyncpg
import httpx

from tests.factories import MakeUser, community, events_of, role
from xfchat.domain.permissions import Permission as P


async def test_a_new_server_defaults_to_all_everywhere_it_is_shown(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    ann = await make_user("ann")
    made = await client.post("/api/servers", headers=ann.headers, json={"name": "srv"})
    assert made.status_code == 201 and made.json()["default_notifications"] == "all"
    srv_id = made.json()["id"]
    got = await client.get(f"/api/servers/{srv_id}", headers=ann.headers)
    assert got.json()["default_notifications"] == "all"
    mine = await client.get("/api/users/@me/servers", headers=ann.headers)
    assert [s["default_notifications"] for s in mine.json()] == ["all"]


async def test_set_default_notifications_with_manage_server_is_shown_and_told(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    ann, ben, cat = await make_user("ann"), await make_user("ben"), await make_user("cat")
    srv = await community(client, ann, ben)
    await role(client, srv, ann, "admins", int(P.MANAGE_SERVER), ben)
    patched = await client.patch(
        srv.url(), headers=ben.headers, json={"default_notifications": "mentions"}
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["default_notifications"] == "mentions"
    got = await client.get(srv.url(), headers=ann.headers)
    assert got.json()["default_notifications"] == "mentions"
    mine = await client.get("/api/users/@me/servers", headers=ann.headers)
    assert [s["default_notifications"] for s in mine.json()] == ["mentions"]
    # (what `ready` carries: GET /api/users/@me/state reads the same)
    state = (await client.get("/api/users/@me/state", headers=ann.headers)).json()
    assert [s["default_notifications"] for s in state["servers"]] == ["mentions"]
    joined = await client.post(f"/api/invites/{srv.invite}", headers=cat.headers)
    assert joined.status_code == 201 and joined.json()["default_notifications"] == "mentions"
    async with pool.acquire() as conn:
        told = await events_of(conn, "server", UUID(srv.id))
        of_cat = await events_of(conn, "user", cat.id)
    updates = [d for t, d in told if t == "server.updated"]
    assert [u["default_notifications"] for u in updates] == ["mentions"]
    (cat_joined,) = [d for t, d in of_cat if t == "server.joined"]
    assert cat_joined["default_notifications"] == "mentions"
    back = await client.patch(srv.url(), headers=ann.headers, json={"default_notifications": "all"})
    assert back.status_code == 200 and back.json()["default_notifications"] == "all"


async def test_set_default_notifications_without_manage_server_is_403(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await community(client, ann, ben)
    for value in ("mentions", "all"):  # (a change, and the value it has already)
        refused = await client.patch(
            srv.url(), headers=ben.headers, json={"default_notifications": value}
        )
        assert refused.status_code == 403 and refused.json()["code"] == "MISSING_PERMISSIONS"
    got = await client.get(srv.url(), headers=ann.headers)
    assert got.json()["default_notifications"] == "all"


async def test_set_default_notifications_to_anything_else_is_400(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    ann = await make_user("ann")
    srv = await community(client, ann)
    for bad in ("nothing", "ALL", "mention", "", None, 1, True, ["all"]):
        refused = await client.patch(
            srv.url(), headers=ann.headers, json={"default_notifications": bad}
        )
        assert refused.status_code == 400, (bad, refused.text)
        body = refused.json()
        assert (body["code"], body["field"]) == ("VALIDATION_ERROR", "default_notifications")
    # (and the database refuses it too, whatever writes it)
    async with pool.acquire() as conn:
        try:
            await conn.execute(
                "UPDATE servers SET default_notifications = 'nothing' WHERE id = $1",
                UUID(srv.id),
            )
        except asyncpg.CheckViolationError:
            pass
        else:
            raise AssertionError("servers took default_notifications 'nothing'")
    got = await client.get(srv.url(), headers=ann.headers)
    assert got.json()["default_notifications"] == "all"


async def test_set_default_notifications_is_audited_with_its_old_value(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    ann = await make_user("ann")
    srv = await community(client, ann)
    await client.patch(srv.url(), headers=ann.headers, json={"default_notifications": "mentions"})
    await client.patch(
        srv.url(), headers=ann.headers, json={"name": "Big", "default_notifications": "all"}
    )
    log = await client.get(f"{srv.url()}/audit-log?action=server.updated", headers=ann.headers)
    assert [(e["changes"], e["diff"]) for e in log.json()] == [
        (
            {"name": "Big", "default_notifications": "all"},
            [
                {"key": "name", "old_value": "srv", "new_value": "Big"},
                {"key": "default_notifications", "old_value": "mentions", "new_value": "all"},
            ],
        ),
        (
            {"default_notifications": "mentions"},
            [{"key": "default_notifications", "old_value": "all", "new_value": "mentions"}],
        ),
    ]


async def test_set_default_notifications_as_it_is_writes_and_tells_nothing(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    ann = await make_user("ann")
    srv = await community(client, ann)
    await client.patch(srv.url(), headers=ann.headers, json={"default_notifications": "mentions"})

    async def written() -> tuple[int, int]:
        async with pool.acquire() as conn:
            events = await conn.fetchval("SELECT count(*) FROM events")
            audits = await conn.fetchval("SELECT count(*) FROM audit_log")
        return events, audits

    before = await written()
    for body in (
        {"default_notifications": "mentions"},
        {"name": "srv", "default_notifications": "mentions"},
    ):
        same = await client.patch(srv.url(), headers=ann.headers, json=body)
        assert same.status_code == 200 and same.json()["default_notifications"] == "mentions"
    assert await written() == before


async def test_the_schema_says_default_notifications_is_never_null(
    client: httpx.AsyncClient,
) -> None:
    """The PATCH refuses a null (400 above): /openapi.json does not offer one."""
    schemas = (await client.get("/openapi.json")).json()["components"]["schemas"]
    field = schemas["ServerPatchIn"]["properties"]["default_notifications"]
    assert "anyOf" not in field and "default" not in field, field
    assert field["enum"] == ["all", "mentions"], field
