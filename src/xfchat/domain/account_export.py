"""An account's data, for its owner (`xfchat admin export`): what a self-hosting operator
hands over when someone asks for what is kept about them (GDPR's articles 15 and 20),
as Discord's "request all of my data" and Synapse's `export-data` do.

A new directory, readable by the operator only (0700, its files 0600):
- `account.json`: the profile (never the password's hash, the two-factor secret or the
  recovery codes: whether two-factor sign-in is on, and how many codes are left),
  sessions (device, address, when), friends and friend requests, blocks, mutes, servers
  (nickname, roles, timeout), bans of the account, conversations and their
  participants, read positions and the days' usage;
- `messages.jsonl`: every live message the account wrote, oldest first, one JSON
  object a line, with its channel, its files and its earlier versions;
- `reactions.jsonl`: every reaction it added;
- `files/`: the bytes of those messages' files (`<attachment id>-<its name>`, the name
  made safe for any file system) and of its avatar.

What others wrote is theirs and is not in it (conversations list who took part, as
Discord's export does). All of it is read in one snapshot (a read-only, repeatable-read
transaction), a page at a time: the export of an account with a million messages holds a
page, not the million.
"""

from __future__ import annotations

import mimetypes
import os
import re
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


def _create(path: Path) -> int:
    """A new file only the operator reads (never one that is there: O_EXCL)."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)


class _Export:
    def __init__(self, conn: asyncpg.Connection, directory: Path) -> None:
        self.conn = conn
        self.directory = directory
        self.files = 0
        self.file_bytes = 0

    async def copy_file(self, found: q.ExportedFile | None, name: str) -> None:
        """A stored file's bytes, chunk by chunk, to files/<name>."""
        if found is None:
            return
        fd = _create(self.directory / "files" / name)
        with os.fdopen(fd, "wb") as out:
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
        with os.fdopen(_create(self.directory / "messages.jsonl"), "w", encoding="utf-8") as out:
            while True:
                page = await q.list_message_lines(
                    self.conn, user_id=user_id, after=after, limit=PAGE
                )
                for m in page:
                    out.write(m.line + "\n")
                    for attachment_id in m.attachment_ids:
                        found = await q.get_attachment_file(self.conn, attachment_id=attachment_id)
                        if found is not None:
                            name = f"{attachment_id}-{safe_name(found.filename)}"
                            await self.copy_file(found, name)
                count += len(page)
                if len(page) < PAGE:
                    return count
                after = (page[-1].created_at, page[-1].id)

    async def reactions(self, user_id: UUID) -> int:
        count = 0
        with os.fdopen(_create(self.directory / "reactions.jsonl"), "w", encoding="utf-8") as out:
            async for line in q.iter_reaction_lines(self.conn, user_id=user_id, prefetch=PAGE):
                out.write(line + "\n")
                count += 1
        return count

    async def avatar(self, avatar_url: str | None) -> str | None:
        """The avatar's file name under files/, when it is an uploaded image."""
        if not avatar_url or not avatar_url.startswith(MEDIA_PATH):
            return None
        try:
            media_id = UUID(avatar_url.removeprefix(MEDIA_PATH))
        except ValueError:
            return None
        found = await q.get_media_file(self.conn, media_id=media_id)
        if found is None:
            return None
        name = "avatar" + (mimetypes.guess_extension(found.content_type) or "")
        await self.copy_file(found, name)
        return name


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
        export = _Export(conn, directory)
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            document = await q.get_account_document(conn, user_id=user.id)
            if document is None:  # (gone since: an account is never deleted whole, but)
                raise NotFound(f"no account {who!r}", code="USER_NOT_FOUND")
            # (an operator's command, which blocks no one on its own event loop)
            os.mkdir(directory, 0o700)
            os.mkdir(directory / "files", 0o700)
            messages = await export.messages(user.id)
            reactions = await export.reactions(user.id)
            account = orjson.loads(document)
            avatar = await export.avatar(account["profile"]["avatar_url"])
        head = {
            "format": FORMAT,
            "exported_at": datetime.now(UTC).isoformat(),
            "counts": {"messages": messages, "reactions": reactions, "files": export.files},
            "avatar_file": avatar,
        }
        with os.fdopen(_create(directory / "account.json"), "wb") as out:
            out.write(orjson.dumps(head | account, option=orjson.OPT_INDENT_2) + b"\n")
    return Exported(user, directory, messages, reactions, export.files, export.file_bytes)
