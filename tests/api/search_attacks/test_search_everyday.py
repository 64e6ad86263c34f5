"""Searches a busy community types every day (a review against what Discord, Slack and
Zulip find for the same query, 2026-11): what they find, and what their snippets mark."""

from __future__ import annotations

import httpx

from tests import factories
from tests.api.search_attacks.conftest import search
from tests.factories import MakeUser


async def test_a_command_line_flag_is_text_to_find_not_an_exclusion(
    raw: httpx.AsyncClient, client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """README, "Search": `-word` excludes; `--dry-run` is a flag people paste to find the
    message that names it (it excluded `-dry-run` and found everything else)."""
    ann, ben, dm = await factories.pair(client, make_user)
    await factories.say(client, ann, dm, "run deploy.sh with --dry-run first")
    await factories.say(client, ann, dm, "lunch at noon?")
    for q in ("--dry-run", "--dry-run deploy.sh"):
        body = (await search(raw, ben, q=q)).json()
        found = [r["message"]["content"] for r in body["results"]]
        assert found == ["run deploy.sh with --dry-run first"], (q, body)
    body = (await search(raw, ben, q="-dry-run")).json()  # (one minus still excludes)
    assert [r["message"]["content"] for r in body["results"]] == ["lunch at noon?"]
