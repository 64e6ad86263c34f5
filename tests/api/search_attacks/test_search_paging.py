"""Attack 1: paging with next_cursor over a long, clustered history (read a span of
days at a time) gives every match exactly once, in order; sends, deletes and edits
between pages neither duplicate nor skip a match; UTC midnight and the last microsecond
of a day are read on the right side of every span."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests import factories
from tests.api.search_attacks.conftest import bulk, search, sql, walk
from tests.factories import MakeUser, TestUser
from xfchat.domain import search as search_domain

US = timedelta(microseconds=1)


@dataclass
class History:
    ann: TestUser
    ben: TestUser
    dm: str
    base: datetime  # a UTC midnight before now
    matches: list[tuple[datetime, str]]  # (created_at, id) of ben's "kiwi" matches


def times(base: datetime) -> list[tuple[str, datetime]]:
    """Matches clustered on a few days far apart, with ties, midnights and last
    microseconds of days, and a few sparse ones in between."""
    rows: list[tuple[str, datetime]] = []
    day = timedelta(days=1)
    for i in range(3):  # three at exactly the same UTC midnight
        rows.append((f"kiwi tie {i}", base))
    for i in range(2):  # two in the last microsecond of the day before
        rows.append((f"kiwi last micro {i}", base - US))
    rows.append(("kiwi day -1 midnight", base - day))
    for i in range(10):  # today's cluster
        rows.append((f"kiwi today {i}", base + timedelta(hours=1 + 2 * i, seconds=i)))
    rows.append(("kiwi today last micro", base + day - US))
    for i in range(10):
        rows.append((f"kiwi cluster60 {i}", base - 60 * day + timedelta(minutes=7 * i)))
    rows.append(("kiwi day -61 last micro", base - 60 * day - US))
    rows.append(("kiwi day -61 midnight", base - 61 * day))
    for i in range(8):
        rows.append((f"kiwis cluster150 {i}", base - 150 * day + timedelta(hours=3 * i)))
    rows.append(("KIWI KIWI day -151 last micro", base - 150 * day - US))
    for i in range(10):
        rows.append((f"kiwi cluster399 {i}", base - 399 * day + timedelta(minutes=97 * i)))
    rows.append(("kiwifruit day -400 midnight", base - 400 * day))
    rows.append(("kiwi day -400 last micro", base - 399 * day - US))
    for k in range(5, 395, 37):  # sparse
        rows.append((f"sparse kiwi {k}", base - k * day + timedelta(hours=13, minutes=37)))
    return rows


async def make_history(client: httpx.AsyncClient, make_user: MakeUser, db_url: str) -> History:
    ann, ben, dm = await factories.pair(client, make_user)
    carl = await make_user("carl")
    theirs = str((await factories.direct(client, ann, carl))["id"])
    base = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
    rows = times(base)
    ids = await bulk(db_url, dm, ann.id, rows)
    # distractors in ben's conversation, and many matches he may not read
    await bulk(
        db_url, dm, ann.id, [(f"banana {i}", base - timedelta(days=i * 2.9)) for i in range(140)]
    )
    await bulk(
        db_url,
        theirs,
        ann.id,
        [(f"kiwi of theirs {i}", base - timedelta(hours=i * 13.1)) for i in range(700)],
    )
    await sql(db_url, "ANALYZE messages")
    matches = sorted(((at, str(i)) for (_, at), i in zip(rows, ids, strict=True)), reverse=True)
    return History(ann, ben, dm, base, matches)


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The day markers of every read of the window (to show spans were read)."""
    seen: list[str] = []
    window = search_domain.q.search_window

    async def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(str(kwargs.get("days")))
        return await window(*args, **kwargs)

    monkeypatch.setattr(search_domain.q, "search_window", spy)
    return seen


def dups(ids: list[str]) -> list[str]:
    return sorted({i for i in ids if ids.count(i) > 1})


async def test_every_match_once_in_order_across_a_long_clustered_history(
    client: httpx.AsyncClient,
    raw: httpx.AsyncClient,
    make_user: MakeUser,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    reads: list[str],
) -> None:
    h = await make_history(client, make_user, db_url)
    newest_first = [i for _, i in h.matches]
    expected = set(newest_first)
    failures: dict[str, Any] = {}
    for variant, (slice_above, max_slices) in {
        "default": (search_domain.SLICE_ABOVE, search_domain.MAX_SLICES),
        "one-day spans": (0.0001, 4),
        "many spans": (0.0001, 40),
        "no spans": (10**9, 4),
    }.items():
        monkeypatch.setattr(search_domain, "SLICE_ABOVE", slice_above)
        monkeypatch.setattr(search_domain, "MAX_SLICES", max_slices)
        one = (await search(raw, h.ben, q="kiwi", limit=100)).json()
        ranked = [r["message"]["id"] for r in one["results"]]
        if set(ranked) != expected or one["total"] != len(expected):
            failures[f"{variant} relevance one page"] = (
                len(ranked),
                one["total"],
                len(expected),
                sorted(expected - set(ranked))[:5],
            )
        for sort in ("recent", "relevance"):
            for limit in (1, 4, 13) if sort == "recent" else (4, 13):
                if sort == "recent" and limit == 1 and variant != "default":
                    continue  # (keep the run short)
                ids, bodies = await walk(raw, h.ben, q="kiwi", sort=sort, limit=limit)
                want = newest_first if sort == "recent" else ranked
                if ids != want:
                    failures[f"{variant} {sort} limit={limit}"] = {
                        "duplicates": dups(ids)[:5],
                        "missing": len(expected - set(ids)),
                        "extra": len(set(ids) - expected),
                        "first difference": next(
                            (n for n, (a, b) in enumerate(zip(ids, want, strict=False)) if a != b),
                            min(len(ids), len(want)),
                        ),
                    }
                totals = {b["total"] for b in bodies}
                if totals != {len(expected)}:
                    failures[f"{variant} {sort} limit={limit} total"] = totals
    assert failures == {}
    assert any("@" in r for r in reads), "no read went through the day markers"


