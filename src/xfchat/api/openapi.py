"""The OpenAPI document as the server really behaves: the one error shape on every
route, the bearer scheme on every route that needs a token, and the real-time event
payloads as components. Served at /openapi.json, with /docs working offline."""

from __future__ import annotations

import base64
import hashlib
import re
from importlib.resources import files
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from pydantic import TypeAdapter
from starlette.responses import FileResponse, HTMLResponse, Response

from xfchat.api.openapi_links import add_links
from xfchat.domain.events import EVENT_TYPES
from xfchat.domain.state import ResumedStatePayload, StatePayload
from xfchat.errors import NotFound

REF = "#/components/schemas/{model}"

ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "description": "Every error, whatever its status. `code` is stable (see the README's "
    "error codes); `field` names the input at fault; `errors` lists every invalid field "
    "of a 400 VALIDATION_ERROR; a 429 adds `bucket` and `retry_after` (seconds); a 403 "
    "MISSING_PERMISSIONS adds `missing`; a 400 INVALID_QUERY (search) adds `position` "
    "(the character of the query at fault, from 0); a 409 CATEGORY_OVERRIDES_CONFLICT, "
    "and a category's deletion refused 403 TOO_MANY_OVERRIDES for a channel's own limit, "
    "add `channel_ids` (the channels to change or unsync first, those you may see).",
    "type": "object",
    "required": ["code", "message"],
    "properties": {
        "code": {"type": "string", "pattern": "^[A-Z][A-Z0-9_]*$"},
        "message": {"type": "string"},
        "field": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
        "bucket": {"type": "string"},
        "retry_after": {"type": "number"},
        "missing": {"type": "string"},
        "position": {"type": "integer", "minimum": 0},
        "channel_ids": {"type": "array", "items": {"type": "string", "format": "uuid"}},
    },
}

ERRORS = {
    400: "Invalid input: malformed JSON, a field out of bounds (VALIDATION_ERROR), a value "
    "that cannot be stored; where a route takes files, a malformed multipart form "
    "(INVALID_FORM) or image (INVALID_IMAGE)",
    401: "No access token, or one that is invalid, expired or revoked",
    403: "Not allowed",
    404: "No such thing, or one you may not see",
    408: "The request head or body came too slowly (REQUEST_TIMEOUT); the connection is closed",
    409: "In conflict with what exists (a taken name, a reused id or nonce with another body)",
    410: "No longer usable",
    413: "The body is larger than the documented limit",
    415: "A body of a kind this route does not take",
    416: "The range asked for holds no byte of the file (Content-Range says the size)",
    429: "Rate limited: wait `Retry-After` seconds",
    431: "The request line and headers are too large, or too many (HEADERS_TOO_LARGE, "
    "TOO_MANY_HEADERS); the connection is closed",
    501: "A request body in a transfer coding besides chunked "
    "(UNSUPPORTED_TRANSFER_CODING), or a method no route answers "
    "(METHOD_NOT_IMPLEMENTED); the connection is closed",
    503: "Overloaded or the database is unavailable: try again after `Retry-After` seconds",
}

RATE_LIMIT_HEADERS = {
    "X-RateLimit-Limit": "requests allowed in the window of the tightest limit applied",
    "X-RateLimit-Remaining": "requests left in that window",
    "X-RateLimit-Reset": "when that window ends (Unix time, seconds)",
    "X-RateLimit-Reset-After": "seconds until that window ends",
    "X-RateLimit-Bucket": "the name of that limit",
}
RETRY_AFTER = {
    "description": "seconds to wait before trying again",
    "schema": {"type": "string"},
}

