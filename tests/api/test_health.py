from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from tests.conftest import make_settings
from tests.factories import AppWith, MakeUser
from tests.support import METRICS_HEADERS
from xfchat.app import create_app
from xfchat.db.embedded import throwaway
from xfchat.db.migrate import Migrator
from xfchat.db.pool import create_pool


async def test_health_is_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


async def test_ready_is_ok_with_a_current_schema(client: httpx.AsyncClient) -> None:
    response = await client.get("/ready")
    assert response.status_code == 200 and response.json() == {"status": "ready"}


async def test_ready_is_503_when_a_migration_is_missing(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    await conn.execute(
        "DELETE FROM schema_migrations WHERE version = (SELECT max(version) FROM schema_migrations)"
    )
    response = await client.get("/ready")
    assert response.status_code == 503
    assert response.json() == {
        "code": "NOT_READY",
        "message": "the database schema does not match this code's migrations",
    }


async def test_ready_stays_200_when_a_newer_release_applied_its_migration(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    # A rolling upgrade: the new release's first process migrated; this older one
    # still serves, and must not be taken out of the balancer with every other old one.
    await conn.execute(
        "INSERT INTO schema_migrations (version, name, checksum)"
        " SELECT max(version) + 1, 'from_a_newer_release', 'x' FROM schema_migrations"
    )
    response = await client.get("/ready")
    assert response.status_code == 200 and response.json() == {"status": "ready"}


async def test_ready_is_503_for_an_unknown_migration_below_this_codes_last(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    # (a database of another lineage, not a newer release of this one)
    await conn.execute(
        "INSERT INTO schema_migrations (version, name, checksum) VALUES (0, 'elsewhere', 'x')"
    )
    response = await client.get("/ready")
    assert response.status_code == 503 and response.json()["code"] == "NOT_READY"


async def test_ready_is_503_while_the_listener_is_down_and_200_when_back(
    app_with: AppWith, conn: asyncpg.Connection, db_url: str
) -> None:
    # The LISTEN connection goes through a role of its own (as XFCHAT_LISTEN_URL may),
    # which then may not log in: requests still work, real-time delivery does not.
    role = f"xfchat_listen_{uuid.uuid4().hex[:8]}"
    await conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'listen-password'")
    await conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")
    parts = urlsplit(db_url)
    netloc = f"{role}:listen-password@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    try:
        client = await app_with(listen_url=urlunsplit(parts._replace(netloc=netloc)))
        assert (await client.get("/ready")).status_code == 200
        await conn.execute(f"ALTER ROLE {role} NOLOGIN")
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", role
        )
        async with asyncio.timeout(10):
            while (response := await client.get("/ready")).status_code == 200:
                await asyncio.sleep(0.1)
        assert response.status_code == 503 and response.json() == {
            "code": "NOT_READY",
            "message": "the real-time listener is not connected to the database",
        }
        assert (await client.get("/health")).status_code == 200
        await conn.execute(f"ALTER ROLE {role} LOGIN")
        async with asyncio.timeout(20):  # the hub reconnects by itself
            while (await client.get("/ready")).status_code != 200:
                await asyncio.sleep(0.1)
    finally:
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", role
        )
        await conn.execute(f"DROP OWNED BY {role}")
        await conn.execute(f"DROP ROLE {role}")


async def test_metrics_count_requests_per_route_and_show_the_pool(
    client: httpx.AsyncClient,
) -> None:
    for _ in range(3):
        await client.get("/health")
    await client.get("/no/such/thing")
    text = (await client.get("/metrics", headers=METRICS_HEADERS)).text
    assert 'xfchat_http_requests_total{method="GET",route="/health",status="200"} 3.0' in text
    assert 'xfchat_http_requests_total{method="GET",route="unmatched",status="404"} 1.0' in text
    assert 'xfchat_http_request_duration_seconds_count{method="GET",route="/health"} 3.0' in text
    assert "xfchat_db_pool_size" in text and "xfchat_db_pool_in_use" in text
    assert "xfchat_db_pool_max 10.0" in text


async def test_unknown_route_is_404_json(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/nothing-here")
    assert response.status_code == 404
    assert response.json() == {"code": "NOT_FOUND", "message": "no such route"}


async def test_wrong_method_is_405_json_and_allow_names_every_method_of_the_path(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/health")
    assert response.status_code == 405
    assert response.json()["code"] == "METHOD_NOT_ALLOWED"
    assert response.headers["allow"] == "GET, HEAD"
    # (was "GET": the first route of the path Starlette met, a hostile client's find)
    me = await client.delete("/api/users/@me")
    assert me.status_code == 405 and me.headers["allow"] == "GET, HEAD, PATCH"


class Echo(BaseModel):
    count: int
    name: str


@pytest.fixture
async def echo_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    @app.post("/test/echo")
    async def echo(body: Echo) -> Echo:
        return body

    @app.get("/test/boom")
    async def boom() -> None:
        raise RuntimeError("unexpected")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


async def test_malformed_json_is_400_in_the_error_shape(echo_client: httpx.AsyncClient) -> None:
    response = await echo_client.post(
        "/test/echo", content=b'{"count": 1,', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json() == {
        "code": "MALFORMED_JSON",
        "message": "the request body is not valid JSON",
    }


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,  # valid, but deeper than the parser goes
        b'{"count": ' + b"9" * 500_000 + b', "name": "x"}',  # past int's digit limit
        b'{"count": 1, "name": "\xff"}',  # not UTF-8
    ],
    ids=["deep", "long-int", "not-utf8"],
)
async def test_json_the_parser_cannot_read_is_malformed_json(
    echo_client: httpx.AsyncClient, body: bytes
) -> None:
    """Not the undocumented BAD_REQUEST "There was an error parsing the body"."""
    response = await echo_client.post(
        "/test/echo", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["code"] == "MALFORMED_JSON"


async def test_wrong_type_is_400_naming_the_field(echo_client: httpx.AsyncClient) -> None:
    response = await echo_client.post("/test/echo", json={"count": "many", "name": "x"})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "VALIDATION_ERROR" and body["field"] == "count"
    assert body["message"].startswith("count: ")


async def test_a_validation_error_the_code_raises_has_the_validators_shape(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """`errors` lists the offending fields whether the request's model or the code found
    them: clients parse one shape."""
    user = await make_user()
    mine = await client.delete(
        "/api/conversations/00000000-0000-0000-0000-000000000000/participants/nobody",
        headers=user.headers,
    )
    assert mine.status_code == 400, mine.text
    assert mine.json() == {
        "code": "VALIDATION_ERROR",
        "message": "user_id is a user id or @me",
        "field": "user_id",
        "errors": [{"field": "user_id", "message": "user_id is a user id or @me"}],
    }
    models = await client.get("/api/users/@me/mentions?limit=0", headers=user.headers)
    assert models.json()["code"] == "VALIDATION_ERROR"
    assert [e["field"] for e in models.json()["errors"]] == ["limit"]


async def test_missing_body_is_400(echo_client: httpx.AsyncClient) -> None:
    response = await echo_client.post("/test/echo")
    assert response.status_code == 400 and response.json()["code"] == "VALIDATION_ERROR"


async def test_an_unexpected_error_is_500_json_not_a_traceback(
    echo_client: httpx.AsyncClient,
) -> None:
    response = await echo_client.get("/test/boom")
    assert response.status_code == 500
    assert response.json() == {"code": "INTERNAL_ERROR", "message": "internal error"}


async def test_a_body_over_the_limit_is_413(echo_client: httpx.AsyncClient) -> None:
    huge = b'{"count": 1, "name": "' + b"x" * (1_048_576 + 10) + b'"}'
    response = await echo_client.post(
        "/test/echo", content=huge, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413 and response.json()["code"] == "PAYLOAD_TOO_LARGE"


async def test_a_streamed_body_over_the_limit_is_413(echo_client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"count": 1, "name": "'
        for _ in range(20):
            yield b"x" * 65536
        yield b'"}'

    response = await echo_client.post(
        "/test/echo", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413 and response.json()["code"] == "PAYLOAD_TOO_LARGE"


async def test_openapi_and_docs_are_served(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert spec["info"]["title"] == "XFChat" and "/ready" in spec["paths"]
    assert (await client.get("/docs")).status_code == 200


async def test_ready_is_503_while_the_database_is_down_and_200_when_back() -> None:
    server, root = throwaway()
    try:
        conn = await asyncpg.connect(server.url)
        await Migrator(conn).run()
        await conn.close()
        settings = make_settings(server.url, pool_min=1, pool_max=2, connect_timeout_s=1)
        pool = await create_pool(settings)
        app = create_app(settings, pool=pool)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/ready")).status_code == 200
            server.stop()
            started = asyncio.get_running_loop().time()
            response = await client.get("/ready")
            assert response.status_code == 503 and response.json()["code"] == "NOT_READY"
            assert asyncio.get_running_loop().time() - started < 5
            assert (await client.get("/health")).status_code == 200  # alive all along
            server.start(port=server.port)
            async with asyncio.timeout(10):  # the pool replaces its dead connections
                while (await client.get("/ready")).status_code != 200:
                    await asyncio.sleep(0.1)
        await pool.close()
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


async def test_metrics_need_their_token_on_the_public_listener(app_with: AppWith) -> None:
    default = await app_with(metrics_token=None)
    hidden = await default.get("/metrics", headers=METRICS_HEADERS)
    assert hidden.status_code == 404 and hidden.json()["code"] == "NOT_FOUND"
    guarded = await app_with()
    for headers in (
        {},
        {"Authorization": "Bearer not-the-token"},
        {"Authorization": "Bearer \xe9t\xe9".encode("latin-1")},
    ):
        refused = await guarded.get("/metrics", headers=headers)
        assert refused.status_code == 401 and refused.json()["code"] == "UNAUTHORIZED"
    assert (await guarded.get("/metrics", headers=METRICS_HEADERS)).status_code == 200
