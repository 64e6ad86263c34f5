"""`xfchat admin export` pages what may be long (messages, reactions) by their keys:
every one once, in order, across pages, including those sent in one batch (the same
created_at)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import asyncpg
import httpx
import orjson
import pytest

from tests import factories
from tests.factories import MakeUser
from xfchat.domain import account_export


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
