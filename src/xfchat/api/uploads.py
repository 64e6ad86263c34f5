"""Reading a message with files: `multipart/form-data` with the message as JSON in a
`payload_json` part (the body a JSON send takes; or plain `content`, `nonce` and
`reply_to_id` fields, for curl) and up to 10 file parts (any field name, each with a
filename or a filename*; a preamble before the first boundary is skipped; headers'
parameters read strictly: form_parameters). Read as it arrives, never whole: each file is hashed and spooled (in memory
up to SPOOL bytes, then in an anonymous temporary file that is gone when the request
ends: a buffer, not a store; the bytes are kept only in PostgreSQL). A file over the
limit, one file too many, an oversized field, or more than MAX_PARTS parts (empty file
inputs included) stops the reading at once with a 4xx.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import IO

import orjson
from fastapi import Request
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser
from starlette.requests import ClientDisconnect

from xfchat.api.form_parameters import extended_filename, invalid_form, parameters
from xfchat.domain.attachments import MAX_FILES, Upload
from xfchat.domain.messages_upload import file_too_large
from xfchat.errors import BadRequest

SPOOL = 256 * 1024  # bytes of a file held in memory before it goes to a temporary file
MAX_FIELD = 64 * 1024  # payload_json, or any other field
MAX_PART_HEADERS = 8 * 1024  # the headers of one part, together
MAX_PART_HEADER_LINES = 8  # (a browser sends two: Content-Disposition, Content-Type)
HEAD = 16  # first bytes kept, to tell images by
# Parts of any kind, a browser's empty file inputs included (each holds a spool until the
# request ends): the four fields, ten files and room for empty inputs.
MAX_PARTS = 32
FIELDS = ("payload_json", "content", "nonce", "reply_to_id")
MAX_PREAMBLE = 64 * 1024  # bytes before the first boundary (ignored, as RFC 2046 says)
# The headers of a part that are read: each at most once (as a parameter is).
READ_HEADERS = frozenset({b"content-disposition", b"content-type"})


async def whole_body(request: Request) -> bytes:
    """A body read whole (a JSON send, an avatar or icon). One that ends early (the client
    went away, or its chunked framing broke and the protocol has answered 400 already) is
    a 400, as FastAPI's own routes make it: not an unhandled error, logged with its
    traceback and counted as a 500. (Past the edge's limit, the edge answers 413.)

    Raises: BadRequest (MALFORMED_REQUEST)."""
    try:
        return await request.body()
    except ClientDisconnect:
        raise BadRequest(
            "the body ended early: the client went away", code="MALFORMED_REQUEST"
        ) from None


def is_multipart(request: Request) -> bool:
    return request.headers.get("content-type", "").lower().startswith("multipart/form-data")


@dataclass
class _Part:
    headers: dict[bytes, bytes] = field(default_factory=dict)
    header_bytes: int = 0
    header_lines: int = 0
    name: str = ""
    filename: str | None = None
    content_type: str | None = None
    file: IO[bytes] | None = None
    sha256: hashlib._Hash = field(default_factory=hashlib.sha256)
    size: int = 0
    head: bytes = b""
    data: bytearray = field(default_factory=bytearray)


@dataclass
class Form:
    payload: bytes  # the message as JSON
    uploads: list[Upload]


class _Reader:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.part = _Part()
        self.field_name = b""
        self.field_value = b""
        self.fields: dict[str, str] = {}
        self.uploads: list[Upload] = []
        self.files: list[IO[bytes]] = []
        self.parts = 0
        self.ended = False

    def on_part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise invalid_form(f"a form has at most {MAX_PARTS} parts")
        self.part = _Part()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._count_header(end - start)
        self.field_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._count_header(end - start)
        self.field_value += data[start:end]

    def _count_header(self, n: int) -> None:
        self.part.header_bytes += n
        if self.part.header_bytes > MAX_PART_HEADERS:
            raise invalid_form(f"a part's headers take at most {MAX_PART_HEADERS} bytes")

    def on_header_end(self) -> None:
        self.part.header_lines += 1
        if self.part.header_lines > MAX_PART_HEADER_LINES:
            raise invalid_form(f"a part has at most {MAX_PART_HEADER_LINES} headers")
        name = self.field_name.lower()
        if name in READ_HEADERS and name in self.part.headers:
            # (kept, the last one won: a part given first as `content` and then as a
            # file was stored as the file, where a reader taking the first header, a
            # proxy's, sees the message's text)
            raise invalid_form(f"a part gives its {_text(name)} header twice")
        self.part.headers[name] = self.field_value
        self.field_name, self.field_value = b"", b""

    def on_headers_finished(self) -> None:
        part = self.part
        _, options = parameters(
            part.headers.get(b"content-disposition", b""), "part's Content-Disposition"
        )
        if b"name" not in options:
            raise invalid_form("every part needs a Content-Disposition with a name")
        part.name = _text(options[b"name"])
        filename = None
        if b"filename*" in options:
            filename = extended_filename(options[b"filename*"])
        elif b"filename" in options:
            filename = _text(options[b"filename"])
        if filename is not None:
            if filename:  # (an empty input, no name and no bytes, is no file: see on_part_data)
                self._count_file()
            part.filename = filename
            kind = part.headers.get(b"content-type")
            if kind:
                parameters(kind, "part's Content-Type")  # (malformed: refused, as above)
            part.content_type = _text(kind) if kind else None
            part.file = tempfile.SpooledTemporaryFile(max_size=SPOOL)
            self.files.append(part.file)
        elif part.name not in FIELDS:
            raise invalid_form(f"unknown field {part.name[:64]!r}: use one of {', '.join(FIELDS)}")
        elif part.name in self.fields:
            raise invalid_form(f"the field {part.name} is given twice")

    def _count_file(self) -> None:
        if len(self.uploads) >= MAX_FILES:
            raise BadRequest(
                f"a message carries at most {MAX_FILES} files",
                code="TOO_MANY_FILES",
                field="files",
            )

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        part, chunk = self.part, data[start:end]
        if part.file is None:
            if len(part.data) + len(chunk) > MAX_FIELD:
                raise invalid_form(f"a field is at most {MAX_FIELD} bytes")
            part.data.extend(chunk)
            return
        if part.size == 0 and part.filename == "" and chunk:  # a file after all
            self._count_file()
        part.size += len(chunk)
        if part.size > self.max_bytes:
            raise file_too_large(self.max_bytes)
        if len(part.head) < HEAD:
            part.head += chunk[: HEAD - len(part.head)]
        part.sha256.update(chunk)
        part.file.write(chunk)

    def on_part_end(self) -> None:
        part = self.part
        if part.file is not None and part.filename == "" and part.size == 0:
            return  # a browser's empty file input: no file (its spool closes with the rest)
        if part.file is None:
            try:
                self.fields[part.name] = part.data.decode()
            except UnicodeDecodeError:
                raise invalid_form(f"the field {part.name} is not UTF-8") from None
            return
        self.uploads.append(
            Upload(
                filename=part.filename or "file",
                declared_type=part.content_type,
                file=part.file,
                size=part.size,
                sha256=part.sha256.digest(),
                head=part.head,
            )
        )

    def on_end(self) -> None:
        self.ended = True

    def payload(self) -> bytes:
        if "payload_json" in self.fields:
            if len(self.fields) > 1:
                raise invalid_form("give payload_json or plain fields, not both")
            raw = self.fields["payload_json"].encode()
            try:
                given = orjson.loads(raw)
            except orjson.JSONDecodeError:
                return raw  # (the message model says what is wrong with it)
            if isinstance(given, dict) and "content" not in given and "text" not in given:
                given["content"] = ""  # with files, text is optional
                return orjson.dumps(given)
            return raw
        body: dict[str, str] = {"content": self.fields.get("content", "")}
        body |= {k: v for k, v in self.fields.items() if k in ("nonce", "reply_to_id")}
        return orjson.dumps(body)


def _text(value: bytes) -> str:
    return value.decode("utf-8", errors="replace")


def _first_delimiter(body: bytes | bytearray, boundary: bytes) -> int | None:
    """Where the first boundary delimiter starts, after any preamble (RFC 2046: text
    before it, to be ignored); None if it has not arrived yet."""
    delimiter = b"--" + boundary
    if body.startswith(delimiter):
        return 0
    at = body.find(b"\r\n" + delimiter)
    return None if at < 0 else at + 2


@asynccontextmanager
async def read_form(request: Request, *, max_bytes: int) -> AsyncIterator[Form]:
    """The message and its files, spooled; the spools are gone when the block ends.

    Raises: BadRequest (INVALID_FORM, TOO_MANY_FILES); PayloadTooLarge (FILE_TOO_LARGE)."""
    header = request.headers.get("content-type", "").encode("latin-1")
    boundary = parameters(header, "Content-Type")[1].get(b"boundary")
    if not boundary or len(boundary) > 70:
        raise invalid_form("multipart/form-data needs a boundary of 1 to 70 characters")
    reader = _Reader(max_bytes)
    callbacks = {
        name: getattr(reader, name)
        for name in (
            "on_part_begin",
            "on_part_data",
            "on_part_end",
            "on_header_field",
            "on_header_value",
            "on_header_end",
            "on_headers_finished",
            "on_end",
        )
    }
    try:
        # (the parser's own bounds past ours, so that ours are what a client is told:
        # its defaults refused one header over 4 KiB as "malformed")
        parser = MultipartParser(
            boundary,
            callbacks,  # type: ignore[arg-type]
            max_header_count=2 * MAX_PART_HEADER_LINES,
            max_header_size=2 * MAX_PART_HEADERS,
        )
        preamble: bytearray | None = bytearray()  # (None once the first boundary came)
        try:
            async for chunk in request.stream():
                if preamble is not None:
                    preamble += chunk
                    at = _first_delimiter(preamble, boundary)
                    if at is None:
                        if len(preamble) > MAX_PREAMBLE:
                            raise invalid_form(
                                f"no boundary in the first {MAX_PREAMBLE} bytes of the body"
                            )
                        continue
                    chunk, preamble = bytes(preamble[at:]), None
                parser.write(chunk)
            if preamble:
                parser.write(bytes(preamble))  # (no boundary at all: the parser says so)
            parser.finalize()
        except FormParserError:
            raise invalid_form("the multipart body is malformed") from None
        except ClientDisconnect:  # (past the edge's limit, the edge answers 413 instead)
            raise invalid_form("the body ended early: the client went away") from None
        if not reader.ended:
            raise invalid_form("the multipart body ends before its closing boundary")
        yield Form(reader.payload(), reader.uploads)
    finally:
        for spool in reader.files:
            spool.close()
