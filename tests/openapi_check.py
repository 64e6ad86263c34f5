"""Every response the API tests receive is checked against the server's own
/openapi.json, so the document cannot drift from the code.

`check_responses(client)` adds the check to an httpx client as a response hook: a
response the document does not describe (an undocumented status, a media type it does
not list, a body not of its schema, a documented header not of its schema) fails the
request, and so the test, with the reason. Streams (Server-Sent Events, Braid
subscriptions) are left alone: they never end.

The check is the document's own rules, compiled once a process: each path template a
regular expression, each (operation, status, media type) a JSON Schema 2020-12 validator
(OpenAPI 3.1's schemas are that dialect) with its formats checked. (openapi-core did the
same work again at every response, resolving each header's schema through the whole
document: a fifth of the API tests' CPU.)"""

from __future__ import annotations

import fnmatch
import functools
import json
import os
import re
from dataclasses import dataclass
from typing import Any

import httpx
from jsonschema import Draft202012Validator

STREAMS = ("text/event-stream",)
BRAID_SUBSCRIPTION = 209
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


@functools.cache
def _document() -> dict[str, Any]:
    from xfchat.app import create_app
    from xfchat.settings import Settings

    # Building the document reads no setting that changes it; any valid settings do.
    settings = Settings(
        database_url="postgresql://unused@127.0.0.1/unused",
        secret=os.urandom(32).hex(),
    )
    return create_app(settings).openapi()


def document() -> dict[str, Any]:
    return json.loads(json.dumps(_document()))  # type: ignore[no-any-return]


@dataclass(frozen=True)
class _Path:
    template: str
    pattern: re.Pattern[str]
    variables: int
    operations: dict[str, Any]


@functools.cache
def _paths() -> list[_Path]:
    """The document's paths, most literal first: /api/users/@me before
    /api/users/{user_id}, which would match it too."""
    found = []
    for template, item in _document()["paths"].items():
        parts = re.split(r"(\{[^}/]+\})", template)
        regex = "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts)
        operations = {m: op for m, op in item.items() if m in METHODS}
        found.append(_Path(template, re.compile(regex), template.count("{"), operations))
    return sorted(found, key=lambda p: (p.variables, -len(p.template)))


@functools.cache
def _validator(template: str, method: str, status: str, media_type: str) -> Draft202012Validator:
    schema = _document()["paths"][template][method]["responses"][status]["content"][media_type]
    return _schema_validator(json.dumps(schema.get("schema", {})))


@functools.cache
def _schema_validator(schema: str) -> Draft202012Validator:
    # The components beside the schema, so that its "#/components/..." references resolve.
    root = {**json.loads(schema), "components": _document()["components"]}
    return Draft202012Validator(root, format_checker=Draft202012Validator.FORMAT_CHECKER)


def _operation(method: str, path: str) -> tuple[str, dict[str, Any]] | None:
    for candidate in _paths():
        if candidate.pattern.fullmatch(path) and method in candidate.operations:
            return candidate.template, candidate.operations[method]
    return None


def _media_type(content: dict[str, Any], content_type: str) -> str | None:
    mime = content_type.split(";", 1)[0].strip().lower()
    if mime in content:
        return mime
    for listed in content:
        if fnmatch.fnmatchcase(mime, listed.lower()):
            return listed
    return None


def _errors(
    template: str, method: str, operation: dict[str, Any], response: httpx.Response
) -> str | None:
    responses = operation["responses"]
    code = str(response.status_code)
    status = next((s for s in (code, code[0] + "XX", "default") if s in responses), None)
    if status is None:
        return f"status {code} is not listed (it lists {sorted(responses)})"
    described = responses[status]
    for name, header in described.get("headers", {}).items():
        value = response.headers.get(name)
        if value is None:
            if header.get("required"):
                return f"the required header {name} is missing"
            continue
        bad = next(_schema_validator(json.dumps(header.get("schema", {}))).iter_errors(value), None)
        if bad is not None:
            return f"header {name}: {bad.message}"
    if "content" not in described:
        return None
    content_type = response.headers.get("content-type", "")
    media_type = _media_type(described["content"], content_type)
    if media_type is None:
        return (
            f"media type {content_type!r} is not listed (it lists {sorted(described['content'])})"
        )
    if method == "head" or (media_type != "application/json" and not media_type.endswith("+json")):
        return None  # no body, or raw bytes or text: described by the media type alone
    try:
        body = json.loads(response.content)
    except ValueError as exc:
        return f"the body is not JSON: {exc}"
    bad = next(_validator(template, method, status, media_type).iter_errors(body), None)
    if bad is not None:
        where = "/".join(str(p) for p in bad.absolute_path) or "the body"
        return f"{where}: {bad.message}"
    return None


class UndocumentedResponse(AssertionError):
    pass


def validate(request: httpx.Request, response: httpx.Response) -> None:
    """Raise UndocumentedResponse if /openapi.json does not describe `response` (the
    body must have been read)."""
    found = _operation(request.method.lower(), request.url.path)
    if found is None:
        return  # not an API route (/docs, a path that does not exist, a wrong method)
    template, operation = found
    reason = _errors(template, request.method.lower(), operation, response)
    if reason is not None:
        raise UndocumentedResponse(
            f"{request.method} {request.url.path} -> {response.status_code} is not what "
            f"/openapi.json says: {reason[:1000]}\nbody: {response.content[:500]!r}"
        )


async def _check(response: httpx.Response) -> None:
    if response.status_code == BRAID_SUBSCRIPTION:
        return
    if response.headers.get("content-type", "").startswith(STREAMS):
        return
    await response.aread()
    validate(response.request, response)


def check_responses(client: httpx.AsyncClient) -> httpx.AsyncClient:
    client.event_hooks["response"].append(_check)
    return client
