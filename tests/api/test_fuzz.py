"""Hypothesis throws arbitrary bodies, ids and headers at the account endpoints: every
answer must be a deliberate one (never a 500), and every error must have the JSON shape."""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import quote

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.factories import AppWith, MakeUser

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
plausible_text = st.sampled_from(
    [
        "alice",
        "bob_2",
        "a",
        "x" * 40,
        "émile",
        "a@b.co",
        "user@example.com",
        "password123",
        "correct horse battery staple",
        "",
        " ",
        "\x00",
        "🙂" * 3,
        "../../etc/passwd",
        "'; DROP TABLE users; --",
        "\ud800",
        "lone \udfff surrogate",
        "https://example.com/a.png",
        "javascript:1",
        "00000000-0000-0000-0000-000000000000",
    ]
) | st.text(max_size=300)
field_value = plausible_text | json_values


def sendable(text: str) -> bool:
    """Whether a URL can carry it at all (lone surrogates cannot be percent-encoded)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def bodies(fields: list[str]) -> st.SearchStrategy[Any]:
    objects = st.fixed_dictionaries({}, optional={f: field_value for f in fields})
    return objects | json_values


path_ids = (
    st.sampled_from(["00000000-0000-0000-0000-000000000000", "@me", "nope", "1", "%00", "a" * 300])
    | st.uuids().map(str)
    | st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="/?#"),
        min_size=1,
        max_size=40,
    )
)

# Header values as bytes on the wire (httpx encodes a str value as ASCII only, so a str
# with "é" would never leave the client): space, tab, visible ASCII and obs-text
# (0x80-0xFF) as latin-1, with and without the scheme; and any text at all as UTF-8 bytes,
# lone surrogates included, which is what a hostile raw client can send.
header_text = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, blacklist_characters="\x7f")
    | st.just("\t"),
    max_size=200,
)
authorizations = (
    header_text.map(lambda s: s.encode("latin-1"))
    | header_text.map(lambda s: f"Bearer {s}".encode("latin-1"))
    | st.text(max_size=200)
    .filter(lambda s: not {"\r", "\n", "\x00"} & set(s))
    .map(lambda s: s.encode("utf-8", "surrogatepass"))
)


async def call(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> httpx.Response:
    """Send `body` as JSON bytes with \\u escapes, lone surrogates included (httpx's own
    JSON encoding refuses them; a hostile client does not)."""
    content = json.dumps(body).encode() if body is not None else None
    return await client.request(
        method,
        url,
        content=content,
        headers={**(headers or {}), "content-type": "application/json"},
        **kwargs,
    )


def assert_deliberate(response: httpx.Response) -> None:
    assert response.status_code < 500, (response.status_code, response.text)
    if response.status_code >= 400:
        body = response.json()
        assert isinstance(body.get("code"), str) and isinstance(body.get("message"), str)


LIMITS = {
    "rate_messages_user": "100000/60",
    "rate_register_ip": "100000/60",
    "rate_login_ip": "100000/60",
    "rate_login_account": "100000/60",
    "rate_api_user": "100000/60",
    "rate_refresh_ip": "100000/60",
}


@given(body=bodies(["username", "email", "password", "display_name"]))
@FUZZ
async def test_fuzz_register(app_with: AppWith, body: Any) -> None:
    client = await app_with(**LIMITS)
    assert_deliberate(await call(client, "POST", "/api/auth/register", body))


@given(body=bodies(["login", "username", "email", "password"]))
@FUZZ
async def test_fuzz_login(app_with: AppWith, body: Any) -> None:
    client = await app_with(**LIMITS)
    assert_deliberate(await call(client, "POST", "/api/auth/login", body))


@given(body=bodies(["refresh_token"]))
@FUZZ
async def test_fuzz_refresh(app_with: AppWith, body: Any) -> None:
    client = await app_with(**LIMITS)
    assert_deliberate(await call(client, "POST", "/api/auth/refresh", body))


@given(
    raw=st.binary(max_size=200),
    content_type=st.sampled_from(
        [
            "application/json",
            "text/plain",
            "application/x-www-form-urlencoded",
            "",
            "multipart/form-data",
        ]
    ),
)
@FUZZ
async def test_fuzz_raw_bodies(app_with: AppWith, raw: bytes, content_type: str) -> None:
    client = await app_with(**LIMITS)
    for path in ("/api/auth/register", "/api/auth/login", "/api/auth/refresh"):
        assert_deliberate(
            await client.post(path, content=raw, headers={"content-type": content_type})
        )


@given(authorization=authorizations)
@FUZZ
async def test_fuzz_authorization_header(app_with: AppWith, authorization: bytes) -> None:
    client = await app_with(**LIMITS)
    response = await client.get("/api/users/@me", headers={b"Authorization": authorization})
    assert response.status_code == 401 and response.json()["code"] in {
        "MISSING_TOKEN",
        "INVALID_TOKEN",
    }


@given(
    patch=bodies(
        ["username", "email", "display_name", "status_text", "avatar_url", "password", "code"]
    ),
    password=bodies(["current_password", "new_password"]),
    friend=bodies(["username"]),
)
@FUZZ
async def test_fuzz_authenticated_bodies(
    app_with: AppWith, make_user: MakeUser, patch: Any, password: Any, friend: Any
) -> None:
    client = await app_with(**LIMITS)
    user = await make_user()
    assert_deliberate(await call(client, "PATCH", "/api/users/@me", patch, headers=user.headers))
    assert_deliberate(
        await call(client, "POST", "/api/users/@me/password", password, headers=user.headers)
    )
    assert_deliberate(
        await call(client, "POST", "/api/users/@me/friend-requests", friend, headers=user.headers)
    )


@given(ident=path_ids, days=st.text(max_size=12))
@FUZZ
async def test_fuzz_path_and_query_parameters(
    app_with: AppWith, make_user: MakeUser, ident: str, days: str
) -> None:
    client = await app_with(**LIMITS)
    user = await make_user()
    h = user.headers
    ident = quote(ident, safe="@")  # what a client puts on the wire
    calls = [
        ("GET", f"/api/users/{ident}", {}),
        ("DELETE", f"/api/users/@me/sessions/{ident}", {}),
        ("POST", f"/api/users/@me/friend-requests/{ident}/accept", {}),
        ("POST", f"/api/users/@me/friend-requests/{ident}/decline", {}),
        ("DELETE", f"/api/users/@me/friend-requests/{ident}", {}),
        ("DELETE", f"/api/users/@me/friends/{ident}", {}),
        ("PUT", f"/api/users/@me/blocks/{ident}", {}),
        ("DELETE", f"/api/users/@me/blocks/{ident}", {}),
        ("GET", "/api/users/@me/usage", {"params": {"days": days}}),
    ]
    for method, url, extra in calls:
        assert_deliberate(await client.request(method, url, headers=h, **extra))


@given(
    conversation=bodies(["kind", "user_id", "participant_ids", "name"]),
    message=bodies(["content", "text", "reply_to_id", "nonce"]),
    edit=bodies(["content"]),
    ack=bodies(["seq"]),
    params=st.dictionaries(
        st.sampled_from(["before", "after", "limit"]), plausible_text.filter(sendable), max_size=3
    ),
)
@FUZZ
async def test_fuzz_conversations_and_messages(
    app_with: AppWith,
    make_user: MakeUser,
    conversation: Any,
    message: Any,
    edit: Any,
    ack: Any,
    params: dict[str, str],
) -> None:
    from tests import factories

    client = await app_with(**LIMITS)
    ann, ben = await make_user(), await make_user()
    h = ann.headers
    assert_deliberate(await call(client, "POST", "/api/conversations", conversation, headers=h))
    dm = (await factories.direct(client, ann, ben))["id"]
    base = f"/api/conversations/{dm}"
    channel = f"/api/channels/{dm}"
    sent = await client.post(f"{channel}/messages", headers=h, json={"content": "seed"})
    mid = sent.json()["id"]
    for method, url, body in [
        ("POST", f"{channel}/messages", message),
        ("PUT", f"{channel}/messages/{uuid.uuid4()}", message),
        ("PATCH", f"{channel}/messages/{mid}", edit),
        ("PUT", f"{channel}/ack", ack),
        ("PATCH", base, conversation),
    ]:
        assert_deliberate(await call(client, method, url, body, headers=h))
    assert_deliberate(await client.get(f"{channel}/messages", headers=h, params=params))
