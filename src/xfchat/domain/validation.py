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
    # sentence): "_admin" and "admin." are admin, "a." is one character. Judged by its
    # look, as a taken name is (`claim_username_look`): `adrnin`, `r00t` and `systern`
    # read as admin, root and system, and no account holds those to refuse them.
    core = value.strip("._")
    look = username_look(core)
    reserved = look in _RESERVED_LOOKS or look.startswith(_DELETED_LOOK)
    if ".." in value or len(core) < 2 or reserved:
        raise BadRequest("that username is not allowed", code="INVALID_USERNAME", field="username")
    return value


# What the browser client's sans-serif faces (system-ui, Segoe UI, Roboto, Noto Sans,
# San Francisco, at 15 px) draw alike in a username's alphabet, case aside (names are
# unique ignoring case already, so a look-alike of any case of a name is that name's):
# - a capital I and a lower l: one vertical stroke each, of one height;
# - a zero and a capital O (so the o it is in lower case): no slash nor dot in these
#   faces' zero, only a slightly narrower oval, told apart only side by side;
# - rn and m, vv and w: the letters' strokes touch at that size (the "rnicrosoft" and
#   "vvikipedia" of phishing), three stems and an arch, two V's a W. Folded toward
#   the pair (m as rn, w as vv), so that every mix of them is one look: `rnm`, `mrn`
#   and `mm` alike.
# Not folded, as a reader tells them apart: a 1 (a flag at its top, a foot in some
# faces) from l and I; a 5 (a flat top and a corner) from S; a lower i (its dot), nn
# (four stems) and cl (an open c beside a taller l) from l, m and d.
_LOOK_LETTERS = str.maketrans("I0", "lo")


def username_look(value: str) -> str:
    """A username as a sans-serif face draws it (the browser client's): case aside, a
    capital I as the l and a zero as the O it looks like, an m as rn and a w as vv (see
    above). Two names with one look are one name: `aIice` would pass for `alice`, `b0b`
    (as B0B) for `bob`, `rnallory` for `mallory`, `vvendy` for `wendy`. Usernames are
    ASCII, so this is the same in every locale, and matches users_q.USERNAME_LOOK, the
    index's expression (migration 0063). (Discord went further for I and l and made
    usernames lowercase; names stored as given here keep their case.)"""
    return value.translate(_LOOK_LETTERS).lower().replace("m", "rn").replace("w", "vv")


# The reserved names and the placeholder's prefix as they look (what `username` refuses).
_RESERVED_LOOKS = frozenset(username_look(name) for name in RESERVED_USERNAMES)
_DELETED_LOOK = username_look(DELETED_USERNAME_PREFIX)


def email(value: str) -> str:
    # No control or format character (Cc, Cf: a C0 control, ESC, U+200B, the bidi
    # controls, the BOM), which no mailbox's address holds (RFC 5321, RFC 6531): each
    # made an address that reads as another's, `alice@example.com` and a U+200B a
    # second account beside alice's, its address shown to its owner and in an export
    # as hers.
    value = value.strip()
    hidden = any(unicodedata.category(c) in ("Cc", "Cf") for c in value)
    if len(value) > 254 or hidden or not EMAIL_RE.fullmatch(value):
        raise BadRequest("that is not a valid email address", code="INVALID_EMAIL", field="email")
    return value


def email_key(value: str) -> str:
    """An email as uniqueness and login compare it: canonically equivalent forms (NFC,
    NFD) and every script's case (casefold: É and é, the three sigmas) alike, whatever the
    database's locale. (NFD before the fold, NFC after it: Unicode's canonical caseless
    match.)"""
    return caseless(value.strip())


