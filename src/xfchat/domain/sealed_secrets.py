"""Two-factor secrets sealed at rest (AES-256-GCM).

An authenticator's secret is a password in all but name: whoever reads it from a dump,
a backup or a replica makes valid codes. So `user_totp.secret` holds
`v1.<key id>.<nonce and ciphertext, base64url>`, sealed under the first key of
`XFCHAT_TOTP_KEYS` (`XFCHAT_SECRET` when that is unset) and bound to its user: the
user's id is the associated data, so a sealed secret copied into another user's row
does not open. Every listed key opens what it sealed. A key's id is 32 bits of a hash
of the key derived from it, which names the key without revealing it.

`xfchat serve` seals again, before it serves, every secret stored in the clear (written
before migration 0029) or under a listed key that is not the first (`seal_at_start`),
and a login or an enabling that opens such a secret seals it again too (`seal_again`:
a process on an older list wrote it since). The start is refused, having written
nothing, when a confirmed secret is sealed under a key it was not given or does not open
(a lost key would otherwise lock its users out of two-factor sign-in without a word); a
set-up never confirmed that does not open is dropped. Rows already under the first key
are not read at the start: one altered in the database answers 503
TWO_FACTOR_UNAVAILABLE to authenticator codes at its login, and is logged. Rotating is
in docs/operations.md ("Two-factor keys").
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

import asyncpg
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from xfchat.db.pool import connect
from xfchat.db.queries import two_factor as q
from xfchat.settings import Settings, SettingsError

VERSION = "v1"
NONCE_BYTES = 12
RESEAL_BATCH = 500
_CLEAR = re.compile(r"[A-Z2-7]{32}")  # a secret as pyotp makes it (stored before 0029)
_AAD = b"xfchat totp secret\0"


class SealError(Exception):
    """A stored secret this keyring cannot open: sealed under a key it was not given
    (`missing`), or altered."""

    def __init__(self, message: str, key_id: str, *, missing: bool) -> None:
        super().__init__(message)
        self.key_id = key_id
        self.missing = missing


def _derive(material: str) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"xfchat totp seal v1")
    return hkdf.derive(material.encode())


def _key_id(key: bytes) -> str:
    return hashlib.sha256(b"xfchat key id\0" + key).hexdigest()[:8]


# Settings refuse a secret with whitespace around it, which was once taken as it was:
# what a secret file's final newline sealed still opens under the key without it (and
# `seal_at_start` seals it again under the current key).
LEGACY_ENDINGS = ("\n", "\r\n")


class Keyring:
    """Seals under its first key, opens under any (each given as the text of a setting,
    or that text with a LEGACY_ENDINGS ending)."""

    def __init__(self, materials: Sequence[str]) -> None:
        variants = [m + end for m in materials for end in ("", *LEGACY_ENDINGS)]
        keys = list(dict.fromkeys(_derive(m) for m in variants))
        self.current = _key_id(_derive(materials[0]))
        self.prefix = f"{VERSION}.{self.current}."  # of what it seals
        self._ciphers = {_key_id(k): AESGCM(k) for k in keys}
        if len(self._ciphers) != len(keys):  # (32 bits: as good as never)
            raise SettingsError("XFCHAT_TOTP_KEYS: two keys have the same id: replace one")

    def seal(self, user_id: UUID, secret: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[self.current].encrypt(nonce, secret.encode(), _AAD + user_id.bytes)
        body = base64.urlsafe_b64encode(nonce + sealed).rstrip(b"=").decode()
        return self.prefix + body

    def open(self, user_id: UUID, stored: str) -> str:
        """The secret `stored` holds (a secret stored in the clear is itself).

        Raises: SealError."""
        if _CLEAR.fullmatch(stored):
            return stored
        version, _, rest = stored.partition(".")
        key_id, _, body = rest.partition(".")
        cipher = self._ciphers.get(key_id)
        if version != VERSION or cipher is None:
            raise SealError(f"sealed under key {key_id!r}, not configured", key_id, missing=True)
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            plain = cipher.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], _AAD + user_id.bytes)
        except (binascii.Error, ValueError, InvalidTag) as exc:
            msg = "does not open under its key (altered, or another user's)"
            raise SealError(msg, key_id, missing=False) from exc
        return plain.decode()

    def is_current(self, stored: str) -> bool:
        return stored.startswith(self.prefix)


@functools.lru_cache(maxsize=4)
def _keyring(materials: tuple[str, ...]) -> Keyring:
    return Keyring(materials)


def keyring(settings: Settings) -> Keyring:
    """The keyring XFCHAT_TOTP_KEYS names (XFCHAT_SECRET alone when it is empty)."""
    keys = settings.totp_keys or [settings.secret]
    return _keyring(tuple(k.get_secret_value() for k in keys))


@dataclass(frozen=True)
class Resealed:
    sealed: int  # secrets sealed again (from the clear or an older key)
    dropped: int  # set-ups never confirmed whose secret does not open: deleted
    missing: dict[str, int]  # key id -> confirmed secrets under a key not configured
    broken: int  # confirmed secrets that do not open under their (configured) key


async def reseal(conn: asyncpg.Connection, keys: Keyring, *, write: bool = True) -> Resealed:
    """Seal every stored secret not under the current key again (with `write` False:
    only count), a batch of rows at a time. A row changed meanwhile is left as its writer
    made it (sealed under its keyring's first key; `seal_again` after its next use). A
    set-up never confirmed that does not open is dropped: its user sets up again."""
    after: UUID | None = None
    sealed = dropped = broken = 0
    missing: dict[str, int] = {}
    while rows := await q.list_secrets_to_seal(
        conn, prefix=keys.prefix, after=after, limit=RESEAL_BATCH
    ):
        after = rows[-1].user_id
        changes: list[q.SecretChange] = []
        stale: list[q.StoredSecret] = []
        for row in rows:
            try:
                new = keys.seal(row.user_id, keys.open(row.user_id, row.secret))
                changes.append(q.SecretChange(row.user_id, row.secret, new))
            except SealError as exc:
                if not row.confirmed:
                    stale.append(row)
                elif exc.missing:
                    missing[exc.key_id] = missing.get(exc.key_id, 0) + 1
                else:
                    broken += 1
        if write:
            sealed += await q.update_secrets(conn, changes=changes) if changes else 0
            dropped += await q.delete_pending_secrets(conn, stale=stale) if stale else 0
        else:
            sealed, dropped = sealed + len(changes), dropped + len(stale)
    return Resealed(sealed, dropped, missing, broken)


async def seal_again(
    conn: asyncpg.Connection, keys: Keyring, user_id: UUID, stored: str, secret: str
) -> None:
    """After `stored` opened to `secret`: store it sealed under the current key if it is
    not (a process on an older key list, or before 0029, wrote it since the start)."""
    if not keys.is_current(stored):
        new = keys.seal(user_id, secret)
        await q.update_secrets(conn, changes=[q.SecretChange(user_id, stored, new)])


def _refusals(done: Resealed) -> list[str]:
    problems = [
        f"XFCHAT_TOTP_KEYS: {n} two-factor secret(s) are sealed under key {key_id}, which"
        " is not configured: list the key they were sealed with after the new one (the"
        " earlier XFCHAT_SECRET, if XFCHAT_TOTP_KEYS was empty)"
        for key_id, n in sorted(done.missing.items())
    ]
    if done.broken:
        problems.append(
            f"{done.broken} two-factor secret(s) do not open under their key (altered in"
            " the database): turn those users' authenticators off (docs/operations.md)"
        )
    return problems


async def seal_at_start(settings: Settings, *, write: bool = True) -> str:
    """Seal the stored secrets again before serving (`reseal`); the line to log. What is
    to do is counted first, so a refused start has written nothing.

    Raises: SettingsError, when a confirmed secret is sealed under a key not configured
    or does not open under its key: the start is refused rather than lock its user out."""
    keys = keyring(settings)
    conn = await connect(settings, requests=False)  # (start-up work, not a request)
    try:
        done = await reseal(conn, keys, write=False)
        if write and not _refusals(done) and (done.sealed or done.dropped):
            done = await reseal(conn, keys)
    finally:
        await conn.close()
    if problems := _refusals(done):
        raise SettingsError(*problems)
    verb, dropped = ("sealed again", "dropped") if write else ("to seal again", "to drop")
    line = f"two-factor secrets: {done.sealed} {verb}, under key {keys.current}"
    return line + (f" ({done.dropped} unconfirmed set-ups {dropped})" if done.dropped else "")
