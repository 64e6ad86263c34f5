"""The audit log's `diff`: each update entry records, of each field it changed, the old
and the new value (`{key, old_value, new_value}`), read under the change's own lock;
entries written before keep their shape (`diff: null`), and a reader is shown old values
only where they are shown the new ones."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import asyncpg
import httpx

from tests.factories import MakeUser, community, role, server_channel
from xfchat.db.queries import audit as audit_q
from xfchat.domain.permissions import Permission as P


def change(key: str, old: Any, new: Any) -> dict[str, Any]:
    return {"key": key, "old_value": old, "new_value": new}


async def entries(client: httpx.AsyncClient, url: str, headers: dict[str, str], action: str) -> Any:
    got = await client.get(f"{url}/audit-log?action={action}", headers=headers)
    assert got.status_code == 200, got.text
    return got.json()


async def test_a_server_update_records_the_old_and_new_value_of_each_changed_field(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    ann = await make_user("ann")
    srv = await community(client, ann)
    first = await client.patch(
        srv.url(), headers=ann.headers, json={"name": "Squad", "description": "gg"}
    )
    assert first.status_code == 200
    # the description sent as it is: only the name changed
    second = await client.patch(
        srv.url(), headers=ann.headers, json={"name": "Crew", "description": "gg"}
    )
    assert second.status_code == 200
    log = await entries(client, srv.url(), ann.headers, "server.updated")
    assert [e["diff"] for e in log] == [
        [change("name", "Squad", "Crew")],
        [change("name", "srv", "Squad"), change("description", None, "gg")],
    ]
    # (the new values are still in `changes`, as before)
    assert log[0]["changes"] == {"name": "Crew", "description": "gg"}


async def test_a_channel_update_records_what_it_replaced(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    ann = await make_user("ann")
    srv = await community(client, ann)
    cat = await server_channel(client, srv, ann, "Text", kind="category")
    for body in (
        {"topic": "hi", "rate_limit_per_user": 5},
        {"topic": None, "parent_id": cat["id"]},
    ):
        done = await client.patch(f"/api/channels/{srv.general}", headers=ann.headers, json=body)
        assert done.status_code == 200, done.text
    log = await entries(client, srv.url(), ann.headers, "channel.updated")
    assert [e["diff"] for e in log] == [
        [change("topic", "hi", None), change("parent_id", None, cat["id"])],
        [change("topic", None, "hi"), change("rate_limit_per_user", 0, 5)],
    ]


async def test_a_role_update_and_reorder_record_the_old_values(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    ann = await make_user("ann")
    srv = await community(client, ann)
    helper = await role(client, srv, ann, "helper", int(P.KICK_MEMBERS))
    done = await client.patch(
        srv.url(f"/roles/{helper}"),
        headers=ann.headers,
        json={"name": "helpers", "permissions": str(int(P.BAN_MEMBERS)), "hoist": False},
    )
    assert done.status_code == 200, done.text
    moved = await client.patch(
        srv.url("/roles"), headers=ann.headers, json=[{"id": helper, "position": 5}]
    )
    assert moved.status_code == 200
    (updated,) = await entries(client, srv.url(), ann.headers, "role.updated")
    # (hoist was sent as it was: not a change)
    assert updated["diff"] == [
        change("name", "helper", "helpers"),
        change("permissions", str(int(P.KICK_MEMBERS)), str(int(P.BAN_MEMBERS))),
    ]
    (reordered,) = await entries(client, srv.url(), ann.headers, "role.reordered")
    assert reordered["diff"] == [change(helper, 1, 5)]


async def test_member_changes_record_the_old_nickname_timeout_and_roles(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await community(client, ann, ben)
    url = srv.url(f"/members/{ben.id}")
    for nickname in ("Bee", "Buzz"):
        done = await client.patch(url, headers=ann.headers, json={"nickname": nickname})
        assert done.status_code == 200
    until = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    for value in (until.isoformat(), None):
        done = await client.patch(url, headers=ann.headers, json={"timed_out_until": value})
        assert done.status_code == 200, done.text
    helper = await role(client, srv, ann, "helper", 0, ben)
    taken = await client.delete(srv.url(f"/members/{ben.id}/roles/{helper}"), headers=ann.headers)
    assert taken.status_code == 204

    named = await entries(client, srv.url(), ann.headers, "member.updated")
    assert [e["diff"] for e in named] == [
        [change("nickname", "Bee", "Buzz")],
        [change("nickname", None, "Bee")],
    ]
    timed = await entries(client, srv.url(), ann.headers, "member.timed_out")
    assert [e["diff"] for e in timed] == [
        [change("timed_out_until", until.isoformat(), None)],
        [change("timed_out_until", None, until.isoformat())],
    ]
    (added,) = await entries(client, srv.url(), ann.headers, "member.role_added")
    (removed,) = await entries(client, srv.url(), ann.headers, "member.role_removed")
    assert added["diff"] == [change("role_ids", [], [helper])]
    assert removed["diff"] == [change("role_ids", [helper], [])]


async def test_an_override_update_records_the_allow_and_deny_it_replaced(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    ann = await make_user("ann")
    srv = await community(client, ann)
    helper = await role(client, srv, ann, "helper", 0)
    url = f"/api/channels/{srv.general}/overrides/role/{helper}"
    send, manage = str(int(P.SEND_MESSAGES)), str(int(P.MANAGE_MESSAGES))
    for body in ({"allow": send, "deny": "0"}, {"allow": manage, "deny": send}):
        done = await client.put(url, headers=ann.headers, json=body)
        assert done.status_code == 200, done.text
    # (an override made allowing and denying nothing: was an entry with an empty diff)
    member_url = f"/api/channels/{srv.general}/overrides/member/{ann.id}"
    made = await client.put(member_url, headers=ann.headers, json={"allow": "0", "deny": "0"})
    assert made.status_code == 200, made.text
    log = await entries(client, srv.url(), ann.headers, "override.updated")
    assert [e["diff"] for e in log] == [
        [change("allow", None, "0"), change("deny", None, "0")],
        [change("allow", send, manage), change("deny", "0", send)],
        [change("allow", None, send), change("deny", None, "0")],
    ]


async def test_a_voice_mute_records_the_flag_it_replaced(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await community(client, ann, ben)
    done = await client.patch(
        srv.url(f"/members/{ben.id}/voice"), headers=ann.headers, json={"mute": True}
    )
    assert done.status_code == 200, done.text
    (muted,) = await entries(client, srv.url(), ann.headers, "member.voice_updated")
    assert muted["diff"] == [change("mute", False, True)]


async def test_a_transfer_records_the_old_owner(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await community(client, ann, ben)
    done = await client.post(
        srv.url("/transfer"), headers=ann.headers, json={"owner_id": str(ben.id)}
    )
    assert done.status_code == 200, done.text
    (moved,) = await entries(client, srv.url(), ben.headers, "server.transferred")
    assert moved["diff"] == [change("owner_id", str(ann.id), str(ben.id))]


async def test_old_positions_of_channels_a_reader_cannot_see_are_left_out(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    ann, mod = await make_user("ann"), await make_user("mod")
    srv = await community(client, ann, mod)
    await role(client, srv, ann, "auditor", int(P.VIEW_AUDIT_LOG), mod)
    secret = await server_channel(client, srv, ann, "secret")
    hidden = await client.put(
        f"/api/channels/{secret['id']}/overrides/role/{srv.everyone_role}",
        headers=ann.headers,
        json={"allow": "0", "deny": str(int(P.VIEW_CHANNEL))},
    )
    assert hidden.status_code == 200
    order = await client.patch(
        srv.url("/channels"),
        headers=ann.headers,
        json=[{"id": srv.general, "position": 7}, {"id": secret["id"], "position": 8}],
    )
    assert order.status_code == 200, order.text
    (mine,) = await entries(client, srv.url(), ann.headers, "channel.reordered")
    assert {d["key"] for d in mine["diff"]} == {srv.general, secret["id"]}
    (theirs,) = await entries(client, srv.url(), mod.headers, "channel.reordered")
    assert theirs["changes"] == {srv.general: 7}
    assert [d["key"] for d in theirs["diff"]] == [srv.general]
    assert theirs["diff"][0]["new_value"] == 7


async def test_concurrent_changes_each_record_the_value_they_replaced(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """The old value is read under the server's lock: of changes racing one another,
    each entry's old value is the one the previous change wrote (a chain), never a value
    read before another change committed."""
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await community(client, ann, ben)
    names = [f"n{i}" for i in range(6)]
    done = await asyncio.gather(
        *(
            client.patch(srv.url(f"/members/{ben.id}"), headers=ann.headers, json={"nickname": n})
            for n in names
        )
    )
    assert all(d.status_code == 200 for d in done)
    log = await entries(client, srv.url(), ann.headers, "member.updated")
    chain = [(e["diff"][0]["old_value"], e["diff"][0]["new_value"]) for e in reversed(log)]
    assert chain[0][0] is None
    assert all(a[1] == b[0] for a, b in pairwise(chain))
    assert sorted(new for _, new in chain) == names


async def test_an_entry_written_before_old_values_were_kept_is_served_as_it_was(
    client: httpx.AsyncClient, make_user: MakeUser, pool: asyncpg.Pool
) -> None:
    ann = await make_user("ann")
    srv = await community(client, ann)
    async with pool.acquire() as conn:  # (as the code before migration 0060 wrote one)
        await audit_q.insert_audit_entry(
            conn,
            server_id=uuid.UUID(srv.id),
            actor_id=ann.id,
            action="server.updated",
            target_type=None,
            target_id=None,
            changes={"name": "Old"},
            reason=None,
        )
    (old,) = await entries(client, srv.url(), ann.headers, "server.updated")
    assert old["changes"] == {"name": "Old"} and old["diff"] is None


async def test_a_hidden_category_a_channel_left_or_entered_is_not_named_to_the_reader(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """A channel the reader sees, moved into a category hidden from them and out again:
    neither entry names the category (its id tells of a channel they cannot see), in
    `changes` or as an old value in `diff`; a move between categories they see is shown."""
    ann, mod = await make_user("ann"), await make_user("mod")
    srv = await community(client, ann, mod)
    await role(client, srv, ann, "auditor", int(P.VIEW_AUDIT_LOG), mod)
    secret = await server_channel(client, srv, ann, "secret", kind="category")
    shown = await server_channel(client, srv, ann, "shown", kind="category")
    hidden = await client.put(
        f"/api/channels/{secret['id']}/overrides/role/{srv.everyone_role}",
        headers=ann.headers,
        json={"allow": "0", "deny": str(int(P.VIEW_CHANNEL))},
    )
    assert hidden.status_code == 200
    for parent in (secret["id"], shown["id"], None):
        done = await client.patch(
            f"/api/channels/{srv.general}", headers=ann.headers, json={"parent_id": parent}
        )
        assert done.status_code == 200, done.text
    mine = await entries(client, srv.url(), ann.headers, "channel.updated")
    assert [e["diff"] for e in mine] == [
        [change("parent_id", shown["id"], None)],
        [change("parent_id", secret["id"], shown["id"])],
        [change("parent_id", None, secret["id"])],
    ]
    theirs = await entries(client, srv.url(), mod.headers, "channel.updated")
    assert secret["id"] not in str(theirs)
    # nor as the category a channel was made in
    made = await server_channel(client, srv, ann, "inside", parent_id=secret["id"])
    shown_to_mod = await client.put(
        f"/api/channels/{made['id']}/overrides/role/{srv.everyone_role}",
        headers=ann.headers,
        json={"allow": str(int(P.VIEW_CHANNEL)), "deny": "0"},
    )
    assert shown_to_mod.status_code == 200, shown_to_mod.text
    (created,) = [
        e
        for e in await entries(client, srv.url(), mod.headers, "channel.created")
        if e["target_id"] == made["id"]
    ]
    assert "parent_id" not in created["changes"] and created["changes"]["name"] == "inside"
    assert [(e["changes"], e["diff"]) for e in theirs] == [
        ({"parent_id": None}, [change("parent_id", shown["id"], None)]),
        ({"parent_id": shown["id"]}, []),
        ({}, []),
    ]


async def test_a_server_update_that_stores_what_is_there_writes_no_entry(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """A name sent with spaces around the one there, or an empty description over none,
    stores what is there: no entry (it was one with an empty `diff`: a change of
    nothing), as a value sent exactly as it is."""
    ann = await make_user("ann")
    srv = await community(client, ann)
    for body in ({"name": " srv "}, {"description": ""}, {"name": "srv", "description": None}):
        done = await client.patch(srv.url(), headers=ann.headers, json=body)
        assert done.status_code == 200, done.text
        assert done.json()["name"] == "srv" and done.json()["description"] is None
    assert await entries(client, srv.url(), ann.headers, "server.updated") == []
    renamed = await client.patch(srv.url(), headers=ann.headers, json={"name": " Crew "})
    assert renamed.status_code == 200
    (entry,) = await entries(client, srv.url(), ann.headers, "server.updated")
    assert entry["diff"] == [change("name", "srv", "Crew")]


async def test_a_nickname_stored_as_it_is_writes_no_entry(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """A nickname sent with spaces around the one there stores it as it is: no
    member.updated entry (it was one of nothing, its diff empty)."""
    ann, ben = await make_user("ann"), await make_user("ben")
    srv = await community(client, ann, ben)
    url = srv.url(f"/members/{ben.id}")
    for name in ("Bee", " Bee ", "Bee "):
        done = await client.patch(url, headers=ann.headers, json={"nickname": name})
        assert done.status_code == 200 and done.json()["nickname"] == "Bee"
    (named,) = await entries(client, srv.url(), ann.headers, "member.updated")
    assert named["diff"] == [change("nickname", None, "Bee")]


async def test_a_reorder_that_moves_nothing_writes_no_entry(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """Channels or roles sent at the positions they have (or none sent): no entry (it
    was one whose diff was empty), the listing answered as it is."""
    ann = await make_user("ann")
    srv = await community(client, ann)
    helper = await role(client, srv, ann, "helper", 0)
    channels = (await client.get(srv.url("/channels"), headers=ann.headers)).json()
    roles = (await client.get(srv.url("/roles"), headers=ann.headers)).json()
    for kind, rows in (("channels", channels), ("roles", roles)):
        for body in (
            [],
            # (every channel; every role but @everyone, which is not moved)
            [
                {"id": r["id"], "position": r["position"]}
                for r in rows
                if r["id"] != srv.everyone_role
            ],
        ):
            done = await client.patch(srv.url(f"/{kind}"), headers=ann.headers, json=body)
            assert done.status_code == 200, done.text
            assert done.json() == rows
    assert await entries(client, srv.url(), ann.headers, "channel.reordered") == []
    assert await entries(client, srv.url(), ann.headers, "role.reordered") == []
    moved = await client.patch(
        srv.url("/roles"), headers=ann.headers, json=[{"id": helper, "position": 3}]
    )
    assert moved.status_code == 200
    (entry,) = await entries(client, srv.url(), ann.headers, "role.reordered")
    assert entry["diff"] == [change(helper, 1, 3)]
