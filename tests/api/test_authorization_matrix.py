"""The authorization matrix: every route the app has, against everyone who must be
refused, on a real `xfchat serve` (so the streams stream).

The routes come from `app.routes`, so a route added later is called here at once; one
this file does not know how to call (a body, a required query, a new kind of route)
fails `test_every_route_is_declared` until it is declared in tests/route_access.py. For every route that
needs a token:

- a logged-out caller gets 401 `MISSING_TOKEN`, the same whether the ids exist or not;
- a stranger (a user of another server, in none of the owner's conversations), a member
  who was kicked, one who left, and a participant removed from the group, calling with
  the ids of the owner's server and of the group, get exactly the answer (status and
  body) they get for ids that do not exist, and that answer is a 403 or 404 carrying
  nothing but the error;
- and whatever they call, with those ids or without, no answer (a stream's `ready` and
  a Braid subscription's handshake included) holds anything of the owner's world.

And a member who sees the owner's #general without READ_MESSAGE_HISTORY (a moderator)
gets, on every route that names a message or its file (in its path, or in its body, as
a reply does), the same answer for the owner's message as for an id that exists
nowhere: a refusal, or a 204 that changed nothing.

Public routes (the account entry points, health, the OpenAPI document and /docs, and
the media an `<img>` loads) are declared as such and must answer without a token."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.factories import MakeUser, TestUser
from tests.openapi_check import check_responses
from tests.realtime.clients import GatewayClient
from tests.route_access import (
    BODIES,
    ERROR_KEYS,
    HEADER_VARIANTS,
    LAST,
    NAMING_BODIES,
    NEW_MESSAGE_ID,
    OPEN,
    OWN_CREDENTIAL,
    PUBLIC,
    QUERIES,
    REFUSED,
    Endpoint,
    declared_problems,
    endpoints,
    fill,
    unknown,
)
from tests.support import Servers
from tests.world import LIMITS, World, build


@dataclass
class Answer:
    status: int
    text: str

    def body(self) -> Any:
        try:
            return json.loads(self.text)
        except ValueError:
            return self.text


async def call(
    client: httpx.AsyncClient,
    endpoint: Endpoint,
    values: dict[str, str],
    token: str | None,
    extra: dict[str, str] | None = None,
    body: Any = None,
) -> Answer:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    headers.update(extra or {})
    kwargs: dict[str, Any] = {"params": fill(QUERIES.get(endpoint.key, {}), values)}
    body = BODIES.get(endpoint.key) if body is None else body
    if isinstance(body, bytes):
        kwargs["content"] = body
        headers["Content-Type"] = "image/png"
    elif body is not None:
        kwargs["json"] = fill(body, values)
    url = fill(endpoint.path, values)
    async with client.stream(endpoint.method, url, headers=headers, **kwargs) as response:
        if response.status_code == 209 or "event-stream" in response.headers.get(
            "content-type", ""
        ):
            return Answer(response.status_code, await _first_event(response))
        return Answer(response.status_code, (await response.aread()).decode("utf-8", "replace"))


async def _first_event(response: httpx.Response) -> str:
    """A stream's opening: up to its first complete event or Braid update."""
    seen: list[str] = []
    async for line in response.aiter_lines():
        seen.append(line)
        if line == "" and any(s.startswith(("data:", "{", "[")) for s in seen):
            break
    return "\n".join(seen)


def judge(who: str, endpoint: Endpoint, place: str, real: Answer, missing: Answer) -> list[str]:
    """What is wrong with a hostile caller's answer for real ids, given the answer for
    ids that exist nowhere."""
    where = f"{who} {endpoint.method} {endpoint.path} ({place})"
    problems = []
    if (real.status, real.body()) != (missing.status, missing.body()):
        problems.append(
            f"{where}: {real.status} {real.text[:200]} but {missing.status} "
            f"{missing.text[:200]} for ids that do not exist"
        )
    if real.status not in REFUSED:
        problems.append(f"{where}: {real.status}, not refused")
    elif endpoint.method != "HEAD" and not (
        isinstance(real.body(), dict) and set(real.body()) <= ERROR_KEYS
    ):
        problems.append(f"{where}: the refusal carries more than the error: {real.text[:200]}")
    return problems


def leaks(who: str, endpoint: Endpoint, answer: Answer, secrets: set[str]) -> list[str]:
    found = sorted(s for s in secrets if s in answer.text)
    if not found:
        return []
    return [
        f"{who} {endpoint.method} {endpoint.path}: the answer shows {found}: {answer.text[:300]}"
    ]


@pytest.fixture
async def world_client(
    servers: Servers, make_user: MakeUser
) -> AsyncIterator[tuple[httpx.AsyncClient, World]]:
    _, base = servers.start(**LIMITS)
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        check_responses(client)
        yield client, await build(client, make_user)


def test_every_route_is_declared() -> None:
    assert declared_problems() == []


def test_the_matrix_can_fail() -> None:
    route = Endpoint("GET", "/api/servers/{server_id}")
    missing = Answer(404, '{"code":"SERVER_NOT_FOUND","message":"no such server"}')
    assert judge("stranger", route, "server", missing, missing) == []
    for leaky in (
        Answer(403, '{"code":"MISSING_PERMISSIONS","message":"no"}'),  # tells it exists
        Answer(200, '{"id":"x"}'),
        Answer(404, '{"code":"SERVER_NOT_FOUND","message":"no such server","name":"x"}'),
    ):
        assert judge("stranger", route, "server", leaky, missing)
    assert leaks("stranger", route, Answer(200, '{"name":"hush1"}'), {"hush1"})


