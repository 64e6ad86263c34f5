"""`xfchat admin export` pages what may be long (messages, reactions) by their keys:
every one once, in order, across pages, including those sent in one batch (the same
created_at)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest

from tests import factories
from tests.api.test_attachments import png
from tests.factories import MakeUser
from tests.support import plan_nodes
from xfchat.db.queries import account_export as q
from xfchat.domain import account_export
from xfchat.domain.permissions import Permission
from xfchat.errors import NotFound


async def test_pages_hold_every_message_and_reaction_once_in_order(
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    make_user: MakeUser,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ann, _, dm = await factories.pair(client, make_user)
    sent = [await factories.say(client, ann, dm, f"line {i}") for i in range(7)]
    emoji = ["👍", "🎉", "❤️"]
    for m in sent[:2]:
        for e in emoji:
            r = await client.put(
                f"/api/channels/{dm}/messages/{m['id']}/reactions/{e}/@me", headers=ann.headers
            )
            assert r.status_code == 204, r.text
    # Two of them at one instant, as a batch writes them: the page's key is
    # (created_at, id), so neither is lost nor read twice at a page's edge.
    await pool.execute(
        "UPDATE messages SET created_at = $2 WHERE id = ANY($1::uuid[])",
        [sent[2]["id"], sent[3]["id"]],
        datetime.fromisoformat(sent[1]["created_at"]),
    )
    monkeypatch.setattr(account_export, "PAGE", 2)
    done = await account_export.export_account(pool, "ann", tmp_path / "out")
    assert (done.messages, done.reactions, done.files) == (7, 6, 0)
    lines = (tmp_path / "out" / "messages.jsonl").read_text().splitlines()
    ids = [orjson.loads(x)["id"] for x in lines]
    assert sorted(ids) == sorted(m["id"] for m in sent) and len(set(ids)) == 7
    reactions = [
        orjson.loads(x) for x in (tmp_path / "out" / "reactions.jsonl").read_text().splitlines()
    ]
    assert len({(r["message_id"], r["emoji"]) for r in reactions}) == 6
    assert not [p for p in (tmp_path / "out" / "files").iterdir()]


async def test_message_pages_start_at_their_key_in_a_generic_plan(pool: asyncpg.Pool) -> None:
    # The pool plans every statement once (plan_cache_mode = force_generic_plan): a
    # page's key must bound the walk of an index, or each page walks the messages again
    # from the oldest one (quadratic in an account's messages, and within the statement
    # timeout of a request no more).
    async with pool.acquire() as conn:
        assert await conn.fetchval("SHOW plan_cache_mode") == "force_generic_plan"
        await conn.execute(f"PREPARE page AS {q.MESSAGES_PAGE}")
        plan = await conn.fetchval(
            "EXPLAIN (FORMAT JSON) EXECUTE page(gen_random_uuid(), now(), gen_random_uuid(), 500)"
        )
    scans = [n for n in plan_nodes(plan[0]["Plan"]) if n.get("Relation Name") == "messages"]
    assert scans and all("created_at >=" in n.get("Index Cond", "") for n in scans), scans


async def test_export_holds_what_is_done_to_the_account_and_what_it_uploaded(
    client: httpx.AsyncClient, pool: asyncpg.Pool, make_user: MakeUser, tmp_path: Path
) -> None:
    ann, ben, _ = await factories.pair(client, make_user)
    mine = await factories.community(client, ann, ben, name="ann's")
    theirs = await factories.community(client, ben, ann, name="ben's")
    away = await factories.community(client, ben, ann, name="left")
    icon = await client.put(
        mine.url("/icon"), headers={**ann.headers, "Content-Type": "image/png"}, content=png(8, 8)
    )
    assert icon.status_code == 200, icon.text
    # What ann did as a moderator: deleted ben's message in her server.
    bens = await factories.say(client, ben, mine.general, "ben's words")
    r = await client.delete(
        f"/api/channels/{mine.general}/messages/{bens['id']}", headers=ann.headers
    )
    assert r.status_code == 204, r.text
    # What ben did to ann: deleted her message, muted her voice, overrode her permissions
    # in a channel; and timed her out in a server she left then (the timeout is kept).
    anns = await factories.say(client, ann, theirs.general, "moderated words")
    r = await client.delete(
        f"/api/channels/{theirs.general}/messages/{anns['id']}", headers=ben.headers
    )
    assert r.status_code == 204, r.text
    r = await client.patch(
        theirs.url(f"/members/{ann.id}/voice"), headers=ben.headers, json={"mute": True}
    )
    assert r.status_code == 200, r.text
    r = await factories.override(client, ben, theirs.general, "member", ann.id, deny=2048)
    assert r.status_code in (200, 204), r.text
    until = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    r = await client.patch(
        away.url(f"/members/{ann.id}"), headers=ben.headers, json={"timed_out_until": until}
    )
    assert r.status_code == 200, r.text
    r = await client.delete(away.url("/members/@me"), headers=ann.headers)
    assert r.status_code == 204, r.text

    await account_export.export_account(pool, "ann", tmp_path / "out")
    out = tmp_path / "out"
    account = orjson.loads((out / "account.json").read_bytes())
    assert [t["server_id"] for t in account["lingering_timeouts"]] == [away.id]
    [there] = [s for s in account["servers"] if s["id"] == theirs.id]
    assert there["voice_mute"] is True and there["voice_deaf"] is False
    assert [o["channel_id"] for o in account["channel_permission_overrides"]] == [theirs.general]
    [image] = account["uploaded_images"]
    assert (image["purpose"], image["server_ids"]) == ("icon", [mine.id])
    [icon_file] = [p for p in (out / "files").iterdir() if p.name.startswith("icon-")]
    assert icon_file.name == f"icon-{image['id']}.jpg" and icon_file.stat().st_size > 0
    assert mine.invite in {i["code"] for i in account["invites"]}
    audit = [orjson.loads(x) for x in (out / "audit_log.jsonl").read_text().splitlines()]
    done = {(e["action"], e["target_id"], e["by_you"]) for e in audit}
    assert ("message.deleted", bens["id"], True) in done  # what ann did
    assert ("message.deleted", anns["id"], False) in done  # what was done to her,
    assert ("member.timed_out", str(ann.id), False) in done
    assert any(
        e["target_id"] == str(ann.id) and not e["by_you"] for e in audit if "voice" in e["action"]
    )
    # ... but not who did it (another member's data), nor anyone else's entries.
    assert all("actor_id" not in e for e in audit)
    assert len(audit) == len(done)
    assert account["counts"]["audit_log"] == len(audit)
    # Deleted text stays out, and so does the other side's email.
    assert b"moderated words" not in (out / "messages.jsonl").read_bytes()
    written = b"".join(p.read_bytes() for p in out.rglob("*") if p.is_file())
    assert ben.email.encode() not in written and ann.email.encode() in written


async def test_export_never_writes_through_a_directory_swapped_for_a_link(
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    make_user: MakeUser,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Someone who may write where the export goes (a shared directory without the sticky
    # bit) renames the new directory away once it is made and puts a link to a place of
    # theirs in its place: the export's files must not follow it there.
    ann, _, dm = await factories.pair(client, make_user)
    await factories.say(client, ann, dm, "private words")
    out, moved, theirs = tmp_path / "out", tmp_path / "moved", tmp_path / "theirs"
    theirs.mkdir()
    messages = account_export._Export.messages

    async def swapped(self: Any, user_id: Any) -> int:
        out.rename(moved)
        out.symlink_to(theirs, target_is_directory=True)
        return await messages(self, user_id)

    monkeypatch.setattr(account_export._Export, "messages", swapped)
    await account_export.export_account(pool, "ann", out)
    assert list(theirs.iterdir()) == []
    assert b"private words" in (moved / "messages.jsonl").read_bytes()
    assert (moved / "account.json").is_file()


async def test_export_of_a_deleted_account_by_its_id(
    client: httpx.AsyncClient, pool: asyncpg.Pool, make_user: MakeUser, tmp_path: Path
) -> None:
    ann, _, dm = await factories.pair(client, make_user)
    await factories.say(client, ann, dm, "kept after the account")
    r = await client.post(
        "/api/users/@me/delete", headers=ann.headers, json={"password": ann.password}
    )
    assert r.status_code == 204, r.text
    with pytest.raises(NotFound):
        await account_export.export_account(pool, "ann", tmp_path / "by-name")
    assert not (tmp_path / "by-name").exists()
    done = await account_export.export_account(pool, str(ann.id), tmp_path / "out")
    assert done.messages == 1
    account = orjson.loads((tmp_path / "out" / "account.json").read_bytes())
    assert account["profile"]["deleted_at"] is not None
    assert account["sessions"] and all(s["revoked_at"] for s in account["sessions"])


async def test_export_holds_the_read_receipt_the_others_were_shown(
    client: httpx.AsyncClient, pool: asyncpg.Pool, make_user: MakeUser, tmp_path: Path
) -> None:
    """Was: read positions only, so after a mark-unread the receipt the others in a
    conversation still see (the highest read, migration 0058) was nowhere in the export
    of what is kept about the account."""
    ann, ben, _ = await factories.pair(client, make_user)
    dm = str((await factories.direct(client, ann, ben))["id"])
    for text in ("one", "two"):
        await factories.say(client, ben, dm, text)
    for seq in (2, 1):  # read both, then marked the second unread
        r = await client.put(f"/api/channels/{dm}/ack", headers=ann.headers, json={"seq": seq})
        assert r.status_code == 200, r.text
    await account_export.export_account(pool, "ann", tmp_path / "out")
    account = orjson.loads((tmp_path / "out" / "account.json").read_bytes())
    [state] = [r for r in account["read_states"] if r["channel_id"] == dm]
    assert (state["last_read_seq"], state["read_receipt_seq"]) == (1, 2), state


async def test_export_holds_the_old_values_of_changes_to_the_account_but_not_who_made_them(
    client: httpx.AsyncClient, pool: asyncpg.Pool, make_user: MakeUser, tmp_path: Path
) -> None:
    """Each entry carries its `diff`; a transfer's names its old owner, who handed the
    server over: left out of the new owner's export (as `actor_id` is)."""
    ann, ben, _ = await factories.pair(client, make_user)
    srv = await factories.community(client, ann, ben)
    r = await client.patch(
        srv.url(f"/members/{ben.id}"), headers=ann.headers, json={"nickname": "Bee"}
    )
    assert r.status_code == 200, r.text
    r = await client.post(srv.url("/transfer"), headers=ann.headers, json={"owner_id": str(ben.id)})
    assert r.status_code == 200, r.text
    await account_export.export_account(pool, "ben", tmp_path / "ben")
    lines = (tmp_path / "ben" / "audit_log.jsonl").read_text().splitlines()
    by_action = {e["action"]: e for e in map(orjson.loads, lines)}
    assert by_action["member.updated"]["diff"] == [
        {"key": "nickname", "old_value": None, "new_value": "Bee"}
    ]
    assert by_action["server.transferred"]["diff"] is None
    assert str(ann.id) not in "\n".join(lines)
    await account_export.export_account(pool, "ann", tmp_path / "ann")
    lines = (tmp_path / "ann" / "audit_log.jsonl").read_text().splitlines()
    (moved,) = [e for e in map(orjson.loads, lines) if e["action"] == "server.transferred"]
    assert moved["diff"] == [
        {"key": "owner_id", "old_value": str(ann.id), "new_value": str(ben.id)}
    ]


