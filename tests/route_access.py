"""What the authorization matrix (tests/api/test_authorization_matrix.py) needs to know
of each route: who may call it without a token or on anyone's ids, the body and query
that make a call valid (templates filled from tests/world.py's places), and the routes
of `app.routes` as (method, path) pairs. `declared_problems()` names every route the
matrix could not call as it is: a new route fails the matrix until it is declared here."""

from __future__ import annotations

import functools
import json
import os
import re
import uuid
from dataclasses import dataclass
from typing import Any

from fastapi.routing import APIRoute, APIWebSocketRoute, iter_route_contexts
from starlette.routing import Route

from tests.openapi_check import document
from tests.world import PNG
from xfchat.app import create_app
from xfchat.settings import Settings

# No token needed, by design.
PUBLIC = {
    ("POST", "/api/auth/register"),
    ("POST", "/api/auth/login"),
    ("POST", "/api/auth/login/two-factor"),  # (a signed ticket from the login, not a token)
    ("POST", "/api/auth/refresh"),
    ("GET", "/health"),
    ("GET", "/ready"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("HEAD", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/docs/assets/{name}"),
    ("GET", "/api/media/{media_id}"),  # an <img> sends no token; media ids are random
    ("HEAD", "/api/media/{media_id}"),
    ("GET", "/"),  # the browser client's page and files (branch `client`)
    ("GET", "/web/{path:path}"),
    ("GET", "/api/gateway"),  # without the WebSocket handshake: 426, telling nothing else
    # A webhook's URL: its token is its credential (a wrong one is 404, as an unknown id)
    ("POST", "/api/webhooks/{webhook_id}/{token}"),
}
# Public, but they check a credential of their own (not a user's token): a caller
# without it is refused with 401, as a user's token is.
OWN_CREDENTIAL = {
    ("GET", "/metrics"): "XFCHAT_METRICS_TOKEN (the test servers set one)",
    ("POST", "/api/auth/login/two-factor"): "the signed ticket of a login's first step",
}
# A token, but its ids are no one's secret: any signed-in user may use them.
OPEN = {
    ("GET", "/api/users/{user_id}"): "anyone's public profile",
    ("GET", "/api/invites/{code}"): "an invite code is the right to see where it leads",
    ("POST", "/api/invites/{code}"): "and to join (a kicked member may come back)",
    ("PUT", "/api/users/@me/blocks/{user_id}"): "anyone may block anyone",
    ("DELETE", "/api/users/@me/blocks/{user_id}"): "and unblock them",
    ("DELETE", "/api/users/@me/friends/{user_id}"): "unfriending a non-friend changes nothing",
}
# WebSocket routes: the token comes in the first frame (IDENTIFY), tested below.
IN_BAND = {"/api/gateway"}
# Ends the caller's own session: called after everything else.
LAST = {("POST", "/api/auth/logout")}

# Bodies and required queries, as templates: "{channel_id}" is the place's value (or an
# unknown one), "{word}" a word of the owner's messages, "{owner}" and "{owner_id}" the
# owner's username and id (public).
BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/api/channels/{channel_id}/messages"): {"content": "hello"},
    ("PUT", "/api/channels/{channel_id}/messages/{message_id}"): {"content": "hello"},
    ("PATCH", "/api/channels/{channel_id}/messages/{message_id}"): {"content": "edited"},
    ("POST", "/api/channels/{channel_id}/messages/bulk-delete"): {"messages": ["{message_id}"]},
    ("PATCH", "/api/users/@me"): {"display_name": "me"},
    ("POST", "/api/users/@me/password"): {
        "current_password": "not the password",
        "new_password": "a brand new pass phrase",
    },
    ("PUT", "/api/users/@me/presence"): {"status": "online"},
    ("PUT", "/api/users/@me/privacy"): {"direct_messages": "everyone"},
    ("PUT", "/api/users/@me/mutes/channel/{channel_id}"): {"until": None},
    ("PUT", "/api/users/@me/mutes/server/{server_id}"): {"until": None},
    ("PUT", "/api/users/@me/notification-settings/channel/{channel_id}"): {"level": "all"},
    ("PUT", "/api/users/@me/notification-settings/server/{server_id}"): {"level": "all"},
    ("POST", "/api/auth/login/two-factor"): {"ticket": "not a ticket", "code": "000000"},
    ("POST", "/api/users/@me/two-factor/setup"): {"password": "not the password"},
    ("POST", "/api/users/@me/two-factor/enable"): {"code": "000000"},
    ("POST", "/api/users/@me/two-factor/disable"): {"password": "not it", "code": "000000"},
    ("POST", "/api/users/@me/two-factor/recovery-codes"): {
        "password": "not the password",
        "code": "000000",
    },
    ("POST", "/api/users/@me/delete"): {"password": "not the password"},
    ("PUT", "/api/users/@me/avatar"): PNG,
    ("PUT", "/api/servers/{server_id}/icon"): PNG,
    ("POST", "/api/users/@me/friend-requests"): {"username": "{owner}"},
    ("POST", "/api/conversations"): {"kind": "direct", "user_id": "{owner_id}"},
    ("PATCH", "/api/conversations/{conversation_id}"): {"name": "renamed"},
    ("POST", "/api/servers"): {"name": "mine"},
    ("PATCH", "/api/servers/{server_id}"): {"name": "renamed"},
    ("POST", "/api/servers/{server_id}/transfer"): {"owner_id": "{user_id}"},
    ("POST", "/api/servers/{server_id}/invites"): {},
    ("PATCH", "/api/servers/{server_id}/members/{user_id}"): {"nickname": "nick"},
    ("PUT", "/api/servers/{server_id}/bans/{user_id}"): {},
    ("POST", "/api/servers/{server_id}/roles"): {"name": "role"},
    ("PATCH", "/api/servers/{server_id}/roles"): [{"id": "{role_id}", "position": 1}],
    ("PATCH", "/api/servers/{server_id}/roles/{role_id}"): {"name": "role"},
    ("POST", "/api/servers/{server_id}/channels"): {"name": "room"},
    ("PATCH", "/api/servers/{server_id}/channels"): [{"id": "{channel_id}", "position": 1}],
    ("PATCH", "/api/channels/{channel_id}"): {"name": "room"},
    ("PUT", "/api/channels/{channel_id}/overrides/{kind}/{target_id}"): {"allow": "0", "deny": "0"},
    ("PUT", "/api/channels/{channel_id}/ack"): {"seq": 1},
    ("PATCH", "/api/servers/{server_id}/members/{user_id}/voice"): {"mute": True},
    ("POST", "/api/channels/{channel_id}/webhooks"): {"name": "hook"},
    ("PATCH", "/api/webhooks/{webhook_id}"): {"name": "hook"},
    ("POST", "/api/webhooks/{webhook_id}/{token}"): {"content": "hello"},
}
QUERIES: dict[tuple[str, str], dict[str, str]] = {
    ("GET", "/api/users"): {"ids": "{owner_id}"},
    ("GET", "/api/users/search"): {"q": "{owner}"},
    ("GET", "/api/search"): {"q": "{word}", "channel_id": "{channel_id}"},
}
# More ways in to the same route: a Braid-HTTP subscription is a GET with `Subscribe`.
HEADER_VARIANTS: dict[tuple[str, str], list[dict[str, str]]] = {
    ("GET", "/api/channels/{channel_id}/messages"): [{"Subscribe": "true"}],
}
# Writes that name a message in their body only (a reply): called with these bodies too
# by the member who sees the owner's channel without READ_MESSAGE_HISTORY
# (test_a_member_without_history_cannot_tell_a_message_from_no_message), as every route
# whose path or body names a message or its file is.
NAMING_BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/api/channels/{channel_id}/messages"): {
        "content": "hello",
        "reply_to_id": "{message_id}",
    },
    ("PUT", "/api/channels/{channel_id}/messages/{message_id}"): {
        "content": "hello",
        "reply_to_id": "{message_id}",
    },
}
# Where a route's {message_id} is not a message named but the caller's new one (that
# test gives it a fresh id each call).
NEW_MESSAGE_ID = {
    ("PUT", "/api/channels/{channel_id}/messages/{message_id}"): (
        "a send's own id: one taken anywhere is 409 MESSAGE_ID_CONFLICT, whoever asks"
    ),
}
REFUSED = {403, 404}
ERROR_KEYS = {"code", "message", "field", "errors", "missing"}  # an error, nothing else
FIELD = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.method, self.path)

    @property
    def fields(self) -> set[str]:
        """The values a call needs from a place: path parameters and templates."""
        template = json.dumps([BODIES.get(self.key, ""), QUERIES.get(self.key, {})], default=str)
        return set(FIELD.findall(self.path)) | set(FIELD.findall(template))


