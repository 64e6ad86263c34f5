"""`xfchat admin`: an operator ends an account's sessions, locks it out or sets its
password while a server runs, and the server's open connections see it at once."""

from __future__ import annotations

import asyncio
import resource
import socket
import stat
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
import orjson
import pytest

from tests import factories
from tests.api.test_attachments import part, png, post_files
from tests.api.test_two_factor import turn_on
from tests.factories import MakeUser, TestUser
from tests.realtime.clients import GatewayClient, sse_stream
from tests.support import Servers, clean_env, fatal_lines, random_secret, run_cli, xfchat
from xfchat.db.pool import DatabaseStartupError, create_pool
from xfchat.domain.account_export import safe_name
from xfchat.settings import DatabaseSettings

NEW_PASSWORD = "a new passphrase for ann"


def admin(servers: Servers, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = clean_env(DATABASE_URL=servers.database_url, XFCHAT_SECRET=servers.secret)
    return run_cli("admin", *args, env=env, input=stdin)


async def login(api: httpx.AsyncClient, who: TestUser, password: str) -> int:
    r = await api.post("/api/auth/login", json={"login": who.username, "password": password})
    return r.status_code


async def test_admin_revoke_sessions_closes_the_accounts_streams_at_once(
    servers: Servers, make_user: MakeUser
) -> None:
    _, base = servers.start()
    ann, ben = await make_user("ann"), await make_user("ben")
    gw = await GatewayClient.connect(base, ann.access_token)
    await gw.next("ready")
    async with sse_stream(base, ann.access_token) as own, sse_stream(base, ben.access_token):
        done = admin(servers, "revoke-sessions", "ann")
        assert done.returncode == 0, done.stderr
        assert f"ann ({ann.id}): sessions ended; 1 session(s) ended" in done.stdout
        # (an UPDATE of sessions typed by hand leaves these open: nobody is told)
        closed = await own.next("closed")
        assert closed.data["reason"] == "session_revoked"
        assert await gw.closed_with() == 4012
    async with httpx.AsyncClient(base_url=base, timeout=30) as api:
        me = await api.get("/api/users/@me", headers=ann.headers)
        assert me.status_code == 401 and me.json()["code"] == "SESSION_REVOKED"
        refreshed = await api.post("/api/auth/refresh", json={"refresh_token": ann.refresh_token})
        assert refreshed.status_code == 401
        assert (await api.get("/api/users/@me", headers=ben.headers)).status_code == 200
        assert await login(api, ann, ann.password) == 200  # the password still works


async def only_the_new_password_works(
    servers: Servers, api: httpx.AsyncClient, who: str, user: TestUser
) -> str:
    """`xfchat admin set-password who` to NEW_PASSWORD: what it printed, once only the
    new password logs `user` in."""
    reset = admin(servers, "set-password", who, stdin=NEW_PASSWORD + "\n")
    assert reset.returncode == 0, reset.stderr
    assert await login(api, user, user.password) == 401
    assert await login(api, user, NEW_PASSWORD) == 200
    return reset.stdout


async def test_admin_lock_refuses_every_password_until_set_password(
    servers: Servers, make_user: MakeUser
) -> None:
    _, base = servers.start()
    ann = await make_user("ann")
    async with sse_stream(base, ann.access_token) as own:
        locked = admin(servers, "lock", ann.email)  # (by email, as a login finds it)
        assert locked.returncode == 0, locked.stderr
        assert (await own.next("closed")).data["reason"] == "session_revoked"
    async with httpx.AsyncClient(base_url=base, timeout=30) as api:
        assert await login(api, ann, ann.password) == 401
        assert (await api.get("/api/users/@me", headers=ann.headers)).status_code == 401
        reset = await only_the_new_password_works(servers, api, str(ann.id), ann)
        assert "password set; 0 session(s) ended" in reset


async def test_admin_set_password_ends_the_sessions_and_refuses_a_weak_one(
    servers: Servers, make_user: MakeUser
) -> None:
    _, base = servers.start()
    ann = await make_user("ann")
    weak = admin(servers, "set-password", "ann", stdin="password\n")
    assert weak.returncode == 1
    assert fatal_lines(weak.stderr)[0].startswith("[ADMIN] FATAL: INVALID_PASSWORD: ")
    unknown = admin(servers, "lock", "nobody")
    assert unknown.returncode == 1
    assert fatal_lines(unknown.stderr) == ["[ADMIN] FATAL: USER_NOT_FOUND: no account 'nobody'"]
    async with httpx.AsyncClient(base_url=base, timeout=30) as api:
        assert (await api.get("/api/users/@me", headers=ann.headers)).status_code == 200
        reset = await only_the_new_password_works(servers, api, "ANN", ann)
        assert "1 session(s) ended" in reset
        gone = await api.get("/api/users/@me", headers=ann.headers)
        assert gone.status_code == 401 and gone.json()["code"] == "SESSION_REVOKED"


async def test_admin_set_password_turns_two_factor_off_only_when_asked(
    servers: Servers, make_user: MakeUser
) -> None:
    _, base = servers.start()
    ann = await make_user("ann")
    async with httpx.AsyncClient(base_url=base, timeout=30) as api:
        await turn_on(api, ann)
        kept = admin(servers, "set-password", "ann", stdin=NEW_PASSWORD + "\n")
        assert kept.returncode == 0 and "two-factor" not in kept.stdout, kept.stderr
        step = await api.post("/api/auth/login", json={"login": "ann", "password": NEW_PASSWORD})
        assert step.status_code == 200 and step.json()["two_factor_required"] is True
        off = admin(
            servers, "set-password", "ann", "--turn-off-two-factor", stdin=NEW_PASSWORD + "!\n"
        )
        assert off.returncode == 0, off.stderr
        assert off.stdout.rstrip().endswith("; two-factor sign-in turned off")
        signed_in = await api.post(
            "/api/auth/login", json={"login": "ann", "password": NEW_PASSWORD + "!"}
        )
        assert signed_in.status_code == 200 and "access_token" in signed_in.json()


async def test_admin_delete_messages_removes_a_spammers_messages_everywhere(
    servers: Servers, make_user: MakeUser
) -> None:
    _, base = servers.start()
    async with httpx.AsyncClient(base_url=base, timeout=30) as api:
        ann, ben, dm = await factories.pair(api, make_user)
        srv = await factories.community(api, ann, ben)
        kept = await factories.say(api, ben, dm, "an old message, before the spam")
        await asyncio.sleep(1.1)  # (--since takes what was sent at that second or later)
        moment = datetime.now(UTC).replace(microsecond=0).isoformat()
        spam = [await factories.say(api, ben, c, "buy now") for c in (dm, srv.general) * 2]
        own = await factories.say(api, ann, srv.general, "ann's own")
        async with sse_stream(base, ann.access_token) as watcher:
            done = admin(servers, "delete-messages", "ben", "--since", moment)
            assert done.returncode == 0, done.stderr
            assert done.stdout.endswith("4 message(s) deleted in 2 channel(s)\n")
            gone = await watcher.collect("message.deleted", 4)
            assert {e.data["id"] for e in gone} == {m["id"] for m in spam}
        for channel in (dm, srv.general):
            page = await api.get(f"/api/channels/{channel}/messages", headers=ann.headers)
            live = {m["id"] for m in page.json() if not m["deleted"]}
            assert live == ({kept["id"]} if channel == dm else {own["id"]})
        again = admin(servers, "delete-messages", "ben")
        assert again.stdout.endswith("1 message(s) deleted in 1 channel(s)\n"), again.stderr


async def test_admin_delete_messages_purges_an_account_deleted_after_its_spam(
    servers: Servers, make_user: MakeUser
) -> None:
    """A spammer who deletes the account after the spam leaves the messages behind (they
    stay, as every deleted account's do): the operator names it by its id, the one name
    it keeps. Was: USER_NOT_FOUND, and the spam stayed in conversations no moderator
    can reach."""
    _, base = servers.start()
    async with httpx.AsyncClient(base_url=base, timeout=30) as api:
        ann, ben, dm = await factories.pair(api, make_user)
        spam = await factories.say(api, ben, dm, "buy now")
        gone = await api.post(
            "/api/users/@me/delete", headers=ben.headers, json={"password": ben.password}
        )
        assert gone.status_code == 204, gone.text
        by_name = admin(servers, "delete-messages", "ben")
        assert by_name.returncode == 1  # (the name is a placeholder's now)
        done = admin(servers, "delete-messages", str(ben.id))
        assert done.returncode == 0, done.stderr
        assert done.stdout.endswith("1 message(s) deleted in 1 channel(s)\n"), done.stdout
        page = await api.get(f"/api/channels/{dm}/messages", headers=ann.headers)
        (shown,) = [m for m in page.json() if m["id"] == spam["id"]]
        assert shown["deleted"] and shown["content"] == ""
        # The other commands still refuse a deleted account.
        assert admin(servers, "revoke-sessions", str(ben.id)).returncode == 1


async def test_admin_export_writes_the_accounts_own_data_and_nothing_else(
    servers: Servers, make_user: MakeUser, tmp_path: Path
) -> None:
    _, base = servers.start()
    async with httpx.AsyncClient(base_url=base, timeout=30) as api:
        ann, ben, dm = await factories.pair(api, make_user)
        srv = await factories.community(api, ann, ben)
        avatar = await api.put(
            "/api/users/@me/avatar",
            headers={**ann.headers, "Content-Type": "image/png"},
            content=png(16, 16),
        )
        assert avatar.status_code == 200, avatar.text
        first = await factories.say(api, ann, dm, "the first draft")
        edited = await api.patch(
            f"/api/channels/{dm}/messages/{first['id']}",
            headers=ann.headers,
            json={"content": "the final text"},
        )
        assert edited.status_code == 200, edited.text
        filed = await post_files(
            api, ann, srv.general, [part("../../etc/passwd.txt", b"file bytes")], "see this"
        )
        assert filed.status_code == 201, filed.text
        gone = await factories.say(api, ann, dm, "regretted words")
        deleted = await api.delete(f"/api/channels/{dm}/messages/{gone['id']}", headers=ann.headers)
        assert deleted.status_code == 204
        theirs = await factories.say(api, ben, dm, "ben's own words")
        reacted = await api.put(
            f"/api/channels/{dm}/messages/{theirs['id']}/reactions/👍/@me", headers=ann.headers
        )
        assert reacted.status_code == 204, reacted.text
        totp_secret, codes = await turn_on(api, ann)

    out = tmp_path / "ann-export"
    done = admin(servers, "export", "ann", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"ann ({ann.id}): 2 message(s), 1 reaction(s), 2 file(s)")
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    written = [p for p in out.rglob("*") if p.is_file()]
    assert {stat.S_IMODE(p.stat().st_mode) for p in written} == {0o600}

    account = orjson.loads((out / "account.json").read_bytes())
    assert account["format"] == "xfchat-export-1"
    assert account["profile"]["email"] == ann.email
    assert account["two_factor"]["enabled"] is True
    assert {s["id"] for s in account["servers"]} == {srv.id}
    assert [c["id"] for c in account["conversations"]] == [dm]
    assert len(account["sessions"]) >= 1
    messages = [orjson.loads(x) for x in (out / "messages.jsonl").read_text().splitlines()]
    assert [m["content"] for m in messages] == ["the final text", "see this"]
    assert [v["content"] for v in messages[0]["earlier_versions"]] == ["the first draft"]
    [attachment] = messages[1]["attachments"]
    [reaction] = [orjson.loads(x) for x in (out / "reactions.jsonl").read_text().splitlines()]
    assert (reaction["message_id"], reaction["emoji"]) == (theirs["id"], "👍")
    # The file's name cannot leave files/.
    filed_as = f"{attachment['id']}-{safe_name(attachment['filename'])}"
    assert {p.name for p in (out / "files").iterdir()} == {filed_as, "avatar.jpg"}
    assert "/" not in safe_name("../../etc/passwd") and safe_name("..") == "file"
    assert (out / "files" / filed_as).read_bytes() == b"file bytes"
    # Nothing of what others wrote, of what was deleted, or of the account's secrets.
    everything = b"".join(p.read_bytes() for p in written)
    conn = await asyncpg.connect(servers.database_url)
    try:
        stored = await conn.fetchrow(
            "SELECT u.password_hash, t.secret FROM users u JOIN user_totp t ON t.user_id = u.id"
            " WHERE u.id = $1",
            ann.id,
        )
    finally:
        await conn.close()
    for text in ("ben's own words", "regretted words", totp_secret, *codes, *stored.values()):
        assert text.encode() not in everything

    again = admin(servers, "export", "ann", "--out", str(out))
    assert again.returncode == 1 and "is there already" in again.stderr
    nobody = admin(servers, "export", "nobody", "--out", str(tmp_path / "x"))
    assert nobody.returncode == 1 and "USER_NOT_FOUND" in nobody.stderr
    assert not (tmp_path / "x").exists()


async def test_admin_export_on_a_full_disk_says_so_and_leaves_no_account_json(
    servers: Servers, make_user: MakeUser, tmp_path: Path
) -> None:
    # A file-size limit (RLIMIT_FSIZE) stands for a disk that fills up as account.json,
    # the largest file here, is written: the write fails part way (EFBIG, as ENOSPC).
    _, base = servers.start()
    async with httpx.AsyncClient(base_url=base, timeout=30) as api:
        await factories.pair(api, make_user)
    out = tmp_path / "ann-export"
    env = clean_env(DATABASE_URL=servers.database_url, XFCHAT_SECRET=servers.secret)

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (512, 512))

    done = subprocess.run(
        xfchat("admin", "export", "ann", "--out", str(out)),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=small_files,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    [line] = fatal_lines(done.stderr)
    assert "did not end" in line and "account.json" in line, line
    # What is there is an export that did not end, by the README's sign: no account.json
    # (never a truncated one), nor its partial copy.
    assert out.is_dir() and (out / "messages.jsonl").is_file()
    assert not (out / "account.json").exists() and not list(out.glob("account.json*"))


def test_admin_on_a_database_without_the_schema_says_to_migrate(
    empty_db_url: str, tmp_path: Path
) -> None:
    env = clean_env(DATABASE_URL=empty_db_url, XFCHAT_SECRET=random_secret())
    for args in (
        ["revoke-sessions", "ann"],
        ["lock", "ann"],
        ["delete-messages", "ann"],
        ["export", "ann", "--out", str(tmp_path / "out")],
    ):
        result = run_cli("admin", *args, env=env)
        assert result.returncode == 3, result.stderr
        assert fatal_lines(result.stderr) == [
            "[ADMIN] FATAL: the schema is not current: run `xfchat migrate run` first"
        ]


async def test_admin_on_an_unreachable_database_says_so_as_serve_does() -> None:
    # Was: `cannot open the pool's 1 connection(s) to ...: Connection refused
    # (XFCHAT_DB_POOL_MIN, the server's max_connections, the pooler's settings)`: the
    # pool's settings blamed for a database that never answered.
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql://x:y@127.0.0.1:{port}/x"
    env = clean_env(
        DATABASE_URL=url,
        XFCHAT_SECRET=random_secret(),
        XFCHAT_DB_CONNECT_ATTEMPTS="2",
        XFCHAT_DB_CONNECT_RETRY_DELAY="0",
    )
    served = run_cli("serve", env=env)
    [said] = fatal_lines(served.stderr)
    result = run_cli("admin", "revoke-sessions", "ann", env=env)
    assert result.returncode == served.returncode == 3, result.stderr
    assert fatal_lines(result.stderr) == [said.replace("[STARTUP]", "[ADMIN]")], result.stderr
    assert f"x@127.0.0.1:{port}/x is unreachable after 2 attempts" in said, said
    assert "in DATABASE_URL right?" in said and "y@" not in result.stderr
    assert "POOL_MIN" not in result.stderr and "Traceback" not in result.stderr
    # The pool's own refusal of a database that does not answer says the same (its
    # settings' hint is for one that answered and refused: tests/e2e/test_serve_startup.py).
    with pytest.raises(DatabaseStartupError) as refused:
        await create_pool(DatabaseSettings(database_url=url, connect_timeout_s=5), min_size=1)
    message = str(refused.value)
    assert f"PostgreSQL at x@127.0.0.1:{port}/x is unreachable (" in message, message
    assert "POOL_MIN" not in message and "in DATABASE_URL right?" in message
