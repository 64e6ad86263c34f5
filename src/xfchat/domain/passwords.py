"""Password hashing: argon2id (argon2-cffi's RFC 9106 low-memory profile by default).

Hashing takes tens of milliseconds of CPU on purpose, so the async wrappers run it in a
worker thread instead of blocking the event loop.
"""

from __future__ import annotations

import asyncio
from functools import lru_cache

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


@lru_cache(maxsize=4)
def hasher(time_cost: int = 3, memory_kib: int = 65536, parallelism: int = 4) -> PasswordHasher:
    return PasswordHasher(
        time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=Type.ID
    )


def hash_password(password: str, ph: PasswordHasher | None = None) -> str:
    return (ph or hasher()).hash(password)


def verify_password(password_hash: str, password: str, ph: PasswordHasher | None = None) -> bool:
    try:
        return bool((ph or hasher()).verify(password_hash, password))
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def hash_password_async(password: str, ph: PasswordHasher | None = None) -> str:
    return await asyncio.to_thread(hash_password, password, ph)


async def verify_password_async(
    password_hash: str, password: str, ph: PasswordHasher | None = None
) -> bool:
    return await asyncio.to_thread(verify_password, password_hash, password, ph)
