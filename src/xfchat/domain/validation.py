"""Field rules for accounts, shared by registration and profile changes."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from pathlib import Path

from xfchat.errors import BadRequest

USERNAME_RE = re.compile(r"[A-Za-z0-9_.]{2,32}")  # (fullmatch: "$" passes a final newline)
# Names that mean something in mentions or would impersonate the system.
RESERVED_USERNAMES = frozenset({"everyone", "here", "system", "xfchat", "admin", "root"})
# A deleted account's placeholder is `deleted_user_<16 hex>`: nobody takes a name like it.
DELETED_USERNAME_PREFIX = "deleted_user"
EMAIL_RE = re.compile(r"[^@\s]{1,64}@[^@\s]+\.[^@\s.]{2,}")
MIN_PASSWORD, MAX_PASSWORD = 8, 256
MAX_DISPLAY_NAME, MAX_STATUS_TEXT, MAX_URL = 64, 128, 2048


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    text = (Path(__file__).parent / "common_passwords.txt").read_text()
    return frozenset(
        line.strip().lower()
        for line in text.splitlines()
        if line.strip() and not line.startswith("#")
    )


def username(value: str) -> str:
    if not USERNAME_RE.fullmatch(value):
        raise BadRequest(
            "a username is 2-32 characters of letters, digits, '_' and '.'",
            code="INVALID_USERNAME",
            field="username",
        )
    # Leading and trailing dots and underscores read as punctuation ("@admin." in a
    # sentence): "_admin" and "admin." are admin, "a." is one character.
    core = value.strip("._").lower()
    reserved = core in RESERVED_USERNAMES or core.startswith(DELETED_USERNAME_PREFIX)
    if ".." in value or len(core) < 2 or reserved:
        raise BadRequest("that username is not allowed", code="INVALID_USERNAME", field="username")
    return value


def email(value: str) -> str:
    value = value.strip()
    if len(value) > 254 or not EMAIL_RE.fullmatch(value):
        raise BadRequest("that is not a valid email address", code="INVALID_EMAIL", field="email")
    return value


def email_key(value: str) -> str:
    """An email as uniqueness and login compare it: canonically equivalent forms (NFC,
    NFD) and every script's case (casefold: É and é, the three sigmas) alike, whatever the
    database's locale. (NFD before the fold, NFC after it: Unicode's canonical caseless
    match.)"""
    folded = unicodedata.normalize("NFD", value.strip()).casefold()
    return unicodedata.normalize("NFC", folded)


def password(
    value: str,
    *,
    field: str = "password",
    user_name: str | None = None,
    user_email: str | None = None,
) -> str:
    if not MIN_PASSWORD <= len(value) <= MAX_PASSWORD:
        raise BadRequest(
            f"a password is {MIN_PASSWORD} to {MAX_PASSWORD} characters",
            code="INVALID_PASSWORD",
            field=field,
        )
    lowered = value.lower()
    if lowered in common_passwords():
        raise BadRequest(
            "that password is too common; choose another", code="INVALID_PASSWORD", field=field
        )
    if lowered in {(user_name or "").lower(), (user_email or "").lower()}:
        raise BadRequest(
            "the password must not be your username or email", code="INVALID_PASSWORD", field=field
        )
    return value


# Characters that show nothing: besides whitespace, controls and format characters (Cc,
# Cf: zero-width spaces and joiners, bidi controls, the BOM, tags), the other
# default-ignorable ones (Hangul fillers, the combining grapheme joiner, variation
# selectors) and the braille blank.
INVISIBLE = frozenset(
    {
        0x034F,
        0x115F,
        0x1160,
        0x17B4,
        0x17B5,
        0x2800,
        0x3164,
        0xFFA0,
        *range(0x180B, 0x1810),
        *range(0xFE00, 0xFE10),
        *range(0xE0100, 0xE01F0),
    }
)


def looks_empty(text: str) -> bool:
    """Whether the text shows nothing (it is kept as given otherwise: a family emoji
    holds U+200D, a right-to-left name its marks)."""
    return all(
        c.isspace() or ord(c) in INVISIBLE or unicodedata.category(c) in ("Cc", "Cf") for c in text
    )


# A bidi embedding or override (closed by U+202C) or isolate (closed by U+2069), each
# with the character that closes it.
BIDI_OPENERS = {
    **dict.fromkeys("\u202a\u202b\u202d\u202e", "\u202c"),
    **dict.fromkeys("\u2066\u2067\u2068", "\u2069"),
}
BIDI_CLOSERS = frozenset("\u202c\u2069")
LINE_BREAKING = frozenset({"Cc", "Zl", "Zp"})  # (controls: line breaks, tabs, C1; U+2028-9)


def one_line(text: str) -> bool:
    """Whether a name keeps to one line and to itself: no control characters (a line
    break, a tab) or line and paragraph separators, and each bidi embedding, override and
    isolate it opens closed within it, innermost first. An open one, or a stray closer,
    would reorder the text a page shows after the name (the rest of a message that
    mentions it). The marks (U+200E, U+200F, U+061C) open nothing and stay."""
    closers: list[str] = []
    for c in text:
        if c in BIDI_OPENERS:
            closers.append(BIDI_OPENERS[c])
        elif c in BIDI_CLOSERS:
            if not closers or closers.pop() != c:
                return False
        elif unicodedata.category(c) in LINE_BREAKING:
            return False
    return not closers


def check_one_line(value: str, *, field: str, code: str) -> str:
    if not one_line(value):
        raise BadRequest(
            f"{field} is one line: no control characters or line breaks, and every bidi "
            "embedding, override or isolate in it closed",
            code=code,
            field=field,
        )
    return value


def optional_text(value: str | None, *, field: str, limit: int, code: str) -> str | None:
    """A one-line text (a display name, a status text): trimmed, 1 to `limit` characters
    that show something, on one line (one_line)."""
    if value is None:
        return None
    value = value.strip()
    if looks_empty(value) or len(value) > limit:
        raise BadRequest(f"{field} is 1 to {limit} characters", code=code, field=field)
    return check_one_line(value, field=field, code=code)


def avatar_url(value: str | None) -> str | None:
    if value is None:
        return None
    if len(value) > MAX_URL or not re.fullmatch(r"https?://[^\s]+", value):
        raise BadRequest(
            "avatar_url must be an http(s) URL", code="INVALID_AVATAR_URL", field="avatar_url"
        )
    return value