async def test_every_route_refuses_the_logged_out_and_tells_nothing(
    world_client: tuple[httpx.AsyncClient, World],
) -> None:
    client, world = world_client
    problems = []
    for endpoint in endpoints():
        needs = endpoint.fields - world.words.keys()
        places = [v for v in world.places.values() if needs <= v.keys()] or [world.places["server"]]
        for values in places:
            values = {**values, **world.words}
            real = await call(client, endpoint, values, None)
            if endpoint.key in PUBLIC:
                refused = real.status in (401, 403) and endpoint.key not in OWN_CREDENTIAL
                if refused or real.status >= 500:
                    problems.append(f"public {endpoint.method} {endpoint.path}: {real.status}")
                continue
            missing = await call(client, endpoint, unknown(values), None)
            if real.status != 401 or (
                endpoint.method != "HEAD" and real.body().get("code") != "MISSING_TOKEN"
            ):
                problems.append(
                    f"logged out {endpoint.method} {endpoint.path}: {real.status} {real.text[:200]}"
                )
            if (real.status, real.body()) != (missing.status, missing.body()):
                problems.append(
                    f"logged out {endpoint.method} {endpoint.path}: {real.text} vs {missing.text}"
                )
    assert problems == [], "\n".join(problems)


async def test_every_route_refuses_outsiders_as_if_nothing_existed(
    world_client: tuple[httpx.AsyncClient, World],
) -> None:
    client, world = world_client
    problems: list[str] = []
    judged: list[tuple[str, str, str]] = []
    # What the callers may do to themselves (join by invite, log out) comes last.
    order = sorted(endpoints(), key=lambda e: (e.key in OPEN, e.key in LAST))
    for who, user in world.hostile.items():
        for endpoint in order:
            if endpoint.key in PUBLIC:
                continue
            problems += await _outsider(client, world, who, user, endpoint, judged)
    assert problems == [], "\n".join(problems)
    # The comparisons ran: every caller, on every route of a place, in every place.
    scoped = [
        e
        for e in endpoints()
        if e.key not in PUBLIC | OPEN.keys() and e.fields - world.words.keys()
    ]
    assert len(scoped) > 60 and len(judged) >= len(world.hostile) * len(scoped), len(judged)


async def _outsider(
    client: httpx.AsyncClient,
    world: World,
    who: str,
    user: TestUser,
    endpoint: Endpoint,
    judged: list[tuple[str, str, str]],
) -> list[str]:
    problems: list[str] = []
    needs = endpoint.fields - world.words.keys()
    places = {n: v for n, v in world.places.items() if needs <= v.keys()}
    if not needs:
        places = {"own": {}}  # nothing of anyone's: their own things, which may succeed
    elif not places:
        return [f"{endpoint.method} {endpoint.path}: no place of tests/world.py fills it"]
    for place, values in places.items():
        values = {**values, **world.words}
        for extra in [{}, *HEADER_VARIANTS.get(endpoint.key, [])]:
            real = await call(client, endpoint, values, user.access_token, extra)
            if endpoint.key not in OPEN:  # an invite shows where it leads
                problems += leaks(who, endpoint, real, world.secrets)
            if place == "own" or endpoint.key in OPEN:
                if real.status >= 500:
                    problems.append(f"{who} {endpoint.method} {endpoint.path}: {real.status}")
                continue
            missing = await call(client, endpoint, unknown(values), user.access_token, extra)
            problems += judge(who, endpoint, place, real, missing)
            judged.append((who, endpoint.path, place))
    return problems


async def test_a_member_without_history_cannot_tell_a_message_from_no_message(
    world_client: tuple[httpx.AsyncClient, World],
) -> None:
    client, world = world_client
    who, server = world.forgetful, world.places["server"]
    named = {"message_id", "attachment_id"}
    problems: list[str] = []
    judged = []
    for endpoint in endpoints():
        bodies = [None] if endpoint.fields & named else []
        bodies += [NAMING_BODIES[endpoint.key]] if endpoint.key in NAMING_BODIES else []
        if endpoint.key in NEW_MESSAGE_ID:
            bodies = bodies[1:]  # (its own id is not a message it names)
            endpoint = Endpoint(endpoint.method, endpoint.path.replace("{message_id}", "{new}"))
        for body in bodies:
            values = {**server, **world.words}
            nowhere = {**values, **{k: v for k, v in unknown(values).items() if k in named}}
            real = await call(client, endpoint, values, who.access_token, body=body)
            missing = await call(client, endpoint, nowhere, who.access_token, body=body)
            judged.append(endpoint.key)
            where = f"{endpoint.method} {endpoint.path} {body or ''}"
            if (real.status, real.body()) != (missing.status, missing.body()):
                problems.append(f"{where}: {real.status} {real.text[:200]} but {missing.text}")
            if real.status not in REFUSED and (real.status, real.text) != (204, ""):
                problems.append(f"{where}: {real.status} {real.text[:200]}")
            problems += leaks("forgetful", endpoint, real, world.secrets)
    assert problems == [], "\n".join(problems)
    assert len(judged) >= 15 and len(NAMING_BODIES) == 2, judged


async def test_the_gateway_refuses_a_bad_token_and_shows_outsiders_nothing(
    world_client: tuple[httpx.AsyncClient, World],
) -> None:
    client, world = world_client
    base = str(client.base_url).rstrip("/")
    refused = await GatewayClient.connect(base, "not-a-token")
    try:
        with pytest.raises(EOFError, match="closed: 4004"):
            await refused.next(timeout=10)
    finally:
        await refused.ws.close()
    for who, user in world.hostile.items():
        gateway = await GatewayClient.connect(base, user.access_token)
        try:
            ready = await gateway.next("ready")
        finally:
            await gateway.ws.close()
        shown = sorted(s for s in world.secrets if s in json.dumps(ready))
        assert not shown, (who, shown)