async def test_export_holds_the_accounts_notification_settings_only(
    client: httpx.AsyncClient, pool: asyncpg.Pool, make_user: MakeUser, tmp_path: Path
) -> None:
    ann, ben, chat = await factories.pair(client, make_user)
    srv = await factories.community(client, ann, ben)
    settings = "/api/users/@me/notification-settings"
    body = {"level": "mentions", "suppress_everyone": True}
    r = await client.put(f"{settings}/server/{srv.id}", headers=ann.headers, json=body)
    assert r.status_code == 200, r.text
    r = await client.put(f"{settings}/channel/{chat}", headers=ben.headers, json={"level": "all"})
    assert r.status_code == 200, r.text
    await account_export.export_account(pool, "ann", tmp_path / "out")
    account = orjson.loads((tmp_path / "out" / "account.json").read_bytes())
    [held] = account["notification_settings"]
    assert (held["server_id"], held["channel_id"]) == (srv.id, None)
    assert (held["level"], held["suppress_everyone"]) == ("mentions", True)


async def test_export_holds_the_webhooks_the_account_made_without_their_tokens(
    client: httpx.AsyncClient, pool: asyncpg.Pool, make_user: MakeUser, tmp_path: Path
) -> None:
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await factories.community(client, ann, ben)
    await factories.role(client, srv, ann, "hooks", int(Permission.MANAGE_WEBHOOKS), ben)
    made = {}
    for who, name in ((ann, "CI"), (ben, "Alerts")):  # (ben's is not ann's)
        r = await client.post(
            f"/api/channels/{srv.general}/webhooks", headers=who.headers, json={"name": name}
        )
        assert r.status_code == 201, r.text
        made[name] = r.json()
    await account_export.export_account(pool, "ann", tmp_path / "out")
    raw = (tmp_path / "out" / "account.json").read_bytes()
    [held] = orjson.loads(raw)["webhooks"]
    hook = made["CI"]
    assert (held["id"], held["server_id"], held["channel_id"]) == (
        hook["id"],
        srv.id,
        srv.general,
    )
    assert (held["name"], held["avatar_url"]) == ("CI", None)
    assert "token" not in str(held) and hook["token"].encode() not in raw
