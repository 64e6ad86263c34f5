"""How search sees text: the one fold (case, Latin accents, Unicode spaces, full-width
forms) and the character classes the index is built from.

The database applies the same fold (`xf_fold`, migration 0021) to every message and every
query term; this module is its Python twin, used to find the matched spans of a snippet.
tests/db/test_search_text.py checks the two agree on every character either maps. The
fold maps one character to one character, so a position in the folded text is the same
position in the original.
"""

from __future__ import annotations

import re
import unicodedata

# Han, kana, Hangul and their compatibility forms: text written without spaces, indexed
# by single characters and pairs.
CJK_RANGES = (
    (0x3040, 0x30FF),
    (0x3131, 0x318E),
    (0x3400, 0x4DBF),
    (0x4E00, 0x9FFF),
    (0xAC00, 0xD7AF),
    (0xF900, 0xFAFF),
    (0xFF66, 0xFF9F),
)
# Emoji and symbols: each one is indexed by itself.
SYMBOL_RANGES = (
    (0x00A9, 0x00A9),
    (0x00AE, 0x00AE),
    (0x203C, 0x203C),
    (0x2049, 0x2049),
    (0x2122, 0x2122),
    (0x2139, 0x2139),
    (0x2190, 0x21FF),
    (0x2300, 0x23FF),
    (0x2460, 0x24FF),
    (0x25A0, 0x27BF),
    (0x2900, 0x297F),
    (0x2B00, 0x2BFF),
    (0x3030, 0x3030),
    (0x303D, 0x303D),
    (0x3297, 0x3297),
    (0x3299, 0x3299),
    (0x1F000, 0x1FAFF),
)
# What becomes a plain space: the C1 controls, every Unicode space, and the invisible
# joiners and variation selectors of emoji (so a heart with or without U+FE0F is one
# heart). ASCII controls stay as they are: search treats them all as spaces
# (WHITESPACE).
_SPACES = [
    *range(0x80, 0xA1),
    0x1680,
    *range(0x2000, 0x200F),
    *(0x2028, 0x2029, 0x202F, 0x205F, 0x2060, 0x3000, 0xFE0E, 0xFE0F, 0xFEFF),
]
# Scripts whose capitals fold to small letters; for Latin, accents go too (é finds e).
# The database folds in groups (xf_fold_wide), each applied only to text that has a
# character of its group.
FOLD_GROUPS = {
    "latin1": [*range(0x80, 0x100)],
    "latin_ext": [*range(0x100, 0x250)],
    "greek_cyrillic": [*range(0x370, 0x530)],
    "latin_additional": [*range(0x1E00, 0x1F00)],
    "spaces": [0x1680, *range(0x2000, 0x2070), 0x3000, 0xFE0E, 0xFE0F, 0xFEFF],
    "fullwidth": [*range(0xFF01, 0xFF5F)],
}
_LATIN = [*range(0x41, 0x5B), *range(0xC0, 0x250), *range(0x1E00, 0x1F00)]
_CASED = [*range(0x370, 0x530)]
WHITESPACE = "\x00-\x20\x7f"  # what separates tokens, after the fold


def _fold_char(c: str) -> str:
    low = c.lower()
    if len(low) != 1:
        return c
    if ord(c) < 0x250 or 0x1E00 <= ord(c) < 0x1F00:
        base = unicodedata.normalize("NFD", low)[0]
        if base.isascii() and base.isalpha():
            return base
    return low


def _table() -> dict[int, str]:
    table: dict[int, str] = {cp: " " for cp in _SPACES if cp != 0x20}
    for cp in [*_LATIN, *_CASED]:
        c = chr(cp)
        if unicodedata.category(c) == "Cn":
            continue
        folded = _fold_char(c)
        if folded != c:
            table[cp] = folded
    for cp in range(0xFF01, 0xFF5F):  # full-width ASCII
        table[cp] = _fold_char(chr(cp - 0xFEE0))
    return table


FOLD = _table()
FOLD_FROM = "".join(chr(cp) for cp in sorted(FOLD))
FOLD_TO = "".join(FOLD[cp] for cp in sorted(FOLD))


def fold(text: str) -> str:
    """The text as search compares it (same length, position for position)."""
    return text.translate(FOLD)


def _class(ranges: tuple[tuple[int, int], ...]) -> str:
    return "".join(f"{chr(a)}-{chr(b)}" if a != b else chr(a) for a, b in ranges)


CJK_CLASS = _class(CJK_RANGES)
SYMBOL_CLASS = _class(SYMBOL_RANGES)
CJK = re.compile(f"[{CJK_CLASS}]")
SPACE_RUN = re.compile(f"[{WHITESPACE}]+")
SYMBOL = re.compile(f"[{SYMBOL_CLASS}]")
