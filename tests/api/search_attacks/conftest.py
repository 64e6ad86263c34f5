"""Search under attack (probes of an outside review, 2026-11). Shared: a client that sees
a 500 as a response (no OpenAPI hook, no re-raised app exception), generous rate limits,
a bulk backdated insert, and a pager that walks `next_cursor` to the end."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from tests.conftest import make_settings
from xfchat.settings import Settings


@pytest.fixture
def settings(db_url: str) -> Settings:
    return make_settings(
        db_url,
        rate_messages_user="100000/60",
        rate_search_user="100000/60",
        rate_api_user="100000/60",
    )


@pytest.fixture
async def raw(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


async def bulk(
    db_url: str, channel: Any, author: Any, rows: list[tuple[str, datetime]]
) -> list[uuid.UUID]:
    """Insert messages with these contents and times (sending cannot backdate)."""
    ids = [uuid.uuid4() for _ in rows]
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute(
            """
            WITH c AS (UPDATE channels SET last_seq = last_seq + $5 WHERE id = $1
                       RETURNING last_seq - $5 AS base)
            INSERT INTO messages (id, channel_id, seq, author_id, content, created_at)
            SELECT u.id, $1, c.base + u.n, $2, u.content, u.at
            FROM c, unnest($3::uuid[], $4::text[], $6::timestamptz[])
                 WITH ORDINALITY AS u(id, content, at, n)
            """,
            uuid.UUID(str(channel)),
            uuid.UUID(str(author)),
            ids,
            [r[0] for r in rows],
            len(rows),
            [r[1] for r in rows],
        )
    finally:
        await conn.close()
    return ids


async def sql(db_url: str, statement: str, *args: Any) -> Any:
    conn = await asyncpg.connect(db_url)
    try:
        return await conn.fetch(statement, *args)
    finally:
        await conn.close()


async def search(raw: httpx.AsyncClient, who: Any, **params: Any) -> httpx.Response:
    return await raw.get("/api/search", params=params, headers=who.headers)


async def walk(
    raw: httpx.AsyncClient, who: Any, between: Any = None, **params: Any
) -> tuple[list[str], list[dict[str, Any]]]:
    """Every page of a search: the message ids in the order given, and the bodies.
    `between(page_number)` is awaited after each page but the last."""
    ids: list[str] = []
    bodies: list[dict[str, Any]] = []
    while True:
        response = await search(raw, who, **params)
        assert response.status_code == 200, (params, response.text)
        body = response.json()
        bodies.append(body)
        ids += [r["message"]["id"] for r in body["results"]]
        if not body["next_cursor"]:
            return ids, bodies
        assert len(bodies) < 400, "paging never ends"
        if between is not None:
            await between(len(bodies))
        params = {**params, "cursor": body["next_cursor"]}
