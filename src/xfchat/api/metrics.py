"""Prometheus metrics: requests and latency per route, pool usage, database errors.

Each app has its own registry (no process-global state), exposed at GET /metrics.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Receive, Scope, Send

from xfchat.domain.messages_purge import PurgeCounts
from xfchat.domain.search_reindex import ReindexCounts

# The methods a request is counted under by name; any other (the HTTP parser takes some
# thirty: PROPFIND, MKCOL, PURGE, ...) is counted as OTHER_METHOD. Each name was a series
# of its own for every route it was sent to, in the counter and in the latency histogram
# (16 series a route): anyone, without a token, could add some 60,000 series to the
# process's memory and to every scrape.
METHODS = frozenset("GET HEAD POST PUT PATCH DELETE OPTIONS".split())
OTHER_METHOD = "other"

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class _PoolCollector(Collector):
    def __init__(self, stats: Callable[[], dict[str, Any] | None]) -> None:
        self.stats = stats

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        stats = self.stats()
        if stats is None:
            return
        for key, doc in (
            ("size", "connections open"),
            ("in_use", "connections checked out"),
            ("idle", "connections idle"),
            ("max", "maximum pool size"),
        ):
            yield GaugeMetricFamily(
                f"xfchat_db_pool_{key}", f"Database pool: {doc}", value=stats[key]
            )
        yield CounterMetricFamily(
            "xfchat_db_pool_exhausted",
            "Acquires that found no connection free within the timeout (answered 503)",
            value=stats["exhausted"],
        )
        yield CounterMetricFamily(
            "xfchat_db_pool_nested",
            "Acquires by a task that already held a connection (a bug: should stay 0)",
            value=stats["nested"],
        )


class _HubCollector(Collector):
    def __init__(self, hub: Callable[[], Any]) -> None:
        self.hub = hub

    def collect(self) -> Iterator[Any]:
        hub = self.hub()
        if hub is None:
            return
        yield GaugeMetricFamily(
            "xfchat_realtime_subscribers",
            "Open real-time subscriptions",
            value=len(hub.subscribers),
        )
        yield GaugeMetricFamily(
            "xfchat_realtime_listening",
            "1 while the LISTEN connection is up",
            value=int(hub.listening.is_set()),
        )
        ended = CounterMetricFamily(
            "xfchat_realtime_subscriptions_ended",
            "Subscriptions ended, by reason",
            labels=["reason"],
        )
        for reason, n in sorted(hub.ended.items()):
            ended.add_metric([reason], n)
        yield ended
        yield CounterMetricFamily(
            "xfchat_realtime_deliveries", "Events offered to subscribers", value=hub.offered
        )
        yield CounterMetricFamily(
            "xfchat_realtime_log_reads",
            "Reads of missed commits from the event log (one per page, for all subscribers)",
            value=hub.fill_reads,
        )
        yield CounterMetricFamily(
            "xfchat_realtime_signals_dropped",
            "Signals (typing, presence, voice signalling) dropped while more than 10,000 "
            "(or 8 MiB of them) waited for earlier commits being read from the log",
            value=hub.signals_dropped,
        )


class _WriterCollector(Collector):
    def __init__(self, writer: Callable[[], Any]) -> None:
        self.writer = writer

    def collect(self) -> Iterator[Any]:
        writer = self.writer()
        if writer is None:
            return
        yield CounterMetricFamily(
            "xfchat_send_batches",
            "Send transactions written (each carries every send that was waiting)",
            value=writer.batches,
        )
        yield CounterMetricFamily(
            "xfchat_sends", "Sends carried by those transactions", value=writer.sends
        )
        yield CounterMetricFamily(
            "xfchat_send_batch_seconds",
            "Seconds those transactions took, from their statements sent to their answers "
            "read (wall time, the waits for the event loop included)",
            value=writer.writing_s,
        )
        yield CounterMetricFamily(
            "xfchat_sends_refused",
            "Sends answered 503 for a full queue, a deadline or shutdown",
            value=writer.refused,
        )
        yield GaugeMetricFamily(
            "xfchat_sends_pending", "Sends accepted and not yet answered", value=writer.pending
        )


class CountsCollector(Collector):
    """A background job's counts of this process (a dataclass of ints), each a counter."""

    def __init__(self, counts: object, helps: dict[str, tuple[str, str]]) -> None:
        self.counts = counts
        self.helps = helps  # attribute -> (metric name, help)

    def collect(self) -> Iterator[Any]:
        for attribute, (name, help_text) in self.helps.items():
            yield CounterMetricFamily(name, help_text, value=getattr(self.counts, attribute))


