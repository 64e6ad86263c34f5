"""What a pool that cannot open its connections blames (db/pool.create_pool): a database
that does not answer is said unreachable, as `xfchat serve` says it; one that answered,
a certificate refused or a process out of files keep the pool's own line."""

from __future__ import annotations

import errno
import socket
import ssl

import asyncpg

from xfchat.db.pool import _no_answer


def test_no_answer_is_a_refusal_a_reset_a_timeout_or_a_name_not_found() -> None:
    assert _no_answer(ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"))
    assert _no_answer(ConnectionResetError(errno.ECONNRESET, "reset"))
    assert _no_answer(TimeoutError())
    assert _no_answer(socket.gaierror(socket.EAI_NONAME, "Name or service not known"))
    # (asyncio's connect to a name of two addresses, both refused)
    assert _no_answer(OSError("Multiple exceptions: [Errno 111] ..., [Errno 99] ..."))


def test_an_answer_a_certificate_or_too_many_files_is_not_unreachable() -> None:
    assert not _no_answer(asyncpg.TooManyConnectionsError("sorry, too many clients already"))
    assert not _no_answer(ssl.SSLCertVerificationError(1, "certificate verify failed"))
    assert not _no_answer(OSError(errno.EMFILE, "Too many open files"))
    assert not _no_answer(OSError(errno.ENFILE, "Too many open files in system"))
