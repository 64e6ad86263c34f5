"""category_overrides.merged and crossed against compute_permissions: where `crossed`
finds nothing, the copy gives every possible member (any roles, with or without an
override of their own) exactly what the category and the channel gave them before."""

from __future__ import annotations

import itertools
import random
from uuid import UUID, uuid4

from xfchat.db.queries.access import AccessFacts
from xfchat.db.queries.channels import OverrideRow
from xfchat.domain.category_overrides import crossed, merged
from xfchat.domain.permissions import compute_permissions

BITS = 0b111  # VIEW_CHANNEL and two others: enough for every layering


def facts(base: int, layers: dict[str, tuple[int, int]], *, synced: bool) -> AccessFacts:
    zero = (0, 0)
    cat = {k: layers.get("c" + k, zero) if synced else zero for k in ("e", "r", "m")}
    own = {k: layers.get(k, zero) for k in ("e", "r", "m")}
    return AccessFacts(
        uuid4(), uuid4(), "text", uuid4(), False, False, True, False, base,
        *own["e"], *own["r"], *own["m"], *cat["e"], *cat["r"], *cat["m"], False,
    )  # fmt: skip


def layer(
    rows: list[OverrideRow], everyone: UUID, roles: set[UUID], user: UUID
) -> dict[str, tuple[int, int]]:
    """A member's three layers of these overrides (as the facts query combines them)."""
    out = {"e": (0, 0), "r": (0, 0), "m": (0, 0)}
    for o in rows:
        if o.user_id is not None:
            kind = "m" if o.user_id == user else ""
        else:
            kind = "e" if o.role_id == everyone else "r" if o.role_id in roles else ""
        if kind:
            a, d = out[kind]
            out[kind] = (a | o.allow, d | o.deny)
    return out


def random_rows(
    rng: random.Random, channel: UUID, targets: list[tuple[UUID | None, UUID | None]]
) -> list[OverrideRow]:
    rows = []
    for role_id, user_id in targets:
        if rng.random() < 0.5:
            allow = rng.randrange(BITS + 1)
            deny = rng.randrange(BITS + 1) & ~allow
            rows.append(OverrideRow(channel, role_id, user_id, allow, deny))
    return rows


def test_a_copy_crossed_finds_nothing_in_changes_nobody() -> None:
    rng = random.Random(7)
    everyone, r1, r2, u = uuid4(), uuid4(), uuid4(), uuid4()
    targets = [(everyone, None), (r1, None), (r2, None), (None, u)]
    cat_id, ch = uuid4(), uuid4()
    exact = refused = 0
    for _ in range(3000):
        category = random_rows(rng, cat_id, targets)
        own = random_rows(rng, ch, targets)
        if crossed(category, own, ch, everyone):
            refused += 1
            continue
        exact += 1
        mine = {(o.role_id, o.user_id): o for o in own}
        for (_, role_id, user_id), (allow, deny) in merged(category, own, ch).items():
            mine[(role_id, user_id)] = OverrideRow(ch, role_id, user_id, allow, deny)
        copied = list(mine.values())
        for base, n in itertools.product(range(BITS + 1), range(4)):
            roles = {r for r, on in zip((r1, r2), (n & 1, n & 2), strict=True) if on}
            before = layer(own, everyone, roles, u)
            before |= {"c" + k: v for k, v in layer(category, everyone, roles, u).items()}
            after = layer(copied, everyone, roles, u)
            assert compute_permissions(facts(base, before, synced=True)) == compute_permissions(
                facts(base, after, synced=False)
            ), (category, own, base, roles)
    assert exact > 500 and refused > 500
