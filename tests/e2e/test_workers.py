"""`xfchat serve --workers N`: worker processes on one port, restarted when one dies,
gone with the parent."""

from __future__ import annotations

import os
import signal
import socket
import time

import httpx
import psutil
import pytest

from tests.support import Servers


def _workers(
    parent: psutil.Process, count: int, timeout: float = 30, without: int | None = None
) -> list[psutil.Process]:
    """The parent's `count` live workers (none of them `without`)."""
    deadline = time.monotonic() + timeout
    while True:
        children = []
        for c in parent.children():
            try:
                if c.status() != psutil.STATUS_ZOMBIE and c.pid != without:
                    children.append(c)
            except psutil.NoSuchProcess:
                pass
        if len(children) == count:
            return children
        assert time.monotonic() < deadline, f"{len(children)} workers, not {count}"
        time.sleep(0.05)


def _serving(workers: list[psutil.Process], port: int) -> set[int]:
    """The workers holding an accepted connection on `port`."""
    return {
        w.pid
        for w in workers
        for c in w.net_connections("tcp")
        if c.status == psutil.CONN_ESTABLISHED and c.laddr and c.laddr.port == port
    }


def _held_by_each(
    workers: list[psutil.Process], port: int, request: bytes = b""
) -> list[socket.socket]:
    """Connections to `port` (each sent `request`) until every worker holds one. The
    kernel hands each to whichever worker accepts first: on a busy box, one took 23 in a
    row, so this is bounded in time, not in count."""
    held: list[socket.socket] = []
    deadline = time.monotonic() + 20
    while len(_serving(workers, port)) < len(workers) and time.monotonic() < deadline:
        held.append(socket.create_connection(("127.0.0.1", port)))
        held[-1].sendall(request)
        time.sleep(0.02)
    assert _serving(workers, port) == {w.pid for w in workers}
    return held


def test_workers_share_the_port_and_one_that_dies_is_started_again(servers: Servers) -> None:
    proc, base = servers.start(XFCHAT_WORKERS="2")
    parent = psutil.Process(proc.proc.pid)
    workers = _workers(parent, 2)
    port = int(base.rsplit(":", 1)[1])
    for s in _held_by_each(workers, port):
        s.close()
    workers[0].kill()
    again = _workers(parent, 2, without=workers[0].pid)
    proc.wait_for_line(r"\[STARTUP\] worker 0 ready again")
    for _ in range(20):
        assert httpx.get(f"{base}/ready", timeout=5).status_code == 200
    assert proc.stop(signal.SIGTERM) == 0, proc.output
    assert "worker 0 ended (status -9); starting it again" in proc.output
    assert not any(w.is_running() for w in again)


def test_the_workers_die_with_their_parent(servers: Servers) -> None:
    proc, _ = servers.start(XFCHAT_WORKERS="2")
    workers = _workers(psutil.Process(proc.proc.pid), 2)
    proc.kill()
    _, alive = psutil.wait_procs(workers, timeout=15)
    assert alive == [], [w.pid for w in alive]


def test_ctrl_c_in_a_terminal_stops_the_workers_gracefully(servers: Servers) -> None:
    """A terminal's Ctrl-C sends SIGINT to the parent and its workers at once. The parent
    passed its SIGINT on too: a worker's second SIGINT is uvicorn's "stop now", and the
    shutdown was cut short (CancelledError tracebacks, presence not retracted). The
    terminal closed sends them all SIGHUP: a graceful stop too (was: killed at once)."""
    for sig in (signal.SIGINT, signal.SIGINT, signal.SIGHUP):
        proc, _ = servers.start(XFCHAT_WORKERS="2")
        _workers(psutil.Process(proc.proc.pid), 2)
        os.killpg(proc.proc.pid, sig)  # (its own process group, as in a terminal)
        assert proc.proc.wait(30) == 0, proc.output
        assert "Traceback" not in proc.output and " ERROR " not in proc.output, proc.output
        assert "could not retract" not in proc.output, proc.output


def test_a_second_sigint_to_the_parent_alone_stops_the_workers_at_once(
    servers: Servers,
) -> None:
    """`docker run` without -t passes a Ctrl-C to the parent alone. The first stops the
    workers gracefully, and a request that holds the shutdown is waited for (its body
    due within the head's minute); a second stops them at once, as it does one process.
    The workers got only SIGTERM from the parent before, and waited the whole grace."""
    proc, base = servers.start(
        XFCHAT_WORKERS="2", XFCHAT_SHUTDOWN_GRACE="60", XFCHAT_HEADER_TIMEOUT="60"
    )
    workers = _workers(psutil.Process(proc.proc.pid), 2)
    port = int(base.rsplit(":", 1)[1])
    held = _held_by_each(  # a request waiting for its body, in each worker
        workers,
        port,
        b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\n\r\n{",
    )
    try:
        proc.proc.send_signal(signal.SIGINT)
        time.sleep(2)
        assert proc.proc.poll() is None, proc.output  # waiting for the requests, gracefully
        # and refusing new connections meanwhile (was: the parent's copy of the socket
        # kept taking them into the kernel's queue, for no worker, until it reset them)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
        proc.proc.send_signal(signal.SIGINT)
        assert proc.proc.wait(20) == 0, proc.output  # (a stop asked for, not a failure)
        _, alive = psutil.wait_procs(workers, timeout=5)
        assert alive == [], [w.pid for w in alive]
    finally:
        for s in held:
            s.close()
