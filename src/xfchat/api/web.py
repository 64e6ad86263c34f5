"""The browser client: `GET /` is its page, `GET /web/<file>` its scripts, styles and
images, all static files shipped inside the package (`src/xfchat/web/`, no build step).

Every answer carries a strict Content-Security-Policy: scripts and styles only from this
origin (no inline script, no eval), connections only back to it (the API, the gateway,
SSE), images from it and from `blob:` (attachments are fetched with the token and shown
as blobs), no frames, no plugins; and Trusted Types with no policy, so the browser
itself refuses any string handed to an HTML or script sink (innerHTML, srcdoc, a
`javascript:` URL, an inline handler), whatever the code looks like. The files are read once, when the app is built; a
path is looked up in that table, never joined onto the file system, so no request can
name anything else.
"""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable

from fastapi import APIRouter, Request
from starlette.responses import Response

from xfchat.errors import NotFound

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' blob: data:; media-src 'self' blob:; connect-src 'self'; "
    "font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'; require-trusted-types-for 'script'; trusted-types 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # The microphone is asked for by the client's voice; nothing else is.
    "Permissions-Policy": "microphone=(self), camera=(), geolocation=()",
    # Always revalidated (cheap with the ETag), so a new version is picked up at once.
    "Cache-Control": "no-cache",
}
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str
    etag: str


def _walk(root: Traversable, prefix: str = "") -> dict[str, Asset]:
    found: dict[str, Asset] = {}
    for entry in root.iterdir():
        name = f"{prefix}{entry.name}"
        if entry.is_dir():
            found.update(_walk(entry, f"{name}/"))
            continue
        suffix = "." + entry.name.rsplit(".", 1)[-1] if "." in entry.name else ""
        kind = TYPES.get(suffix) or mimetypes.guess_type(entry.name)[0]
        if kind is None or entry.name.startswith("."):
            continue
        body = entry.read_bytes()
        found[name] = Asset(body, kind, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')
    return found


def load_assets() -> dict[str, Asset]:
    """Every file of the client, by its path under `web/`."""
    return _walk(files("xfchat") / "web")


def _answer(request: Request, asset: Asset) -> Response:
    headers = {**SECURITY_HEADERS, "ETag": asset.etag}
    if request.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.content_type, headers=headers)


def make_router() -> APIRouter:
    """The client's routes, with its files read now."""
    assets = load_assets()
    router = APIRouter(include_in_schema=False)

    @router.get("/")
    async def get_client(request: Request) -> Response:
        return _answer(request, assets["index.html"])

    @router.get("/web/{path:path}")
    async def get_client_file(request: Request, path: str) -> Response:
        asset = assets.get(path)
        if asset is None or path == "index.html":
            raise NotFound("no such file of the client")
        return _answer(request, asset)

    return router
