"""What an update changed, for the audit log: `{key, old_value, new_value}` of each field
whose value differs (Discord's audit-log `changes`), so that a moderator sees what was
replaced and can put it back.

The old values are read by the writer under the same lock as the change (the server's
row, `access_server(..., lock=True)`), so each is the value the change replaced. Only
fields the API shows anyway are passed in: never a secret."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any
from uuid import UUID


def plain(value: Any) -> Any:
    """A value as JSON shows it: ids and times as text (lists of them too)."""
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def field_diff(
    before: Mapping[str, Any], after: Mapping[str, Any], keys: Iterable[str] | None = None
) -> list[dict[str, Any]]:
    """`{key, old_value, new_value}` of each of `keys` (else of `after`'s) whose value
    differs, in that order."""
    return [
        {"key": k, "old_value": plain(before.get(k)), "new_value": plain(after.get(k))}
        for k in (after if keys is None else keys)
        if plain(before.get(k)) != plain(after.get(k))
    ]


def row_diff(before: object, after: object, keys: Iterable[str]) -> list[dict[str, Any]]:
    """field_diff of two rows' attributes `keys`."""
    names = list(keys)
    return field_diff(
        {k: getattr(before, k) for k in names}, {k: getattr(after, k) for k in names}, names
    )
