"""A local PostgreSQL cluster for the scaling tests and scenarios: a primary, a
streaming standby made with `pg_basebackup`, and PgBouncer in transaction mode.

All on 127.0.0.1 and free ports, in one temporary directory, run as the account the
embedded launcher uses (PostgreSQL and PgBouncer both refuse root), and stopped by
`close()`. PgBouncer comes from Debian's package: `ensure_pgbouncer()` installs it when
it is missing and this is a Debian machine run by root.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from bench.procs import stop_process
from xfchat.db.embedded import EmbeddedPostgres, OsUser, server_os_user, throwaway

PGBOUNCER = "pgbouncer"


class ClusterError(Exception):
    """A part of the cluster could not be started; the message says which and why."""


def _as(user: OsUser | None) -> dict[str, object]:
    return {} if user is None else {"user": user.uid, "group": user.gid, "extra_groups": []}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _which_pgbouncer() -> str | None:
    return shutil.which(PGBOUNCER) or shutil.which(PGBOUNCER, path="/usr/sbin:/usr/bin")


def ensure_pgbouncer() -> str | None:
    """The path of `pgbouncer`, installing Debian's package if it is missing (root on a
    Debian machine only); None with no way to get it."""
    found = _which_pgbouncer()
    if found or os.geteuid() != 0 or not shutil.which("apt-get"):
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", PGBOUNCER]
    for cmd in (install, ["apt-get", "update", "-q"], install):
        subprocess.run(cmd, env=env, capture_output=True, check=False, timeout=300)
        if found := _which_pgbouncer():
            return found
    return None


@dataclass
class PgBouncer:
    """PgBouncer in transaction mode in front of one server."""

    root: Path
    target_port: int
    pool_size: int = 20
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    user: OsUser | None = field(default_factory=server_os_user)

    def start(self, binary: str) -> PgBouncer:
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o755)
        (self.root / "users.txt").write_text('"postgres" ""\n')
        self.port = self.port or _free_port()
        # statement_timeout and lock_timeout are session settings XFChat cannot send
        # through a transaction pooler: each server connection gets them on opening.
        connect_query = "SET statement_timeout = 30000; SET lock_timeout = 30000"
        (self.root / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"* = host=127.0.0.1 port={self.target_port} connect_query='{connect_query}'\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {self.root / 'users.txt'}\n"
            f"pool_mode = transaction\ndefault_pool_size = {self.pool_size}\n"
            "max_client_conn = 2000\nserver_lifetime = 3600\n"
            "server_login_retry = 1\nadmin_users = postgres\n"
            # While the server is down, a query waits this long for it, then fails:
            # PgBouncer's default (120 s) would hold XFChat's requests past every
            # deadline of ours.
            "query_wait_timeout = 5\n"
        )
        log = open(self.root / "pgbouncer.log", "ab")
        try:
            self.process = subprocess.Popen(
                [binary, str(self.root / "pgbouncer.ini")],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                cwd="/",
                start_new_session=True,
                **_as(self.user),  # type: ignore[call-overload]
            )
        finally:
            log.close()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ClusterError(f"pgbouncer exited: {self.log_tail()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                return self
            time.sleep(0.05)
        raise ClusterError(f"pgbouncer did not listen in 15 s: {self.log_tail()}")

    def log_tail(self) -> str:
        path = self.root / "pgbouncer.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def url_for(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        proc, self.process = self.process, None
        if proc is not None:
            stop_process(proc)


def make_standby(primary: EmbeddedPostgres, data_dir: Path) -> EmbeddedPostgres:
    """A streaming standby of `primary`: `pg_basebackup -R` (it writes standby.signal
    and primary_conninfo), started on a port of its own."""
    user = primary.os_user
    data_dir.mkdir(mode=0o700, parents=True)
    if user is not None:
        os.chown(data_dir, user.uid, user.gid)
    result = subprocess.run(
        [
            str(primary.binaries.path("pg_basebackup")),
            *("-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres"),
            *("-D", str(data_dir), "-R", "-X", "stream", "-c", "fast", "--no-sync"),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd="/",
        timeout=120,
        **_as(user),  # type: ignore[call-overload]
    )
    if result.returncode != 0:
        raise ClusterError(f"pg_basebackup failed: {result.stderr.strip()}")
    standby = EmbeddedPostgres(
        data_dir,
        primary.binaries,
        durable=primary.durable,
        # Rows a long read on the standby still needs are kept on the primary, so the
        # standby's replay seldom has to cancel a read (DATABASE_CONFLICT).
        extra_settings={"hot_standby_feedback": "on"},
    )
    return standby.start()


def allow_replication(primary: EmbeddedPostgres) -> None:
    hba = primary.data_dir / "pg_hba.conf"
    with open(hba, "a") as fh:
        fh.write("host  replication postgres 127.0.0.1/32 trust\n")
    assert primary.process is not None
    primary.process.send_signal(1)  # SIGHUP: reload pg_hba.conf


async def wait_replayed(primary_url: str, standby_url: str, within: float = 30) -> None:
    """Until the standby has replayed everything the primary has written so far."""
    primary = await asyncpg.connect(primary_url)
    standby = await asyncpg.connect(standby_url)
    try:
        lsn = await primary.fetchval("SELECT pg_current_wal_insert_lsn()")
        async with asyncio.timeout(within):
            while not await standby.fetchval("SELECT pg_last_wal_replay_lsn() >= $1", lsn):
                await asyncio.sleep(0.02)
    finally:
        await primary.close()
        await standby.close()


@dataclass
class Cluster:
    """primary + standby (optional) + PgBouncer (optional), in `root`."""

    root: Path
    primary: EmbeddedPostgres
    standby: EmbeddedPostgres | None = None
    bouncer: PgBouncer | None = None

    @classmethod
    def start(
        cls, *, durable: bool, standby: bool = True, bouncer: str | None = None, pool_size: int = 20
    ) -> Cluster:
        # (Synchronous commit even in tests: a commit is acknowledged once flushed, so
        # the standby can have it at once, as in production.)
        primary, root = throwaway(
            prefix="xfcluster-", durable=durable, extra_settings={"synchronous_commit": "on"}
        )
        cluster = cls(root, primary)
        try:
            if standby:
                allow_replication(primary)
                time.sleep(0.2)  # the reload is asynchronous
                cluster.standby = make_standby(primary, root / "standby")
            if bouncer:
                cluster.bouncer = PgBouncer(root / "pgbouncer", primary.port, pool_size)
                cluster.bouncer.start(bouncer)
        except BaseException:
            cluster.close()
            raise
        return cluster

    def close(self) -> None:
        for stop in (
            self.bouncer.stop if self.bouncer else None,
            self.standby.stop if self.standby else None,
            self.primary.stop,
        ):
            if stop is not None:
                with contextlib.suppress(Exception):
                    stop()
        shutil.rmtree(self.root, ignore_errors=True)
