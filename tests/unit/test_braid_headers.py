"""The Braid `Parents` header is client input: whatever it holds, a 400 INVALID_PARENTS
or at most eight ids, never an error of the parser."""

from __future__ import annotations

import pytest

from xfchat.api.braid import MAX_PARENTS_HEADER, braid_ids
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
