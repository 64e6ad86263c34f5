"""Password hashing: argon2id (argon2-cffi's RFC 9106 low-memory profile by default).

Hashing takes tens of milliseconds of CPU (and `memory_kib` of memory) on purpose, so the
async wrappers run it in threads of its own, one per core, instead of blocking the event
loop or the default executor that everything else runs in threads uses. At most
WAITING_LIMIT checks wait for one of those threads in a process; past that a request is
refused at once (503 PASSWORD_BUSY, with Retry-After) rather than queued without bound:
a flood of logins from many addresses (each within its own rate limit) can make the
server hold only so much.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import TypeVar

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from xfchat.errors import ServiceUnavailable

T = TypeVar("T")
WAITING_LIMIT = 128
_POOL = ThreadPoolExecutor(max_workers=os.cpu_count() or 2, thread_name_prefix="xfchat-argon2")
_waiting = 0


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


async def _in_pool(work: Callable[[], T]) -> T:
    global _waiting
    if _waiting >= WAITING_LIMIT:
        raise ServiceUnavailable(
            "the server is checking too many passwords at once; retry",
            code="PASSWORD_BUSY",
            retry_after=1,
        )
    _waiting += 1
    try:
        return await asyncio.get_running_loop().run_in_executor(_POOL, work)
    finally:
        _waiting -= 1


async def hash_password_async(password: str, ph: PasswordHasher | None = None) -> str:
    return await _in_pool(lambda: hash_password(password, ph))


async def verify_password_async(
    password_hash: str, password: str, ph: PasswordHasher | None = None
) -> bool:
    return await _in_pool(lambda: verify_password(password_hash, password, ph))
