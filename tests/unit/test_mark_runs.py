"""validation.longest_mark_run against its definition (each character's NFD, one at a
time: the marks in a row), over the texts its regular expressions could misjudge:
marks of the first plane and past it, letters that decompose to marks (é, U+0F73),
emoji and ideographs between them."""

from __future__ import annotations

import random
import unicodedata

from xfchat.domain.validation import longest_mark_run


def by_definition(text: str) -> int:
    longest = run = 0
    for c in text:
        for part in unicodedata.normalize("NFD", c):
            run = run + 1 if unicodedata.combining(part) else 0
            longest = max(longest, run)
    return longest


def test_the_longest_run_of_marks_is_what_the_definition_says() -> None:
    pools = [
        lambda r: r.randrange(0x20, 0x3000),
        lambda r: r.randrange(0x300, 0x370),  # combining diacritics
        lambda r: r.choice([0xF73, 0xF75, 0xF81, 0x344, 0x1E08, 0x1FB7]),  # decompose to 2+
        lambda r: r.randrange(0x1D165, 0x1D170),  # musical marks (class 216, 1)
        lambda r: r.randrange(0x1F600, 0x1F650),  # emoji
        lambda r: r.randrange(0x10000, 0x30000),
    ]
    rng = random.Random(7)
    for _ in range(3000):
        text = "".join(chr(rng.choice(pools)(rng)) for _ in range(rng.randrange(1, 40)))
        assert longest_mark_run(text) == by_definition(text), ascii(text)
    assert longest_mark_run("a" + "\u0301" * 31) == 31
    assert longest_mark_run("\u0f73" * 16) == 32  # (class 0 itself, two marks each)
    assert longest_mark_run("e\u0301" * 50) == 1
    assert longest_mark_run("a" + "\U0001d167" * 40 + "\u0301") == 41
    assert longest_mark_run("plain ascii") == 0
