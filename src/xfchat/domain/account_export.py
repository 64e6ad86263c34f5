"""An account's data, for its owner (`xfchat admin export`): what a self-hosting operator
hands over when someone asks for what is kept about them (GDPR's articles 15 and 20),
as Discord's "request all of my data" and Synapse's `export-data` do.

A new directory, readable by the operator only (0700, its files 0600), every file made
through the directory's descriptor (a link put in its place is never followed):
- `account.json`: the profile (never the password's hash, the two-factor secret or the
  recovery codes: whether two-factor sign-in is on, and how many codes are left),
  sessions (device, address, when), friends and friend requests, blocks, mutes,
  notification settings, servers (nickname, roles, timeout, server mute and deafen), timeouts kept from servers it left,
  its channel overrides, bans of the account, invites and webhooks it made (never a
  webhook's token), images it uploaded,
  conversations and their participants, read positions, the days' usage, its voice
  state and connections now; written last, under another name, and renamed when whole;
- `messages.jsonl`: every live message the account wrote, oldest first, one JSON
  object a line, with its channel, its files and its earlier versions;
- `reactions.jsonl`: every reaction it added;
- `audit_log.jsonl`: the audit-log entries of what it did, and of what was done to it or
  its messages (without who did that: another member's data);
- `files/`: the bytes of those messages' files (`<attachment id>-<its name>`, the name
  made safe for any file system), of its avatar and of the server icons it uploaded.

What others wrote is theirs and is not in it (conversations list who took part, as
Discord's export does). All of it is read in one snapshot (a read-only, repeatable-read
transaction), a page at a time: the export of an account with a million messages holds a
page, not the million.
"""

from __future__ import annotations

import contextlib
import errno
import mimetypes
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import asyncpg
import orjson

from xfchat.db.queries import account_export as q
from xfchat.db.queries import files as files_q
from xfchat.db.queries import users as users_q
from xfchat.domain.admin_accounts import find_account
from xfchat.domain.media import MEDIA_PATH
from xfchat.errors import NotFound

FORMAT = "xfchat-export-1"
PAGE = 500  # messages (or reactions) read at once
UNSAFE = re.compile(r"[^A-Za-z0-9._ -]+")
NAME_CHARS = 100  # of an attachment's own name, in its file's name


@dataclass(frozen=True)
class Exported:
    user: users_q.UserRow
    directory: Path
    messages: int
    reactions: int
    files: int
    file_bytes: int


def safe_name(name: str) -> str:
    """A file name that is one name on any file system: what is not a letter, a digit,
    a dot, a dash, a space or an underscore becomes `_`, no leading dot, at most
    NAME_CHARS characters."""
    return UNSAFE.sub("_", name).lstrip(". ")[:NAME_CHARS] or "file"


