"""Response and request bodies shared by several routers."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    PlainSerializer,
    StrictInt,
    WithJsonSchema,
)

from xfchat.db.queries.users import PublicUserRow, UserRow
from xfchat.errors import BadRequest


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold U+0000, and nothing can store a lone surrogate (JSON
    # lets "\ud800" through); refuse both here, naming the field.
    if "\x00" in value:
        raise ValueError("must not contain the NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text (no lone surrogates)") from None
    return value


Text = Annotated[str, AfterValidator(_no_nul)]
"""Every string a client sends is a Text: valid Unicode without NUL characters."""


def enforced(most: int, least: int = 0, pattern: str | None = None) -> Callable[[Any], None]:
    """A `json_schema_extra` documenting the length the domain enforces, with an error
    code of its own (MESSAGE_TOO_LONG, INVALID_CHANNEL_NAME, ...), where the field's
    `max_length` only caps what is read (names are measured trimmed)."""

    def document(schema: dict[str, Any]) -> None:
        for variant in schema.get("anyOf", [schema]):
            if variant.get("type") == "string":
                variant["maxLength"] = most
                variant.update({"minLength": least} if least else {})
                variant.update({"pattern": pattern} if pattern else {})

    return document


USERNAME = enforced(32, 2, "^[A-Za-z0-9_.]+$")  # (validation.USERNAME_RE)


def omittable(schema: dict[str, Any]) -> None:
    """A `json_schema_extra` for a field that may be left out but is never null (its
    default, None, means "not sent", and the domain refuses a null sent): the schema
    says neither null nor a default."""
    kept = [v for v in schema.pop("anyOf", [schema]) if v.get("type") != "null"]
    if len(kept) == 1:
        schema.update(kept[0])
    schema.pop("default", None)


def _iso_time(value: object) -> object:
    # Pydantic would also take a number, or a string of digits, as seconds since 1970.
    if (
        not isinstance(value, str)
        or not value[:4].isascii()
        or not value[:4].isdigit()
        or value[4:5] != "-"
    ):
        raise ValueError("must be a date and time as ISO 8601 text (2026-11-25T10:00:00Z)")
    return value


IsoTime = Annotated[datetime, BeforeValidator(_iso_time)]
"""A time a client sends in a body: ISO 8601 text only."""

Instant = Annotated[
    datetime,
    PlainSerializer(datetime.isoformat, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
"""Every time a response holds: written as events and the rest of the API write it
(`isoformat()`: "+00:00", where pydantic would write "Z")."""


class UserPublic(BaseModel):
    """What anyone may see of a user: never the email, nor the custom status (presence
    carries it, to those who see the user's presence)."""

    id: UUID
    username: str
    display_name: str | None
    avatar_url: str | None
    created_at: Instant
    deleted: bool  # the account was deleted: `username` is a placeholder, nothing else shown

    @classmethod
    def of(cls, row: PublicUserRow | UserRow) -> UserPublic:
        return cls(
            id=row.id,
            username=row.username,
            display_name=row.display_name,
            avatar_url=row.avatar_url,
            created_at=row.created_at,
            deleted=row.deleted_at is not None,
        )


class UserPrivate(UserPublic):
    """Your own account."""

    email: str
    status_text: str | None  # your custom status (others see it only in your presence)

    @classmethod
    def of_me(cls, row: UserRow) -> UserPrivate:
        return cls(**UserPublic.of(row).model_dump(), email=row.email, status_text=row.status_text)


class PositionIn(BaseModel):
    """One item of a reorder (`PATCH /api/servers/{id}/roles`, `.../channels`)."""

    id: UUID
    position: StrictInt


def positions_of(body: list[PositionIn]) -> dict[UUID, int]:
    """A reorder's positions by id. An id named twice is refused: it took its last
    position, silently, the others dropped.

    Raises: BadRequest (VALIDATION_ERROR)."""
    positions = {p.id: p.position for p in body}
    if len(positions) != len(body):
        raise BadRequest("each id may appear once in a reorder", code="VALIDATION_ERROR")
    return positions
