"""What a rate-limit check adds to a request, and what a login costs.

    uv run python -m bench.rate_limits [--checks 5000] [--concurrency 32]

Starts a durable local PostgreSQL (or uses BENCH_DATABASE_URL), then times:
the rate-limit check alone (one upsert on an UNLOGGED table: the latency every API
request pays), sequentially and under concurrency; the same request through the whole
app with and without that check (GET /api/users/@me in-process); and a failed login for
an unknown user and for a wrong password (they should cost the same).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import statistics
import time
from typing import Any

import httpx

from bench.common import database, env_url, pct, summary
from xfchat.app import create_app
from xfchat.db.pool import create_pool
from xfchat.domain import accounts
from xfchat.domain import login as sign_in
from xfchat.domain.rate_limits import Decision, RateLimiter
from xfchat.settings import RateLimit, Settings


async def time_checks(pool: Any, n: int, keys: int, concurrency: int) -> tuple[list[float], float]:
    limiter = RateLimiter()
    rule = RateLimit(1_000_000, 60)
    samples: list[float] = []
    counter = iter(range(n))

    async def worker() -> None:
        async with pool.acquire() as conn:
            for i in counter:
                started = time.perf_counter()
                await limiter.check(conn, "bench", str(i % keys), rule)
                samples.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return samples, n / (time.perf_counter() - started)


class NoLimit(RateLimiter):
    """The same app with the check taken out, for comparison."""

    async def check_many(
        self, conn: Any, checks: list[tuple[str, str, RateLimit]]
    ) -> list[Decision]:
        return [
            Decision(True, bucket, rule.limit, rule.limit, 0.0, 0.0) for bucket, _, rule in checks
        ]


async def bench_user(
    pool: Any, settings: Settings, prefix: str, password: str
) -> tuple[str, accounts.IssuedTokens]:
    """A new user with a random name, so that runs against BENCH_DATABASE_URL never
    collide; returns its username and tokens."""
    username = f"{prefix}{secrets.token_hex(6)}"
    issued = await accounts.register(
        pool,
        settings,
        username=username,
        email=f"{username}@example.com",
        password=password,
        display_name=None,
        client=accounts.ClientInfo(None, None),
    )
    return username, issued


async def time_requests(settings: Settings, pool: Any, n: int) -> tuple[list[float], list[float]]:
    """GET /api/users/@me alternately through an app with the check and one without, so
    drift and warm-up hit both equally."""
    apps = [create_app(settings, pool=pool), create_app(settings, pool=pool)]
    apps[1].state.limiter = NoLimit()
    samples: tuple[list[float], list[float]] = ([], [])
    async with contextlib.AsyncExitStack() as stack:
        clients = []
        for app in apps:
            await stack.enter_async_context(app.router.lifespan_context(app))
            clients.append(
                await stack.enter_async_context(
                    httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://b")
                )
            )
        _, issued = await bench_user(pool, settings, "b", "a long bench passphrase")
        headers = {"Authorization": f"Bearer {issued.access_token}"}
        for _ in range(n):
            for client, out in zip(clients, samples, strict=True):
                started = time.perf_counter()
                response = await client.get("/api/users/@me", headers=headers)
                out.append(time.perf_counter() - started)
                assert response.status_code == 200, response.text
    return samples


async def time_logins(settings: Settings, pool: Any, n: int) -> tuple[list[float], list[float]]:
    victim, _ = await bench_user(pool, settings, "victim", "the real passphrase")
    wrong: list[float] = []
    unknown: list[float] = []
    for _ in range(n):
        for login, out in ((victim, wrong), (f"ghost{secrets.token_hex(6)}", unknown)):
            started = time.perf_counter()
            try:
                target = await sign_in.find_account(pool, settings, login=login, ip=None)
                await sign_in.log_in(
                    pool,
                    settings,
                    target=target,
                    password="not the passphrase",
                    client=accounts.ClientInfo(None, None),
                )
            except accounts.Unauthorized:
                out.append(time.perf_counter() - started)
    return wrong, unknown


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=5000)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--logins", type=int, default=20)
    args = parser.parse_args()
    async with database(env_url()) as url:
        settings = Settings(
            database_url=url,
            secret=secrets.token_urlsafe(48),  # type: ignore[arg-type]
            pool_min=4,
            pool_max=args.concurrency,
            rate_api_user="1000000/60",
            rate_login_ip="1000000/60",
            rate_login_account="1000000/60",
        )
        pool = await create_pool(settings)
        async with pool.acquire() as conn:
            version = await conn.fetchval("SHOW server_version")
        print(f"PostgreSQL {version} (durable: fsync on, synchronous_commit on)")
        print("\nrate-limit check alone (one upsert on the UNLOGGED rate_limits table)")
        for label, keys, conc in (
            ("sequential, one hot key      ", 1, 1),
            ("sequential, many keys        ", args.checks, 1),
            (f"{args.concurrency:>2} concurrent, one hot key", 1, args.concurrency),
            (
                f"{args.concurrency:>2} concurrent, many keys  ",
                args.checks,
                args.concurrency,
            ),
        ):
            samples, rate = await time_checks(pool, args.checks, keys, conc)
            print(f"  {label}  {summary(samples, 'µs')}   {rate:8.0f} checks/s")

        print("\nGET /api/users/@me through the whole app, in-process, alternating")
        with_limit, without = await time_requests(settings, pool, args.requests)
        print(f"  with the check     {summary(with_limit, 'µs')}")
        print(f"  without the check  {summary(without, 'µs')}")
        added = statistics.median(with_limit) - statistics.median(without)
        added_p99 = pct(with_limit, 99) - pct(without, 99)
        print(
            f"  added by the check: difference of medians {added * 1e6:.0f} µs, "
            f"difference of p99s {added_p99 * 1e6:.0f} µs"
        )

        print(
            f"\nfailed logins (argon2id t={settings.argon2_time_cost}, "
            f"m={settings.argon2_memory_kib} KiB)"
        )
        wrong, unknown = await time_logins(settings, pool, args.logins)
        print(f"  wrong password  {summary(wrong, 'ms')}")
        print(f"  unknown user    {summary(unknown, 'ms')}")
        await pool.close()


if __name__ == "__main__":
    import uvloop  # what xfchat serve runs on

    uvloop.run(main())
