"""OpenAPI links: how an id one call returns feeds the next call's path.

Derived from the document itself, so a route added later gets its links with no edit:
an operation whose success answer carries a value that another operation's path
parameters need (all of them) links to it. A value comes from the request's own path
(`$request.path.server_id`), or from the answer's body: a field of the parameter's name
(`code`, `channel_id`, `/reactions/0/emoji`), the `id` of an object field (`user` gives
`user_id`, `attachments` `attachment_id`), or the answer's own `id` named after the
collection the path ends in (`POST /api/servers` gives `server_id`; a list's first item
too). Clients, Swagger UI and schemathesis' stateful tests follow them."""

from __future__ import annotations

from typing import Any

# The collection a path ends in, and the parameter its items' `id` fills.
COLLECTIONS = {
    "servers": ("server_id",),
    "channels": ("channel_id",),
    "conversations": ("conversation_id", "channel_id"),  # a conversation is a channel
    "messages": ("message_id",),
    "roles": ("role_id",),
    "friend-requests": ("request_id",),
    "sessions": ("session_id",),
    "users": ("user_id",),
    "attachments": ("attachment_id",),
    "reactions": ("user_id",),  # who reacted with an emoji: their public profiles
}
SUCCESS_BODY = "application/json"


def _resolve(doc: dict[str, Any], schema: dict[str, Any], depth: int = 0) -> dict[str, Any]:
    """The schema behind a `$ref`, and the object or array variant of a nullable one."""
    if depth > 8:
        return {}
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
        target = doc["components"]["schemas"].get(ref.rsplit("/", 1)[1], {})
        return _resolve(doc, target, depth + 1)
    for key in ("anyOf", "oneOf", "allOf"):
        for variant in schema.get(key, []):
            found = _resolve(doc, variant, depth + 1)
            if found.get("type") in ("object", "array") or "properties" in found:
                return found
    return schema


def _properties(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: _resolve(doc, prop)
        for name, prop in _resolve(doc, schema).get("properties", {}).items()
        if isinstance(prop, dict)
    }


def _values(doc: dict[str, Any], schema: dict[str, Any], prefix: str) -> dict[str, str]:
    """Parameter name -> JSON pointer, for the fields of one object of the answer: its
    own fields first, then the `id` of its object fields, then the fields of those."""
    found: dict[str, str] = {}
    nested: list[tuple[str, dict[str, Any]]] = []
    for name, prop in _properties(doc, schema).items():
        found[name] = f"{prefix}/{name}"
        if prop.get("type") == "array" and isinstance(prop.get("items"), dict):
            nested.append((f"{prefix}/{name}/0", prop["items"]))
            singular = name.removesuffix("s")
        else:
            nested.append((f"{prefix}/{name}", prop))
            singular = name
        if "id" in _properties(doc, nested[-1][1]):
            found.setdefault(f"{singular}_id", f"{nested[-1][0]}/id")
    for pointer, item in nested:  # e.g. `/reactions/0/emoji`
        for field in _properties(doc, item):
            found.setdefault(field, f"{pointer}/{field}")
    return found


def _provided(doc: dict[str, Any], path: str, operation: dict[str, Any]) -> dict[str, str]:
    """What one operation's 2xx answers and request give: parameter name -> expression."""
    given = {
        p["name"]: f"$request.path.{p['name']}"
        for p in operation.get("parameters", [])
        if p.get("in") == "path"
    }
    collection = [s for s in path.split("/") if s and not s.startswith("{")][-1:]
    own_ids = COLLECTIONS.get(collection[0], ()) if collection else ()
    for status, response in operation.get("responses", {}).items():
        schema = response.get("content", {}).get(SUCCESS_BODY, {}).get("schema")
        if not status.startswith("2") or not isinstance(schema, dict):
            continue
        body = _resolve(doc, schema)
        prefix = ""
        if body.get("type") == "array" and isinstance(body.get("items"), dict):
            body, prefix = body["items"], "/0"
        values = _values(doc, body, prefix)
        if "id" in values:  # the collection's own id before any field's
            values = {**values, **{name: values["id"] for name in own_ids}}
        for name, pointer in values.items():
            given.setdefault(name, f"$response.body#{pointer}")
    return given


def _needs(operation: dict[str, Any]) -> set[str] | None:
    """The path parameters an operation needs filled (enumerated ones are generated)."""
    names = {
        p["name"]
        for p in operation.get("parameters", [])
        if p.get("in") == "path" and "enum" not in _schema_of(p)
    }
    return names or None


def _schema_of(parameter: dict[str, Any]) -> dict[str, Any]:
    schema = parameter.get("schema", {})
    return schema if isinstance(schema, dict) else {}


def add_links(doc: dict[str, Any]) -> None:
    """Add to each operation's success responses a link to every operation whose path
    parameters its request and answer fill (where no link of that name exists)."""
    targets = [
        (op["operationId"], needs)
        for ops in doc.get("paths", {}).values()
        for op in ops.values()
        if "operationId" in op and (needs := _needs(op)) is not None
    ]
    for path, ops in doc.get("paths", {}).items():
        for method, operation in ops.items():
            if method == "head":
                continue
            given = _provided(doc, path, operation)
            links = {
                target: {
                    "operationId": target,
                    "parameters": {name: given[name] for name in sorted(needs)},
                }
                for target, needs in targets
                if needs <= given.keys() and any(given[n].startswith("$response") for n in needs)
            }
            if not links:
                continue
            for status, response in operation.get("responses", {}).items():
                if status.startswith("2") and SUCCESS_BODY in response.get("content", {}):
                    existing = response.setdefault("links", {})
                    for name, link in links.items():
                        existing.setdefault(name, link)