_TEXT = {"type": "string"}
# What the answers of some operations carry besides the rate limit's headers.
PAGE_HEADERS = {  # every paged list (api/pages.py): those taking `limit` and a cursor
    "X-Has-More": {
        "description": "whether another page follows",
        "schema": {"type": "string", "enum": ["true", "false"]},
    },
    "Link": {
        "description": 'the next page, `<url>; rel="next"` (RFC 8288), when there is one; '
        'a page of history `around` a message also gives the newer one, rel="prev"',
        "schema": _TEXT,
    },
}
PAGE_CURSORS = {"after", "before", "after_at"}
VERSION_HEADER = {
    "Version": {
        "description": "Braid: the quoted id of the message sent, or of the page's newest",
        "schema": _TEXT,
    }
}
VERSIONED = {
    ("put", "/api/channels/{channel_id}/messages/{message_id}"),
    ("post", "/api/channels/{channel_id}/messages"),
    ("get", "/api/channels/{channel_id}/messages"),
}
FILE_HEADERS = {  # api/downloads.py's file_response
    "ETag": {
        "description": "the file's strong validator (If-None-Match, If-Range)",
        "schema": _TEXT,
    },
    "Accept-Ranges": {"description": "`bytes`", "schema": _TEXT},
    "Content-Disposition": {
        "description": "inline for an image, else attachment, with the file's safe name",
        "schema": _TEXT,
    },
    "Content-Range": {
        "description": "206: `bytes a-b/size`; 416: `bytes */size`",
        "schema": _TEXT,
    },
}
FILE_PATHS = ("/api/attachments/", "/api/media/")
OK = ("200", "201", "206")  # (not a Braid subscription's 209)
# Closed sets the payloads hold as plain strings: schema -> property -> its values.
ENUMS = {
    "MessagePayload": {"kind": ["default", "pin"]},
    "ServerChannelPayload": {"kind": ["text", "voice", "category"]},
    "ConversationPayload": {"kind": ["direct", "group"]},
    "ConversationAddedPayload": {"kind": ["direct", "group"]},
    "ConversationView": {"kind": ["direct", "group"]},
    "ConversationChannelPayload": {"kind": ["direct", "group"]},
    "OverridePayload": {"kind": ["role", "member"]},
    # (invisible: only your own, as PUT /api/users/@me/presence and your own
    # connections' presence.updated show it; others see offline)
    "PresencePayload": {"status": ["online", "idle", "dnd", "invisible", "offline"]},
    "PrivateUserPayload": {"status": ["online", "idle", "dnd", "invisible"]},
}

SECURITY_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "bearerFormat": "JWT",
    "description": "The access token from /api/auth/login, /register or /refresh.",
}

