"""`xfchat dev` as a newcomer runs it: one command, a real local PostgreSQL, demo data."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.support import (
    SRC,
    ServerProcess,
    clean_env,
    fatal_lines,
    free_port,
    random_secret,
    run_cli,
    wait_gone,
    xfchat,
)
from xfchat.db.embedded import EmbeddedPostgresError, OsUser, can_reach, find_binaries

# A bound against a hang, not a claim of speed (bench/ measures that): a fresh cluster's
# initdb, the migrations and the demo took more than 30 s once, with the box's two cores
# busy with the rest of the suite and another run beside it.
READY_WITHIN_S = 90


def source_available(source: str) -> bool:
    try:
        find_binaries(source)
    except EmbeddedPostgresError:
        return False
    return True


@pytest.fixture
def project_dir() -> Iterator[Path]:
    # Not pytest's tmp_path: that sits in a 0700 directory the PostgreSQL account cannot
    # reach, and here we want the ordinary layout (./.xfchat inside the project).
    path = Path(tempfile.mkdtemp(prefix="xfchat-project-"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def start_dev(
    cwd: Path,
    env: dict[str, str],
    name: str,
    command: list[str] | None = None,
    user: int | None = None,
) -> tuple[ServerProcess, str]:
    proc = ServerProcess(command or xfchat("dev"), env, cwd / f"{name}.log", cwd=cwd, user=user)
    port = env["XFCHAT_PORT"]
    try:
        if port == "0":  # the system's choice, as the start-up names it
            port = proc.wait_for_line(r"bound to 127\.0\.0\.1:(\d+)", timeout=READY_WITHIN_S)[1]
        proc.wait_ready(f"http://127.0.0.1:{port}", timeout=READY_WITHIN_S)  # fails past it
        proc.wait_for_line(r"Demo logins \(password password123\): alice, bob, charlie, diana, eve")
        proc.wait_for_line(rf"open http://127\.0\.0\.1:{port} and log in as alice / password123")
        return proc, proc.wait_for_line(r"Database: (\S+)").group(1)
    except BaseException:
        proc.stop()  # (was: a start that failed its wait left `xfchat dev` and its cluster running)
        raise


def postmaster_pid(proc: ServerProcess) -> int:
    return int(proc.wait_for_line(r"local PostgreSQL listening on .* \(pid (\d+)\)").group(1))


def ctrl_c(proc: ServerProcess) -> int:
    """What a terminal does on Ctrl-C: SIGINT to the foreground process group."""
    os.killpg(proc.proc.pid, signal.SIGINT)
    return proc.stop(timeout=30)


async def demo_counts(url: str) -> dict[str, int]:
    conn = await asyncpg.connect(url)
    try:
        return {
            "users": await conn.fetchval("SELECT count(*) FROM users"),
            "text": await conn.fetchval("SELECT count(*) FROM channels WHERE kind = 'text'"),
            "voice": await conn.fetchval("SELECT count(*) FROM channels WHERE kind = 'voice'"),
            "roles": await conn.fetchval(
                "SELECT count(*) FROM roles WHERE name IN ('Admin', 'Moderator', 'Member')"
            ),
            "general": await conn.fetchval(
                "SELECT count(*) FROM messages m JOIN channels c ON c.id = m.channel_id "
                "WHERE c.name = 'general'"
            ),
            "reactions": await conn.fetchval("SELECT count(*) FROM reactions"),
            "dm": await conn.fetchval(
                "SELECT count(*) FROM channels c JOIN users a ON a.id = c.dm_user_low "
                "JOIN users b ON b.id = c.dm_user_high WHERE c.kind = 'direct' "
                "AND a.username = 'alice' AND b.username = 'bob'"
            ),
            "pending": await conn.fetchval(
                "SELECT count(*) FROM friend_requests WHERE status = 'pending'"
            ),
            "server": await conn.fetchval(
                "SELECT count(*) FROM servers WHERE name = 'Gaming Squad'"
            ),
        }
    finally:
        await conn.close()


DEMO = {
    "users": 5,
    "text": 4,
    "voice": 3,
    "roles": 3,
    "general": 6,
    "reactions": 5,
    "dm": 1,
    "pending": 1,
    "server": 1,
}


@pytest.mark.parametrize("source", ["system", "wheel"])
async def test_dev_serves_the_demo_reuses_its_data_and_leaves_no_postgres(
    source: str, project_dir: Path
) -> None:
    if not source_available(source):
        pytest.skip(f"no {source} PostgreSQL here")
    env = clean_env(XFCHAT_PORT=str(free_port()), XFCHAT_PG_SOURCE=source)

    first, url = start_dev(project_dir, env, "first")
    pid = postmaster_pid(first)
    assert "creating local PostgreSQL" in first.output and f"{source} binaries" in first.output
    assert await demo_counts(url) == DEMO
    async with httpx.AsyncClient(timeout=5) as web:
        page = await web.get(f"http://127.0.0.1:{env['XFCHAT_PORT']}/")
    assert page.status_code == 200 and "/web/js/main.js" in page.text  # the browser client
    assert ctrl_c(first) == 0
    assert wait_gone(pid), "PostgreSQL outlived xfchat dev"
    assert "local PostgreSQL stopped" in first.output
    assert (project_dir / ".xfchat").is_dir()

    second, url = start_dev(project_dir, env, "second")
    pid = postmaster_pid(second)
    assert "reusing local PostgreSQL" in second.output
    assert "demo data present" in second.output
    assert await demo_counts(url) == DEMO  # the same data, not seeded twice
    assert ctrl_c(second) == 0
    assert wait_gone(pid)


async def test_killing_dev_with_sigkill_takes_postgres_down_too(project_dir: Path) -> None:
    env = clean_env(XFCHAT_PORT="0")
    # (and, on the way: an earlier run's data of other binaries is named, not passed over
    # in silence as the new run starts an empty database beside it)
    (project_dir / ".xfchat" / "pg99").mkdir(parents=True)
    (project_dir / ".xfchat" / "pg99" / "PG_VERSION").write_text("99\n")
    proc, url = start_dev(project_dir, env, "killed")
    proc.wait_for_line(r"WARNING: \S+/pg99 holds an earlier run's data \(PostgreSQL 99\)")
    # (and: on the port the system chose, the client is allowed from localhost as from
    # 127.0.0.1; was: the origins named port 0, so a page at localhost:<port> was refused)
    port = proc.wait_for_line(r"bound to 127\.0\.0\.1:(\d+)")[1]
    async with httpx.AsyncClient(timeout=5) as web:
        preflight = await web.options(
            f"http://127.0.0.1:{port}/api/auth/login",
            headers={
                "Origin": f"http://localhost:{port}",
                "Access-Control-Request-Method": "POST",
            },
        )
    assert preflight.headers.get("access-control-allow-origin") == f"http://localhost:{port}"
    pid = postmaster_pid(proc)
    proc.proc.send_signal(signal.SIGKILL)
    proc.stop()
    assert wait_gone(pid, timeout=10), "the postmaster must die with its parent (PDEATHSIG)"
    # Nobody is left to remove the cluster's socket directory (was: one empty
    # /tmp/xfpgs-* left by every run of the suite).
    socket_dir = Path(re.search(r"host=([^&]+)", url).group(1))  # type: ignore[union-attr]
    assert socket_dir.name.startswith("xfpgs-"), url
    shutil.rmtree(socket_dir, ignore_errors=True)


def _interpreter_for(user: OsUser) -> list[str] | None:
    """A Python of our minor version that `user` can run, with our packages importable."""
    site = Path(sysconfig.get_paths()["purelib"])
    for candidate in (f"/usr/bin/python{sys.version_info[0]}.{sys.version_info[1]}",):
        if (
            os.access(candidate, os.X_OK)
            and can_reach(Path(candidate), user)
            and can_reach(site, user)
            and can_reach(SRC, user)
        ):
            return [candidate]
    return None


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to another account needs root")
@pytest.mark.parametrize("source", ["system", "wheel"])
async def test_dev_works_for_an_ordinary_user(source: str, project_dir: Path) -> None:
    import pwd

    if not source_available(source):
        pytest.skip(f"no {source} PostgreSQL here")
    entry = pwd.getpwnam("nobody")
    user = OsUser("nobody", entry.pw_uid, entry.pw_gid)
    python = _interpreter_for(user)
    if python is None:
        pytest.skip("no interpreter and site-packages that the nobody account can reach")
    os.chown(project_dir, user.uid, user.gid)
    site = sysconfig.get_paths()["purelib"]
    env = clean_env(
        XFCHAT_PORT=str(free_port()),
        XFCHAT_PG_SOURCE=source,
        PYTHONPATH=f"{SRC}:{site}",
        HOME=str(project_dir),
    )
    proc, url = start_dev(
        project_dir, env, "nobody", command=[*python, "-m", "xfchat", "dev"], user=user.uid
    )
    pid = postmaster_pid(proc)
    owner = subprocess.run(["ps", "-o", "user=", "-p", str(pid)], capture_output=True, text=True)
    assert owner.stdout.strip() in {"nobody", str(user.uid)}
    assert await demo_counts(url) == DEMO
    assert ctrl_c(proc) == 0
    assert wait_gone(pid)
    assert re.search(r"\.xfchat/pg\d+", proc.output)


def test_dev_with_an_unusable_data_dir_is_one_fatal_line(project_dir: Path) -> None:
    taken = project_dir / "a-file"
    taken.write_text("not a directory\n")
    for data_dir in (taken, taken / "below"):
        env = clean_env(XFCHAT_DATA_DIR=str(data_dir), XFCHAT_PORT=str(free_port()))
        result = run_cli("dev", env=env, cwd=project_dir)
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr
        assert fatal_lines(result.stderr) == [
            f"[STARTUP] FATAL: cannot use {data_dir} as the data directory: "
            + ("File exists" if data_dir == taken else "Not a directory")
            + " (set XFCHAT_DATA_DIR to a directory that can be created and written)"
        ]


def test_dev_refuses_a_bad_setting_before_it_makes_a_database(project_dir: Path) -> None:
    # Was: `XFCHAT_PORT=abc xfchat dev` ran initdb (or started the cluster) first, and
    # only then refused the setting.
    data_dir = project_dir / "fresh"
    env = clean_env(XFCHAT_DATA_DIR=str(data_dir), XFCHAT_PORT="abc")
    result = run_cli("dev", env=env, cwd=project_dir)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    good = {"DATABASE_URL": "postgresql://x@127.0.0.1:1/x", "XFCHAT_SECRET": random_secret()}
    served = run_cli("serve", env=clean_env(XFCHAT_PORT="abc", **good))  # (the same line)
    [line] = fatal_lines(served.stderr)
    assert "XFCHAT_PORT" in line, served.stderr
    assert fatal_lines(result.stderr) == [line], result.stderr
    assert "PostgreSQL" not in result.stderr, result.stderr
    assert not list(data_dir.glob("pg*")), list(data_dir.iterdir())
