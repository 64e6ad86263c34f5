"""TLS to PostgreSQL: `sslmode=verify-full` against a throwaway server whose
certificate a throwaway CA signed (made here with `openssl`)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests import factories
from tests.conftest import make_settings
from tests.support import Servers, clean_env, random_secret, run_cli
from xfchat.db.embedded import EmbeddedPostgres, throwaway
from xfchat.db.migrate import Migrator
from xfchat.db.pool import create_pool

EC = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certs(where: Path) -> None:
    """ca.pem (and other-ca.pem, which signed nothing here) and server.pem/.key for
    localhost and 127.0.0.1."""
    for ca in ("ca", "other-ca"):
        _openssl("req", "-x509", *EC, "-keyout", f"{ca}.key", "-out", f"{ca}.pem", "-days", "2",
                 "-subj", f"/CN=xfchat test {ca}", cwd=where)  # fmt: skip
    _openssl("req", *EC, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost",
             cwd=where)  # fmt: skip
    (where / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "san.ext",
             cwd=where)  # fmt: skip


@pytest.fixture(scope="module")
def tls_pg() -> Iterator[tuple[EmbeddedPostgres, Path]]:
    """A server that takes TLS connections only (hostssl in pg_hba.conf)."""
    if not shutil.which("openssl"):
        pytest.skip("the openssl command is needed to make the test certificates")
    pg, root = throwaway(prefix="xftls-")
    try:
        make_certs(root)
        for name in ("server.pem", "server.key"):
            if pg.os_user is not None:
                os.chown(root / name, pg.os_user.uid, pg.os_user.gid)
            os.chmod(root / name, 0o600)
        hba = pg.data_dir / "pg_hba.conf"
        hba.write_text(hba.read_text().replace("host ", "hostssl "))
        pg.extra_settings = {
            "ssl": "on",
            "ssl_cert_file": str(root / "server.pem"),
            "ssl_key_file": str(root / "server.key"),
        }
        pg.restart()
        yield pg, root
    finally:
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)


def tls_url(pg: EmbeddedPostgres, ca: Path) -> str:
    return (
        f"postgresql://postgres@localhost:{pg.port}/postgres?sslmode=verify-full&sslrootcert={ca}"
    )


async def test_serve_over_verify_full_tls(
    tls_pg: tuple[EmbeddedPostgres, Path], tmp_path: Path
) -> None:
    pg, root = tls_pg
    url = tls_url(pg, root / "ca.pem")
    with pytest.raises((OSError, asyncpg.PostgresError)):  # plain TCP is refused
        await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{pg.port}/postgres?sslmode=disable")
    conn = await asyncpg.connect(url)
    try:
        assert await conn.fetchval("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        await Migrator(conn).run()
    finally:
        await conn.close()
    settings = make_settings(url)
    pool = await create_pool(settings)
    try:
        ann = await factories.user(pool, settings, "ann")
        ben = await factories.user(pool, settings, "ben")
    finally:
        await pool.close()
    servers = Servers(url, settings.secret.get_secret_value(), tmp_path)
    try:
        _, base = servers.start()  # its pool and its LISTEN connection, over TLS
        async with httpx.AsyncClient(base_url=base, timeout=10) as api:
            dm = (await factories.direct(api, ann, ben))["id"]
            sent = await factories.send_message(api, ann, dm, "over TLS")
            assert sent.status_code == 201, sent.text
            got = await api.get(f"/api/channels/{dm}/messages", headers=ben.headers)
            assert [m["content"] for m in got.json()] == ["over TLS"]
    finally:
        servers.stop_all()


def test_an_untrusted_certificate_fails_the_start_at_once(
    tls_pg: tuple[EmbeddedPostgres, Path],
) -> None:
    pg, root = tls_pg
    env = clean_env(
        DATABASE_URL=tls_url(pg, root / "other-ca.pem"),
        XFCHAT_SECRET=random_secret(),
        XFCHAT_DB_CONNECT_RETRY_DELAY="5",  # a retry would show as a 5 s wait, then time out
    )
    result = run_cli("check", env=env, timeout=8)
    assert result.returncode == 3, result.stderr
    assert "TLS certificate of postgres@localhost" in result.stderr
    assert "not trusted" in result.stderr