async def test_midnight_and_last_microsecond_land_on_their_own_day(
    client: httpx.AsyncClient, raw: httpx.AsyncClient, make_user: MakeUser, db_url: str
) -> None:
    """during:/before:/after: at the edges of a UTC day, with the span reading on."""
    h = await make_history(client, make_user, db_url)
    b = h.base
    cases = {
        f"kiwi during:{b.date()}": [at for at, _ in h.matches if b <= at < b + timedelta(days=1)],
        f"kiwi during:{(b - timedelta(days=1)).date()}": [
            at for at, _ in h.matches if b - timedelta(days=1) <= at < b
        ],
        f"kiwi before:{b.date()}": [at for at, _ in h.matches if at < b],
        f"kiwi after:{(b - timedelta(days=1)).date()}": [at for at, _ in h.matches if at >= b],
        f"kiwi during:{(b - timedelta(days=61)).date()}": [
            at for at, _ in h.matches if b - timedelta(days=61) <= at < b - timedelta(days=60)
        ],
    }
    by_time = {i: at for at, i in h.matches}
    failures = {}
    for q, want in cases.items():
        for sort, limit in (("recent", 2), ("relevance", 3), ("recent", 100)):
            ids, _ = await walk(raw, h.ben, q=q, sort=sort, limit=limit)
            got = sorted((by_time[i] for i in ids), reverse=True)
            if got != sorted(want, reverse=True) or dups(ids):
                failures[(q, sort, limit)] = (len(got), len(want))
    assert failures == {}
    # and the index's day markers agree with Python's days at those instants
    rows = await sql(
        db_url,
        "SELECT x.at, xf_search_marks(gen_random_uuid(), x.at)::text AS marks "
        "FROM unnest($1::timestamptz[]) AS x(at)",
        [b, b - US, b + timedelta(days=1) - US, b - timedelta(days=400)],
    )
    for r in rows:
        day = search_domain._day(r["at"])
        assert f"' @1:{day}'" in r["marks"], (r["at"], r["marks"], day)


@pytest.mark.parametrize("sort", ["recent", "relevance"])
async def test_sends_deletes_and_edits_between_pages_neither_skip_nor_repeat(
    client: httpx.AsyncClient,
    raw: httpx.AsyncClient,
    make_user: MakeUser,
    db_url: str,
    sort: str,
) -> None:
    h = await make_history(client, make_user, db_url)
    newest_first = [i for _, i in h.matches]
    gone: set[str] = set()
    ids: list[str] = []

    async def change() -> None:
        # a new match, newer than every page
        await factories.say(client, h.ann, h.dm, f"kiwi fresh {sort}")
        # delete one already given, and the one just given last (the cursor's)
        for victim in (ids[0], ids[-1]):
            url = f"/api/channels/{h.dm}/messages/{victim}"
            assert (await client.delete(url, headers=h.ann.headers)).status_code == 204
        # delete one not given yet, and edit another one away from the query
        unseen = [i for i in newest_first if i not in ids]
        url = f"/api/channels/{h.dm}/messages/{unseen[3]}"
        assert (await client.delete(url, headers=h.ann.headers)).status_code == 204
        gone.add(unseen[3])
        url = f"/api/channels/{h.dm}/messages/{unseen[7]}"
        edited = await client.patch(url, headers=h.ann.headers, json={"content": "banana now"})
        assert edited.status_code == 200, edited.text
        gone.add(unseen[7])

    params: dict[str, Any] = {"q": "kiwi", "sort": sort, "limit": 6}
    pages = 0
    while True:
        body = (await search(raw, h.ben, **params)).json()
        ids += [r["message"]["id"] for r in body["results"]]
        pages += 1
        if not body["next_cursor"]:
            break
        if pages == 1:
            await change()
        params["cursor"] = body["next_cursor"]
    want = [i for i in newest_first if i not in gone]
    assert dups(ids) == []
    assert set(want) - set(ids) == set()
    assert set(ids) - set(newest_first) == set()  # (the fresh one is newer than the search)
    if sort == "recent":
        assert ids == want


async def test_filters_only_and_capped_windows_page_to_the_end(
    client: httpx.AsyncClient,
    raw: httpx.AsyncClient,
    make_user: MakeUser,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only negations (no index query: read through the table) and a window smaller
    than the matches: recent pages on past the window, relevance stops at it."""
    h = await make_history(client, make_user, db_url)
    newest_first = [i for _, i in h.matches]
    ids, _ = await walk(raw, h.ben, q="-banana", sort="recent", limit=9)
    assert ids == newest_first
    ids, _ = await walk(raw, h.ben, q="-banana -nothinghere", sort="relevance", limit=9)
    assert sorted(ids) == sorted(newest_first) and dups(ids) == []
    monkeypatch.setattr(search_domain, "SEARCH_WINDOW", 20)
    ids, bodies = await walk(raw, h.ben, q="kiwi", sort="recent", limit=7)
    assert ids == newest_first and bodies[0]["total_capped"] is True
    ids, bodies = await walk(raw, h.ben, q="kiwi", sort="relevance", limit=7)
    assert sorted(ids) == sorted(newest_first[:20]) and dups(ids) == []
