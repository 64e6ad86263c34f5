"""The search syntax (README, "Search"): words, "phrases", -exclusions, prefix*, and
filters such as from:alice or has:image. Parsing is pure: it says what the query asks
for, or where it is wrong (a 400 INVALID_QUERY with the 0-based character `position`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date

from xfchat.domain.search_text import CJK, SYMBOL
from xfchat.errors import BadRequest

MAX_QUERY_CHARS = 512
MAX_CLAUSES = 16  # terms and filters together
MAX_VALUE_CHARS = 100
MIN_PREFIX_CHARS = 2
DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
MIN_YEAR, MAX_YEAR = 1970, 9998  # (a day after the last, in any zone, is still a date)

HAS_VALUES = frozenset({"link", "file", "image", "reaction", "pin"})
IS_VALUES = frozenset({"pinned"})
DATE_FILTERS = frozenset({"before", "after", "during"})
NAME_FILTERS = frozenset({"from", "mentions", "in"})
FILTERS = NAME_FILTERS | DATE_FILTERS | {"has", "is"}


@dataclass(frozen=True)
class Term:
    """Text to find. `kind`: word (letters and digits: its stems, or a substring of a
    longer word), literal (anything with punctuation, CJK or emoji, and "phrases": the
    exact characters), prefix (a word that starts with it)."""

    kind: str
    text: str
    negated: bool
    position: int


@dataclass(frozen=True)
class Filter:
    key: str  # from, mentions, in, has, is, before, after, during
    value: str  # a name, a has/is value, or an ISO date
    negated: bool
    position: int  # of the value

    @property
    def day(self) -> date:
        return date.fromisoformat(self.value)


@dataclass(frozen=True)
class Query:
    terms: list[Term] = field(default_factory=list)
    filters: list[Filter] = field(default_factory=list)

    def filters_of(self, key: str, *, negated: bool = False) -> list[Filter]:
        return [f for f in self.filters if f.key == key and f.negated == negated]


def invalid(message: str, position: int) -> BadRequest:
    return BadRequest(
        f"{message} (at position {position})",
        code="INVALID_QUERY",
        field="q",
        extra={"position": position},
    )


def is_word(text: str) -> bool:
    """Letters and digits only (any script but CJK, which has no spaces between words)."""
    return text.isalnum() and not CJK.search(text) and not SYMBOL.search(text)


def _quoted(q: str, start: int) -> tuple[str, int]:
    """The text between the quote at `start` and the next one; and where it ends."""
    end = q.find('"', start + 1)
    if end < 0:
        raise invalid("this quote is never closed", start)
    return q[start + 1 : end], end + 1


def _token_end(q: str, i: int) -> int:
    while i < len(q) and not q[i].isspace():
        i += 1
    return i


def parse(q: str) -> Query:
    """The query `q` says.

    Raises: BadRequest (INVALID_QUERY, with the position of the problem)."""
    if len(q) > MAX_QUERY_CHARS:
        raise invalid(f"a query has at most {MAX_QUERY_CHARS} characters", MAX_QUERY_CHARS)
    if "\x00" in q:  # (PostgreSQL text cannot hold it)
        raise invalid("a query cannot contain the NUL character", q.index("\x00"))
    out = Query()
    i = 0
    while i < len(q):
        if q[i].isspace():
            i += 1
            continue
        start = i
        # (`--dry-run` is a command-line flag to find, not an exclusion of `-dry-run`)
        negated = q[i] == "-" and i + 1 < len(q) and not q[i + 1].isspace() and q[i + 1] != "-"
        if negated:
            i += 1
        i = _clause(q, i, negated, out)
        if len(out.terms) + len(out.filters) > MAX_CLAUSES:
            raise invalid(f"a query has at most {MAX_CLAUSES} terms and filters", start)
    if not out.terms and not out.filters:
        raise invalid("the query is empty", 0)
    return out


def _clause(q: str, i: int, negated: bool, out: Query) -> int:
    """Read the term or filter at `i` into `out`; where it ends."""
    if q[i] == '"':
        text, end = _quoted(q, i)
        text = " ".join(text.split())
        if not text:
            raise invalid("an empty phrase", i)
        out.terms.append(Term("literal", text, negated, i))
        return end
    end = _token_end(q, i)
    token = q[i:end]
    key, colon, rest = token.partition(":")
    if colon and key.lower() in FILTERS:
        value_at = i + len(key) + 1
        if rest.startswith('"'):
            rest, end = _quoted(q, value_at)
        out.filters.append(_filter(key.lower(), rest, negated, value_at))
        return end
    if len(token) > 1 and token.endswith("*"):
        stem = token.rstrip("*")
        if len(stem) < MIN_PREFIX_CHARS:
            raise invalid(f"a prefix needs at least {MIN_PREFIX_CHARS} characters", i)
        out.terms.append(Term("prefix", stem, negated, i))
        return end
    if token == "-":  # noqa: S105 (a lone minus, not a password)
        raise invalid("nothing to exclude after '-'", i)
    out.terms.append(Term("word" if is_word(token) else "literal", token, negated, i))
    return end


def _filter(key: str, value: str, negated: bool, at: int) -> Filter:
    value = value.strip()
    if not value:
        raise invalid(f"{key}: needs a value", at)
    if len(value) > MAX_VALUE_CHARS:
        raise invalid(f"a filter's value has at most {MAX_VALUE_CHARS} characters", at)
    if key in {"from", "mentions"}:
        value = value.removeprefix("@")
    elif key == "in":
        value = value.removeprefix("#")
    elif key == "has":
        value = value.lower()
        if value not in HAS_VALUES:
            raise invalid(f"has: is one of {', '.join(sorted(HAS_VALUES))}", at)
    elif key == "is":
        value = value.lower()
        if value not in IS_VALUES:
            raise invalid("is: is pinned", at)
    else:  # a date
        if negated:
            raise invalid(f"{key}: cannot be negated", at - len(key) - 2)
        try:
            if (
                not DATE.fullmatch(value)
                or not MIN_YEAR <= date.fromisoformat(value).year <= MAX_YEAR
            ):
                raise ValueError(value)
        except ValueError:
            raise invalid(
                f"{key}: takes a date as YYYY-MM-DD, years {MIN_YEAR} to {MAX_YEAR}", at
            ) from None
    if not value:
        raise invalid(f"{key}: needs a value", at)
    return Filter(key, value, negated, at)
