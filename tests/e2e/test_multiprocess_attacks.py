"""What an attacker gains from several server processes on one database (`xfchat serve
--workers N`, or processes started apart): a bound the README gives for the machine or
for everyone must not be multiplied by the processes."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import time
from pathlib import Path

import httpx
import psutil

from tests.factories import MakeUser, community, direct, override, say, server_channel
from tests.realtime.clients import sse_stream
from tests.support import Servers
from xfchat.domain.passwords import THREAD_NAME
from xfchat.domain.permissions import Permission

CORES = os.cpu_count() or 2


def _workers(parent: psutil.Process, count: int, timeout: float = 30) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    while True:
        children = [c for c in parent.children() if c.status() != psutil.STATUS_ZOMBIE]
        if len(children) == count:
            return children
        assert time.monotonic() < deadline, f"{len(children)} workers, not {count}"
        time.sleep(0.05)


def _connections_on_each(
    workers: list[psutil.Process], port: int, each: int
) -> list[socket.socket]:
    """Connections to `port` until every worker holds at least `each` of them (the kernel
    hands each to whichever worker accepts first: bounded in time, not in count)."""
    held: list[socket.socket] = []
    deadline = time.monotonic() + 20
    while True:
        on = [
            sum(
                c.status == psutil.CONN_ESTABLISHED and c.laddr and c.laddr.port == port
                for c in w.net_connections("tcp")
            )
            for w in workers
        ]
        if min(on) >= each:
            return held
        if time.monotonic() > deadline:
            for sock in held:
                sock.close()
            raise AssertionError(f"connections held by each worker: {on}")
        held.append(socket.create_connection(("127.0.0.1", port)))
        time.sleep(0.02)


def _answer(sock: socket.socket) -> bytes:
    sock.settimeout(60)
    got = b""
    while chunk := sock.recv(65536):
        got += chunk
    return got


def _password_threads(process: psutil.Process) -> int:
    """The process's password threads (domain/passwords.py names them for the system)."""
    named = 0
    for thread in process.threads():
        with contextlib.suppress(OSError):
            comm = Path(f"/proc/{process.pid}/task/{thread.id}/comm").read_text()
            named += comm.strip() == THREAD_NAME
    return named


def test_the_workers_together_hash_at_most_a_password_per_core(servers: Servers) -> None:
    """README (XFCHAT_ARGON2_MEMORY_KIB): password work runs in threads of its own, one
    per core, "so at most that many times this memory at once". Each worker of
    `xfchat serve` made one per core of its own: with the default of one worker per core,
    a flood of logins for names nobody has held cores x cores hashes, and their memory,
    at once. Each worker gets as many logins at once as there are cores here."""
    workers = 2
    proc, base = servers.start(
        XFCHAT_WORKERS=str(workers),
        XFCHAT_ARGON2_TIME_COST="4",
        XFCHAT_RATE_LOGIN_IP="100000/300",
        XFCHAT_HEADER_TIMEOUT="60",  # (the connections wait for each other before sending)
    )
    children = _workers(psutil.Process(proc.proc.pid), workers)
    port = int(base.rsplit(":", 1)[1])
    held = _connections_on_each(children, port, CORES)
    for sock in held:
        body = json.dumps({"login": f"nobody{secrets.token_hex(4)}", "password": "wrong"})
        sock.sendall(
            f"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n{body}".encode()
        )
    for sock in held:
        with sock:
            assert _answer(sock).startswith(b"HTTP/1.1 401 "), "a login of nobody is 401"
    # (a password thread, once started, waits for more work: they are all still there)
    threads = {w.pid: _password_threads(w) for w in children}
    assert 0 < sum(threads.values()) <= max(CORES, workers), threads


async def test_what_one_process_changes_ends_at_once_on_a_stream_held_by_the_other(
    servers: Servers, make_user: MakeUser
) -> None:
    """The guarantees every process shares through PostgreSQL, one after the other, for a
    member whose SSE stream is held by process A while the owner acts through process B:
    a channel hidden by an override sends nothing more, a kick ends the server's
    delivery, and a logout of the stream's session (through B) closes it."""
    _, a = servers.start()
    _, b = servers.start()
    ann, ben = await make_user("ann"), await make_user("ben")
    async with httpx.AsyncClient(base_url=b, timeout=10) as via_b:
        srv = await community(via_b, ann, ben)
        staff = (await server_channel(via_b, srv, ann, "staff"))["id"]
        dm = (await direct(via_b, ann, ben))["id"]
        async with sse_stream(a, ben.access_token) as stream:
            hidden = await override(
                via_b, ann, staff, "member", ben.id, deny=int(Permission.VIEW_CHANNEL)
            )
            assert hidden.status_code in (200, 204), hidden.text
            assert (await stream.next("channel.hidden")).data["channel_ids"] == [staff]
            await say(via_b, ann, staff, "not for ben")
            marker = await say(via_b, ann, dm, "marker 1")
            assert (await stream.next("message.created")).data["id"] == marker["id"]

            kicked = await via_b.delete(srv.url(f"/members/{ben.id}"), headers=ann.headers)
            assert kicked.status_code == 204, kicked.text
            assert (await stream.next("server.left")).data["reason"] == "kicked"
            await say(via_b, ann, srv.general, "after the kick")
            marker = await say(via_b, ann, dm, "marker 2")
            assert (await stream.next("message.created")).data["id"] == marker["id"]

            out = await via_b.post("/api/auth/logout", headers=ben.headers)
            assert out.status_code == 204, out.text
            closed = await stream.next("closed")
            assert closed.data["reason"] == "session_revoked"
