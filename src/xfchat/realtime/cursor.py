"""Resume tokens: a place in the event log, bound to one user.

Every event has a place (g, pos): `g` numbers the commits of the whole log in commit
order, `pos` is the event's position in its stream (a commit appends to one stream). A
token says "everything visible up to and including (g, pos) was handed over"; (g, 0)
says "everything before commit g". It is `3.` and the base64url of three varints (g,
pos, and the second it was handed out) and a 6-byte tag, HMAC(secret, user id):
22-28 characters, whatever the user follows. The place's part is encoded once per event
(`TokenCodec.head`); what each subscriber adds is its encoded tag (`TokenCodec.tail`),
one string concatenation.

The second it was handed out tells a token of this log from one of a history that a
restored backup lost: the restored database numbers its next commits as the lost ones
were, but makes them later, so a commit at the token's place made after the token was
handed out is not the one it named (the resume is refused as "unknown": the client
reloads). `2.` tokens (before that second was added) are read without it.

A token chooses a place, never what is delivered: a resume delivers only what the user
may see at each event's place (realtime/follows.py). The tag only catches a token of
another user (or another installation) or a mangled one, so that the client is told
instead of silently resumed from somewhere else.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass
from uuid import UUID

VERSION = "3."
VERSIONS = {"2.": 2, "3.": 3}  # a token's prefix: how many varints precede its tag
TAG_BYTES = 6
MAX_TOKEN_LENGTH = 200
MAX_VARINT_BYTES = 9  # (_read_varints refuses a longer one: past 63 bits)


class BadToken(ValueError):
    """Not a resume token of this user on this server."""


@dataclass(frozen=True, order=True)
class Position:
    g: int
    pos: int


def _varint(n: int, out: bytearray) -> None:
    if n < 0:  # (a negative number would never end: -1 >> 7 is -1)
        raise ValueError("a position is never negative")
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return


def _read_varints(raw: bytes, count: int) -> tuple[list[int], int]:
    numbers: list[int] = []
    value = shift = 0
    index = 0
    while len(numbers) < count:
        if index >= len(raw):
            raise BadToken("not a resume token")
        byte = raw[index]
        index += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if shift > 63:
            raise BadToken("not a resume token")
        if not byte & 0x80:
            numbers.append(value)
            value = shift = 0
    return numbers, index


class TokenCodec:
    def __init__(self, secret: str) -> None:
        self._key = hashlib.sha256(b"xfchat resume tokens\0" + secret.encode()).digest()

    def tag(self, user_id: UUID) -> bytes:
        return hmac.digest(self._key, user_id.bytes, "sha256")[:TAG_BYTES]

    @staticmethod
    def place(position: Position, issued: int | None = None) -> bytes:
        """The token's part that names the place (the same for every subscriber), handed
        out at `issued` (a Unix second; now if not given).

        Padded to whole 3-byte groups (the last varint written with one or two more bytes
        of zeros, which every reader of these tokens accepts), so that its base64 ends
        where the tag's begins: a token is then the place's encoding, made once per event
        (`head`), followed by the user's (`tail`)."""
        out = bytearray()
        _varint(position.g, out)
        _varint(position.pos, out)
        start = len(out)
        _varint(now() if issued is None else issued, out)
        pad = -len(out) % 3
        if pad and len(out) - start + pad <= MAX_VARINT_BYTES:
            out[-1] |= 0x80
            out.extend(b"\x80" * (pad - 1))
            out.append(0)
        return bytes(out)

    @staticmethod
    def seal(place: bytes, tag: bytes) -> str:
        """The token at `place` (TokenCodec.place) for the user whose tag is `tag`."""
        return VERSION + base64.urlsafe_b64encode(place + tag).decode().rstrip("=")

    @staticmethod
    def head(place: bytes) -> str | None:
        """A token's beginning up to the tag, if `place` fills whole 3-byte groups."""
        if len(place) % 3:
            return None
        return VERSION + base64.urlsafe_b64encode(place).decode()

    @staticmethod
    def tail(tag: bytes) -> str:
        """A token's end, after any `head`: the tag's base64 (whole groups, no padding)."""
        return base64.urlsafe_b64encode(tag).decode()

    @staticmethod
    def encode(tag: bytes, position: Position, issued: int | None = None) -> str:
        return TokenCodec.seal(TokenCodec.place(position, issued), tag)

    @staticmethod
    def decode(token: str, tag: bytes) -> Position:
        """Raises BadToken: malformed, or not this user's (or this server's)."""
        return TokenCodec.read(token, tag)[0]

    @staticmethod
    def read(token: str, tag: bytes) -> tuple[Position, int | None]:
        """The place and the second it was handed out (None for a `2.` token).

        Raises BadToken: malformed, or not this user's (or this server's)."""
        count = VERSIONS.get(token[:2])
        if len(token) > MAX_TOKEN_LENGTH or count is None:
            raise BadToken("not a resume token")
        body = token[2:]
        try:
            raw = base64.b64decode(body + "=" * (-len(body) % 4), altchars=b"-_", validate=True)
        except (ValueError, TypeError):
            raise BadToken("not a resume token") from None
        numbers, used = _read_varints(raw, count)
        if raw[used:] != tag:
            raise BadToken("this resume token belongs to another user or server")
        return Position(numbers[0], numbers[1]), numbers[2] if count == 3 else None


def now() -> int:
    """The Unix second a token is handed out at."""
    return int(time.time())
