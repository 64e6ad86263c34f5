"""The name a file is stored and offered under (domain/attachments.safe_filename)."""

from __future__ import annotations

import pytest

from xfchat.domain.attachments import safe_filename


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        (". .htaccess", "htaccess"),  # (a helper session's find: was ".htaccess")
        (". . .bashrc", "bashrc"),
        ("\u00a0.\u3000.profile", "profile"),
        ("..", "file"),
        ("a/..", "file"),
        ("report .pdf", "report .pdf"),
        ("C:\\x\\y.txt", "y.txt"),
    ],
)
def test_a_stored_name_never_starts_with_a_dot(sent: str, stored: str) -> None:
    assert safe_filename(sent) == stored