PARTIAL = "account.json.partial"  # (renamed to account.json once it is whole)
_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _create(name: str, dir_fd: int) -> int:
    """A new file only the operator reads, in the directory open as `dir_fd` (never one
    that is there, nor a link: O_EXCL)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    return os.open(name, flags, 0o600, dir_fd=dir_fd)


def _new_directory(name: str | Path, dir_fd: int | None = None) -> int:
    """Make a directory only the operator enters and open it: every file of the export is
    then made through this descriptor, so a directory swapped for a link to another place
    after the check, or while the export runs, is never written through. The one opened
    must be the one made (ours, 0700, empty)."""
    os.mkdir(name, 0o700, dir_fd=dir_fd)
    fd = os.open(name, _DIRECTORY, dir_fd=dir_fd)
    made = os.fstat(fd)
    if made.st_uid != os.geteuid() or made.st_mode & 0o077 or os.listdir(fd):
        os.close(fd)
        raise FileExistsError(errno.EEXIST, "replaced while the export began", str(name))
    return fd


class _Export:
    def __init__(self, conn: asyncpg.Connection, directory: int, files: int) -> None:
        self.conn = conn
        self.directory = directory  # (descriptors of the export's directory and files/)
        self.files_directory = files
        self.files = 0
        self.file_bytes = 0

    async def copy_file(self, found: q.ExportedFile, name: str) -> None:
        """A stored file's bytes, chunk by chunk, to files/<name>."""
        with os.fdopen(_create(name, self.files_directory), "wb") as out:
            n = 0
            while n * files_q.CHUNK < found.size_bytes:
                chunk = await files_q.get_chunk(self.conn, file_id=found.file_id, n=n)
                if chunk is None:
                    break
                out.write(chunk)
                self.file_bytes += len(chunk)
                n += 1
        self.files += 1

    async def messages(self, user_id: UUID) -> int:
        count, after = 0, None
        with os.fdopen(_create("messages.jsonl", self.directory), "w", encoding="utf-8") as out:
            while True:
                page = await q.list_message_lines(
                    self.conn, user_id=user_id, after=after, limit=PAGE
                )
                out.writelines(m.line + "\n" for m in page)
                # (the page's files in one statement, not one each)
                files = await q.list_attachment_files(
                    self.conn, attachment_ids=[a for m in page for a in m.attachment_ids]
                )
                for attachment_id, found in files:
                    await self.copy_file(found, f"{attachment_id}-{safe_name(found.filename)}")
                count += len(page)
                if len(page) < PAGE:
                    return count
                after = (page[-1].created_at, page[-1].id)

    async def lines(self, name: str, lines: AsyncIterator[str]) -> int:
        """One JSON text a line, to `name`; how many."""
        count = 0
        with os.fdopen(_create(name, self.directory), "w", encoding="utf-8") as out:
            async for line in lines:
                out.write(line + "\n")
                count += 1
        return count

    async def reactions(self, user_id: UUID) -> int:
        found = q.iter_reaction_lines(self.conn, user_id=user_id, prefetch=PAGE)
        return await self.lines("reactions.jsonl", found)

    async def audit(self, user_id: UUID) -> int:
        found = q.iter_audit_lines(self.conn, user_id=user_id, prefetch=PAGE)
        return await self.lines("audit_log.jsonl", found)

    async def images(self, user_id: UUID, avatar: UUID | None) -> str | None:
        """The bytes of the images it uploaded (the avatar as avatar.<ext>, server icons
        as icon-<id>.<ext>); the avatar's file name."""
        avatar_file = None
        for media_id, found in await q.list_uploaded_images(self.conn, user_id=user_id):
            ext = mimetypes.guess_extension(found.content_type) or ""
            if media_id == avatar:
                avatar_file = "avatar" + ext
                await self.copy_file(found, avatar_file)
            else:
                await self.copy_file(found, f"{safe_name(found.filename)}-{media_id}{ext}")
        return avatar_file


def _avatar_id(avatar_url: str | None) -> UUID | None:
    """The uploaded image an avatar_url names (None for none, or one elsewhere)."""
    if not avatar_url or not avatar_url.startswith(MEDIA_PATH):
        return None
    try:
        return UUID(avatar_url.removeprefix(MEDIA_PATH))
    except ValueError:
        return None


async def export_account(pool: asyncpg.Pool, who: str, directory: Path) -> Exported:
    """Write the account's data (id, username or email; a deleted account by its id) to
    `directory`, which must not exist yet (its parent must). account.json is written
    last: a directory without it is an export that did not end.

    Raises:
        NotFound: USER_NOT_FOUND.
        FileExistsError, FileNotFoundError: the directory is there, or its parent is not.
    """
    async with pool.acquire() as conn:
        user = await find_account(conn, who, deleted_too=True)
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            document = await q.get_account_document(conn, user_id=user.id)
            if document is None:  # (gone since: an account is never deleted whole, but)
                raise NotFound(f"no account {who!r}", code="USER_NOT_FOUND")
            # (an operator's command, which blocks no one on its own event loop)
            top = _new_directory(directory)
            try:
                files = _new_directory("files", top)
                try:
                    export = _Export(conn, top, files)
                    messages = await export.messages(user.id)
                    reactions = await export.reactions(user.id)
                    audit = await export.audit(user.id)
                    account = orjson.loads(document)
                    avatar = await export.images(
                        user.id, _avatar_id(account["profile"]["avatar_url"])
                    )
                finally:
                    os.close(files)
                head = {
                    "format": FORMAT,
                    "exported_at": datetime.now(UTC).isoformat(),
                    "counts": {
                        "messages": messages,
                        "reactions": reactions,
                        "audit_log": audit,
                        "files": export.files,
                    },
                    "avatar_file": avatar,
                }
                _write_last(top, orjson.dumps(head | account, option=orjson.OPT_INDENT_2) + b"\n")
            finally:
                os.close(top)
    return Exported(user, directory, messages, reactions, export.files, export.file_bytes)


def _write_last(directory: int, text: bytes) -> None:
    """account.json, whole or not at all: written under another name, flushed to the
    disk, then renamed (a disk that fills up while it is written leaves no account.json
    that looks like an ended export's)."""
    try:
        with os.fdopen(_create(PARTIAL, directory), "wb") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.rename(PARTIAL, "account.json", src_dir_fd=directory, dst_dir_fd=directory)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(PARTIAL, dir_fd=directory)
        raise
