"""What a message and what a delivery cost the server's CPU.

    uv run python -m bench.costs [--transport sse|ws]

A durable local PostgreSQL and one `xfchat serve` (as `bench.load` starts them), a
warm-up point, then the same sends (10 senders x 200 messages into one group) with 1
receiver and with 20, twice each, alternating: the server's CPU of the runs with 20
less that of the runs with 1, over the 19 x 2,000 extra deliveries, is the cost of a
delivery; what is left of a run with 1 receiver, per message, the cost of a message.
`bench.load` prints the same after its conversation points.

To measure an older commit with the same generator, run this module from this
checkout with the other checkout's Python (its `xfchat` is what `xfchat serve`
starts): `/path/to/old/.venv/bin/python -m bench.costs`. Nothing here is asserted.
"""

from __future__ import annotations

import argparse
import statistics

from bench.load import RECEIVERS, Usage, point
from bench.procs import local_servers


async def cpu_costs(base: str, usage: Usage, transport: str) -> None:
    """The server's CPU per message and per delivery: the same sends (10 senders x 200
    into one group) with 1 receiver and with 20; the difference is 19 x 2,000
    deliveries."""
    runs = []
    for receivers in (1, 20, 1, 20):  # (twice each, alternating)
        runs.append(
            await point(
                base,
                usage,
                senders=10,
                messages=200,
                receivers=receivers,
                transport=transport,
                label=f"cost: 10 senders x 200 msgs, {receivers} receivers",
            )
        )
    few = [r for r in runs if r.deliveries < r.messages * 2]
    many = [r for r in runs if r.deliveries >= r.messages * 2]
    cpu_few = statistics.mean(r.server_cpu for r in few)
    cpu_many = statistics.mean(r.server_cpu for r in many)
    extra = statistics.mean(r.deliveries for r in many) - statistics.mean(r.deliveries for r in few)
    per_delivery = (cpu_many - cpu_few) / extra
    per_message = (cpu_few - per_delivery * statistics.mean(r.deliveries for r in few)) / few[
        0
    ].messages
    print(
        f"\n  => server CPU per message {per_message * 1e6:,.0f} µs, per delivery "
        f"{per_delivery * 1e6:,.1f} µs [{transport}]  (means of two runs each)"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transport", choices=sorted(RECEIVERS), default="sse")
    args = parser.parse_args()
    async with local_servers(1, "xfcosts-") as (servers, pg):
        server = servers[0]
        usage = Usage(server.proc, pg)
        print(f"xfchat serve (pid {server.proc.pid}) on {server.base}; a warm-up point first")
        await point(
            server.base,
            usage,
            senders=10,
            messages=100,
            receivers=10,
            transport=args.transport,
            label="warm-up: 10 senders x 100 msgs, 10 receivers",
        )
        await cpu_costs(server.base, usage, args.transport)


if __name__ == "__main__":
    import uvloop

    uvloop.run(main())
