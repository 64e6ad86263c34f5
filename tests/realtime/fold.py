"""A client that keeps its state purely by folding the event stream, as the README's
event table and **Real time** promise: it loads `ready` (plus, for each server, its
member list and each text channel's history over REST), then applies every stored
event it receives, in order. `snapshot()` puts its state in the shape REST answers it,
so a test compares it with what `rest_snapshot()` reads afterwards."""

from __future__ import annotations

import copy
from typing import Any

import httpx

Json = dict[str, Any]

SERVER_FIELDS = (
    "id",
    "name",
    "description",
    "icon_url",
    "owner_id",
    "member_count",
    "created_at",
    "search_language",
    "default_notifications",
)
CAP = 100  # unread and mention counts stop here


class Fold:
    def __init__(self, ready: Json) -> None:
        self.me: Json = dict(ready["user"])
        self.servers: dict[str, Json] = {}
        self.members: dict[str, dict[str, Json]] = {}  # server -> user id -> member
        self.messages: dict[str, dict[str, Json]] = {}  # channel -> message id -> message
        self.applied: list[str] = []
        # Channels revealed without their read states (a reveal past the budget): the
        # README says to ask again (ask_again).
        self.unread_unknown: set[str] = set()
        for s in ready["servers"]:
            self._add_server(s)

    # -- loading over REST what ready does not carry

    async def load(self, api: httpx.AsyncClient, headers: dict[str, str]) -> None:
        """Each server's members and each visible text channel's history."""
        for server_id in self.servers:
            await self.load_server(api, headers, server_id)

    async def load_server(
        self, api: httpx.AsyncClient, headers: dict[str, str], server_id: str
    ) -> None:
        got = await api.get(f"/api/servers/{server_id}/members?limit=1000", headers=headers)
        assert got.status_code == 200, got.text
        self.members[server_id] = {m["user"]["id"]: m for m in got.json()}
        for c in self.servers[server_id]["channels"].values():
            if c["kind"] == "text":
                await self.load_history(api, headers, c["id"])

    async def ask_again(self, api: httpx.AsyncClient, headers: dict[str, str]) -> None:
        """The read states of the channels revealed without them, from the state route."""
        got = await api.get("/api/users/@me/state", headers=headers)
        assert got.status_code == 200, got.text
        for server in got.json()["servers"]:
            for r in server["read_states"]:
                if r["channel_id"] in self.unread_unknown:
                    self.servers[server["id"]]["read_states"][r["channel_id"]] = dict(r)
        self.unread_unknown.clear()

    async def load_history(self, api: httpx.AsyncClient, headers: dict[str, str], cid: str) -> None:
        got = await api.get(f"/api/channels/{cid}/messages?limit=100", headers=headers)
        assert got.status_code == 200, got.text
        self.messages[cid] = {m["id"]: m for m in got.json()}

    # -- servers

    def _add_server(self, s: Json) -> None:
        self.servers[s["id"]] = {
            **{k: s[k] for k in SERVER_FIELDS},
            "channels": {c["id"]: c for c in s["channels"]},
            "roles": {r["id"]: r for r in s["roles"]},
            "member": s["member"],
            "read_states": {r["channel_id"]: dict(r) for r in s["read_states"]},
        }

    def _server_of_channel(self, channel_id: str) -> Json | None:
        for s in self.servers.values():
            if channel_id in s["channels"]:
                return s
        return None

    def _my_roles(self, server: Json) -> set[str]:
        return set(server["member"]["role_ids"])

    # -- applying one event

    def apply(self, event_type: str, d: Json) -> None:
        self.applied.append(event_type)
        handler = getattr(self, "on_" + event_type.replace(".", "_"), None)
        if handler is not None:
            handler(d)

    def on_ready(self, d: Json) -> None:
        if d.get("resumed"):  # what the log does not keep comes current in it
            self.me["status"] = d["status"]
            self.me["status_text"] = d["status_text"]

    def on_server_joined(self, d: Json) -> None:
        self._add_server(d)

    def on_server_left(self, d: Json) -> None:
        s = self.servers.pop(d["id"], None)
        self.members.pop(d["id"], None)
        for cid in s["channels"] if s else ():
            self.messages.pop(cid, None)

    def on_server_updated(self, d: Json) -> None:
        self.servers[d["id"]].update({k: d[k] for k in SERVER_FIELDS})

    def on_channel_revealed(self, d: Json) -> None:
        s = self.servers[d["server_id"]]
        for c in d["channels"]:
            s["channels"][c["id"]] = c
            if c["kind"] == "text":
                # What the payload carries of its read state, if anything; a new
                # channel is read up to nothing.
                s["read_states"].setdefault(
                    c["id"],
                    {"channel_id": c["id"], "last_read_seq": 0, "unread": 0, "mention_count": 0},
                )
        for r in d.get("read_states", []):
            s["read_states"][r["channel_id"]] = dict(r)
        if not d["channels"]:
            self.unread_unknown.update(d["channel_ids"])

    def on_channel_hidden(self, d: Json) -> None:
        s = self.servers[d["server_id"]]
        for cid in d["channel_ids"]:
            s["channels"].pop(cid, None)
            s["read_states"].pop(cid, None)
            self.messages.pop(cid, None)

    def on_channel_updated(self, d: Json) -> None:
        s = self.servers[d["server_id"]]
        s["channels"][d["id"]] = d

    def on_role_created(self, d: Json) -> None:
        self.servers[d["server_id"]]["roles"][d["id"]] = d

    on_role_updated = on_role_created

    def on_role_deleted(self, d: Json) -> None:
        s = self.servers[d["server_id"]]
        s["roles"].pop(d["id"], None)
        s["member"]["role_ids"] = [r for r in s["member"]["role_ids"] if r != d["id"]]
        for m in self.members.get(d["server_id"], {}).values():
            m["role_ids"] = [r for r in m["role_ids"] if r != d["id"]]

    def on_member_joined(self, d: Json) -> None:
        self.servers[d["server_id"]]["member_count"] += 1
        self.on_member_updated(d)

    def on_member_updated(self, d: Json) -> None:
        if d["server_id"] in self.members:
            self.members[d["server_id"]][d["user"]["id"]] = d
        if d["user"]["id"] == self.me["id"]:
            self.servers[d["server_id"]]["member"] = d

    def on_member_removed(self, d: Json) -> None:
        self.servers[d["server_id"]]["member_count"] -= 1
        self.members.get(d["server_id"], {}).pop(d["user_id"], None)

    def on_user_updated(self, d: Json) -> None:
        if d["id"] == self.me["id"]:
            self.me.update(d)
        for s in self.servers.values():
            if s["member"]["user"]["id"] == d["id"]:
                s["member"]["user"] = dict(d)
        for ms in self.members.values():
            if d["id"] in ms:
                ms[d["id"]]["user"] = dict(d)
        for msgs in self.messages.values():
            for m in msgs.values():
                if m["author"]["id"] == d["id"]:
                    m["author"] = {k: d[k] for k in m["author"]}
                preview = m["reply_to"]
                if preview is not None and preview["author"] and preview["author"]["id"] == d["id"]:
                    preview["author"] = {k: d[k] for k in preview["author"]}

    def on_presence_updated(self, d: Json) -> None:
        if d["user_id"] == self.me["id"]:
            self.me["status"] = d["status"]
            self.me["status_text"] = d["status_text"]

    # -- messages and read states

    def _mentions_me(self, server: Json, m: Json) -> bool:
        return (
            self.me["id"] in m["mentions"]
            or m["mention_everyone"]
            or bool(set(m["mention_roles"]) & self._my_roles(server))
        )

    def on_message_created(self, d: Json) -> None:
        if d["channel_id"] in self.messages:
            self.messages[d["channel_id"]][d["id"]] = copy.deepcopy(d)
        s = self._server_of_channel(d["channel_id"])
        if s is None:
            return
        rs = s["read_states"].get(d["channel_id"])
        if rs is None:
            return
        if d["author"]["id"] == self.me["id"]:
            rs.update(last_read_seq=d["seq"], unread=0, mention_count=0)
        elif d["seq"] > rs["last_read_seq"]:
            rs["unread"] = min(CAP, rs["unread"] + 1)
            if self._mentions_me(s, d):
                rs["mention_count"] = min(CAP, rs["mention_count"] + 1)

    def on_message_updated(self, d: Json) -> None:
        msgs = self.messages.get(d["channel_id"])
        if msgs is not None and d["id"] in msgs:
            old = msgs[d["id"]]
            mine = {r["emoji"]: r["me"] for r in old["reactions"]}
            new = {k: copy.deepcopy(v) for k, v in d.items() if k != "previous_mentions"}
            new["reactions"] = [{**r, "me": mine.get(r["emoji"], False)} for r in d["reactions"]]
            msgs[d["id"]] = new
            for m in msgs.values():
                if m["reply_to_id"] == d["id"] and m["reply_to"] is not None:
                    m["reply_to"]["content"] = d["content"][:100]
        s = self._server_of_channel(d["channel_id"])
        rs = s["read_states"].get(d["channel_id"]) if s else None
        if s is not None and rs is not None:
            if d["author"]["id"] != self.me["id"] and d["seq"] > rs["last_read_seq"]:
                before = self._mentions_me(s, {**d, **_previous(d)})
                after = self._mentions_me(s, d)
                rs["mention_count"] += int(after) - int(before)

    def on_message_deleted(self, d: Json) -> None:
        msgs = self.messages.get(d["channel_id"])
        if msgs is not None and d["id"] in msgs:
            m = msgs[d["id"]]
            m.update(
                deleted=True,
                deleted_at=d.get("deleted_at"),
                content="",
                mentions=[],
                mention_roles=[],
                mention_everyone=False,
                reactions=[],
                attachments=[],
                pinned=False,
            )
            for other in msgs.values():
                if other["reply_to_id"] == d["id"] and other["reply_to"] is not None:
                    other["reply_to"].update(deleted=True, content="")
        s = self._server_of_channel(d["channel_id"])
        rs = s["read_states"].get(d["channel_id"]) if s else None
        if s is not None and rs is not None:
            if d["author_id"] != self.me["id"] and d["seq"] > rs["last_read_seq"]:
                rs["unread"] = max(0, rs["unread"] - 1)
                if self._mentions_me(s, d):
                    rs["mention_count"] = max(0, rs["mention_count"] - 1)

    def _reaction(self, d: Json, delta: int) -> None:
        msgs = self.messages.get(d["channel_id"])
        if msgs is None or d["message_id"] not in msgs or not d["emoji"]:
            return
        m = msgs[d["message_id"]]
        found = next((r for r in m["reactions"] if r["emoji"] == d["emoji"]), None)
        if found is None:
            found = {"emoji": d["emoji"], "count": 0, "me": False}
            m["reactions"].append(found)
        found["count"] += delta
        if d["user_id"] == self.me["id"]:
            found["me"] = delta > 0
        m["reactions"] = [r for r in m["reactions"] if r["count"] > 0]

    def on_reaction_added(self, d: Json) -> None:
        self._reaction(d, 1)

    def on_reaction_removed(self, d: Json) -> None:
        self._reaction(d, -1)

    def on_message_pinned(self, d: Json) -> None:
        msgs = self.messages.get(d["channel_id"])
        if msgs is not None and d["message_id"] in msgs:
            msgs[d["message_id"]]["pinned"] = True

    def on_message_unpinned(self, d: Json) -> None:
        msgs = self.messages.get(d["channel_id"])
        if msgs is not None and d["message_id"] in msgs:
            msgs[d["message_id"]]["pinned"] = False

    def on_read_state_updated(self, d: Json) -> None:
        if d["user_id"] != self.me["id"]:
            return
        s = self._server_of_channel(d["channel_id"])
        rs = s["read_states"].get(d["channel_id"]) if s else None
        if s is None or rs is None:
            return
        rs["last_read_seq"] = d["last_read_seq"]
        held = self.messages.get(d["channel_id"], {}).values()
        after = [
            m
            for m in held
            if m["seq"] > d["last_read_seq"]
            and not m["deleted"]
            and m["author"]["id"] != self.me["id"]  # (a pin notice counts, as the server's)
        ]
        rs["unread"] = min(CAP, len(after))
        rs["mention_count"] = min(CAP, sum(self._mentions_me(s, m) for m in after))

    # -- the state as REST shows it

    def snapshot(self) -> Json:
        return {
            "me": _user(self.me),
            "servers": {
                sid: {
                    **{k: s[k] for k in SERVER_FIELDS},
                    "channels": s["channels"],
                    "roles": s["roles"],
                    "member": s["member"],
                    "read_states": s["read_states"],
                }
                for sid, s in self.servers.items()
            },
            "members": {sid: dict(ms) for sid, ms in self.members.items() if sid in self.servers},
            "messages": {cid: dict(ms) for cid, ms in self.messages.items()},
        }


