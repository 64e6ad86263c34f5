"""Backup and restore as docs/operations.md tells it: `pg_dump --format=custom` of a
database in use, `pg_restore` into an empty one, `xfchat serve` on the copy."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import httpx

from tests import factories
from tests.api.test_attachments import part, png, post_files
from tests.conftest import Cluster, new_database, remove_database
from tests.factories import MakeUser, TestUser
from tests.support import Servers
from xfchat.db.embedded import find_binaries


async def everything(api: httpx.AsyncClient, who: TestUser, channel: str) -> dict[str, Any]:
    """Every message of the channel, oldest first, and every file's bytes."""
    messages: list[dict[str, Any]] = []
    url = f"/api/channels/{channel}/messages"
    params: dict[str, int] = {"limit": 100, "after": 0}
    while page := (await api.get(url, params=params, headers=who.headers)).json():
        messages += page
        params["after"] = page[-1]["seq"]
    files = {}
    for m in messages:
        for f in m["attachments"]:
            for link in (f["url"], f["thumbnail_url"]):
                if link:
                    r = await api.get(link, headers=who.headers)
                    assert r.status_code == 200, r.text
                    files[link] = r.content
    return {"messages": messages, "files": files}


def run(*cmd: str | Path) -> None:
    result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


async def test_pg_dump_and_restore_serve_every_message_and_file(
    servers: Servers, make_user: MakeUser, pg_cluster: Cluster, db_url: str, tmp_path: Path
) -> None:
    _, base = servers.start()
    ann, ben = await make_user("ann"), await make_user("ben")
    async with httpx.AsyncClient(base_url=base, timeout=30) as api:
        dm = (await factories.direct(api, ann, ben))["id"]
        for i in range(25):
            await factories.send_message(api, ann if i % 2 else ben, dm, f"message {i}")
        sent = await post_files(
            api,
            ann,
            dm,
            [part("data.bin", os.urandom(300_000)), part("red.png", png(64, 48), "image/png")],
            content="two files",
        )
        assert sent.status_code == 201, sent.text
        before = await everything(api, ben, dm)
    assert len(before["messages"]) == 26 and len(before["files"]) == 3  # with a thumbnail

    bindir = (pg_cluster.server.binaries if pg_cluster.server else find_binaries()).bindir
    dump = tmp_path / "xfchat.dump"
    run(bindir / "pg_dump", "--format=custom", "--dbname", db_url, "--file", dump)
    copy = await new_database(pg_cluster, None)
    try:
        url = pg_cluster.url(copy)
        run(bindir / "pg_restore", "--no-owner", "--exit-on-error", "--dbname", url, dump)
        restored = Servers(url, servers.secret, tmp_path / "restored")
        (tmp_path / "restored").mkdir()
        try:
            _, again = restored.start()  # (its start checks the migrations: all applied)
            async with httpx.AsyncClient(base_url=again, timeout=30) as api:
                assert await everything(api, ben, dm) == before  # the same sessions work
                after = await factories.send_message(api, ann, dm, "after the restore")
                assert after.json()["seq"] == 27
        finally:
            restored.stop_all()
    finally:
        await remove_database(pg_cluster, copy)
