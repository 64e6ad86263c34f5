"""Schemathesis against the app's own /openapi.json, on a real `xfchat serve` (so
/api/events streams; schemathesis reads its first event and checks it against the
document, then hangs up).

Every operation of the document, as a signed-in user who owns a populated world
(tests/world.py), in schemathesis' phases: coverage (boundary and invalid values of
every parameter and body field, and methods a path does not take), fuzzing (a bounded
number of generated requests per operation) and stateful (chains of calls following
the document's links, so the ids one call makes feed the next). Every answer must be
deliberate and described: no 5xx, a status the operation documents, the documented
content type, headers and body schema. The session is logged in again whenever a call
ends it (logout, a revoked session).

The pytest plugin of schemathesis is not loaded (`-p no:schemathesis`): the engine is
driven from here, which keeps every other test's start-up free of it."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
import schemathesis
from schemathesis.engine import events, from_schema

from tests.factories import PASSWORD, MakeUser
from tests.openapi_check import check_responses
from tests.support import Servers
from tests.world import LIMITS, build

EXAMPLES_PER_OPERATION = 3  # fuzzing; the coverage phase's cases come on top
SCENARIOS, STEPS = 30, 10  # stateful: scenarios of at most this many linked calls
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
)


def config(base: str, login: str) -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            "base-url": base,
            "seed": 13,
            "generation": {"max-examples": EXAMPLES_PER_OPERATION, "database": "none"},
            "phases": {
                "examples": {"enabled": False},
                "stateful": {
                    "max-steps": STEPS,
                    "generation": {"mode": "positive", "max-examples": SCENARIOS},
                },
            },
            "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
            "request-timeout": 20,
            "max-stream-events": 1,
            "auth": {
                "dynamic": {
                    "openapi": {
                        "bearer": {
                            "path": "/api/auth/login",
                            "payload": {"login": login, "password": PASSWORD},
                            "extract_selector": "/access_token",
                        }
                    }
                }
            },
        }
    )


def without_subscriptions(doc: dict[str, Any]) -> dict[str, Any]:
    """The document without the `Subscribe` request header (GET of a channel's
    messages): with it the answer is a Braid-HTTP subscription (209), a body that never
    ends and whose heartbeats keep a read from timing out, which schemathesis reads to
    its end (it cuts only `text/event-stream` short). A stateful scenario that sent it
    hung the test until its timeout, or until the 20 s read timeout when no heartbeat
    came; subscriptions have tests of their own (tests/realtime/)."""
    for operations in doc["paths"].values():
        for operation in operations.values():
            if isinstance(operation, dict) and "parameters" in operation:
                operation["parameters"] = [
                    p
                    for p in operation["parameters"]
                    if not (p.get("in") == "header" and p.get("name", "").lower() == "subscribe")
                ]
    return doc


def run(base: str, login: str) -> tuple[list[str], dict[str, int]]:
    """Every failed check (a readable line with a curl command), and how many calls
    each phase made and how often each check ran."""
    doc = httpx.get(f"{base}/openapi.json", timeout=30).json()
    schema = schemathesis.openapi.from_dict(without_subscriptions(doc), config=config(base, login))
    failures: list[str] = []
    calls: dict[str, int] = {}
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            phase = event.phase.value
            calls[phase] = calls.get(phase, 0) + len(event.recorder.interactions)
            for checks in event.recorder.checks.values():
                for check in checks:
                    calls[check.name] = calls.get(check.name, 0) + 1
            failures += _failures(event)
        elif isinstance(event, events.NonFatalError):
            failures.append(f"{event.label}: {event.value!r}")
        elif isinstance(event, events.FatalError):
            failures.append(f"fatal: {event.exception!r}")
    return failures, calls


def _failures(event: events.ScenarioFinished) -> list[str]:
    found = []
    for checks in event.recorder.checks.values():
        for check in checks:
            if check.failure_info is not None:
                failure: Any = check.failure_info.failure
                found.append(
                    f"{event.phase.value} {failure.operation}: {check.name}: {failure.title}\n"
                    f"{failure.message[:800]}\n{check.failure_info.code_sample}"
                )
    return found


# 100 s alone here; beside three other test processes on two cores it may pass the
# default 180 s, and a timeout's report while schemathesis' thread runs meets the bug below.
@pytest.mark.timeout(480)
async def test_schemathesis_finds_no_5xx_and_no_schema_break(
    servers: Servers, make_user: MakeUser
) -> None:
    _, base = servers.start(**LIMITS)
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        world = await build(check_responses(client), make_user)
    # Whatever goes wrong is reported as text alone: pytest's report of a failure parses
    # this file's source, which under CPython 3.11.7 once raised SystemError ("AST
    # constructor recursion depth mismatch", CPython gh-106905, pytest #10874) after
    # schemathesis' run (its thread still running) and took the test process down
    # with the failure unseen.
    try:
        failures, calls = await asyncio.to_thread(run, base, world.owner.email)
    except Exception as exc:
        pytest.fail(f"schemathesis stopped: {type(exc).__name__}: {exc}", pytrace=False)
    # It did run: every phase called the server, the stateful one along the links.
    if not (calls.get("coverage", 0) > 1000 and calls.get("fuzzing", 0) > 200):
        failures.append(f"too few calls: {calls}")
    if not calls.get("stateful", 0) > SCENARIOS:
        failures.append(f"too few stateful calls: {calls}")
    if not all(calls.get(check, 0) > 1000 for check in CHECKS):
        failures.append(f"a check ran too seldom: {calls}")
    if failures:
        pytest.fail("\n\n".join(failures), pytrace=False)
