"""Headers that keep the client's origin safe beyond the client's own files: /docs
(same origin as the client, so a script there could read the refresh token in
localStorage) runs only its own script and cannot be framed."""

from __future__ import annotations

import base64
import hashlib
import re
import uuid

import httpx

from tests.factories import MakeUser, pair


async def test_docs_runs_only_its_own_script_and_cannot_be_framed(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/docs")
    assert page.status_code == 200
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["x-content-type-options"] == "nosniff"
    csp = dict(
        [*d.split(" ", 1), ""][:2] for d in page.headers["content-security-policy"].split("; ")
    )
    assert csp["default-src"] == "'none'" and csp["frame-ancestors"] == "'none'"
    assert csp["connect-src"] == "'self'" and csp["base-uri"] == "'none'"
    script_src = csp["script-src"].split()
    assert "'unsafe-inline'" not in script_src and "'unsafe-eval'" not in script_src
    inline = re.findall(r"<script>(.*?)</script>", page.text, re.DOTALL)
    assert inline, "the page's own inline script is expected (it starts Swagger UI)"
    for script in inline:  # each allowed by its hash, and nothing else inline
        digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in script_src
    assert [s for s in script_src if s.startswith("'sha256-")] == [
        s for s in script_src if s.startswith("'sha")
    ]
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        served = await client.get(f"/docs/assets/{asset}")
        assert served.headers["x-content-type-options"] == "nosniff"


async def test_no_session_cookie_so_no_request_forgery(client: httpx.AsyncClient) -> None:
    """The browser client holds its tokens itself and sends them in Authorization: no
    answer of the session's life sets a cookie, so a page on another site has nothing the
    browser would attach for it (no CSRF), and a refused cross-origin read stays refused."""
    account = {"username": "csrf_ann", "email": "ann@example.com", "password": "a-l0ng-passw0rd!"}
    answers = [await client.post("/api/auth/register", json=account)]
    login = {"login": "csrf_ann", "password": account["password"]}
    answers.append(await client.post("/api/auth/login", json=login))
    tokens = answers[-1].json()
    refresh = {"refresh_token": tokens["refresh_token"]}
    answers.append(await client.post("/api/auth/refresh", json=refresh))
    bearer = {"Authorization": f"Bearer {answers[-1].json()['access_token']}"}
    answers.append(await client.get("/", headers=bearer))
    answers.append(await client.post("/api/auth/logout", headers=bearer))
    assert [a.status_code for a in answers] == [201, 200, 200, 200, 204]
    assert [a.headers.get_list("set-cookie") for a in answers] == [[]] * len(answers)
    evil = {"Origin": "https://evil.example", **bearer}
    read = await client.get("/api/users/@me", headers=evil)
    assert "access-control-allow-origin" not in read.headers


async def test_the_client_page_enforces_trusted_types(client: httpx.AsyncClient) -> None:
    """No string reaches an HTML or script sink: the browser refuses it (no policy may
    be made that would let one through)."""
    for path in ("/", "/web/js/main.js"):
        csp = (await client.get(path)).headers["content-security-policy"].split("; ")
        assert "require-trusted-types-for 'script'" in csp and "trusted-types 'none'" in csp


async def test_json_answers_of_the_api_are_neither_sniffed_nor_stored(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """Was: no nosniff and no Cache-Control on the API's JSON, so a profile (with its
    email) or a page of history could be kept in a shared computer's disk cache."""
    ann, _, dm = await pair(client, make_user)
    sent_id = str(uuid.uuid4())
    answers = [
        await client.get("/api/users/@me", headers=ann.headers),  # (a JSONResponse)
        await client.get("/api/users/@me/friends", headers=ann.headers),  # (a response model)
        await client.put(  # (the send's hot path)
            f"/api/channels/{dm}/messages/{sent_id}", headers=ann.headers, json={"content": "x"}
        ),
        await client.get(f"/api/channels/{dm}/messages", headers=ann.headers),
        await client.get("/api/users/@me"),  # (an error)
        await client.post("/api/auth/login", headers={"Content-Length": "99999999"}),  # (413)
    ]
    assert [a.status_code for a in answers] == [200, 200, 201, 200, 401, 413]
    for answer in answers:
        assert answer.headers.get_list("x-content-type-options") == ["nosniff"], answer.url
        assert answer.headers.get_list("cache-control") == ["no-store"], answer.url
    # (what is not the API's JSON keeps its own caching)
    assert "no-store" not in (await client.get("/web/js/main.js")).headers.get("cache-control", "")
