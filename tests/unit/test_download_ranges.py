"""The one byte range a download's Range header asks for (api/downloads.py)."""

from __future__ import annotations

from xfchat.api.downloads import requested_range
from xfchat.domain.files import ByteRange

FAR = "9" * 26


def test_a_position_past_any_files_end_is_read_as_such() -> None:
    """A hostile client's find: a first position of more than 19 digits was a malformed
    header, so the whole file (200), where `bytes=5-` of a 5-byte file is 416."""
    assert requested_range(f"bytes={FAR}-", 5) == "unsatisfiable"
    assert requested_range("bytes=5-", 5) == "unsatisfiable"
    assert requested_range(f"bytes=1-{FAR}", 5) == ByteRange(1, 5)
    assert requested_range(f"bytes=-{FAR}", 5) == ByteRange(0, 5)
    assert requested_range("bytes=1-3", 5) == ByteRange(1, 4)
    assert requested_range("bytes=-0", 5) == "unsatisfiable"
    for ignored in ("bytes=-", "bytes=3-1", "bytes=0-1,3-4", "items=0-1", "bytes=a-"):
        assert requested_range(ignored, 5) is None, ignored
