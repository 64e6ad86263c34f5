"""The Braid `Parents` header is client input: whatever it holds, a 400 INVALID_PARENTS
or at most eight ids, never an error of the parser."""

from __future__ import annotations

import pytest

from xfchat.api.braid import MAX_PARENTS_HEADER, braid_ids, parse_heartbeats
from xfchat.errors import BadRequest


def test_parents_are_json_strings() -> None:
    assert braid_ids('"a", "b"') == ["a", "b"]


@pytest.mark.parametrize(
    "header",
    [
        "a",  # not JSON
        "1, 2",  # not strings
        ", ".join(['"x"'] * 9),  # more than eight
        "[" * 5000 + "]" * 5000,  # nested deeper than any parser's stack
        '"' + "x" * MAX_PARENTS_HEADER + '"',  # too long to be eight ids
    ],
)
def test_anything_else_is_400_invalid_parents(header: str) -> None:
    with pytest.raises(BadRequest) as refused:
        braid_ids(header)
    assert refused.value.code == "INVALID_PARENTS"


@pytest.mark.parametrize(
    ("header", "seconds"), [("30s", 30.0), ("30", 30.0), ("0.5s", 0.5), (".5", 0.5), (None, None)]
)
def test_heartbeats_are_a_number_of_seconds_and_one_s_at_most(
    header: str | None, seconds: float | None
) -> None:
    assert parse_heartbeats(header) == seconds


@pytest.mark.parametrize("header", ["5ss", "s", "5 s", "1e2", "nan", "inf", "-5", "0x10", "5_0"])
def test_anything_else_is_400_invalid_heartbeats(header: str) -> None:
    """main: `5ss` was 5 s (the value's every trailing "s" stripped), and float() took
    `1e2`, `5_0` and ` nan` too."""
    with pytest.raises(BadRequest) as refused:
        parse_heartbeats(header)
    assert refused.value.code == "INVALID_HEARTBEATS"