def _previous(d: Json) -> Json:
    p = d.get("previous_mentions") or {}
    return {
        "mentions": p.get("mentions", []),
        "mention_roles": p.get("mention_roles", []),
        "mention_everyone": p.get("mention_everyone", False),
    }


def _user(u: Json) -> Json:
    return {k: u[k] for k in sorted(u) if k not in ("resume_token",)}


async def rest_snapshot(
    api: httpx.AsyncClient, headers: dict[str, str], channels: list[str] | None = None
) -> Json:
    """What REST says now, in the fold's shape: the state route's servers (with their
    read states), each server's members, and the history of `channels` (those the fold
    holds, by default every text channel it sees)."""
    state = (await api.get("/api/users/@me/state", headers=headers)).json()
    me = (await api.get("/api/users/@me", headers=headers)).json()
    out: Json = {"me": _user({**state["user"], **me}), "servers": {}, "members": {}, "messages": {}}
    for s in state["servers"]:
        out["servers"][s["id"]] = {
            **{k: s[k] for k in SERVER_FIELDS},
            "channels": {c["id"]: c for c in s["channels"]},
            "roles": {r["id"]: r for r in s["roles"]},
            "member": s["member"],
            "read_states": {r["channel_id"]: r for r in s["read_states"]},
        }
        got = await api.get(f"/api/servers/{s['id']}/members?limit=1000", headers=headers)
        out["members"][s["id"]] = {m["user"]["id"]: m for m in got.json()}
    for cid in channels or []:
        got = await api.get(f"/api/channels/{cid}/messages?limit=100", headers=headers)
        if got.status_code == 200:
            out["messages"][cid] = {m["id"]: m for m in got.json()}
    return out


def differences(a: Any, b: Any, path: str = "") -> list[str]:
    """Where two JSON values differ, as readable paths (a: the fold, b: REST)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            if k not in a:
                out.append(f"{path}/{k}: missing in the fold (REST: {_short(b[k])})")
            elif k not in b:
                out.append(f"{path}/{k}: only in the fold ({_short(a[k])})")
            else:
                out += differences(a[k], b[k], f"{path}/{k}")
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [
            x
            for i, (p, q) in enumerate(zip(a, b, strict=True))
            for x in differences(p, q, f"{path}[{i}]")
        ]
    return [] if a == b else [f"{path}: fold {_short(a)} != REST {_short(b)}"]


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) < 300 else text[:300] + "..."
