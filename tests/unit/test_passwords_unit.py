"""Password work is bounded: threads of its own, and at most WAITING_LIMIT waiting."""

from __future__ import annotations

import asyncio

import pytest

from xfchat.domain import passwords
from xfchat.errors import ServiceUnavailable

CHEAP = passwords.hasher(time_cost=1, memory_kib=8, parallelism=1)


async def test_checks_past_the_waiting_limit_are_refused_at_once_and_the_rest_go_through(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(passwords, "WAITING_LIMIT", 2)
    stored = await passwords.hash_password_async("a long passphrase", CHEAP)
    tries = [
        passwords.verify_password_async(stored, guess, CHEAP)
        for guess in ("a long passphrase", "wrong", "a long passphrase")
    ]
    first, second, third = await asyncio.gather(*tries, return_exceptions=True)
    assert (first, second) == (True, False)
    assert isinstance(third, ServiceUnavailable)
    assert (third.code, third.retry_after) == ("PASSWORD_BUSY", 1)
    # Nothing is left counted as waiting: the next check goes through.
    assert await passwords.verify_password_async(stored, "a long passphrase", CHEAP)
    assert passwords._waiting == 0
