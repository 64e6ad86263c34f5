"""Response and request bodies shared by several routers."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import AfterValidator, BaseModel, PlainSerializer, WithJsonSchema

from xfchat.db.queries.users import PublicUserRow, UserRow


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

Instant = Annotated[
    datetime,
    PlainSerializer(datetime.isoformat, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
"""Every time a response holds: written as events and the rest of the API write it
(`isoformat()`: "+00:00", where pydantic would write "Z")."""


class UserPublic(BaseModel):
    id: UUID
    username: str
    display_name: str | None
    avatar_url: str | None
    status_text: str | None
    created_at: Instant

    @classmethod
    def of(cls, row: PublicUserRow | UserRow) -> UserPublic:
        return cls(
            id=row.id,
            username=row.username,
            display_name=row.display_name,
            avatar_url=row.avatar_url,
            status_text=row.status_text,
            created_at=row.created_at,
        )


class UserPrivate(UserPublic):
    email: str

    @classmethod
    def of_me(cls, row: UserRow) -> UserPrivate:
        return cls(**UserPublic.of(row).model_dump(), email=row.email)
