"""The ASGI application: `create_app(settings)`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import asyncpg
from fastapi import FastAPI

from xfchat import __version__
from xfchat.api import (
    attachments,
    auth,
    channels,
    conversations,
    friends,
    gateway,
    health,
    invites,
    media,
    members,
    mentions,
    messages,
    mutes,
    notification_settings,
    pins,
    roles,
    search,
    server_channels,
    servers,
    sse,
    two_factor,
    users,
    voice,
    web,
    webhooks,
)
from xfchat.api.cors import Cors
from xfchat.api.edge import EdgeMiddleware
from xfchat.api.errors import install_error_handlers
from xfchat.api.hot_path import hot_path
from xfchat.api.metrics import Metrics, ReplicaCollector, purge_collector, reindex_collector
from xfchat.api.openapi import install_openapi
from xfchat.api.routing import add_routes, head_as_get
from xfchat.db.migrate import discover
from xfchat.db.pool import connect, create_pool, pool_stats
from xfchat.db.replica import ReadRouter
from xfchat.domain import rate_limits, validation
from xfchat.domain.accounts import SessionCache
from xfchat.domain.health import SharedReadiness, check_ready
from xfchat.domain.local_limits import HeldPerAddress, LocalLimiter
from xfchat.domain.messages_purge import (
    PURGE_EVERY_S,
    PURGE_JOB,
    PurgeCounts,
    purge_deleted_channels,
)
from xfchat.domain.messages_writer import MessageWriter
from xfchat.domain.rate_limits import RateLimiter
from xfchat.domain.retention import prune_event_log, prune_rows
from xfchat.domain.search_reindex import (
    REINDEX_EVERY_S,
    REINDEX_JOB,
    ReindexCounts,
    reindex_queued_channels,
)
from xfchat.domain.usage import UsageRecorder
from xfchat.realtime.cursor import TokenCodec
from xfchat.realtime.hub import Hub
from xfchat.realtime.presence import PresenceTracker
from xfchat.settings import Settings
from xfchat.tasks import every, stop

log = logging.getLogger("xfchat.app")


DESCRIPTION = """A self-hosted real-time chat server whose only datastore is PostgreSQL.

Authenticate with `POST /api/auth/login` and send the access token as
`Authorization: Bearer <token>` (the Authorize button). Every error is JSON
`{"code", "message"}` (the `Error` schema). Real-time events (the `Event` schema) come
over `GET /api/events` (Server-Sent Events), the WebSocket gateway at `/api/gateway`, or a
Braid-HTTP subscription to a channel's messages; the README describes all three.
`HEAD` is answered wherever `GET` is, as `GET` without its body (listed apart only where
a download has a `HEAD` of its own)."""


def _lifespan(
    settings: Settings, pool: asyncpg.Pool | None
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop_all = await _start(app, settings, pool)
        try:
            yield
        finally:
            await stop_all()

    return lifespan


async def _start(
    app: FastAPI, settings: Settings, pool: asyncpg.Pool | None
) -> Callable[[], Awaitable[None]]:
    """Open what the app runs on: the pool (unless given one), the replica's, usage,
    the hub and presence, the writer and the periodic jobs. Returns how to stop them."""
    owned = pool is None
    validation.prepare()  # (about 70 ms once a process, here rather than at a first send)
    app.state.pool = pool if pool is not None else await create_pool(settings)
    replica = (  # opened lazily: a standby that is down only sends reads to the primary
        await create_pool(settings, settings.replica_url, min_size=0)
        if settings.replica_url
        else None
    )
    app.state.reads = ReadRouter(app.state.pool, replica, settings.replica_wait_s)
    app.state.usage = UsageRecorder(app.state.pool, settings.usage_flush_interval_s)
    app.state.usage.start()
    await _start_hub(app, settings)
    app.state.writer = MessageWriter(
        app.state.pool,
        queue_limit=settings.send_queue,
        deadline_s=settings.send_timeout_s,
        file_sends=settings.file_sends,
        on_sent=app.state.usage.count_messages,
    )
    clock = app.state.pool
    tasks = [
        # (each period the cluster's, claimed on the pool the app started with)
        every(60, lambda: rate_limits.prune(app.state.pool), "prune-rate-limits", clock),
        every(
            600,
            lambda: prune_event_log(app.state.pool, settings.event_retention_days),
            "prune-event-log",
            clock,
        ),
        every(3600, lambda: prune_rows(app.state.pool, settings), "prune-rows", clock),
        every(
            PURGE_EVERY_S,
            lambda: purge_deleted_channels(app.state.pool, app.state.purged),
            PURGE_JOB,
            clock,
        ),
        every(
            REINDEX_EVERY_S,
            lambda: reindex_queued_channels(app.state.pool, app.state.reindexed),
            REINDEX_JOB,
            clock,
        ),
    ]

    async def stop_all() -> None:
        await stop(*tasks)
        await app.state.writer.stop(drain_s=settings.shutdown_grace_s)
        await app.state.hub.stop()
        await app.state.presence.stop()
        await app.state.usage.stop()
        if replica is not None:
            await replica.close()
        if owned:
            await app.state.pool.close()

    return stop_all


async def _start_hub(app: FastAPI, settings: Settings) -> None:
    """The process's listener and its presence tracker, listening (or trying to)."""
    app.state.hub = Hub(
        app.state.pool,
        lambda: connect(settings),
        TokenCodec(settings.secret.get_secret_value()),
        queue_limit=settings.realtime_queue,
        connections_per_user=settings.realtime_connections_user,
        follows_per_user=settings.realtime_follows_user,
    )
    app.state.hub.user_event_hooks.append(app.state.sessions.observe)
    app.state.hub.reconnect_hooks.append(app.state.sessions.clear)
    app.state.presence = PresenceTracker(
        app.state.pool,
        interval_s=settings.presence_interval_s,
        timeout_s=settings.presence_timeout_s,
    )
    await app.state.presence.start()
    app.state.hub.presence = app.state.presence
    await app.state.hub.start()
    await app.state.hub.wait_listening(5)


