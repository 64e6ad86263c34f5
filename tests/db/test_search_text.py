"""The database's fold (xf_fold, migration 0021) and its Python twin agree on every
character either maps, and on text mixing them; so do the index's day markers
(migration 0023) and the days search reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import asyncpg

from bench.send_statement import the_0036_vector
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


def _expected_grams(f: str) -> set[str]:
    """Every 3 characters of each token's first 1,024, each 1 and 2 characters of every
    CJK run, each emoji (README "Search"), as xf_grams must give them."""
    import re

    grams = set()
    for token in re.split(r"[\x01-\x20\x7F]+", f):
        head = token[:1024] if len(token) > 64 else token
        grams |= {head[i : i + 3] for i in range(len(head) - 2)}
    for run in re.findall(r"[\u3040-\u30FF\u4E00-\u9FFF]+", f):
        grams |= set(run) | {run[i : i + 2] for i in range(len(run) - 1)}
    grams |= set(re.findall(r"[\U0001F000-\U0001FAFF]", f))
    return grams


async def test_the_grams_are_every_substring_the_readme_promises(conn: asyncpg.Connection) -> None:
    """Short and long tokens (cut at 1,024 characters), CJK runs of any length, emoji:
    the grams are what search's substring promise needs, however long the text (they
    are cut in linear time: migration 0027)."""
    texts = [
        "deploy the server at https://example.com/path/to foo-bar a.b.c",
        "tab\tseparated\nlines  here 🎉 party",
        "x" * 64 + " " + "y" * 65,
        "".join(chr(0x61 + i % 26) for i in range(3000)),  # one long token
        "我喜欢数据库系统" * 300 + " 今日は東京タワー",  # a long CJK run, and a short one
    ]
    for text in texts:
        got = await conn.fetchval("SELECT xf_grams(xf_fold($1))", text)
        assert set(got) == _expected_grams(text.lower()), text[:40]
    import random

    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789_.-"
    rng = random.Random(7)
    long_token = "".join(rng.choice(alphabet) for _ in range(5000))
    grams = set(await conn.fetchval("SELECT xf_grams($1)", long_token))
    head = _expected_grams(long_token[:1024])
    later = next(
        long_token[i : i + 3] for i in range(1100, 4990) if long_token[i : i + 3] not in head
    )
    assert head <= grams and later not in grams  # (only the first 1,024 characters)


async def test_the_looped_grams_are_the_queried_ones_in_the_same_order(
    conn: asyncpg.Connection,
) -> None:
    """Migration 0050 takes the grams by a loop instead of a query: over thousands of
    texts (every separator, CJK, Hangul, emoji, composed and decomposed letters, tokens
    either side of 64 and 1,024 characters, three languages' vectors) it gives the same
    grams in the same order, and the same stored vector, as 0027 and 0036 did."""
    import random

    rng = random.Random(50)
    alphabet = "ab c\t\n\x01\x1f\x7f.,:/xyzéE\u0301漢字한글😀→ＥÅ©"
    texts = [
        "".join(rng.choice(alphabet) for _ in range(rng.choice([3, 12, 40, 300])))
        for _ in range(3000)
    ]
    texts += ["", "a", "ab", "abc", " abc ", "\x01abc\x7f", "abcd efgh ij k"]
    texts += ["x" * 64, "x" * 65 + " yz", "q" * 1100, "see https://example.com/a?b=c ok"]
    texts += ["".join(rng.choice("abc漢字") for _ in range(n)) for n in (64, 65, 1030)]
    configs = ["english", "french", "simple"]
    rows: list[asyncpg.Record] = []
    async with conn.transaction():
        await conn.execute(the_0036_vector("pg_temp"))
        for start in range(0, len(texts), 250):  # (each statement well inside its bound)
            rows += await conn.fetch(
                """
                SELECT t, xf_grams(xf_fold(t)) = pg_temp.grams_0027(xf_fold(t)) AS grams_same,
                       xf_grams(xf_fold(t), ' ')
                         = ARRAY(SELECT ' ' || g FROM unnest(pg_temp.grams_0027(xf_fold(t))) g)
                         AS lexemes_same,
                       xf_search_vector(c, t) = pg_temp.vector_0036(c, t) AS vector_same,
                       cardinality(xf_grams(xf_fold(t))) AS n
                FROM unnest($1::text[], $2::regconfig[]) AS x(t, c)
                """,
                texts[start : start + 250],
                [configs[i % 3] for i in range(start, min(start + 250, len(texts)))],
            )
        await conn.execute("DROP FUNCTION pg_temp.vector_0036, pg_temp.grams_0027")
    differing = [r["t"][:40] for r in rows if not (r["grams_same"] and r["lexemes_same"])]
    assert differing == []
    assert [r["t"][:40] for r in rows if not r["vector_same"]] == []
    assert sum(r["n"] for r in rows) > 50_000  # (texts with grams to compare)
