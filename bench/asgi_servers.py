"""XFChat under uvicorn (`xfchat serve`) and under granian, side by side.

    uv run --with granian python -m bench.asgi_servers [--rounds 3]

One durable local PostgreSQL and the same application twice: `xfchat serve` (uvicorn
with uvloop and httptools, as shipped) and granian (its ASGI interface, one worker,
uvloop) serving `create_app(load_settings())` with the same environment. Then rounds
of the 10 senders x 100 messages point with 10 receivers, SSE and then gateway,
alternating which server goes first: throughput, end-to-end p99 and the CPU the
server's processes spent per message (granian's Rust threads included). granian is not
a dependency of XFChat: `--with granian` fetches it for this run only. Under granian
the edge limits that live in uvicorn's protocol (header size, count and deadline:
api/http_limits.py) are not in force, so it does a little less work than uvicorn here.
Nothing here is asserted.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import statistics
import sys
from pathlib import Path

import asyncpg
import psutil

from bench.load import Result, Usage, point
from bench.procs import BENCH_ENV, XFChat, free_port, stop_process, wait_ready
from xfchat.db.embedded import throwaway
from xfchat.db.migrate import Migrator

APP = """from xfchat.app import create_app
from xfchat.settings import load_settings

app = create_app(load_settings(require_database=True))
"""


def granian(env: dict[str, str], root: Path) -> tuple[str, psutil.Process]:
    (root / "granian_app.py").write_text(APP)
    port = free_port()
    full = {
        **{k: v for k, v in os.environ.items() if not k.startswith("XFCHAT_")},
        **BENCH_ENV,
        **env,
        "PYTHONPATH": str(root),
    }
    command = [sys.executable, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--workers", "1", "--loop", "uvloop"]
    with open(root / "granian.log", "wb") as log:
        proc = psutil.Popen([*command, "granian_app:app"], env=full, stdout=log, stderr=log)
    return f"http://127.0.0.1:{port}", proc


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    pg, root_dir = throwaway(prefix="xfasgi-", durable=True)
    root = Path(root_dir)
    procs: list[psutil.Process] = []
    try:
        conn = await asyncpg.connect(pg.url)
        await Migrator(conn).run()
        await conn.close()
        env = {"XFCHAT_SECRET": secrets.token_urlsafe(48), "DATABASE_URL": pg.url}
        uvicorn = XFChat(env, root / "uvicorn.log")
        procs.append(uvicorn.proc)
        gbase, gproc = granian(env, root)
        procs.append(gproc)
        await uvicorn.ready()
        await wait_ready(gbase, gproc, "granian")
        targets = [
            (uvicorn.base, Usage(uvicorn.proc, pg, "uvicorn")),
            (gbase, Usage(gproc, pg, "granian")),
        ]
        for transport in ("sse", "ws"):
            results: dict[str, list[Result]] = {"uvicorn": [], "granian": []}
            for n in range(args.rounds):
                for base, usage in targets if n % 2 == 0 else targets[::-1]:
                    label = f"{usage.name}: 10 senders x 100 msgs, 10 receivers"
                    results[usage.name].append(
                        await point(
                            base,
                            usage,
                            senders=10,
                            messages=100,
                            receivers=10,
                            transport=transport,
                            label=label,
                        )
                    )
            print(f"\n{transport}, {args.rounds} rounds each (median, and each round):")
            for name, runs in results.items():
                rates = [r.throughput for r in runs]
                p99s = [1000 * r.e2e_p99 for r in runs]
                cpu = [1e6 * r.server_cpu / r.messages for r in runs]
                print(
                    f"  {name:8} {statistics.median(rates):6,.0f} msgs/s "
                    f"({' / '.join(f'{x:,.0f}' for x in rates)}); end-to-end p99 "
                    f"{statistics.median(p99s):.1f} ms; server CPU per message "
                    f"{statistics.median(cpu):,.0f} µs ({' / '.join(f'{x:,.0f}' for x in cpu)})"
                )
    finally:
        for proc in procs:
            stop_process(proc)
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    import uvloop

    uvloop.run(main())
