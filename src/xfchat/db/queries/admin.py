"""Cluster-level statements (database creation) for the local dev server and tests.
Identifiers cannot be parameters, so names are checked against a strict pattern."""

from __future__ import annotations

import re

import asyncpg

_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def _ident(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ValueError(f"not a safe database name: {name!r}")
    return f'"{name}"'


async def database_exists(conn: asyncpg.Connection, *, name: str) -> bool:
    return bool(await conn.fetchval("SELECT true FROM pg_database WHERE datname = $1", name))


async def create_database(
    conn: asyncpg.Connection, *, name: str, template: str | None = None
) -> None:
    sql = f"CREATE DATABASE {_ident(name)}"
    if template:
        sql += f" TEMPLATE {_ident(template)}"
    await conn.execute(sql)


async def drop_database(conn: asyncpg.Connection, *, name: str) -> None:
    await conn.execute(f"DROP DATABASE IF EXISTS {_ident(name)} WITH (FORCE)")


async def create_login_role(conn: asyncpg.Connection, *, name: str, password: str) -> None:
    # CREATE ROLE takes no parameters; the password is quoted by PostgreSQL itself.
    quoted = await conn.fetchval("SELECT quote_literal($1)", password)
    await conn.execute(f"CREATE ROLE {_ident(name)} LOGIN PASSWORD {quoted}")
