"""docs/operations.md lists every metric /metrics exports, and nothing it does not."""

from __future__ import annotations

import re

import httpx

from tests.support import METRICS_HEADERS, ROOT


async def test_every_metric_is_in_the_operations_doc(client: httpx.AsyncClient) -> None:
    doc = (ROOT / "docs" / "operations.md").read_text()
    table = set(re.findall(r"^\| `(xfchat_[a-z_]+)", doc, re.M))
    exported = set(
        re.findall(
            r"^# HELP (xfchat_[a-z_]+)",
            (await client.get("/metrics", headers=METRICS_HEADERS)).text,
            re.M,
        )
    )
    exported = {n for n in exported if not n.endswith("_created")}
    # Collectors that export only in some set-ups (with a replica): named in the code.
    source = "".join(p.read_text() for p in (ROOT / "src" / "xfchat").rglob("*.py"))
    for name in re.findall(r'MetricFamily\(\s*"(xfchat_[a-z_]+)"', source):
        kind = re.search(rf'(\w+)MetricFamily\(\s*"{name}"', source)
        exported.add(f"{name}_total" if kind and kind.group(1) == "Counter" else name)
    assert exported - table == set(), "exported but not documented"
    assert table - exported == set(), "documented but not exported"
