"""Attachments: upload and download throughput for 1 MiB and 8 MiB files, and the
server's memory while 20 downloads stream at once.

Starts a durable local PostgreSQL and a real `xfchat serve` (as `bench.load` does), one
user in one server channel. Per size: uploads one after another and 4 at a time (a
message with one file each: multipart to PostgreSQL by COPY, in the message's
transaction), then downloads of those files one after another and 4 at a time; MiB/s
over the wall time and p50/p99 per request. Then 20 downloads of an 8 MiB file at once
by clients that read slowly (about 4 MiB/s each, so all 20 are open together for about
two seconds) while the server's RSS is sampled every 20 ms: its peak next to its level
before, against the 160 MiB that 20 whole files in memory would take.

    uv run python -m bench.files
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import psutil

from bench.common import pct
from bench.load import local_server, register

MiB = 1 << 20
SIZES = [(1 * MiB, 30), (8 * MiB, 12)]  # (file size, files per run)
CONCURRENCY = 4
SLOW_STREAMS = 20
SLOW_READ = 64 * 1024  # bytes a slow client reads ...
SLOW_PAUSE_S = 0.015  # ... then waits this long (about 4 MiB/s)
ENV = {
    "XFCHAT_RATE_ATTACHMENTS_USER": "1000000/60",
    "XFCHAT_RATE_UPLOADS_USER": "1000000/60",
    "XFCHAT_ATTACHMENT_MAX_BYTES": str(25 * MiB),
    "XFCHAT_UPLOAD_QUOTA_BYTES": str(100 << 30),
}


async def _timed(
    jobs: list[Callable[[], Awaitable[Any]]], at_once: int
) -> tuple[float, list[float]]:
    """Run the jobs, `at_once` at a time; the wall time and each job's time."""
    gate = asyncio.Semaphore(at_once)
    times: list[float] = []

    async def one(job: Callable[[], Awaitable[Any]]) -> None:
        async with gate:
            started = time.perf_counter()
            await job()
            times.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(one(j) for j in jobs))
    return time.perf_counter() - started, times


def _line(label: str, size: int, wall: float, times: list[float]) -> str:
    rate = size * len(times) / MiB / wall
    return (
        f"  {label:<24} {rate:7.1f} MiB/s   per request p50 {statistics.median(times) * 1000:7.1f} ms"
        f"  p99 {pct(times, 99) * 1000:7.1f} ms  ({len(times)} files)"
    )


async def _upload(
    client: httpx.AsyncClient, headers: dict[str, str], channel: str, data: bytes
) -> str:
    response = await client.post(
        f"/api/channels/{channel}/messages",
        headers=headers,
        data={"content": "a file"},
        files=[("files", ("data.bin", data, "application/octet-stream"))],
    )
    response.raise_for_status()
    return str(response.json()["attachments"][0]["url"])


async def _download(
    client: httpx.AsyncClient, headers: dict[str, str], url: str, size: int
) -> None:
    got = 0
    async with client.stream("GET", url, headers=headers) as response:
        response.raise_for_status()
        async for chunk in response.aiter_raw():
            got += len(chunk)
    assert got == size, (got, size)


async def _slow_download(base: str, headers: dict[str, str], url: str, size: int) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        got = 0
        async with client.stream("GET", url, headers=headers) as response:
            response.raise_for_status()
            async for chunk in response.aiter_raw(SLOW_READ):
                got += len(chunk)
                await asyncio.sleep(SLOW_PAUSE_S)
        assert got == size, (got, size)


async def _memory_during(server: psutil.Process, work: Awaitable[None]) -> tuple[int, int]:
    """The server's RSS before `work`, and its peak while it runs."""
    before = server.memory_info().rss
    peak = before
    task = asyncio.ensure_future(work)
    while not task.done():
        peak = max(peak, server.memory_info().rss)
        await asyncio.sleep(0.02)
    await task
    return before, peak


async def _runs(
    client: httpx.AsyncClient, headers: dict[str, str], channel: str, size: int, count: int
) -> str:
    """One size's uploads and downloads, printed; the URL of one of its files."""
    data = os.urandom(size)
    print(f"{size // MiB} MiB files:")
    urls: list[str] = []

    async def up() -> None:
        urls.append(await _upload(client, headers, channel, data))

    for at_once in (1, CONCURRENCY):
        wall, times = await _timed([up] * count, at_once)
        print(_line(f"upload, {at_once} at a time", size, wall, times))
    for at_once in (1, CONCURRENCY):
        jobs = [lambda u=u: _download(client, headers, u, size) for u in urls[:count]]
        wall, times = await _timed(jobs, at_once)
        print(_line(f"download, {at_once} at a time", size, wall, times))
    return urls[0]


async def main() -> None:
    os.environ.update(ENV)
    async with local_server() as (base, proc, pg):
        print(
            f"xfchat serve (pid {proc.pid}) on {base}, PostgreSQL {pg.binaries.major} "
            f"(durable), {os.cpu_count()} CPUs, load generator in this process"
        )
        async with httpx.AsyncClient(base_url=base, timeout=120) as client:
            (user,) = await register(client, 1)
            headers = user.headers
            made = await client.post("/api/servers", headers=headers, json={"name": "files"})
            made.raise_for_status()
            channels = await client.get(
                f"/api/servers/{made.json()['id']}/channels", headers=headers
            )
            channel = next(c["id"] for c in channels.json() if c["kind"] == "text")
            urls = [await _runs(client, headers, channel, size, count) for size, count in SIZES]
            big_url = urls[-1]
            size = SIZES[-1][0]
            slow = asyncio.gather(
                *(_slow_download(base, headers, big_url, size) for _ in range(SLOW_STREAMS))
            )
            started = time.perf_counter()
            before, peak = await _memory_during(proc, slow)
            took = time.perf_counter() - started
            print(
                f"{SLOW_STREAMS} slow downloads of {size // MiB} MiB at once ({took:.1f} s): server RSS "
                f"{before / MiB:.0f} MiB before, peak {peak / MiB:.0f} MiB (+{(peak - before) / MiB:.1f} MiB; "
                f"the files whole would be {SLOW_STREAMS * size // MiB} MiB)"
            )


if __name__ == "__main__":
    asyncio.run(main())
