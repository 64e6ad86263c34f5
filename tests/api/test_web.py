"""The browser client's files: served at / and /web/, each with the strict CSP, and
never anything outside the package's web/ folder."""

from __future__ import annotations

import re

import httpx

from xfchat.api.web import CSP, load_assets

SOURCES = load_assets()


async def test_client_page_is_served_with_a_strict_csp(client: httpx.AsyncClient) -> None:
    page = await client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert csp == CSP
    assert "script-src 'self';" in csp and "connect-src 'self';" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["x-frame-options"] == "DENY"
    assert '<script type="module" src="/web/js/main.js">' in page.text
    assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page.text) is None  # no inline script


async def test_client_files_are_served_with_their_types_and_etags(
    client: httpx.AsyncClient,
) -> None:
    js = await client.get("/web/js/main.js")
    assert js.status_code == 200
    assert js.headers["content-type"].startswith("text/javascript")
    assert js.headers["content-security-policy"] == CSP
    again = await client.get("/web/js/main.js", headers={"If-None-Match": js.headers["etag"]})
    assert again.status_code == 304
    css = await client.get("/web/app.css")
    assert css.headers["content-type"].startswith("text/css")


async def test_unknown_or_escaping_paths_are_404(client: httpx.AsyncClient) -> None:
    for path in ("/web/nope.js", "/web/../api/web.py", "/web/%2e%2e/app.py", "/web/js/", "/web/"):
        got = await client.get(path)
        assert got.status_code == 404, path
        assert got.json()["code"] == "NOT_FOUND"


def test_client_never_inserts_markup() -> None:
    """Received text is only ever text: no module of the client parses HTML."""
    scripts = {name: a.body.decode() for name, a in SOURCES.items() if name.endswith(".js")}
    assert len(scripts) > 5
    banned = re.compile(
        r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|createContextualFragment"
        r"|DOMParser|\beval\(|new Function|srcdoc"
    )
    found = {name: banned.findall(text) for name, text in scripts.items() if banned.search(text)}
    assert not found
