"""The workers' supervisor (workers.py) on its own, in a process of its own: a stop
signal that comes while a worker is started again."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

from xfchat.workers import Supervisor


def test_a_stop_that_comes_as_a_worker_is_started_again_stops_that_worker_too(
    tmp_path: Path,
) -> None:
    """Was: a stop signal taken between the supervisor's check that it is not stopping
    and the fork of a worker it starts again closed the listening socket first; the
    worker started on the closed socket, and was never told to stop. The signal is
    sent here from the supervisor's own line "starting it again", in that window."""
    first = tmp_path / "first"

    def serve(index: int, sock: socket.socket, _metrics: object, ready: int) -> int:
        if not first.exists():  # the first worker serves, then ends: started again
            first.touch()
            os.write(ready, bytes([index]))
            time.sleep(0.5)  # (the supervisor reads "ready" before it sees the end)
            return 1
        if sock.fileno() == -1:
            return 3  # started on the closed socket
        os.write(ready, bytes([index]))
        signal.pause()  # (until a stop: SIGTERM's default ends it)
        return 0

    def say(line: str) -> None:
        if "starting it again" in line:
            os.kill(os.getpid(), signal.SIGTERM)

    pid = os.fork()
    if pid == 0:  # the supervisor
        code = 1
        try:
            listener = socket.socket()
            listener.bind(("127.0.0.1", 0))
            listener.listen()
            code = Supervisor(1, listener, None, serve, say, "ready").run()
        finally:
            os._exit(code)
    deadline = time.monotonic() + 30  # (a bound on the test: a worker never told waits)
    while (ended := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    if ended[0] == 0:
        os.kill(pid, signal.SIGKILL)  # (its workers die with it)
        os.waitpid(pid, 0)
    assert ended[0] == pid, "the worker started again was never told to stop"
    # 0: the worker started again was stopped by the signal (3: it got a closed socket)
    assert os.waitstatus_to_exitcode(ended[1]) == 0
