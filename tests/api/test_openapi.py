"""/openapi.json tells the truth, and /docs works with no internet.

Every response of the API tests is checked against the document (tests/openapi_check.py,
hooked into every test client); these tests check the document itself, and that the check
can fail."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from tests.openapi_check import UndocumentedResponse, _schema_validator, document, validate
from xfchat.domain.events import EVENT_TYPES

Spec = dict[str, object]


@pytest.fixture
async def spec(client: httpx.AsyncClient) -> Spec:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    served: Spec = response.json()
    return served


def operations(spec: Spec) -> list[tuple[str, str, dict[str, object]]]:
    paths = spec["paths"]
    assert isinstance(paths, dict)
    return [(path, method, op) for path, ops in paths.items() for method, op in ops.items()]


async def test_the_checked_document_is_the_served_one(spec: Spec) -> None:
    assert document() == spec


async def test_no_route_documents_fastapis_422_and_every_error_is_the_error_shape(
    spec: Spec,
) -> None:
    schemas = spec["components"]["schemas"]  # type: ignore[index]
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    assert schemas["Error"]["required"] == ["code", "message"]
    for path, method, op in operations(spec):
        responses = op["responses"]
        assert isinstance(responses, dict)
        # FastAPI's 422 {detail} never: validation errors are 400 (a 422 of our own, in
        # the Error shape, is a search past its time budget).
        assert responses.get("422", {}).get("description") != "Validation Error", (method, path)
        for status in ("429", "503"):
            assert status in responses, (method, path, status)
        # Was: 410 on every POST and PUT, where none is sent, and not where one is.
        gone = (method, path) == ("get", "/api/channels/{channel_id}/messages")
        assert ("410" in responses) == gone, (method, path)
        for status, response in responses.items():
            if int(status) >= 400 and method != "head":
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}, (method, path, status)


async def test_every_success_has_a_schema(spec: Spec) -> None:
    for path, method, op in operations(spec):
        responses = op["responses"]
        assert isinstance(responses, dict)
        successes = {s: r for s, r in responses.items() if s.startswith("2")}
        assert successes, (method, path)
        for status, response in successes.items():
            if status == "204" or method == "head":
                continue
            content = response.get("content")
            assert content, (method, path, status)
            for media_type, body in content.items():
                if media_type.startswith("image/") or media_type == "*/*":
                    continue  # raw bytes (a stored file): described by the media type alone
                schema = body.get("schema")
                assert schema and schema != {}, (method, path, status, media_type)
                assert schema.get("additionalProperties") is not True, (method, path)


async def test_routes_needing_a_token_say_so_and_the_others_do_not(spec: Spec) -> None:
    assert spec["components"]["securitySchemes"] == {  # type: ignore[index]
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "The access token from /api/auth/login, /register or /refresh.",
        }
    }
    public = {
        ("/api/auth/register", "post"),
        ("/api/auth/login", "post"),
        ("/api/auth/login/two-factor", "post"),
        ("/api/auth/refresh", "post"),
        ("/api/media/{media_id}", "get"),
        ("/api/media/{media_id}", "head"),
        ("/health", "get"),
        ("/ready", "get"),
        ("/metrics", "get"),
    }
    for path, method, op in operations(spec):
        if (path, method) in public:
            assert "security" not in op, (method, path)
            continue
        assert op.get("security") == [{"bearer": []}], (method, path)
        assert "401" in op["responses"], (method, path)  # type: ignore[operator]
        params = op.get("parameters", [])
        assert isinstance(params, list)
        assert not [p for p in params if p["name"].lower() == "authorization"], (method, path)


async def test_every_event_type_and_the_ready_state_are_components(spec: Spec) -> None:
    schemas = spec["components"]["schemas"]  # type: ignore[index]
    variants = {v["$ref"].rsplit("/", 1)[1] for v in schemas["Event"]["oneOf"]}
    assert variants == {f"Event.{name}" for name in EVENT_TYPES}
    for name, event in EVENT_TYPES.items():
        envelope = schemas[f"Event.{name}"]
        assert envelope["properties"]["type"] == {"const": name}
        payload = envelope["properties"]["data"]["$ref"].rsplit("/", 1)[1]
        assert payload == event.payload.__name__ and payload in schemas
    assert {"StatePayload", "MessagePayload", "ConversationPayload"} <= set(schemas)
    gateway = schemas["GatewayReady"]["allOf"]  # (SSE's ready, its interval as HELLO's)
    assert gateway == [{"$ref": "#/components/schemas/SseReady"}]
    assert "heartbeat_interval" in schemas["SseReady"]["required"]
    message = schemas["MessagePayload"]
    assert {"id", "seq", "author", "content", "reply_to"} <= set(message["required"])


async def test_the_custom_status_is_documented_in_presence_and_your_account_only(
    spec: Spec,
) -> None:
    """Was: `status_text` in every public profile, which anyone may read."""
    schemas = spec["components"]["schemas"]  # type: ignore[index]
    for public in ("UserPublic", "PublicUserPayload", "AuthorPayload"):
        assert "status_text" not in schemas[public]["properties"], public
    for own in ("UserPrivate", "PrivateUserPayload", "ResumedStatePayload", "PresencePayload"):
        assert "status_text" in schemas[own]["required"], own
    users = spec["paths"]["/api/users/{user_id}"]["get"]["responses"]["200"]  # type: ignore[index]
    assert users["content"]["application/json"]["schema"]["$ref"].endswith("/UserPublic")


async def test_the_response_check_fails_on_what_the_document_does_not_say() -> None:
    # The hook on every test client is only worth something if it can fail.
    request = httpx.Request("GET", "http://test/api/users/@me")
    validate(request, httpx.Response(404, json={"code": "NOT_FOUND", "message": "x"}))
    wrong = [
        httpx.Response(200, json={"id": 5}),  # not a user
        httpx.Response(418, json={"code": "TEAPOT", "message": "x"}),  # status not listed
        httpx.Response(401, json={"message": "x"}),  # an error without its code
        httpx.Response(401, json={"detail": "x"}),  # FastAPI's shape, never sent
        httpx.Response(200, text="{}", headers={"content-type": "text/html"}),  # not listed
        httpx.Response(200, content=b"{", headers={"content-type": "application/json"}),
    ]
    for response in wrong:
        response.request = request
        with pytest.raises(UndocumentedResponse):
            validate(request, response)
    # A templated path, and a documented header outside its schema (X-Has-More is
    # "true" or "false").
    page = httpx.Request("GET", f"http://test/api/channels/{uuid.uuid4()}/messages")
    validate(page, httpx.Response(200, json=[], headers={"X-Has-More": "true"}))
    with pytest.raises(UndocumentedResponse):
        validate(page, httpx.Response(200, json=[], headers={"X-Has-More": "1"}))
    with pytest.raises(UndocumentedResponse):
        validate(page, httpx.Response(200, json=[{"id": "x"}]))
    # Formats are checked (a uuid, a time).
    stamp = _schema_validator(json.dumps({"type": "string", "format": "date-time"}))
    assert stamp.is_valid("2026-11-27T21:00:00Z") and not stamp.is_valid("yesterday")
    ident = _schema_validator(json.dumps({"type": "string", "format": "uuid"}))
    assert ident.is_valid(str(uuid.uuid4())) and not ident.is_valid("not-a-uuid")


async def test_docs_work_offline(client: httpx.AsyncClient) -> None:
    page = await client.get("/docs")
    assert page.status_code == 200
    html = page.text
    assert "cdn" not in html.lower() and "https://" not in html
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        assert f"/docs/assets/{asset}" in html
        served = await client.get(f"/docs/assets/{asset}")
        assert served.status_code == 200 and len(served.content) > 10_000
    missing = await client.get("/docs/assets/..%2Fcore.py")
    assert missing.status_code == 404
    assert missing.json()["code"] == "NOT_FOUND"


async def test_links_feed_the_ids_one_call_makes_to_the_next(spec: Spec) -> None:
    ops = {op["operationId"]: (path, op) for path, _method, op in operations(spec)}
    linked = set()
    for _path, _method, op in operations(spec):
        for response in op["responses"].values():  # type: ignore[attr-defined]
            for name, link in response.get("links", {}).items():
                path, target = ops[link["operationId"]]
                needs = {p["name"] for p in target.get("parameters", []) if p["in"] == "path"}
                given = set(link["parameters"])
                assert given <= needs, (name, given, needs)
                assert needs - given <= {"kind"}, (name, needs - given)  # an enum: generated
                linked.add(path)
    made = spec["paths"]["/api/servers"]["post"]["responses"]["201"]["links"]  # type: ignore[index]
    assert made["get_server_api_servers__server_id__get"]["parameters"] == {
        "server_id": "$response.body#/id"
    }
    sent = spec["paths"]["/api/channels/{channel_id}/messages"]["post"]["responses"]["201"]  # type: ignore[index]
    react = sent["links"][
        "put_reaction_api_channels__channel_id__messages__message_id__reactions__emoji___me_put"
    ]
    assert react["parameters"]["channel_id"] == "$request.path.channel_id"
    assert react["parameters"]["message_id"] == "$response.body#/id"
    # Every path with an id is reached by some link, but those of ids no answer carries.
    with_ids = {p for p, _m, _o in operations(spec) if "{" in p}
    assert with_ids - linked == {
        "/api/media/{media_id}",  # an avatar_url, not an id
        "/api/channels/{channel_id}/overrides/{kind}/{target_id}",  # a role or a member
    }, with_ids - linked


async def test_an_sse_event_is_described_with_its_payload(spec: Spec) -> None:
    schemas = spec["components"]["schemas"]  # type: ignore[index]
    stream = spec["paths"]["/api/events"]["get"]["responses"]["200"]["content"]  # type: ignore[index]
    assert stream["text/event-stream"]["schema"] == {"$ref": "#/components/schemas/SseEvent"}
    variants = {v["properties"]["event"]["const"]: v for v in schemas["SseEvent"]["oneOf"]}
    assert set(variants) == {"ready", "heartbeat", "resync", "closed", *EVENT_TYPES}
    data = variants["message.created"]["properties"]["data"]
    assert data["contentMediaType"] == "application/json"
    assert data["contentSchema"] == {"$ref": "#/components/schemas/MessagePayload"}


async def test_the_document_gives_the_real_limits_heads_answer_headers_and_closed_sets(
    spec: Spec,
) -> None:
    doc: Any = spec
    schemas = doc["components"]["schemas"]
    send = doc["paths"]["/api/channels/{channel_id}/messages/{message_id}"]["put"]
    sent = send["requestBody"]["content"]["application/json"]["schema"]["properties"]
    strings = {k: v["anyOf"][0] for k, v in sent.items() if k in ("content", "nonce")}
    assert strings["content"]["maxLength"] == 4000 and strings["nonce"]["maxLength"] == 64
    assert schemas["EditIn"]["properties"]["content"]["maxLength"] == 4000
    assert schemas["ChannelIn"]["properties"]["name"]["maxLength"] == 100
    paths = doc["paths"]
    assert {"get", "head"} <= paths["/api/attachments/{attachment_id}"].keys()
    assert {"get", "head"} <= paths["/api/attachments/{attachment_id}/thumbnail"].keys()

    def headers(path: str, method: str, status: str) -> set[str]:
        return set(paths[path][method]["responses"][status].get("headers", {}))

    for path in (
        "/api/conversations",
        "/api/servers/{server_id}/members",
        "/api/users/@me/mentions",
    ):
        assert {"Link", "X-Has-More"} <= headers(path, "get", "200")
    assert "Version" in headers("/api/channels/{channel_id}/messages/{message_id}", "put", "201")
    assert {"ETag", "Content-Range"} <= headers("/api/attachments/{attachment_id}", "get", "206")
    assert "Content-Disposition" in headers("/api/attachments/{attachment_id}", "head", "200")
    assert "Link" not in headers("/api/users/search", "get", "200")
    assert schemas["MessagePayload"]["properties"]["kind"]["enum"] == ["default", "pin"]
    assert schemas["ServerChannelPayload"]["properties"]["kind"]["enum"] == [
        "text",
        "voice",
        "category",
    ]
    assert "offline" in schemas["PresencePayload"]["properties"]["status"]["enum"]


async def test_what_the_routes_refuse_the_document_refuses_too(spec: Spec) -> None:
    """A hostile client's finds: values the document allowed and the routes refused (a
    slowmode or position of null, a position past its bound, a user search of 65
    characters, and 2**62 + 1 as a read position: the bound was written as a float)."""
    doc: Any = spec
    fields = doc["components"]["schemas"]["ChannelFields"]["properties"]
    for name, most in (("position", 100_000), ("rate_limit_per_user", 21_600)):
        untitled = {k: v for k, v in fields[name].items() if k != "title"}
        assert untitled == {"type": "integer", "minimum": 0, "maximum": most}, name
    assert fields["name"]["type"] == "string" and "anyOf" not in fields["name"]
    assert {"type": "null"} in fields["user_limit"]["anyOf"]  # (null: no limit)
    seq = doc["components"]["schemas"]["AckIn"]["properties"]["seq"]
    assert seq["maximum"] == 2**62 and isinstance(seq["maximum"], int)
    params = doc["paths"]["/api/users/search"]["get"]["parameters"]
    [q] = [p["schema"] for p in params if p["name"] == "q"]
    assert (q["minLength"], q["maxLength"]) == (1, 64)


async def test_the_days_new_refusals_are_described_where_they_are_answered(spec: Spec) -> None:
    """Was: DELETE /api/channels/{channel_id} said only "Delete a server channel and its
    messages (MANAGE_CHANNELS)", nothing of a category's channels keeping its overrides
    or of its 409 CATEGORY_OVERRIDES_CONFLICT (and the Error schema had no
    `channel_ids`); a route taking files said its 400 was malformed JSON or a field out
    of bounds, not a malformed form (INVALID_FORM) or image (INVALID_IMAGE)."""
    paths: Any = spec["paths"]
    delete = paths["/api/channels/{channel_id}"]["delete"]
    assert "CATEGORY_OVERRIDES_CONFLICT" in delete["description"]
    assert "channel_ids" in delete["description"]
    error: Any = spec["components"]["schemas"]["Error"]  # type: ignore[index]
    assert error["properties"]["channel_ids"]["items"]["format"] == "uuid"
    send = paths["/api/channels/{channel_id}/messages"]["post"]
    assert "multipart/form-data" in send["requestBody"]["content"]
    assert "INVALID_FORM" in send["responses"]["400"]["description"]
    assert "INVALID_IMAGE" in send["responses"]["400"]["description"]