CONVERTOR = re.compile(r":\w*uuid}")


@functools.cache
def app_routes() -> tuple[Any, ...]:
    """Every route of the app (those of included routers too), in order."""
    settings = Settings(
        database_url="postgresql://unused@127.0.0.1/unused", secret=os.urandom(32).hex()
    )
    return tuple(iter_route_contexts(create_app(settings).routes))


@functools.cache
def endpoints() -> tuple[Endpoint, ...]:
    """Every (method, path) of the app's HTTP routes, a path's uuid convertors left
    out (`{id:uuid}` is `{id}`)."""
    return tuple(
        dict.fromkeys(
            Endpoint(method, CONVERTOR.sub("}", route.path))
            for route in app_routes()
            if isinstance(route.original_route, (APIRoute, Route)) and route.path
            for method in sorted(route.methods or ())
        )
    )


def declared_problems() -> list[str]:
    """Routes this file cannot call as they are (empty when all is declared)."""
    problems = []
    for route in app_routes():
        original = route.original_route
        if isinstance(original, APIWebSocketRoute):
            if route.path not in IN_BAND:
                problems.append(f"WebSocket {route.path}: declare how it authenticates")
        elif not isinstance(original, (APIRoute, Route)):
            problems.append(f"{type(original).__name__} {route.path}: a new kind of route")
    operations = document()["paths"]
    for endpoint in endpoints():
        if endpoint.key in PUBLIC:
            continue
        op = operations.get(endpoint.path, {}).get(endpoint.method.lower(), {})
        if "requestBody" in op and endpoint.key not in BODIES:
            problems.append(f"{endpoint.method} {endpoint.path}: declare a valid body")
        required = {
            p["name"] for p in op.get("parameters", []) if p.get("required") and p["in"] == "query"
        }
        if not required <= QUERIES.get(endpoint.key, {}).keys():
            problems.append(f"{endpoint.method} {endpoint.path}: declare its query {required}")
    declared = OPEN.keys() | LAST | BODIES.keys() | QUERIES.keys() | NAMING_BODIES.keys()
    stale = (declared | NEW_MESSAGE_ID.keys()) - {e.key for e in endpoints()}
    problems += [f"{m} {p}: declared but no such route" for m, p in sorted(stale)]
    return problems


def fill(template: Any, values: dict[str, str]) -> Any:
    if isinstance(template, str):
        # A parameter no place has (a public route's): a value that exists nowhere.
        return FIELD.sub(lambda m: values.get(m.group(1)) or str(uuid.uuid4()), template)
    if isinstance(template, list):
        return [fill(item, values) for item in template]
    if isinstance(template, dict):
        return {k: fill(v, values) for k, v in template.items()}
    return template


def unknown(values: dict[str, str]) -> dict[str, str]:
    """The same place with ids that exist nowhere."""
    return {
        k: str(uuid.uuid4()) if k.endswith("_id") else "nosuchcode" if k == "code" else v
        for k, v in values.items()
    }
