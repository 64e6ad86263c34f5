"""Every response the API tests receive is checked against the server's own
/openapi.json by openapi-core, so the document cannot drift from the code.

`check_responses(client)` adds the check to an httpx client as a response hook: a
response the document does not describe (an undocumented status, a body or header not of
its schema) fails the request, and so the test, with openapi-core's reason. Streams
(Server-Sent Events, Braid subscriptions) are left alone: they never end."""

from __future__ import annotations

import functools
import os
from typing import Any

import httpx
from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.templating.paths.exceptions import OperationNotFound, PathNotFound
from werkzeug.datastructures import Headers, ImmutableMultiDict

STREAMS = ("text/event-stream",)
BRAID_SUBSCRIPTION = 209


@functools.cache
def _spec() -> OpenAPI:
    from xfchat.app import create_app
    from xfchat.settings import Settings

    # Building the document reads no setting that changes it; any valid settings do.
    settings = Settings(
        database_url="postgresql://unused@127.0.0.1/unused",
        secret=os.urandom(32).hex(),
    )
    return OpenAPI.from_dict(create_app(settings).openapi())


def document() -> dict[str, Any]:
    spec = _spec().spec
    return dict(spec.read_value())  # type: ignore[no-any-return]


class _Request:
    def __init__(self, request: httpx.Request) -> None:
        url = request.url
        self.host_url = f"{url.scheme}://{url.netloc.decode()}"
        self.path = url.path
        self.method = request.method.lower()
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(url.params.multi_items()),
            header=Headers(list(request.headers.items())),
            cookie=ImmutableMultiDict(),
        )
        self.content_type = request.headers.get("content-type", "")
        try:
            self.body: bytes | None = request.content
        except httpx.RequestNotRead:
            self.body = None


class _Response:
    def __init__(self, response: httpx.Response) -> None:
        self.status_code = response.status_code
        self.content_type = response.headers.get("content-type", "")
        self.headers = Headers(list(response.headers.items()))
        self.data = response.content


class UndocumentedResponse(AssertionError):
    pass


def validate(request: httpx.Request, response: httpx.Response) -> None:
    """Raise UndocumentedResponse if /openapi.json does not describe `response` (the
    body must have been read)."""
    try:
        _spec().validate_response(_Request(request), _Response(response))
    except (PathNotFound, OperationNotFound):
        return  # not an API route (/docs, a path that does not exist, a wrong method)
    except Exception as exc:
        detail = getattr(exc, "__cause__", None) or exc
        raise UndocumentedResponse(
            f"{request.method} {request.url.path} -> {response.status_code} is not what "
            f"/openapi.json says: {repr(detail)[:1000]}\nbody: {response.content[:500]!r}"
        ) from exc


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
