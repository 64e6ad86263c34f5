"""The database's fold (xf_fold, migration 0021) and its Python twin agree on every
character either maps, and on text mixing them; so do the index's day markers
(migration 0023) and the days search reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import asyncpg

from xfchat.db.queries.search import DAY_SPANS, day_marks
from xfchat.domain import search
from xfchat.domain.search_text import FOLD, FOLD_GROUPS, fold


async def test_the_python_fold_is_the_databases(conn: asyncpg.Connection) -> None:
    chars = sorted({*range(0x01, 0x80), *FOLD, *(c for g in FOLD_GROUPS.values() for c in g)})
    texts = [chr(c) for c in chars if not 0xD800 <= c < 0xE000]
    texts += ["Ça VA? École ＡＢＣ ❤️ Привет ΑΒΓ 数据库 Ǆ ẞ", "plain ascii\ttab\nline"]
    folded = await conn.fetch("SELECT t, xf_fold(t) AS f FROM unnest($1::text[]) AS t", texts)
    mismatched = {r["t"]: (r["f"], fold(r["t"])) for r in folded if r["f"] != fold(r["t"])}
    assert mismatched == {}
    assert all(len(fold(t)) == len(t) for t in texts)  # positions survive
    assert all(fold(fold(t)) == fold(t) for t in texts)  # a folded character stays itself


async def test_the_day_markers_are_the_days_python_reads(conn: asyncpg.Connection) -> None:
    """The index marks each message with its UTC day (migration 0023) as search counts
    them, and the markers of a span of days cover exactly those days."""
    moments = [
        datetime(1970, 1, 1, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2026, 11, 23, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2026, 11, 24, tzinfo=UTC),
        datetime(2026, 11, 24, 0, 30, tzinfo=timezone(timedelta(hours=2))),  # the 23rd, UTC
    ]
    for at in moments:
        marks = await conn.fetchval("SELECT xf_search_marks(gen_random_uuid(), $1)::text", at)
        day = search._day(at)
        for span in DAY_SPANS:
            assert f"' @{span}:{day // span}'" in marks, (at, span)
    for first, last in [(0, 0), (20415, 20780), (20779, 20781), (-3, 700), (511, 1025)]:
        covered: set[int] = set()
        for mark in day_marks(first, last).split(" | "):
            span, block = (int(x) for x in mark.strip("' @").split(":"))
            days = set(range(block * span, block * span + span))
            assert not days & covered
            covered |= days
        assert covered == set(range(first, last + 1)), (first, last)
