"""The snippet of a search result: a stretch of the message around its first match, as
segments `{"text": ..., "hit": true|false}`. It is never markup: a client shows each
segment's text as text and marks the hits however it likes."""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from collections.abc import Callable
from typing import Any

from xfchat.db.queries.search import Check
from xfchat.domain.search_text import WHITESPACE, fold
from xfchat.domain.validation import MAX_MARK_RUN, longest_mark_run

SNIPPET_CHARS = 200
LEAD_CHARS = 60  # shown before the first match
ELLIPSIS = "…"
_WORD = re.compile(r"\w+")
_RUN = re.compile(r"\s+|\S+")
Span = tuple[int, int]


def _word_spans(folded: str, marked: str | None) -> list[tuple[int, int]]:
    """The spans the database marked (\\x01 ... \\x02), if its text is ours."""
    if marked is None:
        return []
    spans: list[tuple[int, int]] = []
    plain: list[str] = []
    at = start = 0
    for ch in marked:
        if ch == "\x01":
            start = at
        elif ch == "\x02":
            spans.append((start, at))
        else:
            plain.append(ch)
            at += 1
    return spans if "".join(plain) == folded else []


def _term_spans(folded: str, check: Check) -> list[tuple[int, int]]:
    if check.kind == "prefix":
        return [
            (m.start(), m.end())
            for m in _WORD.finditer(folded)
            if m.group().startswith(check.folded)
        ]
    if check.kind in {"word", "literal"} and check.folded:
        parts = [re.escape(p) for p in check.folded.split(" ")]
        pattern = re.compile(f"[{WHITESPACE}]+".join(parts))
        return [(m.start(), m.end()) for m in pattern.finditer(folded) if m.end() > m.start()]
    return []


# What joins the character before it into one that a reader sees: a joiner's next
# character, variation selectors, skin tones, tags (besides the accents and other marks)
_EXTENDS = re.compile("[\u200d\ufe00-\ufe0f\U0001f3fb-\U0001f3ff\U000e0020-\U000e007f]")
_FLAGS = re.compile("[\U0001f1e6-\U0001f1ff]{2,}")  # (two of these letters make a flag)
MAX_CLUSTER = 32  # a cut or a hit's edge moves at most this far to a character's edge


class _Characters:
    """Where `text` may be cut without splitting what a reader sees as one character: a
    letter and its accent, an emoji and its skin tone or selector, joined emoji, a
    flag's two letters. Each question is answered in constant time (a flag's letters
    are paired from the start of their run, found once, in C), so placing the edges of
    a snippet and of its hits stays linear in the message's length."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.flag_runs = [(m.start(), m.end()) for m in _FLAGS.finditer(text)]
        self.flag_starts = [a for a, _ in self.flag_runs]

    def splits(self, at: int) -> bool:
        text = self.text
        if at <= 0 or at >= len(text):
            return False
        here = text[at]
        if text[at - 1] == "\u200d" or _EXTENDS.match(here) or unicodedata.category(here)[0] == "M":
            return True
        run = bisect_right(self.flag_starts, at) - 1
        if run < 0:
            return False
        a, b = self.flag_runs[run]
        return a < at < b and (at - a) % 2 == 1

    def edge(self, at: int, step: int) -> int:
        """`at`, moved by `step` (-1 or 1) to the nearest edge of a character as a
        reader sees it (left where it is past MAX_CLUSTER)."""
        moved = at
        while self.splits(moved) and abs(moved - at) < MAX_CLUSTER:
            moved += step
        return at if self.splits(moved) else moved


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def _in_nfc(content: str, spans: Callable[[str], list[Span]]) -> list[Span]:
    """`spans` of the text in NFC, as the database compares it (migration 0036), placed
    in `content`. NFC never joins characters across a space, so each run of spaces and
    each run between them is normalised on its own: a span inside a run NFC left as it
    was keeps its characters; one inside a run it changed widens to the whole run."""
    if longest_mark_run(content) > MAX_MARK_RUN or unicodedata.is_normalized("NFC", content):
        # (a message stored before the rule on runs of marks: NFC would take Python
        # tens of milliseconds for each, a page of them seconds; its hits are placed as
        # written instead; asked first: is_normalized of marks that may compose, U+0301
        # among them, is NFC itself, as slow)
        return spans(content)
    runs = [(m.start(), m.end()) for m in _RUN.finditer(content)]
    normal = [unicodedata.normalize("NFC", content[a:b]) for a, b in runs]
    text = "".join(normal)
    if text != unicodedata.normalize("NFC", content):  # (never, but then: no hits)
        return []
    # Where a span starting (ending) at each place of `text` starts (ends) in `content`:
    # built once, so placing the spans is linear (a search pages up to 100 messages of
    # 4,000 characters, each of as many runs and hits).
    starts = [len(content)] * (len(text) + 1)
    ends = [0] * (len(text) + 1)
    at = 0
    for (a, b), n in zip(runs, normal, strict=True):
        same = n == content[a:b]
        for k in range(len(n)):
            starts[at + k] = a + k if same else a
            ends[at + k + 1] = a + k + 1 if same else b
        at += len(n)
    return [(starts[s], ends[e]) for s, e in spans(text)]


def snippet(content: str, checks: list[Check], marked: str | None) -> list[dict[str, Any]]:
    """Segments of `content` around its first match of `checks` (the positive terms);
    `marked` is its folded text (in NFC) with the word matches marked by the database."""

    def found(text: str) -> list[Span]:
        folded = fold(text)
        spans = _word_spans(folded, marked)
        for check in checks:
            spans += _term_spans(folded, check)
        return spans

    # (a hit and a cut take whole characters as a reader sees them: `👋` found in `👋🏽`
    # marks both, and a snippet never ends between a flag's two letters; only the
    # edges near what is shown are placed: a message may hold thousands of hits)
    chars = _Characters(content)
    found_spans = _merge(_in_nfc(content, found))
    first = chars.edge(found_spans[0][0], -1) if found_spans else 0
    begin = max(0, first - LEAD_CHARS) if len(content) > SNIPPET_CHARS else 0
    begin = chars.edge(begin, -1)
    end = min(len(content), begin + SNIPPET_CHARS)
    end = max(chars.edge(end, -1), min(end, first + 1))
    spans = _merge(
        [
            (chars.edge(a, -1), chars.edge(b, 1))
            for a, b in found_spans
            if a < end + MAX_CLUSTER and b > begin - MAX_CLUSTER
        ]
    )
    segments: list[dict[str, Any]] = []
    if begin > 0:
        segments.append({"text": ELLIPSIS, "hit": False})
    at = begin
    for start, stop in spans:
        start, stop = max(start, begin), min(stop, end)
        if start >= stop:
            continue
        if start > at:
            segments.append({"text": content[at:start], "hit": False})
        segments.append({"text": content[start:stop], "hit": True})
        at = stop
    if at < end:
        segments.append({"text": content[at:end], "hit": False})
    if end < len(content):
        segments.append({"text": ELLIPSIS, "hit": False})
    return segments
