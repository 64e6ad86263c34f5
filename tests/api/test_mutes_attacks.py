"""Mutes, attacked: hostile `until` values and bodies, ids one may not see (and what
the answers tell of them), the bound raced by concurrent requests, mutes kept after
losing sight of their target, and the counts muted or not."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import pytest

from tests import factories
from tests.api.test_mutes import MUTES, listed, put_mute
from tests.factories import MakeUser
from tests.support import ROOT
from xfchat.domain import mutes
from xfchat.domain.permissions import Permission

NOWHERE = "00000000-0000-4000-8000-000000000000"


def later(**delta: float) -> datetime:
    return datetime.now(UTC) + timedelta(**delta)


async def test_hostile_untils_are_400_with_a_code_never_a_500(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    ann = await make_user("ann")
    srv = await factories.community(client, ann)
    url = f"{MUTES}/channel/{srv.general}"
    invalid = [
        "9999-12-31T23:59:59.999999+00:00",  # far future
        "9999-12-31T23:59:59-23:59",  # past year 9999 in UTC
        "0001-01-01T00:00:00+23:59",  # before year 1 in UTC
        "1970-01-01T00:00:00Z",
        later(days=30, seconds=5).isoformat(),
        # 29 days in the zone's own clock, but 30 days and 14 hours from now
        (later(days=29) + timedelta(hours=38)).astimezone().replace(tzinfo=None).isoformat()
        + "-14:00",
        later(hours=1).replace(tzinfo=None).isoformat(),  # no zone
        later(days=1).date().isoformat(),  # a date: no zone
    ]
    for until in invalid:
        r = await client.put(url, headers=ann.headers, json={"until": until})
        assert r.status_code == 400, (until, r.text)
        assert r.json()["code"] in ("INVALID_MUTE_UNTIL", "VALIDATION_ERROR"), (until, r.text)
    malformed: list[Any] = [
        "NaN",
        "Infinity",
        "-Infinity",
        "1e400",
        "1800000000",
        1.8e9,
        float("1e308"),
        -1,
        [],
        {},
        "",
        "2026-02-30T00:00:00Z",
        "2026-12-01T00:00:00+24:00",
        "+12026-12-01T00:00:00Z",
        "2026-12-01T00:00:00Z" + "0" * 100_000,
        "٢٠٢٦-12-01T00:00:00Z",  # Arabic-Indic digits
    ]
    for until in malformed:
        r = await client.put(url, headers=ann.headers, json={"until": until})
        assert r.status_code == 400, (str(until)[:40], r.text[:300])
        assert r.json()["code"] == "VALIDATION_ERROR", (str(until)[:40], r.text[:300])
    for body in (b"null", b"[]", b'"x"', b"1", b"{", b'{"until": NaN}', b'{"until": Infinity}'):
        r = await client.put(
            url, headers={**ann.headers, "content-type": "application/json"}, content=body
        )
        assert 400 <= r.status_code < 500 and "code" in r.json(), (body, r.text)
    assert await listed(client, ann) == []


async def test_a_zone_far_from_utc_is_one_instant(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    ann = await make_user("ann")
    srv = await factories.community(client, ann)
    for offset in (timedelta(hours=14), timedelta(hours=-12), timedelta(hours=5, minutes=45)):
        when = later(days=29, hours=23).astimezone(timezone(offset))
        r = await put_mute(client, ann, "channel", srv.general, when.isoformat())
        assert r.status_code == 200, (offset, r.text)
        assert datetime.fromisoformat(r.json()["until"]) == when
        (held,) = await listed(client, ann)
        assert datetime.fromisoformat(held["until"]) == when


async def test_a_huge_body_is_refused_before_it_is_read(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    ann = await make_user("ann")
    srv = await factories.community(client, ann)
    body = b'{"until": null, "pad": "' + b"x" * (8 << 20) + b'"}'
    r = await client.put(
        f"{MUTES}/channel/{srv.general}",
        headers={**ann.headers, "content-type": "application/json"},
        content=body,
    )
    assert r.status_code in (400, 413), r.text[:300]
    assert "code" in r.json()


async def test_answers_tell_nothing_of_what_you_may_not_see(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """A hidden voice channel, a hidden category, a hidden text channel, a deleted one,
    another server's, a conversation one is not in and one left: each is the 404 of an
    id that never was, for a PUT and a DELETE, a `channel` or a `server` kind."""
    ann, ben, zed = [await make_user(n) for n in ("ann", "ben", "zed")]
    srv = await factories.community(client, ann, ben)
    deny = int(Permission.VIEW_CHANNEL)
    hidden = {}
    for name, kind in (("hv", "voice"), ("hc", "category"), ("ht", "text")):
        made = await factories.server_channel(client, srv, ann, name, kind=kind)
        ok = await factories.override(client, ann, made["id"], "role", srv.everyone_role, deny=deny)
        assert ok.is_success, ok.text
        hidden[name] = made["id"]
    gone = (await factories.server_channel(client, srv, ann, "gone"))["id"]
    assert (await put_mute(client, ben, "channel", gone)).status_code == 200
    assert (await client.delete(f"/api/channels/{gone}", headers=ann.headers)).is_success
    other = await factories.community(client, zed, name="other")
    group = (await factories.group(client, ann, zed, ben))["id"]
    assert (await put_mute(client, ben, "channel", group)).status_code == 200
    left = await client.delete(f"/api/conversations/{group}/participants/@me", headers=ben.headers)
    assert left.status_code == 204, left.text
    talk = (await factories.direct(client, ann, zed))["id"]
    channel_ids = [*hidden.values(), gone, other.general, group, talk, NOWHERE, srv.id]
    server_ids = [other.id, NOWHERE, srv.general, group]
    for kind, ids, code in (
        ("channel", channel_ids, "CHANNEL_NOT_FOUND"),
        ("server", server_ids, "SERVER_NOT_FOUND"),
    ):
        for target in ids:
            for until in (None, later(hours=1).isoformat()):
                r = await put_mute(client, ben, kind, target, until)
                assert r.status_code == 404 and r.json()["code"] == code, (kind, target, r.text)
            r = await client.delete(f"{MUTES}/{kind}/{target}", headers=ben.headers)
            assert r.status_code == 404 and r.json()["code"] == code, (kind, target, r.text)
    assert await listed(client, ben) == []


async def test_concurrent_puts_never_pass_the_bound(
    client: httpx.AsyncClient, make_user: MakeUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mutes, "MAX_MUTES", 3)
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await factories.community(client, ann, ben)
    other = await factories.community(client, ann, ben, name="other")
    targets: list[tuple[str, str]] = [
        ("channel", srv.general),
        ("channel", other.general),
        ("server", srv.id),
        ("server", other.id),
    ]
    for i in range(4):
        targets.append(
            ("channel", (await factories.server_channel(client, srv, ann, f"c{i}"))["id"])
        )
    targets.append(("channel", (await factories.direct(client, ann, ben))["id"]))
    answers = await asyncio.gather(
        *(put_mute(client, ben, kind, target) for kind, target in targets),
        *(put_mute(client, ben, kind, target) for kind, target in targets),
    )
    codes = sorted(a.json().get("code", "") if a.status_code != 200 else "" for a in answers)
    assert {a.status_code for a in answers} <= {200, 400}, [a.text for a in answers]
    assert set(codes) <= {"", "TOO_MANY_MUTES"}
    held = await listed(client, ben)
    assert len(held) == 3, held
    assert len({(m["kind"], m["id"]) for m in held}) == 3


async def test_a_mute_of_a_channel_hidden_since_stays_yours_and_tells_nothing_new(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await factories.community(client, ann, ben)
    secret = (await factories.server_channel(client, srv, ann, "secret"))["id"]
    assert (await put_mute(client, ben, "channel", secret)).status_code == 200
    deny = int(Permission.VIEW_CHANNEL)
    ok = await factories.override(client, ann, secret, "role", srv.everyone_role, deny=deny)
    assert ok.is_success, ok.text
    renamed = await client.patch(
        f"/api/channels/{secret}", headers=ann.headers, json={"name": "renamed"}
    )
    assert renamed.is_success, renamed.text
    # Listed as set (no name), not renewable, removable.
    assert await listed(client, ben) == [{"kind": "channel", "id": secret, "until": None}]
    state = (await client.get("/api/users/@me/state", headers=ben.headers)).json()
    assert state["mutes"] == [{"kind": "channel", "id": secret, "until": None}]
    assert "renamed" not in str(state)
    again = await put_mute(client, ben, "channel", secret, later(hours=1).isoformat())
    assert again.status_code == 404 and again.json()["code"] == "CHANNEL_NOT_FOUND"
    assert (
        await client.delete(f"{MUTES}/channel/{secret}", headers=ben.headers)
    ).status_code == 204
    told = [t for t, _ in await factories.events_of(conn, "user", ben.id) if t.startswith("mute.")]
    assert told == ["mute.updated", "mute.removed"]
    assert not [
        t for t, _ in await factories.events_of(conn, "user", ann.id) if t.startswith("mute.")
    ]


async def test_muted_or_not_the_counts_are_the_same(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """Server channels: mentions by name, role, @everyone, from someone blocked, a
    deleted one; a muted server and a muted channel count as unmuted ones."""
    ann, ben, cid = [await make_user(n) for n in ("ann", "ben", "cid")]
    srv = await factories.community(client, ann, ben, cid)
    r1 = await factories.role(client, srv, ann, "r1", 0, ben)
    ok = await client.patch(
        srv.url(f"/roles/{r1}"), headers=ann.headers, json={"mentionable": True}
    )
    assert ok.is_success, ok.text
    extra = (await factories.server_channel(client, srv, ann, "extra"))["id"]
    assert (await client.put(f"/api/users/@me/blocks/{cid.id}", headers=ben.headers)).is_success

    async def talk(channel: str) -> None:
        await factories.say(client, ann, channel, "plain")
        await factories.say(client, ann, channel, f"<@{ben.id}> by name")
        await factories.say(client, ann, channel, f"<@&{r1}> by role")
        await factories.say(client, ann, channel, "@everyone all")
        await factories.say(client, cid, channel, f"<@{ben.id}> blocked")
        gone = await factories.say(client, ann, channel, f"<@{ben.id}> deleted")
        deleted = await client.delete(
            f"/api/channels/{channel}/messages/{gone['id']}", headers=ann.headers
        )
        assert deleted.status_code == 204, deleted.text

    await talk(srv.general)
    await talk(extra)

    async def counts() -> dict[str, tuple[int, int]]:
        state = (await client.get("/api/users/@me/state", headers=ben.headers)).json()
        (server,) = state["servers"]
        return {r["channel_id"]: (r["unread"], r["mention_count"]) for r in server["read_states"]}

    before = await counts()
    assert before == {srv.general: (5, 3), extra: (5, 3)}, before
    assert (await put_mute(client, ben, "channel", extra)).status_code == 200
    assert (await put_mute(client, ben, "server", srv.id)).status_code == 200
    assert await counts() == before


async def test_unmuting_a_voice_channel_or_a_category_is_cannot_mute_channel(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """Was documented (README, the route's description) as 204 "also when it was not
    muted"; it is 400 CANNOT_MUTE_CHANNEL, as the PUT: the documents now say so."""
    ann = await make_user("ann")
    srv = await factories.community(client, ann)
    for kind in ("voice", "category"):
        made = (await factories.server_channel(client, srv, ann, f"x{kind}", kind=kind))["id"]
        r = await client.delete(f"{MUTES}/channel/{made}", headers=ann.headers)
        assert r.status_code == 400 and r.json()["code"] == "CANNOT_MUTE_CHANNEL", r.text
    readme = (ROOT / "README.md").read_text()
    (row,) = [
        line for line in readme.splitlines() if line.startswith("| `DELETE /api/users/@me/mutes/")
    ]
    assert "CANNOT_MUTE_CHANNEL" in row, row
    operation = (await client.get("/openapi.json")).json()["paths"][
        "/api/users/@me/mutes/channel/{channel_id}"
    ]["delete"]
    assert "CANNOT_MUTE_CHANNEL" in operation["description"], operation


async def test_odd_but_well_formed_untils_are_never_a_500(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    ann = await make_user("ann")
    srv = await factories.community(client, ann)
    soon = later(days=3)
    for until in (
        soon.strftime("%Y-%m-%dT%H:%M:%S.123456789012Z"),
        soon.strftime("%Y-%m-%dT%H:%M:%S,5+00:00"),
        soon.strftime("%Y-%m-%dT%H:%M:60Z"),
        soon.strftime("%Y-%m-%dt%H:%M:%Sz"),
        soon.strftime("%Y-%m-%d %H:%M:%S+00:00"),
        soon.strftime("%Y-%m-%dT%H:%M:%S+0530"),
        soon.strftime("%Y-%m-%dT%H:%M:%S+05"),
        soon.strftime("%Y-%m-%dT%H:%M:%S+00:00:30"),
        soon.strftime("%Y-%m-%dT%H:%M:%S+00:00\n"),
        soon.strftime("%Y-%m-%dT%H:%M:%S-00:00"),
        soon.strftime("%Y-W01-1T00:00:00Z"),
    ):
        r = await put_mute(client, ann, "channel", srv.general, until)
        assert r.status_code in (200, 400), (until, r.text)
        if r.status_code == 400:
            assert r.json()["code"] in ("VALIDATION_ERROR", "INVALID_MUTE_UNTIL"), (until, r.text)
        else:
            got = datetime.fromisoformat(r.json()["until"])
            assert abs(got - soon) < timedelta(days=1), (until, r.text)


async def test_a_mute_racing_a_removal_from_a_group_comes_after_it(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    from xfchat.domain import conversations

    ann, ben, cid = [await make_user(n) for n in ("ann", "ben", "cid")]
    group = (await factories.group(client, ann, ben, cid))["id"]
    async with pool.acquire() as held:
        removing = held.transaction()
        await removing.start()
        await conversations.remove_participant(held, ann.actor, UUID(group), ben.id)
        put = asyncio.create_task(put_mute(client, ben, "channel", group))
        await factories.lock_waiters(pool)
        await removing.commit()
    answer = await put
    assert answer.status_code == 404 and answer.json()["code"] == "CHANNEL_NOT_FOUND", answer.text
    assert await listed(client, ben) == []


async def test_history_lost_and_revealed_counts_match_the_ready_muted_or_not(
    client: httpx.AsyncClient, make_user: MakeUser, conn: asyncpg.Connection
) -> None:
    """What was said before joining a channel whose history one may not read counts
    for nothing; a channel revealed counts as the `ready` does; muting changes neither."""
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await factories.community(client, ann)
    r1 = await factories.role(client, srv, ann, "r1", 0)
    ok = await client.patch(
        srv.url(f"/roles/{r1}"), headers=ann.headers, json={"mentionable": True}
    )
    assert ok.is_success, ok.text
    no_history = int(Permission.READ_MESSAGE_HISTORY)
    ok = await factories.override(
        client, ann, srv.general, "role", srv.everyone_role, deny=no_history
    )
    assert ok.is_success, ok.text
    secret = (await factories.server_channel(client, srv, ann, "secret"))["id"]
    hidden = await factories.override(
        client, ann, secret, "role", srv.everyone_role, deny=int(Permission.VIEW_CHANNEL)
    )
    assert hidden.is_success, hidden.text
    for channel in (srv.general, secret):
        await factories.say(client, ann, channel, "@everyone before")
        await factories.say(client, ann, channel, f"<@&{r1}> before")
    assert (await client.post(f"/api/invites/{srv.invite}", headers=ben.headers)).status_code == 201
    assert (await put_mute(client, ben, "server", srv.id)).status_code == 200
    assert (await put_mute(client, ben, "channel", srv.general)).status_code == 200
    await factories.say(client, ann, srv.general, "@everyone after")
    await factories.say(client, ann, srv.general, "plain after")
    await factories.say(client, ann, secret, f"<@&{r1}> after")
    given = await client.put(srv.url(f"/members/{ben.id}/roles/{r1}"), headers=ann.headers)
    assert given.status_code == 204, given.text
    shown = await factories.override(
        client, ann, secret, "member", ben.id, allow=int(Permission.VIEW_CHANNEL)
    )
    assert shown.is_success, shown.text

    revealed = [
        d for t, d in await factories.events_of(conn, "user", ben.id) if t == "channel.revealed"
    ]
    state = (await client.get("/api/users/@me/state", headers=ben.headers)).json()
    (server,) = state["servers"]
    counts = {r["channel_id"]: (r["unread"], r["mention_count"]) for r in server["read_states"]}
    assert counts == {srv.general: (2, 1), secret: (3, 3)}, counts
    assert revealed, "ben was shown #secret"
    told = {
        r["channel_id"]: (r["unread"], r["mention_count"])
        for d in revealed
        for r in d.get("read_states", [])
    }
    assert told == {secret: (3, 3)}, revealed
