"""The ASGI application: `create_app(settings)`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from fastapi import FastAPI

from xfchat import __version__
from xfchat.api import health
from xfchat.api.errors import install_error_handlers
from xfchat.api.limits import BodyLimitMiddleware
from xfchat.api.metrics import Metrics, MetricsMiddleware
from xfchat.db.migrate import discover
from xfchat.db.pool import create_pool, pool_stats
from xfchat.settings import Settings


def create_app(settings: Settings, *, pool: asyncpg.Pool | None = None) -> FastAPI:
    """Build the app. Given a pool, the app uses it and leaves closing it to the caller;
    otherwise the lifespan opens one from `settings` and closes it at shutdown."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = pool is None
        app.state.pool = pool if pool is not None else await create_pool(settings)
        try:
            yield
        finally:
            if owned:
                await app.state.pool.close()

    app = FastAPI(
        title="XFChat",
        version=__version__,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.pool = pool
    app.state.expected_migrations = {
        m.version: m.checksum for m in discover(settings.migrations_dir)
    }

    def stats() -> dict[str, Any] | None:
        return pool_stats(app.state.pool) if app.state.pool is not None else None

    metrics = Metrics(stats)
    app.state.metrics = metrics
    install_error_handlers(app, on_db_error=metrics.count_db_error)
    app.include_router(health.router)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app
