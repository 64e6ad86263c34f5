"""Rate limits that hold across every server process: the counters live in PostgreSQL.

Fixed windows on the database clock, each opened by its key's first hit: a rule "N/S"
lets N requests through per S-second window per key. Each check is one upsert on an
UNLOGGED table. Keys (IP addresses, login names, user ids) are hashed before they are
stored.
"""

from __future__ import annotations

import hashlib
import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from xfchat.db.queries import rate_limits as q
from xfchat.errors import RateLimited
from xfchat.settings import RateLimit


@dataclass(frozen=True)
class Decision:
    allowed: bool
    bucket: str
    limit: int
    remaining: int
    reset_at: float  # epoch seconds when the window ends
    reset_after: float  # seconds from now until then

    def refusal(self) -> RateLimited:
        """The 429 (RATE_LIMITED) that a denied request gets (the API adds the
        bucket's headers and Retry-After)."""
        return RateLimited(
            f"too many requests; retry in {self.reset_after:.1f} s",
            extra={"bucket": self.bucket, "retry_after": round(self.reset_after, 3)},
            retry_after=self.reset_after,
            window=self,
        )

    def enforce(self) -> Decision:
        """Raises the refusal when denied."""
        if not self.allowed:
            raise self.refusal()
        return self


def address_of(host: str | None) -> str | None:
    """The client's IP address as ipaddress writes it, or None for anything else (a
    trusted proxy's X-Forwarded-For can say anything): it is stored and keys rate
    limits, so it must not be what a client chose."""
    try:
        return str(ipaddress.ip_address(host or ""))
    except ValueError:
        return None


def proxy_networks(proxies: list[str]) -> list[str]:
    """XFCHAT_TRUSTED_PROXIES in both the forms a peer's address may take: an IPv4
    network also as IPv4-mapped IPv6 (a dual-stack listener's peers are ::ffff:a.b.c.d),
    and such a network also as IPv4; `*` as it is."""
    if proxies == ["*"]:
        return proxies
    forms = []
    for proxy in proxies:
        network = ipaddress.ip_network(proxy, strict=False)
        forms.append(str(network))
        if isinstance(network, ipaddress.IPv4Network):
            forms.append(f"::ffff:{network.network_address}/{96 + network.prefixlen}")
        elif network.network_address.ipv4_mapped is not None and network.prefixlen >= 96:
            forms.append(f"{network.network_address.ipv4_mapped}/{network.prefixlen - 96}")
    return forms


def proxy_test(proxies: list[str]) -> Callable[[str | None], bool]:
    """Whether a peer's address is one of XFCHAT_TRUSTED_PROXIES (addresses or networks,
    in either form of proxy_networks, or `*` for any)."""
    if proxies == ["*"]:
        return lambda _ip: True
    networks = [ipaddress.ip_network(form) for form in proxy_networks(proxies)]

    def is_proxy(ip: str | None) -> bool:
        try:
            address = ipaddress.ip_address(ip or "")
        except ValueError:
            return False
        return any(address.version == n.version and address in n for n in networks)

    return is_proxy


def ip_key(ip: str | None) -> str:
    """The rate-limit key of a client address: an IPv6 address by its /64 (one
    subscriber's network, where every address is theirs to use), an IPv4 one whole."""
    if not ip:
        return "unknown"
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


SITE_PREFIX = 48  # an IPv6 site: one subscriber's, often (tunnel brokers give them away)
SITE_FACTOR = 16  # how many times a per-address rule a site takes, its /64s together


def address_checks(
    bucket: str, ip: str | None, rule: RateLimit
) -> list[tuple[str, str, RateLimit]]:
    """The checks of a per-address bucket: the client's address (ip_key); for IPv6 also
    its /48, which takes SITE_FACTOR times the rule, so that the 65,536 /64 networks of
    one site do not each get the whole limit."""
    checks = [(bucket, ip_key(ip), rule)]
    try:
        address = ipaddress.ip_address(ip or "")
    except ValueError:
        return checks
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is None:
        site = str(ipaddress.ip_network(f"{address}/{SITE_PREFIX}", strict=False))
        checks.append((bucket, site, RateLimit(rule.limit * SITE_FACTOR, rule.period_s)))
    return checks


def client_networks(ip: str) -> list[str]:
    """Every way a stored address of the client `ip` (as ip_key takes it) may be written:
    an IPv6 address's /64; an IPv4 address, plain or IPv4-mapped IPv6 (as a dual-stack
    listener reports it)."""
    key = ip_key(ip)
    try:
        address = ipaddress.ip_address(key)
    except ValueError:
        return [key]  # an IPv6 /64 (or an address that is no IP: matches nothing)
    return [key, f"::ffff:{address}"]


def bucket_key(bucket: str, key: str) -> str:
    """The stored name of a bucket for one key (the key itself is never stored)."""
    return f"{bucket}:{hashlib.sha256(key.encode()).hexdigest()[:32]}"


def decide(bucket: str, rule: RateLimit, hits: int, ends: datetime, now: datetime) -> Decision:
    """The decision for the request that was the `hits`-th in its window."""
    return Decision(
        allowed=hits <= rule.limit,
        bucket=bucket,
        limit=rule.limit,
        remaining=max(0, rule.limit - hits),
        reset_at=ends.timestamp(),
        reset_after=max(0.0, (ends - now).total_seconds()),
    )


class RateLimiter:
    def __init__(self, observe: Callable[[float], None] | None = None) -> None:
        self._observe = observe

    async def check(
        self, conn: asyncpg.Connection, bucket: str, key: str, rule: RateLimit
    ) -> Decision:
        """Count this request against `bucket`/`key` and say whether it may proceed."""
        (decision,) = await self.check_many(conn, [(bucket, key, rule)])
        return decision

    async def give_back(self, conn: asyncpg.Connection, bucket: str, key: str) -> None:
        """Take back one hit this request counted in `bucket`/`key` (for limits counted
        up front, so that requests at once cannot all slip in, but kept only for some
        outcomes)."""
        await q.give_back_hit(conn, bucket=bucket_key(bucket, key))

    async def check_many(
        self, conn: asyncpg.Connection, checks: list[tuple[str, str, RateLimit]]
    ) -> list[Decision]:
        """Count this request in several buckets at once (one statement)."""
        started = time.perf_counter()
        states = await q.hit_buckets(
            conn,
            buckets=[bucket_key(bucket, key) for bucket, key, _ in checks],
            periods=[rule.period_s for _, _, rule in checks],
        )
        if self._observe is not None:
            self._observe(time.perf_counter() - started)
        return [
            decide(bucket, rule, state.hits, state.expires_at, state.now)
            for (bucket, _, rule), state in zip(checks, states, strict=True)
        ]


async def prune(pool: asyncpg.Pool) -> int:
    """Remove counters whose window has ended."""
    async with pool.acquire() as conn:
        return await q.delete_expired_buckets(conn)
