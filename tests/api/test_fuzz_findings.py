"""What a harder fuzzing of a real `xfchat serve` found (schemathesis at 100-150
examples an operation, positive and negative, as an owner and as a stranger; and hostile
requests written by hand): each was a clear answer to the client, and something else in
the server or its document.

- A body that ends early (the client went away mid-send, or its chunked framing broke
  and the protocol answered 400) reached the send, avatar and icon routes, which read
  the body whole themselves, as `ClientDisconnect`: an unhandled error, logged twice
  with its traceback and counted as a 500 in `xfchat_http_requests_total`.
- The answers the edge gives on every route before the route sees the request (431 for
  a long query string, 413 for a GET with a large body, 408) were in no operation of
  /openapi.json: schemathesis' status_code_conformance failed on `GET /api/users?ids=`
  with 24 KB of ids.
- A Braid subscription resumed with `Parents` spelt otherwise than the server writes
  versions (upper case, `urn:uuid:`, braces: the same message id) answered its first
  patch with that spelling as `Parents`, a version the server never handed out."""

from __future__ import annotations

import asyncio
import re
import socket
import time
import uuid

import httpx

from tests import factories
from tests.factories import MakeUser
from tests.openapi_check import check_responses, document
from tests.support import METRICS_HEADERS, Servers

SEND_ROUTE = "/api/channels/{channel_id}/messages/{message_id}"


def _requests_counted(base: str, method: str, route: str) -> dict[str, float]:
    """xfchat_http_requests_total of one route, by status."""
    text = httpx.get(f"{base}/metrics", headers=METRICS_HEADERS, timeout=5).text
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("xfchat_http_requests_total{") and (
            f'method="{method}"' in line and f'route="{route}"' in line
        ):
            status = re.search(r'status="(\d+)"', line)
            assert status is not None, line
            found[status[1]] = float(line.rsplit(" ", 1)[1])
    return found


async def _until_counted(base: str, method: str, route: str, n: int) -> dict[str, float]:
    deadline = time.monotonic() + 10
    while True:
        counted = await asyncio.to_thread(_requests_counted, base, method, route)
        if sum(counted.values()) >= n or time.monotonic() > deadline:
            return counted
        await asyncio.sleep(0.05)


def _send_and_leave(base: str, head: str, body: bytes) -> bytes:
    """Send a request head and part of its body, then read what comes (if anything)
    for a moment and hang up."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(head.encode() + body)
        sock.settimeout(0.3)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except (TimeoutError, ConnectionError):
            pass
        return answer


async def test_a_body_that_ends_early_is_no_unhandled_error(
    servers: Servers, make_user: MakeUser
) -> None:
    proc, base = servers.start()
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        ann, _, dm = await factories.pair(client, make_user)
    auth = f"Authorization: Bearer {ann.access_token}\r\n"
    json, png = "application/json", "image/png"
    cut_short = [  # a head promising 100 bytes, 11 sent, then gone
        ("PUT", f"/api/channels/{dm}/messages/{uuid.uuid4()}", json),  # the hot path
        ("PUT", f"/api/channels/{dm.replace('-', '')}/messages/{uuid.uuid4().hex}", json),
        ("POST", f"/api/channels/{dm}/messages", json),
        ("PUT", "/api/users/@me/avatar", png),
    ]
    for method, path, kind in cut_short:
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}"
            f"Content-Type: {kind}\r\nContent-Length: 100\r\n\r\n"
        )
        await asyncio.to_thread(_send_and_leave, base, head, b'{"content":')
    # A chunked body whose framing breaks: the protocol answers 400 MALFORMED_REQUEST.
    head = (
        f"PUT /api/channels/{dm}/messages/{uuid.uuid4()} HTTP/1.1\r\nHost: x\r\n{auth}"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    answer = await asyncio.to_thread(_send_and_leave, base, head, b"zz\r\n{}\r\n0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 "), answer
    counted = {
        "PUT": await _until_counted(base, "PUT", SEND_ROUTE, 3),
        "POST": await _until_counted(base, "POST", "/api/channels/{channel_id}/messages", 1),
        "avatar": await _until_counted(base, "PUT", "/api/users/@me/avatar", 1),
    }
    assert all("500" not in by_status for by_status in counted.values()), counted
    assert sum(counted["PUT"].values()) == 3, counted  # (each was counted, as a 4xx)
    assert "unhandled error" not in proc.output, proc.output
    assert "Exception in ASGI application" not in proc.output, proc.output


async def test_what_the_edge_answers_on_every_route_is_in_the_document(
    servers: Servers, make_user: MakeUser
) -> None:
    _, base = servers.start()
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        ann = await make_user("ann")
        checked = check_responses(client)  # an undocumented answer fails the request
        ids = ",".join(str(uuid.uuid4()) for _ in range(600))  # a head over 16 KiB
        long = await checked.get(f"/api/users?ids={ids}", headers=ann.headers)
        assert long.status_code == 431 and long.json()["code"] == "HEADERS_TOO_LARGE"
    head = (
        f"GET /api/users/@me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ann.access_token}"
        f"\r\nContent-Length: {2 << 20}\r\n\r\n"
    )
    answer = await asyncio.to_thread(_send_and_leave, base, head, b"")
    assert answer.startswith(b"HTTP/1.1 413 ") and b"PAYLOAD_TOO_LARGE" in answer, answer
    paths = document()["paths"]
    for path, operations in paths.items():
        for method, operation in operations.items():
            for status in ("408", "413", "431"):
                assert status in operation["responses"], (method, path, status)


async def test_a_braid_resume_names_its_parent_as_the_server_wrote_it(
    servers: Servers, make_user: MakeUser
) -> None:
    _, base = servers.start()
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        ann, _, dm = await factories.pair(client, make_user)
        first = await factories.say(client, ann, dm, "first")
        await factories.say(client, ann, dm, "second")
        version = first["id"]
        for spelt in (version.upper(), f"urn:uuid:{version}", "{" + version.replace("-", "") + "}"):
            headers = {**ann.headers, "Subscribe": "true", "Parents": f'"{spelt}"'}
            async with client.stream(
                "GET", f"/api/channels/{dm}/messages", headers=headers
            ) as answer:
                assert answer.status_code == 209
                seen = b""
                async with asyncio.timeout(10):
                    async for chunk in answer.aiter_raw():
                        seen += chunk
                        if b"\r\n\r\n{" in seen:  # the first patch's headers are in
                            break
            parents = re.search(rb"\r\nParents: ([^\r]*)\r\n", seen)
            assert parents is not None, seen
            assert parents[1].decode() == f'"{version}"', (spelt, parents[1])
