"""Throughput with 1, 2 and N workers (`xfchat serve --workers`), N the cores here.

    uv run python -m bench.workers

For each worker count, a fresh durable local PostgreSQL and one `xfchat serve` with
that many workers (everything else as `bench.load`), then two points through it: 10
senders x 100 messages with 10 receivers (latency-bound: each sender waits for its
acknowledgement), and 50 x 40 with 50 receivers (more in flight). Prints throughput,
end-to-end p99 and the CPU of the server's processes and of PostgreSQL for each, and
the speed-up over one worker. What 8 and 16 cores would give is worked out from these
figures in bench/README.md ("Workers"). Nothing here is asserted.
"""

from __future__ import annotations

import os

from bench.load import Result, Usage, point
from bench.procs import local_servers

POINTS = [(10, 100, 10), (50, 40, 50)]


async def main() -> None:
    counts = sorted({1, 2, os.cpu_count() or 1})
    results: dict[tuple[int, int], Result] = {}
    for workers in counts:
        async with local_servers(1, "xfworkers-", XFCHAT_WORKERS=str(workers)) as (servers, pg):
            server = servers[0]
            print(f"\n== {workers} worker(s): xfchat serve on {server.base}, {os.cpu_count()} CPUs")
            usage = Usage(server.proc, pg)
            for senders, messages, receivers in POINTS:
                label = f"{senders} senders x {messages} msgs, {receivers} receivers"
                print(f"\n{label}  [sse]")
                results[(workers, senders)] = await point(
                    server.base,
                    usage,
                    senders=senders,
                    messages=messages,
                    receivers=receivers,
                    transport="sse",
                    label=label,
                )
    print("\nworkers: throughput (end-to-end p99), speed-up over 1 worker")
    for senders, messages, receivers in POINTS:
        one = results[(1, senders)].throughput
        cells = [
            f"{w}: {r.throughput:,.0f} msgs/s ({1000 * r.e2e_p99:.0f} ms) x{r.throughput / one:.2f}"
            for w in counts
            for r in [results[(w, senders)]]
        ]
        print(f"  {senders} x {messages}, {receivers} receivers:  " + ";  ".join(cells))


if __name__ == "__main__":
    import uvloop

    uvloop.run(main())
