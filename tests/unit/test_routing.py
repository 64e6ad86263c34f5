"""The API's routes are in the app as they were built at import (api/routing.py), each
with the app's rules."""

from __future__ import annotations

import os

from fastapi.routing import APIRoute

from xfchat.app import create_app
from xfchat.settings import Settings


def test_every_api_route_is_the_apps_own_and_takes_a_bare_body_as_json() -> None:
    """Was: the API's routers were included, and FastAPI built their routes a second time
    for each app at its first request (0.45 s of CPU a process; a sixth of the test
    suite's CPU). And a router made with APIRouter, not api_router, would refuse a body
    with no Content-Type, against the README."""
    secret = os.urandom(32).hex()
    app = create_app(Settings(database_url="postgresql://unused@127.0.0.1/unused", secret=secret))
    routes = [route for route in app.routes if isinstance(route, APIRoute)]
    assert set(app.openapi()["paths"]) <= {route.path for route in routes}
    assert all(route.strict_content_type is False for route in routes)
