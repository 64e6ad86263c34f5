"""Snippets of text not in NFC (domain/search_snippets.py): the hits are placed in the
text as written in work linear in its length. Measured in lines the module executes,
not in seconds: the count does not depend on the machine."""

from __future__ import annotations

import sys
from types import FrameType
from typing import Any

from xfchat.db.queries.search import Check
from xfchat.domain import search_snippets
from xfchat.domain.search_snippets import snippet


class TooMuchWork(Exception):
    pass


def lines_run(limit: int, call: Any) -> int:
    """The lines of domain/search_snippets.py that `call()` executes (TooMuchWork past
    `limit`: a quadratic run is not traced to its end)."""
    count = 0

    def local(frame: FrameType, event: str, arg: object) -> Any:
        nonlocal count
        if event == "line":
            count += 1
            if count > limit:
                raise TooMuchWork(count)
        return local

    def tracer(frame: FrameType, event: str, arg: object) -> Any:
        return local if frame.f_code.co_filename == search_snippets.__file__ else None

    sys.settrace(tracer)
    try:
        call()
    finally:
        sys.settrace(None)
    return count


LITERAL_A = Check(kind="literal", folded="a", query="", negated=False)


def test_a_long_decomposed_message_of_many_hits_is_placed_in_linear_work() -> None:
    """One decomposed accent makes a 4,000-character message of 2,000 runs and hits go
    through the NFC placement: it was a scan of every run for each hit (0.3 s of the
    event loop per message, a search page of 100 such held it half a minute)."""
    decomposed = "e\u0301" + " a" * 1999
    composed = "\u00e9" + " a" * 1999
    base = lines_run(10**6, lambda: snippet(composed, [LITERAL_A], None))
    work = lines_run(4 * base, lambda: snippet(decomposed, [LITERAL_A], None))
    assert work <= 4 * base  # (quadratic: TooMuchWork above)
    segments = snippet(decomposed, [LITERAL_A], None)
    assert segments[0] == {"text": "e\u0301 ", "hit": False}
    assert [s["text"] for s in segments if s["hit"]][:3] == ["a", "a", "a"]


def test_hits_in_runs_nfc_changes_widen_to_the_run_and_others_stay() -> None:
    content = "une e\u0301cole de\u0301compose\u0301e a"
    check = Check(kind="literal", folded="ecole", query="", negated=False)
    segments = snippet(content, [check, LITERAL_A], None)
    assert "".join(s["text"] for s in segments) == content
    assert [s["text"] for s in segments if s["hit"]] == ["e\u0301cole", "a"]


def test_a_message_of_thousands_of_flags_and_hits_places_its_edges_in_linear_work() -> None:
    """A hit's edges and the cut move to the edges of characters as a reader sees them
    (a flag is two letters, paired from the start of their run). The first version
    counted each flag's run back from every place it asked about, for every hit: 2,000
    flags searched for one of them took five seconds of the event loop per message."""
    flag = "\U0001f1e9\U0001f1ea"  # 🇩🇪
    flags = flag * 2000
    plain = "de" * 2000
    found = Check(kind="literal", folded=flag, query="", negated=False)
    base = lines_run(10**6, lambda: snippet(plain, [LITERAL_DE], None))
    work = lines_run(4 * base, lambda: snippet(flags, [found], None))
    assert work <= 4 * base
    shown = snippet(flags, [found], None)
    assert all(len(s["text"]) % 2 == 0 for s in shown if s["text"] != "…")
    # (a hit across two flags, from one's second letter to the other's first, takes both)
    across = Check(kind="literal", folded="\U0001f1ea\U0001f1eb", query="", negated=False)
    shown = snippet("x \U0001f1e9\U0001f1ea\U0001f1eb\U0001f1f7 y", [across], None)
    assert [s["text"] for s in shown if s["hit"]] == ["\U0001f1e9\U0001f1ea\U0001f1eb\U0001f1f7"]


LITERAL_DE = Check(kind="literal", folded="de", query="", negated=False)