def caseless(value: str) -> str:
    """A text as a caseless comparison sees it: canonically equivalent forms alike, and
    every script's case (NFD before the fold, NFC after it: Unicode's canonical caseless
    match)."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFD", value).casefold())


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
# selectors, and the code points Unicode keeps unassigned as default ignorable, which
# renderers draw as nothing: U+2065, U+FFF0-U+FFF8, plane 14 around the tags) and the
# braille blank.
INVISIBLE = frozenset(
    {
        0x034F,
        0x115F,
        0x1160,
        0x17B4,
        0x17B5,
        0x2065,
        0x2800,
        0x3164,
        0xFFA0,
        *range(0x180B, 0x1810),
        *range(0xFE00, 0xFE10),
        *range(0xFFF0, 0xFFF9),
        *range(0xE0000, 0xE1000),
    }
)


def looks_empty(text: str) -> bool:
    """Whether the text shows nothing (it is kept as given otherwise: a family emoji
    holds U+200D, a right-to-left name its marks)."""
    return all(
        c.isspace() or ord(c) in INVISIBLE or unicodedata.category(c) in ("Cc", "Cf") for c in text
    )


# Unicode's stream-safe limit (UAX #15): no real text needs more combining marks in a
# row. PostgreSQL puts a run of marks in canonical order (normalize(), behind search's
# xf_nfc) in time quadratic in its length: 4,000 marks of two classes took it half a
# second for every send, and as long again for every search that read the message.
MAX_MARK_RUN = 30


def _decomposes_to_marks(c: str) -> bool:
    """Whether `c`'s NFD holds a combining mark: a mark itself, or a letter such as é,
    or U+0F73 (of class 0, two marks decomposed)."""
    return bool(unicodedata.combining(c)) or (
        bool(unicodedata.decomposition(c))
        and any(unicodedata.combining(p) for p in unicodedata.normalize("NFD", c))
    )


@lru_cache(maxsize=1)
def _marked_runs() -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
    """Runs of characters that decompose to combining marks: of the first plane's
    alone, and of them all; and the span of the other planes that holds some. Built once
    a process, on its first text that is not ASCII (about 70 ms on an idle core: each
    code point below U+30000, past which Unicode has none; none is below U+00C0).
    The app builds it as it starts (`prepare`), before it serves anyone."""
    ranges: list[list[int]] = []
    for i in range(0xC0, 0x30000):
        if _decomposes_to_marks(chr(i)):
            if ranges and ranges[-1][1] == i - 1:
                ranges[-1][1] = i
            else:
                ranges.append([i, i])

    def members(low: int, high: int) -> str:
        return "".join(
            re.escape(chr(a)) + (f"-{re.escape(chr(b))}" if b > a else "")
            for a, b in ranges
            if low <= a <= high
        )

    # A class of the first plane's alone is a table lookup a character; with the others'
    # in it, or beside it, each character is tried range by range, ten times slower: that
    # one is for the texts that hold a character of the span where they lie (U+101FD to
    # U+1E94A: rare scripts, musical and mathematical symbols; not emoji).
    first = members(0, 0xFFFF)
    beyond = [r for r in ranges if r[0] > 0xFFFF]
    return (
        re.compile(f"[{first}]+"),
        re.compile(f"(?:[{first}]|[{members(0x10000, 0x2FFFF)}])+"),
        re.compile(f"[{chr(beyond[0][0])}-{chr(beyond[-1][1])}]"),
    )


def prepare() -> None:
    """Build what the text checks build once a process, so that the first text that is
    not ASCII does not wait for it (the app's start calls it)."""
    _marked_runs()


def longest_mark_run(text: str) -> int:
    """The most combining marks (canonical combining class other than 0) in a row, as
    the text decomposes (NFD, one character at a time: linear, where NFD of the whole
    puts a run in order in quadratic time): U+0F73, itself of class 0, is two marks.
    Only the runs of characters that decompose to marks are looked at one by one (a
    regular expression finds them): an ASCII, CJK or emoji text costs a scan in C."""
    if text.isascii():
        return 0
    first_plane, every_plane, beyond = _marked_runs()
    longest = 0
    for found in (every_plane if beyond.search(text) else first_plane).finditer(text):
        run = 0
        for c in found.group():
            for part in unicodedata.normalize("NFD", c):
                if unicodedata.combining(part):
                    run += 1
                    longest = max(longest, run)
                else:
                    run = 0
    return longest


def check_mark_runs(text: str, *, field: str) -> str:
    """Raises BadRequest (TOO_MANY_COMBINING_MARKS) past MAX_MARK_RUN marks in a row."""
    if (run := longest_mark_run(text)) > MAX_MARK_RUN:
        raise BadRequest(
            f"{field} has {run} combining marks in a row: at most {MAX_MARK_RUN}",
            code="TOO_MANY_COMBINING_MARKS",
            field=field,
        )
    return text


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


# Cyrillic, Greek and Armenian letters and Latin small capitals that read as Latin
# letters (not the whole of Unicode's confusables: enough for the letters of "everyone"
# and "here" and their neighbours).
LOOKALIKES = str.maketrans(
    "аеорсухіјѕһԁԛԝѵүгпАВЕКМНОРСТУХІЈЅҺҮѴαεηικνορτυγχΑΒΕΗΙΚΜΝΟΡΤΥΧΖ"
    "\u0570\u0585\u0578\u057d\u0581"
    "\u1d00\u1d04\u1d05\u1d07\u1d0a\u1d0b\u1d0d\u1d0f\u1d18\u1d1b\u1d1c\u1d20\u1d21\u1d22"
    "\u026a\u0274\u0280\u028f\u029c",
    "aeopcyxijshdqwvyrnABEKMHOPCTYXIJSHYVaenikvoptvyxABEHIKMNOPTYXZhonugACDEJKMOPTUVWZINRYH",
)


def reads_as_everyone(name: str) -> bool:
    """A name that reads as @everyone or @here where a mention shows it ("@" and the
    name): `everyone`, `here` or either after "@", in any case, in full-width forms, with
    characters that show nothing in it, with accents or other combining marks, or with
    Cyrillic or Greek lookalike letters."""
    shown = "".join(c for c in name if c.isspace() or not looks_empty(c))
    decomposed = unicodedata.normalize("NFKD", shown)
    skeleton = "".join(c for c in decomposed if not unicodedata.combining(c))
    return skeleton.translate(LOOKALIKES).casefold().lstrip("@") in ("everyone", "here")


def check_not_everyone(value: str | None, *, field: str, code: str) -> str | None:
    """A name a mention shows (a display name, a nickname, a role's) that would read as
    @everyone or @here (reads_as_everyone) is refused: every mention of it would look
    like the ping only MENTION_EVERYONE may send."""
    if value is not None and reads_as_everyone(value):
        raise BadRequest(
            f"{field} must not read as @everyone or @here (a mention shows it after @)",
            code=code,
            field=field,
        )
    return value


def avatar_url(value: str | None) -> str | None:
    if value is None:
        return None
    if len(value) > MAX_URL or not re.fullmatch(r"https?://[^\s]+", value):
        raise BadRequest(
            "avatar_url must be an http(s) URL", code="INVALID_AVATAR_URL", field="avatar_url"
        )
    return value
