"""Resume tokens: the position reached in every stream a connection follows.

Like a Matrix sync token, one opaque string says "everything up to here": SSE sends it
as the event id, the gateway as the dispatch sequence. It is `1.` + base64url of
varint pairs (stream id delta, position), sorted by stream id: a few bytes per stream.
A token only chooses positions; which streams a user may follow is decided by the
server on every resume, so a forged token reveals nothing.
"""

from __future__ import annotations

import base64

VERSION = "1."
MAX_TOKEN_LENGTH = 65536


class BadToken(ValueError):
    pass


def _varint(n: int, out: bytearray) -> None:
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return


def encode(positions: dict[int, int]) -> str:
    out = bytearray()
    previous = 0
    for stream_id in sorted(positions):
        _varint(stream_id - previous, out)
        _varint(positions[stream_id], out)
        previous = stream_id
    return VERSION + base64.urlsafe_b64encode(bytes(out)).decode().rstrip("=")


def decode(token: str) -> dict[int, int]:
    """Raises BadToken."""
    if len(token) > MAX_TOKEN_LENGTH or not token.startswith(VERSION):
        raise BadToken("not a resume token")
    body = token[len(VERSION) :]
    try:
        raw = base64.b64decode(body + "=" * (-len(body) % 4), altchars=b"-_", validate=True)
    except (ValueError, TypeError):
        raise BadToken("not a resume token") from None
    numbers: list[int] = []
    value = shift = 0
    for byte in raw:
        value |= (byte & 0x7F) << shift
        shift += 7
        if shift > 63:
            raise BadToken("not a resume token")
        if not byte & 0x80:
            numbers.append(value)
            value = shift = 0
    if shift or len(numbers) % 2:
        raise BadToken("not a resume token")
    positions: dict[int, int] = {}
    stream_id = 0
    for delta, pos in zip(numbers[::2], numbers[1::2], strict=True):
        stream_id += delta
        positions[stream_id] = pos
    return positions