SWAGGER_ASSETS = ("swagger-ui-bundle.js", "swagger-ui.css", "favicon.png")
DOCS_ASSETS = "/docs/assets/"
# /docs shares its origin with the browser client, whose refresh token sits in
# localStorage: a script that ran on /docs could read it. So /docs runs only its own
# files and its one inline script (by hash), reaches only this server, and cannot be
# framed (its "Try it out" buttons would be a clickjacking target).
DOCS_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def docs_csp(page: str) -> str:
    """The Content-Security-Policy of the /docs page: its inline scripts allowed by hash."""
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
        for s in INLINE_SCRIPT.findall(page)
    )
    return (
        f"default-src 'none'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    )


def _is_token(param: dict[str, Any]) -> bool:
    """The `Authorization` header parameter FastAPI documents for every route whose
    dependencies read it (that is, every route needing a token): it becomes the bearer
    security requirement instead."""
    return param.get("in") == "header" and str(param.get("name", "")).lower() == "authorization"


def _typed_schemas() -> dict[str, Any]:
    """Every event payload, the `ready` state and an `Event` envelope per event type, as
    JSON Schemas referring to each other through components."""
    out: dict[str, Any] = {}

    def add(kind: Any) -> dict[str, Any]:
        schema = TypeAdapter(kind).json_schema(ref_template=REF)
        out.update(schema.pop("$defs", {}))
        return schema

    add(StatePayload)
    add(ResumedStatePayload)
    variants = []
    for name, event in EVENT_TYPES.items():
        payload = add(event.payload)
        title = payload.get("title", name)
        out.setdefault(title, payload)
        key = f"Event.{name}"
        out[key] = {
            "title": key,
            "description": event.doc,
            "type": "object",
            "required": ["type", "data"],
            "properties": {"type": {"const": name}, "data": {"$ref": REF.format(model=title)}},
        }
        variants.append({"$ref": REF.format(model=key)})
    for kind in (StatePayload, ResumedStatePayload):
        schema = TypeAdapter(kind).json_schema(ref_template=REF)
        schema.pop("$defs", None)
        out.setdefault(kind.__name__, schema)
    out["Event"] = {
        "title": "Event",
        "description": "One real-time event: `type` names it, `data` is its payload. SSE "
        "sends it as `event: <type>` with `data` as the data line; the gateway as op 0 "
        "with `t` and `d`; see the README.",
        "oneOf": variants,
    }
    return out


def _json_data(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "string", "contentMediaType": "application/json", "contentSchema": schema}


def _sse_event(name: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["event", "data"],
        "properties": {
            "event": {"const": name},
            "data": _json_data(data),
            "id": {"type": "string"},
        },
    }


def _sse_schemas(typed: dict[str, Any]) -> dict[str, Any]:
    """One Server-Sent Event of GET /api/events as a client parses it (`event`, `data`
    as a JSON text, `id` the resume token): `ready`, `resync` and `closed` of the stream
    itself, or an event of the `Event` schema with its payload as `data`. (Before
    OpenAPI 3.2's `itemSchema`, a `text/event-stream` schema describes one event.)"""
    uuid = {"type": "string", "format": "uuid"}
    ready = {
        "title": "SseReady",
        "description": "The first event: you, and your whole state (`StatePayload`); or, "
        "when the stream resumed from a token (`resumed: true`), what the log does not "
        "keep (`ResumedStatePayload`: your status, your custom status and the current "
        "presences).",
        "type": "object",
        "required": ["user_id", "session_id", "resumed", "heartbeat_interval"],
        "properties": {
            "user_id": uuid,
            "session_id": uuid,
            "resumed": {"type": "boolean"},
            # (SSE: how often an idle stream says so, `?heartbeat=true`; the gateway: as
            # HELLO said)
            "heartbeat_interval": {"type": "integer", "minimum": 1000},
        },
        "anyOf": [
            {
                "properties": {"resumed": {"const": True}},
                "allOf": [{"$ref": REF.format(model="ResumedStatePayload")}],
            },
            {"$ref": REF.format(model="StatePayload")},
        ],
    }
    text = {"type": "string"}
    variants = [
        _sse_event("ready", {"$ref": REF.format(model="SseReady")}),
        _sse_event("heartbeat", {"type": "object", "maxProperties": 0}),
        _sse_event(
            "resync",
            {
                "type": "object",
                "required": ["reason", "message"],
                "properties": {"reason": text, "message": text},
            },
        ),
        _sse_event(
            "closed",
            {
                "type": "object",
                "required": ["reason", "resume"],
                "properties": {"reason": text, "resume": text},
            },
        ),
    ]
    for name in EVENT_TYPES:
        variants.append(_sse_event(name, typed[f"Event.{name}"]["properties"]["data"]))
    gateway_ready = {
        "title": "GatewayReady",
        "description": "The `d` of the WebSocket gateway's first dispatch (`t: ready`): what "
        "`SseReady` holds (`heartbeat_interval` in ms, as HELLO said).",
        "allOf": [{"$ref": REF.format(model="SseReady")}],
    }
    return {
        "SseReady": ready,
        "GatewayReady": gateway_ready,
        "SseEvent": {"title": "SseEvent", "oneOf": variants},
    }


# The one route a 410 comes from: a Braid subscription's unknown `Parents`.
GONE_ROUTE = ("get", "/api/channels/{channel_id}/messages")


def _error_statuses(path: str, method: str, operation: dict[str, Any], secured: bool) -> list[int]:
    has_input = bool(operation.get("parameters")) or "requestBody" in operation
    path_params = any(p.get("in") == "path" for p in operation.get("parameters", []))
    # What the edge answers on every route, before the route sees the request: a head
    # too large (431 HEADERS_TOO_LARGE, TOO_MANY_HEADERS: a long query string is enough)
    # or too slow, a body too slow (408 REQUEST_TIMEOUT), or a body over the limit
    # (413 PAYLOAD_TOO_LARGE, whatever the method: a GET with a large body too).
    statuses = [503, 429, 431, 408, 413]
    if has_input or secured:
        statuses.append(400)
    if secured or operation.get("tags") == ["auth"]:
        statuses.append(401)
    if secured:
        statuses.append(403)
    if path_params or secured:
        statuses.append(404)
    if method in ("put", "post", "patch", "delete"):
        statuses.append(409)
    if "requestBody" in operation:
        statuses += [415, 501]
    if (method, path) == GONE_ROUTE:
        statuses.append(410)
    return sorted(set(statuses))


def _answer_headers(path: str, method: str, operation: dict[str, Any]) -> dict[str, Any]:
    """The headers (besides the rate limit's) of this operation's answers."""
    query = {p["name"] for p in operation.get("parameters", []) if p.get("in") == "query"}
    out: dict[str, Any] = {}
    if "limit" in query and query & PAGE_CURSORS:
        out.update(PAGE_HEADERS)
    if (method, path) in VERSIONED:
        out.update(VERSION_HEADER)
    if path.startswith(FILE_PATHS) and method in ("get", "head"):
        out.update(FILE_HEADERS)
    return out


def _enums(schemas: dict[str, Any]) -> None:
    for name, properties in ENUMS.items():
        for prop, values in properties.items():
            schemas[name]["properties"][prop]["enum"] = values


def build_openapi(app: FastAPI) -> dict[str, Any]:
    doc = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas["Error"] = ERROR_SCHEMA
    typed = _typed_schemas()
    for name, schema in {**typed, **_sse_schemas(typed)}.items():
        schemas.setdefault(name, schema)
    _enums(schemas)
    components["securitySchemes"] = {"bearer": SECURITY_SCHEME}
    error_ref = {"application/json": {"schema": {"$ref": REF.format(model="Error")}}}
    for path, operations in doc.get("paths", {}).items():
        for method, operation in operations.items():
            params = operation.pop("parameters", [])
            secured = "security" in operation or any(_is_token(p) for p in params)
            params = [p for p in params if not _is_token(p)]
            if params:
                operation["parameters"] = params
            if secured:
                operation["security"] = [{"bearer": []}]
            responses = operation.setdefault("responses", {})
            extra = _answer_headers(path, method, operation)
            if responses.get("422", {}).get("description") == "Validation Error":
                responses.pop("422")  # FastAPI's: validation errors are 400 here
            for status in _error_statuses(path, method, operation, secured):
                responses.setdefault(
                    str(status), {"description": ERRORS[status], "content": error_ref}
                )
            for status, response in responses.items():
                if int(status) >= 400:  # every error is the error shape
                    response.setdefault("content", error_ref)
                if method == "head":
                    response.pop("content", None)
                headers = response.setdefault("headers", {})
                if status.startswith("2") or status == "429":
                    for header, text in RATE_LIMIT_HEADERS.items():
                        headers.setdefault(
                            header, {"description": text, "schema": {"type": "string"}}
                        )
                if status in ("429", "503"):
                    headers["Retry-After"] = RETRY_AFTER
                for header, spec in extra.items():
                    if status in ("206", "416") if header == "Content-Range" else status in OK:
                        headers.setdefault(header, spec)
    add_links(doc)
    _integral_bounds(doc)
    return doc


def _integral_bounds(node: object) -> None:
    """FastAPI's model of a schema holds bounds as floats: 2**62 came out as
    4.611686018427388e+18, which a validator reads as a bound above 2**62 + 1 (a
    hostile client's find). A whole bound is written as the integer it is."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("maximum", "minimum") and isinstance(value, float) and value.is_integer():
                node[key] = int(value)
            else:
                _integral_bounds(value)
    elif isinstance(node, list):
        for item in node:
            _integral_bounds(item)


def install_openapi(app: FastAPI) -> None:
    """Replace FastAPI's document with the truthful one and serve /docs from files
    installed with XFChat (no CDN)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    assets = files("fastapi_offline") / "static"

    page = get_swagger_ui_html(
        openapi_url=app.openapi_url or "/openapi.json",
        title="XFChat API",
        swagger_js_url=f"{DOCS_ASSETS}swagger-ui-bundle.js",
        swagger_css_url=f"{DOCS_ASSETS}swagger-ui.css",
        swagger_favicon_url=f"{DOCS_ASSETS}favicon.png",
        swagger_ui_parameters={"persistAuthorization": True},
    )
    page_headers = {**DOCS_HEADERS, "Content-Security-Policy": docs_csp(bytes(page.body).decode())}

    @app.get("/docs", include_in_schema=False)
    async def docs(_request: Request) -> HTMLResponse:
        return HTMLResponse(bytes(page.body), headers=page_headers)

    @app.get(DOCS_ASSETS + "{name}", include_in_schema=False)
    async def docs_asset(name: str) -> Response:
        if name not in SWAGGER_ASSETS:
            raise NotFound("no such file")
        headers = {**DOCS_HEADERS, "Cache-Control": "public, max-age=86400"}
        return FileResponse(str(assets / name), headers=headers)
