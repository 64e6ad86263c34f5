"""Server processes for the tests, forked from one that has imported XFChat already.

`python -m xfchat serve` spends about 3.3 s of CPU on this box importing FastAPI,
pydantic, uvicorn and XFChat's routes before it serves, and the tests start a server
some 300 times: a third of the suite's CPU. So each test process (pytest-xdist worker)
keeps one zygote: a child that imported all of that once, and forks a server on
request. The server is the same code from `xfchat.cli.main` on, in a process of its
own (its pid, its session, its signals, its exit status), with the environment and
arguments asked for; only the interpreter's start and the imports are shared. The
tests of the start itself (tests/e2e/test_serve_startup.py, test_cli.py, test_dev.py)
still exec `python -m xfchat`.

The zygote reads one JSON request per line on its stdin and answers with the pid; it
reaps its children and writes each one's exit status next to its log
(`<log>.exit`), which `Forked.poll` reads. It dies with the test process
(PR_SET_PDEATHSIG), and each server with the zygote.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

PR_SET_PDEATHSIG = 1
_zygote: list[subprocess.Popen[bytes]] = []
_asking = threading.Lock()  # (run_cli may be called from threads: one request at a time)


def _die_with_parent(sig: int) -> None:
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, sig)


def _preload() -> None:
    """What `xfchat serve` imports, up to its first request."""
    import importlib
    import pkgutil

    import xfchat

    for module in pkgutil.walk_packages(xfchat.__path__, "xfchat."):
        if module.name != "xfchat.__main__":
            importlib.import_module(module.name)
    for name in (
        "uvicorn",
        "uvicorn.lifespan.on",
        "uvicorn.loops.uvloop",
        "uvicorn.protocols.http.httptools_impl",
        "uvicorn.protocols.http.h11_impl",
        "uvicorn.protocols.websockets.websockets_impl",
        "uvicorn.protocols.websockets.wsproto_impl",
    ):
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


def _child(request: dict[str, Any]) -> None:
    """In the forked child: become the asked-for process, run `xfchat.cli.main`, exit.
    (Its stdin and stdout, the zygote's pipes, are replaced: the asked-for input file or
    /dev/null, and the asked-for output file or the log.)"""
    code = 1
    try:
        os.setsid()
        _die_with_parent(signal.SIGKILL)
        stdin = os.open(request.get("stdin") or os.devnull, os.O_RDONLY)
        log = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        out = log
        if request.get("stdout"):  # (else stdout goes to the log, with stderr)
            out = os.open(request["stdout"], os.O_WRONLY | os.O_TRUNC | os.O_CREAT, 0o644)
        os.dup2(stdin, 0)
        os.dup2(out, 1)
        os.dup2(log, 2)
        for fd in {stdin, log, out}:
            if fd > 2:
                os.close(fd)
        if request.get("cwd"):
            os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = ["xfchat", *request["args"]]
        from xfchat.cli import main

        code = main(request["args"])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def serve_forks() -> None:
    """The zygote's main loop (`python -c "from tests.zygote import serve_forks; ..."`)."""
    _die_with_parent(signal.SIGKILL)
    _preload()
    import gc

    gc.collect()
    gc.freeze()  # (the children's copies of the imports stay shared pages)
    requests, answers = 0, 1  # (stdin, stdout: see _child)
    exits: dict[int, str] = {}  # pid -> where its exit status goes
    pending = b""
    while True:
        readable, _, _ = select.select([requests], [], [], 0.05)
        if readable:
            chunk = os.read(requests, 65536)
            if not chunk:
                return  # (the test process is gone)
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                request = json.loads(line)
                pid = os.fork()
                if pid == 0:
                    _child(request)
                exits[pid] = request["log"] + ".exit"
                os.write(answers, json.dumps({"pid": pid}).encode() + b"\n")
        while exits:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if not pid:
                break
            path = exits.pop(pid, None)
            if path is not None:
                with contextlib.suppress(OSError):  # (its directory gone: nobody waits)
                    Path(path + ".part").write_text(str(os.waitstatus_to_exitcode(status)))
                    os.replace(path + ".part", path)


class Forked:
    """The part of subprocess.Popen the tests use, for a process the zygote forked."""

    def __init__(self, args: list[str], pid: int, log: Path) -> None:
        self.args = args
        self.pid = pid
        self.returncode: int | None = None
        self._exit = Path(f"{log}.exit")

    def poll(self) -> int | None:
        if self.returncode is None and self._exit.exists():
            self.returncode = int(self._exit.read_text())
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(self.args, timeout or 0)
            time.sleep(0.01)
        return code

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def fork_server(
    args: list[str],
    env: dict[str, str],
    log: Path,
    cwd: Path | None,
    out: Path | None = None,
    given: Path | None = None,
) -> Forked:
    """`python -m xfchat <args>` with `env`, its output appended to `log` (its standard
    output written to `out` instead, if given; its input read from `given`), forked."""
    with _asking:
        if not _zygote or _zygote[0].poll() is not None:
            root = Path(__file__).resolve().parent.parent
            _zygote[:] = [
                subprocess.Popen(
                    [sys.executable, "-c", "from tests.zygote import serve_forks; serve_forks()"],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    cwd=root,
                    env={**os.environ, "PYTHONUNBUFFERED": "1"},
                )
            ]
        zygote = _zygote[0]
        stdin, stdout = zygote.stdin, zygote.stdout
        assert stdin is not None and stdout is not None
        request = {
            "args": args,
            "env": env,
            "log": str(log),
            "cwd": str(cwd) if cwd else None,
            "stdout": str(out) if out else None,
            "stdin": str(given) if given else None,
        }
        stdin.write(json.dumps(request).encode() + b"\n")
        stdin.flush()
        answer = stdout.readline()
        if not answer:
            raise RuntimeError(f"the test zygote ended (status {zygote.wait()})")
    return Forked(["xfchat", *args], int(json.loads(answer)["pid"]), log)
