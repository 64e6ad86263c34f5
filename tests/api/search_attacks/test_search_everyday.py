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


def hits(body: dict[str, object]) -> list[list[str]]:
    results = body["results"]
    assert isinstance(results, list)
    return [[s["text"] for s in r["snippet"] if s["hit"]] for r in results]


async def test_a_phrase_or_punctuated_term_marks_only_where_it_matches(
    raw: httpx.AsyncClient, client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """README: a snippet's hits are the matches; a phrase or `dry-run` matches as those
    characters, so its words standing alone are not hits (they were marked, as a word
    search would mark them). A word still marks its other forms."""
    ann, ben, dm = await factories.pair(client, make_user)
    await factories.say(client, ann, dm, "brown bears are quick, unlike the quick brown fox")
    await factories.say(client, ann, dm, "run the dry-run again before you run it")
    body = (await search(raw, ben, q='"quick brown"')).json()
    assert hits(body) == [["quick brown"]]
    body = (await search(raw, ben, q="dry-run")).json()
    assert hits(body) == [["dry-run"]]
    body = (await search(raw, ben, q="dry-run running")).json()  # (a word beside it)
    assert hits(body) == [["run", "dry-run", "run"]]
    body = (await search(raw, ben, q="bear")).json()
    assert hits(body) == [["bears"]]


async def test_a_snippet_never_cuts_a_flag_an_emoji_or_an_accent_apart(
    raw: httpx.AsyncClient, client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """README: a snippet is up to 200 characters around the first match, cut with `…`.
    It was cut by code points: between a flag's two letters (🇫🇷 shown as 🇫), inside
    a family joined by U+200D, before a decomposed accent; and an emoji found in a
    skin-toned one marked without its tone (which a client styling the hit splits)."""
    ann, ben, dm = await factories.pair(client, make_user)
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    endings = {
        "flag": "🇩🇪🇫🇷 tail",
        "family": family + " tail",
        "accent": "e\u0301e\u0301e\u0301 tail",
    }
    for name, ending in endings.items():
        await factories.say(client, ann, dm, f"needle{name} " + "x" * (190 - len(name)) + ending)
    for name in endings:
        body = (await search(raw, ben, q=f"needle{name}")).json()
        (result,) = body["results"]
        texts = [s["text"] for s in result["snippet"]]
        assert texts[-1] == "…"
        shown = "".join(texts[:-1])
        assert result["message"]["content"].startswith(shown)
        kept = shown[197:]  # (of the ending, its first 3 code points fit in 200)
        assert kept in {"🇩🇪", "", "e\u0301"}, (name, kept)
    await factories.say(client, ann, dm, "bye 👋🏽 all")
    body = (await search(raw, ben, q="👋")).json()
    assert hits(body) == [["👋🏽"]]
