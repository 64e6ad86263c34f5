"""Password hashing: argon2id (argon2-cffi's RFC 9106 low-memory profile by default).

Hashing takes tens of milliseconds of CPU (and `memory_kib` of memory) on purpose, so the
async wrappers run it in threads of its own, one per core, instead of blocking the event
loop or the default executor that everything else runs in threads uses. The N workers of
one `xfchat serve` share the cores (`share_cores`, in each): with a thread per core each,
they held N times the memory the README promises for the machine. At most
WAITING_LIMIT checks wait for one of those threads in a process; past that a request is
refused at once (503 PASSWORD_BUSY, with Retry-After) rather than queued without bound:
a flood of logins from many addresses (each within its own rate limit) can make the
server hold only so much.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import TypeVar

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from xfchat.errors import ServiceUnavailable

T = TypeVar("T")
WAITING_LIMIT = 128
CORES = os.cpu_count() or 2
THREAD_NAME = "xfchat-argon2"
_waiting = 0


def _name_thread() -> None:
    """The thread's name for the system too (`top -H`, /proc/<pid>/task/*/comm). Only a
    name: where it cannot be set (no glibc), the thread works all the same (an
    initializer that raises would break the pool, and every password check with it)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(15, THREAD_NAME.encode())  # PR_SET_NAME


def _threads(count: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(
        max_workers=count, thread_name_prefix=THREAD_NAME, initializer=_name_thread
    )


_POOL = _threads(CORES)


def share_cores(processes: int) -> None:
    """This process is one of `processes` workers of one `xfchat serve`: its password
    threads are its share of the cores (at least one), not one per core. Call it before
    any password work (a worker, right after it is forked)."""
    global _POOL
    _POOL = _threads(max(1, CORES // processes))


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
