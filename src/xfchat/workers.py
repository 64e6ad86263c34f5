"""`xfchat serve --workers N`: N server processes sharing one listening socket.

The parent validates the settings, prepares the database (migrations) and binds the
port once, then forks the workers. Each worker is a whole XFChat process of its own
(its pool, its LISTEN connection and hub, its presence heartbeat), exactly as N
separately started processes on one database are: everything they share goes through
PostgreSQL. The kernel hands each new connection to one of them.

On SIGTERM, SIGINT or SIGHUP the parent stops the workers gracefully (SIGTERM: see _forward)
and returns when they have all stopped; it says `ready` once every worker is. A worker that dies is started again
(its clients reconnect and resume, like after any lost process), unless it died before
it was ever ready: then the start failed and the parent stops the others and exits
with that worker's status. Workers die with the parent (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import ctypes
import os
import select
import signal
import socket
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

Serve = Callable[[int, socket.socket, "socket.socket | None", int], int]
"""Run worker `index` on the listening socket (and its metrics socket, if any) until it
is stopped; write a byte to the file descriptor once it serves. Its exit status."""

POLL_S = 0.2
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)  # (see _forward)


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _status(status: int) -> int:
    return os.waitstatus_to_exitcode(status) if status else 0


class Supervisor:
    def __init__(
        self,
        count: int,
        sock: socket.socket,
        metrics: list[socket.socket] | None,
        serve: Serve,
        say: Callable[[str], None],
        ready_line: str,
    ) -> None:
        self.count = count
        self.sock = sock
        self.metrics = metrics
        self.serve = serve
        self.say = say
        self.ready_line = ready_line
        self.children: dict[int, int] = {}  # pid -> worker index
        self.ready: set[int] = set()  # worker indexes that have served
        self.announced = False
        self.restarted: set[int] = set()  # started again, not yet serving
        self.stopping = False
        self.interrupts = 0  # SIGINTs received
        self.status = 0
        self._read, self._write = os.pipe()

    def _spawn(self, index: int) -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                os.close(self._read)
                for sig in STOP_SIGNALS:
                    signal.signal(sig, signal.SIG_DFL)
                signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # (see _stops_held)
                _die_with_parent()
                metrics = self.metrics[index] if self.metrics else None
                code = self.serve(index, self.sock, metrics, self._write)
            except SystemExit as exc:  # (a refusal's exit code, its line printed already)
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:
                traceback.print_exc()  # (os._exit would leave without a word)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        self.children[pid] = index

    def _forward(self, sig: int, _frame: FrameType | None) -> None:
        """Stop the workers: gracefully with SIGTERM, whichever signal came (a terminal's
        Ctrl-C sends SIGINT to the workers too, one process group, and a second SIGINT
        is uvicorn's "stop now", as a second Ctrl-C still is); at once with SIGQUIT on
        this process's second SIGINT (the Ctrl-C of `docker run` without -t reaches this
        process alone)."""
        self.interrupts += sig == signal.SIGINT
        self.stopping = True
        # This process's copy of the listening socket closed: once the workers' are too,
        # a new connection is refused at once (and one queued is reset) instead of
        # waiting in the kernel's queue for the whole grace, for no worker, then reset.
        self.sock.close()
        told = signal.SIGQUIT if self.interrupts > 1 else signal.SIGTERM
        for pid in list(self.children):
            try:
                os.kill(pid, told)
            except ProcessLookupError:
                pass

    def run(self) -> int:
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._forward)
        with _stops_held():
            for index in range(self.count):
                self._spawn(index)
        while self.children:
            self._take_ready()
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid:
                with _stops_held():
                    self._ended(pid, _status(status))
        return self.status

    def _take_ready(self) -> None:
        readable, _, _ = select.select([self._read], [], [], POLL_S)
        if not readable:
            return
        for index in os.read(self._read, 64):  # (a byte per worker: its index)
            if index in self.restarted:
                self.restarted.discard(index)
                self.say(f"worker {index} ready again")
            self.ready.add(index)
        if len(self.ready) == self.count and not self.announced and not self.stopping:
            self.announced = True
            self.say(self.ready_line)

    def _ended(self, pid: int, code: int) -> None:
        index = self.children.pop(pid)
        if self.stopping:
            # (one still starting when told to stop dies by the signal: a stop all the same)
            stopped = -code in (*STOP_SIGNALS, signal.SIGQUIT)
            self.status = self.status or (0 if stopped else code)
            return
        if index not in self.ready:
            self.say(f"worker {index} failed to start (status {code}); stopping")
            self.status = code or 1
            self._forward(signal.SIGTERM, None)
            return
        self.say(f"worker {index} ended (status {code}); starting it again")
        self.restarted.add(index)
        self._spawn(index)


@contextmanager
def _stops_held() -> Iterator[None]:
    """A stop signal waits while workers are started: taken between `_ended`'s check of
    `stopping` and the fork, it closed the socket first, and the worker started on a
    closed one, never told to stop. (One taken before is handled as the mask is set,
    at the call's return; a worker unblocks them for itself.)"""
    held = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


def worker_count(asked: int) -> int:
    """`asked` workers, or one per core for 0."""
    return asked or os.cpu_count() or 1