def purge_collector(counts: PurgeCounts) -> CountsCollector:
    return CountsCollector(
        counts,
        {
            "messages": (
                "xfchat_purged_messages",
                "Messages of deleted channels purged by this process",
            ),
            "failures": (
                "xfchat_purge_failures",
                "Batches of that purge that failed (each logged, tried again smaller)",
            ),
        },
    )


def reindex_collector(counts: ReindexCounts) -> CountsCollector:
    return CountsCollector(
        counts,
        {
            "messages": (
                "xfchat_search_reindexed_messages",
                "Messages re-indexed by this process after their server's search language changed",
            ),
            "failures": (
                "xfchat_search_reindex_failures",
                "Batches of that re-indexing that failed (each logged, tried again at the"
                " next run)",
            ),
        },
    )


class ReplicaCollector(Collector):
    def __init__(self, reads: Callable[[], Any]) -> None:
        self.reads = reads

    def collect(self) -> Iterator[Any]:
        router = self.reads()
        if router is None or router.replica is None:
            return
        reads = CounterMetricFamily(
            "xfchat_replica_reads",
            "Reads the replica may serve, by where they went: replica, primary_lagging "
            "(it had not replayed the reader's writes in time), primary_unreachable",
            labels=["outcome"],
        )
        for outcome, n in sorted(router.reads.items()):
            reads.add_metric([outcome], n)
        yield reads


class Metrics:
    def __init__(
        self,
        pool_stats: Callable[[], dict[str, Any] | None],
        hub: Callable[[], Any] = lambda: None,
        writer: Callable[[], Any] = lambda: None,
    ) -> None:
        self.registry = CollectorRegistry()
        self._request_children: dict[tuple[str, str, int], Any] = {}
        self._latency_children: dict[tuple[str, str], Any] = {}
        self.requests = Counter(
            "xfchat_http_requests",
            "HTTP requests answered",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "xfchat_http_request_duration_seconds",
            "Time from request to response headers",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.db_errors = Counter(
            "xfchat_db_errors",
            "Database errors seen by request handlers",
            ["kind"],
            registry=self.registry,
        )
        self.refused = Counter(
            "xfchat_http_refused",
            "Requests refused before the app saw them (unreadable, head too large or too"
            " slow, body too slow, an address's connections over its limit), by code;"
            " uvicorn's warning for each is logged at debug level",
            ["code"],
            registry=self.registry,
        )
        self.rate_limit_check = Histogram(
            "xfchat_rate_limit_check_seconds",
            "Time one rate-limit check takes (one upsert in PostgreSQL)",
            buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1),
            registry=self.registry,
        )
        self.registry.register(_PoolCollector(pool_stats))
        self.registry.register(_HubCollector(hub))
        self.registry.register(_WriterCollector(writer))

    def count_request(self, method: str, route: str, status: int) -> None:
        # labels() looks its child up under a lock on every call; keep the children.
        method = method_label(method)
        key = (method, route, status)
        child = self._request_children.get(key)
        if child is None:
            child = self._request_children[key] = self.requests.labels(method, route, str(status))
        child.inc()

    def observe_latency(self, method: str, route: str, seconds: float) -> None:
        method = method_label(method)
        key = (method, route)
        child = self._latency_children.get(key)
        if child is None:
            child = self._latency_children[key] = self.latency.labels(method, route)
        child.observe(seconds)

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))

    def count_refusal(self, code: str) -> None:
        self.refused.labels(code).inc()

    def count_db_error(self, kind: str) -> None:
        self.db_errors.labels(kind=kind).inc()


def method_label(method: str) -> str:
    return method if method in METHODS else OTHER_METHOD


def route_label(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"


def metrics_listener(metrics: Metrics) -> ASGIApp:
    """The app of XFCHAT_METRICS_ADDR, a listener of its own: GET /metrics and nothing
    else (no token: whoever reaches that address may scrape)."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/metrics" and scope["method"] in ("GET", "HEAD"):
            status, kind, body = 200, b"text/plain; version=0.0.4; charset=utf-8", metrics.render()
        else:
            status, kind = 404, b"application/json"
            body = b'{"code":"NOT_FOUND","message":"only /metrics is served here"}'
        headers = [(b"content-type", kind), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send(
            {"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body}
        )

    return app
