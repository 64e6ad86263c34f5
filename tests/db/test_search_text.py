"""The database's fold (xf_fold, migration 0021) and its Python twin agree on every
character either maps, and on text mixing them."""

from __future__ import annotations

import asyncpg

from xfchat.domain.search_text import FOLD, FOLD_GROUPS, fold


async def test_the_python_fold_is_the_databases(conn: asyncpg.Connection) -> None:
    chars = sorted({*range(0x01, 0x80), *FOLD, *(c for g in FOLD_GROUPS.values() for c in g)})
    texts = [chr(c) for c in chars if not 0xD800 <= c < 0xE000]
    texts += ["Ça VA? École ＡＢＣ ❤️ Привет ΑΒΓ 数据库 Ǆ ẞ", "plain ascii\ttab\nline"]
    folded = await conn.fetch("SELECT t, xf_fold(t) AS f FROM unnest($1::text[]) AS t", texts)
    mismatched = {r["t"]: (r["f"], fold(r["t"])) for r in folded if r["f"] != fold(r["t"])}
    assert mismatched == {}
    assert all(len(fold(t)) == len(t) for t in texts)  # positions survive