def create_app(settings: Settings, *, pool: asyncpg.Pool | None = None) -> FastAPI:
    """Build the app. Given a pool, the app uses it and leaves closing it to the caller;
    otherwise the lifespan opens one from `settings` and closes it at shutdown."""
    app = FastAPI(
        title="XFChat",
        version=__version__,
        description=DESCRIPTION,
        lifespan=_lifespan(settings, pool),
        docs_url=None,
        redoc_url=None,
        redirect_slashes=False,  # (a bare 307 to another URL: a wrong one is 404, as any)
        strict_content_type=False,  # (as each API router: api/routing.api_router)
    )
    metrics = _init_state(app, settings, pool)
    install_error_handlers(app, on_db_error=metrics.count_db_error)
    _include_routers(app)
    app.include_router(web.make_router())  # the browser client, at /
    install_openapi(app)
    app.add_middleware(
        EdgeMiddleware,
        metrics=metrics,
        max_body_bytes=settings.max_body_bytes,
        upload_routes=media.upload_routes(settings),
        anonymous=app.state.anonymous,
    )
    if settings.cors_origins:  # outermost: errors from the edge carry CORS headers too
        app.add_middleware(Cors, origins=settings.cors_origins)
    # The send's route in front of FastAPI's layers (api/hot_path.py); HEAD wherever GET
    # is (api/routing.head_as_get).
    stack = app.build_middleware_stack
    app.build_middleware_stack = lambda: hot_path(  # type: ignore[method-assign]
        app, head_as_get(app, stack())
    )
    return app


def _listening(app: FastAPI) -> Callable[[], bool] | None:
    """Whether the hub's LISTEN connection is up; None before the lifespan made a hub."""
    hub = app.state.hub
    return None if hub is None else hub.listening.is_set


def _init_state(app: FastAPI, settings: Settings, pool: asyncpg.Pool | None) -> Metrics:
    """What the app holds before its lifespan starts (the pool, when given; the limits
    counted in memory; the metrics), and its metrics."""
    app.state.settings = settings
    app.state.pool = pool
    app.state.hub = None
    app.state.sessions = SessionCache()
    app.state.expected_migrations = {
        m.version: m.checksum for m in discover(settings.migrations_dir)
    }
    # What needs no token, counted per address in memory (api/edge.py).
    app.state.anonymous = (LocalLimiter("anonymous"), settings.rate_anonymous_ip)
    # Gateway connections not yet identified, per address in memory (api/gateway.py).
    app.state.unidentified = HeldPerAddress(settings.gateway_unidentified_ip)
    app.state.readiness = SharedReadiness(
        lambda: check_ready(app.state.pool, app.state.expected_migrations, _listening(app))
    )

    def stats() -> dict[str, Any] | None:
        return pool_stats(app.state.pool) if app.state.pool is not None else None

    metrics = Metrics(
        stats, hub=lambda: app.state.hub, writer=lambda: getattr(app.state, "writer", None)
    )
    metrics.registry.register(ReplicaCollector(lambda: getattr(app.state, "reads", None)))
    app.state.purged = PurgeCounts()
    metrics.registry.register(purge_collector(app.state.purged))
    app.state.reindexed = ReindexCounts()
    metrics.registry.register(reindex_collector(app.state.reindexed))
    app.state.metrics = metrics
    app.state.limiter = RateLimiter(observe=metrics.rate_limit_check.observe)
    return metrics


def _include_routers(app: FastAPI) -> None:
    """The API's routes, the busiest router's first: FastAPI tries them in order."""
    for router in (
        messages.router,
        sse.router,
        gateway.router,
        health.router,
        auth.router,
        users.router,
        two_factor.router,
        media.router,
        attachments.router,
        mentions.router,
        pins.router,
        friends.router,
        mutes.router,
        notification_settings.router,
        conversations.router,
        servers.router,
        invites.router,
        members.router,
        roles.router,
        server_channels.router,
        channels.router,
        voice.router,
        search.router,
        webhooks.router,
    ):
        add_routes(app, router)  # (not include_router: api/routing.py says why)
