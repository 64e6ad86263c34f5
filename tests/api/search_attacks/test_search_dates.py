"""Attack 2: date filters (before:, after:, during:, with `tz`) combined with reading a
span of days at a time: no match missed, nothing outside the dates, never a 500."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests import factories
from tests.api.search_attacks.conftest import bulk, search, sql, walk
from tests.factories import MakeUser
from xfchat.domain import search as search_domain

ZONES = ["UTC", "Pacific/Kiritimati", "America/Adak", "Etc/GMT+12", "Asia/Kathmandu"]


def start(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(), zone)


def expected(instants: dict[str, datetime], q: str, zone: ZoneInfo) -> set[str]:
    lows, highs = [], []
    for part in q.split()[1:]:
        key, _, value = part.partition(":")
        d = date.fromisoformat(value)
        if key == "after":
            lows.append(start(d + timedelta(days=1), zone))
        elif key == "before":
            highs.append(start(d, zone))
        else:
            lows.append(start(d, zone))
            highs.append(start(d + timedelta(days=1), zone))
    return {
        i
        for i, at in instants.items()
        if all(at >= lo for lo in lows) and all(at < hi for hi in highs)
    }


async def test_dates_in_any_zone_with_the_span_reading_miss_nothing_and_add_nothing(
    client: httpx.AsyncClient,
    raw: httpx.AsyncClient,
    make_user: MakeUser,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ann, ben, dm = await factories.pair(client, make_user)
    carl = await make_user("carl")
    theirs = str((await factories.direct(client, ann, carl))["id"])
    base = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=2)
    at: list[datetime] = []
    for k in (0, 1, 2, 3, 30, 31, 200, 365, 366):  # days back, clustered and far apart
        for hours in (-14, -12, -10, -9.75, -5.75, -0.000001, 0, 0.5, 9.75, 10, 12, 14, 23.99):
            at.append(base - timedelta(days=k) + timedelta(hours=hours))
    ids = await bulk(db_url, dm, ann.id, [(f"plum {n}", t) for n, t in enumerate(at)])
    await bulk(db_url, dm, ann.id, [(f"pear {n}", t) for n, t in enumerate(at)])
    await bulk(
        db_url,
        theirs,
        ann.id,
        [(f"plum theirs {n}", base - timedelta(hours=7 * n)) for n in range(600)],
    )
    await sql(db_url, "ANALYZE messages")
    instants = {str(i): t for i, t in zip(ids, at, strict=True)}
    days = sorted({t.date() for t in at})
    failures: dict[tuple[str, str, str], object] = {}
    for variant in ("default", "one-day spans"):
        if variant == "one-day spans":
            monkeypatch.setattr(search_domain, "SLICE_ABOVE", 0.0001)
        for tz in ZONES if variant == "default" else ["Pacific/Kiritimati", "America/Adak"]:
            zone = ZoneInfo(tz)
            queries = []
            for d in [days[0], days[len(days) // 2], days[-1], days[-2]]:
                for key in ("during", "before", "after"):
                    for shift in (-1, 0, 1):
                        queries.append(f"plum {key}:{d + timedelta(days=shift)}")
            queries += [
                f"plum after:{days[1]} before:{days[-2]}",
                f"plum after:{days[-3]} before:{days[-1]}",
                "plum before:1970-01-02",
                "plum after:1970-01-01",
                "plum during:1970-01-01",
                "plum before:9998-12-31",
                "plum after:9998-12-31",
                "plum during:9998-12-31",
            ]
            for q in queries:
                want = expected(instants, q, zone)
                # (pages of 7 where the spans are a day: a page's end falls in a span)
                page = 7 if variant == "one-day spans" else 25
                for sort, limit in (("recent", page), ("relevance", 100)):
                    got, bodies = await walk(raw, ben, q=q, tz=tz, sort=sort, limit=limit)
                    if set(got) != want or len(got) != len(set(got)):
                        failures[(variant, tz, q, sort)] = (len(got), len(want))
                    if bodies[0]["total"] != len(want):
                        failures[(variant, tz, q, sort, "total")] = (bodies[0]["total"], len(want))
    assert failures == {}


@pytest.mark.parametrize(
    ("q", "position"),
    [
        ("plum before:0001-01-01", 12),
        ("plum after:9999-12-31", 11),
        ("plum during:9999-12-31", 12),
        ("plum during:1969-12-31", 12),
        ("plum after:+1970-01-01", 11),
        ("plum during:2026-02-29", 12),
        ("plum during:２０２６-01-01", 12),  # full-width digits
        ("plum during:٢٠٢٦-٠١-٠١", 12),  # Arabic-Indic digits
    ],
)
async def test_impossible_dates_are_400_with_a_position(
    raw: httpx.AsyncClient, make_user: MakeUser, q: str, position: int
) -> None:
    ann = await make_user("ann")
    for tz in ("UTC", "Pacific/Kiritimati", "America/Adak"):
        response = await search(raw, ann, q=q, tz=tz)
        assert response.status_code == 400, (q, tz, response.text)
        body = response.json()
        assert body["code"] == "INVALID_QUERY" and body["position"] == position, body


@pytest.mark.parametrize(
    "tz",
    [
        "Factory",
        "posixrules",
        "localtime",
        "right/UTC",
        "zone.tab",
        "America",
        "UTC\x00",
        "../x",
        "EST5EDT",
        "Etc/GMT-14",
    ],
)
async def test_odd_time_zones_are_200_or_400(
    raw: httpx.AsyncClient, make_user: MakeUser, tz: str
) -> None:
    ann = await make_user("ann")
    response = await search(raw, ann, q="plum during:1970-01-01", tz=tz)
    assert response.status_code in (200, 400), (tz, response.status_code, response.text)
    if response.status_code == 400:
        assert {"code", "message"} <= set(response.json())
