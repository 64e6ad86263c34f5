"""The parameters of a header of a `multipart/form-data` body (a part's
Content-Disposition and Content-Type, the request's Content-Type), read strictly: one
reading for every header, so that no part is taken for another field or stored under
another name than the one its header gives.

`value *( ";" name "=" (token / quoted-string) )`, names case-insensitive. A quoted
string ends at the next `"`, and a backslash is a backslash: the HTML standard's
encoding, which browsers, curl and httpx send (a `"` in a name goes as `%22`, read back
by attachments.safe_filename, and a backslash as itself; RFC 2616's `\\"` escape,
which the lenient reader took, would read a browser's file `a\\` as an unclosed string).
Refused (400 INVALID_FORM), where the lenient reading misread them: a quoted string with
no closing quote (`name="files[0]; filename="a.png` was a field named
`"files[0]; filename="a.png`; `filename="a.png` a file named `"a.png`), anything but
`;` after one (`filename="a\\"b.png"`), a parameter without `=` or without a name, a
parameter given twice (the lenient reader took the last `filename` but the first
`filename*`), and RFC 2231's continuations (`filename*0`, `filename*0*`: the file lost
its name and became a field). `filename*` is RFC 8187's, read by extended_filename
(a `filename*=` inside another parameter's quoted value is that value, no longer a
name the file was stored under).
"""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

from xfchat.errors import BadRequest

WHITESPACE = b" \t"
CONTINUATION = re.compile(rb"\*\d+\*?$")
NOT_A_NAME = re.compile(rb'[\s"]')


def invalid_form(message: str) -> BadRequest:
    return BadRequest(message, code="INVALID_FORM")


def parameters(header: bytes, what: str) -> tuple[bytes, dict[bytes, bytes]]:
    """The header's value (lower case) and its parameters (names in lower case, quoted
    strings unquoted). `what` names the header in the error.

    Raises: BadRequest (INVALID_FORM: see the module's docstring)."""
    value, _, rest = header.partition(b";")
    found: dict[bytes, bytes] = {}
    pos = 0
    while pos < len(rest):
        semicolon = rest.find(b";", pos)
        segment_end = len(rest) if semicolon < 0 else semicolon
        equals = rest.find(b"=", pos, segment_end)
        if equals < 0:
            if rest[pos:segment_end].strip(WHITESPACE):
                raise invalid_form(f"the {what} has a parameter without a value")
            pos = segment_end + 1  # (an empty one: "a;; b=c", "a;")
            continue
        key = rest[pos:equals].strip(WHITESPACE).lower()
        if not key or NOT_A_NAME.search(key):
            raise invalid_form(f"the {what} has a parameter without a name")
        if CONTINUATION.search(key):
            raise invalid_form(
                f"the {what} continues a parameter (RFC 2231's {_text(key)[:32]}), "
                "which is not supported: send filename* whole (RFC 8187)"
            )
        if key in found:
            raise invalid_form(f"the {what} gives {_text(key)[:32]} twice")
        found[key], pos = _value(rest, equals + 1, what)
    return value.strip(WHITESPACE).lower(), found


def _value(rest: bytes, pos: int, what: str) -> tuple[bytes, int]:
    """A parameter's value starting at `pos` (after its "="), and where the next one
    starts."""
    while pos < len(rest) and rest[pos] in WHITESPACE:
        pos += 1
    if pos >= len(rest) or rest[pos] != ord('"'):  # a token: up to the next ";"
        end = rest.find(b";", pos)
        end = len(rest) if end < 0 else end
        return rest[pos:end].strip(WHITESPACE), end + 1
    close = rest.find(b'"', pos + 1)
    if close < 0:
        raise invalid_form(f"the {what} has a quoted string with no closing quote")
    value, pos = rest[pos + 1 : close], close
    after = rest[pos + 1 :]
    end = after.find(b";")
    if after[: end if end >= 0 else None].strip(WHITESPACE):
        raise invalid_form(f"the {what} has text after a quoted string")
    return value, (pos + 1 + end + 1) if end >= 0 else len(rest)


def extended_filename(value: bytes) -> str:
    """A `filename*` (RFC 8187: charset'language'%-encoded), which a client may send
    alone or beside `filename` (it then wins, RFC 6266). UTF-8 or ISO-8859-1; in any
    other charset the bytes are read as UTF-8, U+FFFD for what is not (as a `filename`
    that is not UTF-8)."""
    charset, _, rest = value.partition(b"'")
    raw = unquote_to_bytes(rest.partition(b"'")[2])
    # Only the two charsets RFC 8187 asks for, never a codec named by the client (idna,
    # punycode, undefined... raise instead of replacing): any other reads as UTF-8.
    if charset.strip().lower() == b"iso-8859-1":
        return raw.decode("latin-1")
    return _text(raw)


def _text(value: bytes) -> str:
    return value.decode("utf-8", errors="replace")
