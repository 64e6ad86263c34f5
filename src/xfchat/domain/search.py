"""Message search over everything the searcher may read (README, "Search").

The channels searched are those whose history the actor may read, through the one
access seam (`visible_channels`, `access_channel`, `access_server`); the index is read
only for them, so nothing else is returned, counted or quoted. Results come from the
newest SEARCH_WINDOW matches: ranked by relevance (the default) or newest first, with a
capped total and an opaque cursor. Every search runs under a time budget.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import asyncpg

from xfchat.db.queries import messages as messages_q
from xfchat.db.queries import search as q
from xfchat.domain.access import (
    MESSAGE_KINDS,
    VisibleChannel,
    access_channel,
    access_server,
    visible_channels,
)
from xfchat.domain.accounts import Actor
from xfchat.domain.messages import view_json
from xfchat.domain.permissions import Permission
from xfchat.domain.search_cursor import Cursor, read_cursor, write_cursor
from xfchat.domain.search_snippets import snippet
from xfchat.domain.search_syntax import Query, Term, invalid, parse
from xfchat.errors import BadRequest, XFChatError

SEARCH_WINDOW = 1000  # the newest matches a search ranks and counts
# Walk newest first when the likely matches are this many windows (else the planner).
NEWEST_FIRST_ABOVE = 20
MAX_LIMIT = 100
READ = Permission.VIEW_CHANNEL | Permission.READ_MESSAGE_HISTORY
SORTS = ("relevance", "recent")


class SearchTimeout(XFChatError):
    status = 422
    default_code = "SEARCH_TIMEOUT"


@dataclass(frozen=True)
class Scope:
    server_id: UUID | None = None
    channel_id: UUID | None = None


@dataclass
class SearchPage:
    results: list[dict[str, Any]]
    total: int
    total_capped: bool
    next_cursor: str | None


@dataclass
class Plan:
    """A parsed query made ready for the window."""

    index: list[str] = field(default_factory=list)  # tsquery texts, all must hold
    # for each of them, the lexemes any one of which (`any`) or all of which bound it
    bounds: list[tuple[list[str], list[str]]] = field(default_factory=list)
    checks: list[q.Check] = field(default_factory=list)
    rank: list[str] = field(default_factory=list)  # tsquery texts, any may hold
    highlight: list[q.Check] = field(default_factory=list)  # the positive terms


async def search_messages(
    conn: asyncpg.Connection,
    actor: Actor,
    *,
    text: str,
    scope: Scope,
    sort: str = "relevance",
    cursor: str | None = None,
    limit: int = 25,
    tz: str = "UTC",
    budget_ms: int = 2000,
) -> SearchPage:
    """A page of the live messages matching `text` that the actor may read.

    Raises: BadRequest (INVALID_QUERY with its position, INVALID_PAGE, INVALID_CURSOR,
    INVALID_TIMEZONE); NotFound (SERVER_NOT_FOUND, CHANNEL_NOT_FOUND) for a scope the
    actor cannot read; SearchTimeout (SEARCH_TIMEOUT) past the time budget."""
    if sort not in SORTS:
        raise BadRequest("sort is relevance or recent", code="INVALID_PAGE", field="sort")
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"limit is 1 to {MAX_LIMIT}", code="INVALID_PAGE", field="limit")
    zone = _zone(tz)
    query = parse(text)
    fingerprint = [text, sort, tz, str(scope.server_id), str(scope.channel_id)]
    after = read_cursor(cursor, fingerprint) if cursor else None
    channels = await _readable(conn, actor, scope)
    try:
        async with conn.transaction(readonly=True):
            await q.set_time_budget(conn, milliseconds=budget_ms)
            return await _search(
                conn, actor, query, channels, sort, after, limit, zone, fingerprint
            )
    except asyncpg.QueryCanceledError:
        raise SearchTimeout(
            f"the search took longer than {budget_ms} ms: narrow it with filters, "
            "a channel, or longer words",
        ) from None


def _zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise BadRequest(
            "tz is an IANA time zone such as Europe/Paris", code="INVALID_TIMEZONE", field="tz"
        ) from None


async def _readable(
    conn: asyncpg.Connection, actor: Actor, scope: Scope
) -> dict[UUID, VisibleChannel]:
    """The channels in scope whose history the actor may read."""
    if scope.channel_id is not None:
        found = await access_channel(conn, actor, scope.channel_id, need=READ)
        one = VisibleChannel(
            scope.channel_id, found.channel.kind, found.channel.server_id, found.permissions
        )
        return {scope.channel_id: one} if one.kind in MESSAGE_KINDS else {}
    if scope.server_id is not None:
        await access_server(conn, actor, scope.server_id)
    return {
        c.channel_id: c
        for c in (await visible_channels(conn, actor.user_id)).values()
        if c.kind in MESSAGE_KINDS
        and READ & c.permissions == READ
        and (scope.server_id is None or c.server_id == scope.server_id)
    }


async def _search(
    conn: asyncpg.Connection,
    actor: Actor,
    query: Query,
    channels: dict[UUID, VisibleChannel],
    sort: str,
    after: Cursor | None,
    limit: int,
    zone: ZoneInfo,
    fingerprint: list[str],
) -> SearchPage:
    channel_ids = await _in_channels(conn, query, channels)
    server_ids = {channels[c].server_id for c in channel_ids}
    languages = await q.list_search_languages(
        conn, server_ids=sorted(s for s in server_ids if s is not None)
    )
    if not languages or None in server_ids:
        languages = sorted({*languages, "english"})
    plan = await _plan(conn, query, languages)  # (a bad term is a 400 even with no channels)
    filters = await _filters(conn, query, zone)
    if not channel_ids or filters is None:
        return SearchPage([], 0, False, None)
    index = " & ".join(f"({p})" for p in plan.index) or None
    rank = " | ".join(f"({p})" for p in plan.rank) if sort == "relevance" and plan.rank else None
    await _choose_walk(conn, plan, channel_ids)
    window = SEARCH_WINDOW + 1 if sort == "relevance" or after is None else limit + 2
    upto = None if after is None else after.snapshot if sort == "relevance" else after.last[1:]
    hits = await q.search_window(
        conn,
        channel_ids=channel_ids,
        index_query=index,
        checks=plan.checks,
        filters=filters,
        upto=upto,
        limit=window,
        rank_query=rank,
    )
    if after is not None and sort == "recent":
        hits = [h for h in hits if h.id != after.last[2]]
        total, capped = after.total, after.capped
    else:
        total, capped = min(len(hits), SEARCH_WINDOW), len(hits) > SEARCH_WINDOW
        hits = hits[:SEARCH_WINDOW]
    newest = (hits[0].created_at, hits[0].id) if hits else None
    if sort == "relevance":
        hits.sort(key=lambda h: (h.rank, h.created_at, h.id), reverse=True)
        if after is not None:
            hits = [h for h in hits if (h.rank, h.created_at, h.id) < after.last]
    page, more = hits[:limit], len(hits) > limit
    results = await _results(conn, actor, page, plan)
    next_cursor = None
    if more and page:
        last = page[-1]
        snapshot = after.snapshot if after else newest
        assert snapshot is not None
        next_cursor = write_cursor(
            Cursor(snapshot, (last.rank, last.created_at, last.id), total, capped), fingerprint
        )
    return SearchPage(results, total, capped, next_cursor)


async def _in_channels(
    conn: asyncpg.Connection, query: Query, channels: dict[UUID, VisibleChannel]
) -> list[UUID]:
    """The channels left after in: and -in:."""
    ids = sorted(channels)
    wanted = {f.value.lower() for f in query.filters_of("in")}
    unwanted = {f.value.lower() for f in query.filters_of("in", negated=True)}
    if not wanted and not unwanted:
        return ids
    names = {
        c.id: (c.name or "").lower() for c in await q.list_channel_names(conn, channel_ids=ids)
    }
    return [
        c for c in ids if (not wanted or names.get(c) in wanted) and names.get(c) not in unwanted
    ]


async def _filters(conn: asyncpg.Connection, query: Query, zone: ZoneInfo) -> q.Filters | None:
    """The filters as the window takes them; None when they can match nothing (a from:
    or mentions: naming nobody who exists, or dates that exclude each other)."""
    names = [f.value for f in query.filters if f.key in {"from", "mentions"}]
    ids = await q.list_user_ids_by_name(conn, usernames=names) if names else {}

    def users(key: str, negated: bool) -> list[UUID] | None:
        found = [
            ids[f.value.lower()]
            for f in query.filters_of(key, negated=negated)
            if f.value.lower() in ids
        ]
        return found if query.filters_of(key, negated=negated) else None

    authors, mentions = users("from", False), users("mentions", False)
    if authors == [] or mentions == []:
        return None
    after, before = _dates(query, zone)
    if after is not None and before is not None and after >= before:
        return None
    has: dict[str, bool] = {}
    for f in query.filters:
        if f.key in {"has", "is"}:
            value = "pin" if f.value == "pinned" else f.value
            if has.setdefault(value, not f.negated) != (not f.negated):
                return None  # has:x and -has:x: nothing is both
    pinned = has.get("pin")
    return q.Filters(
        authors=authors,
        not_authors=users("from", True),
        mentions=mentions,
        not_mentions=users("mentions", True),
        after=after,
        before=before,
        has_file=has.get("file"),
        has_image=has.get("image"),
        has_reaction=has.get("reaction"),
        pinned=pinned,
    )


def _dates(query: Query, zone: ZoneInfo) -> tuple[datetime | None, datetime | None]:
    """after:D is from the day after D, before:D until D, during:D that day (in `zone`)."""

    def start(day: date) -> datetime:
        return datetime.combine(day, time(), zone)

    lows, highs = [], []
    for f in query.filters:
        if f.key == "after":
            lows.append(start(f.day + timedelta(days=1)))
        elif f.key == "before":
            highs.append(start(f.day))
        elif f.key == "during":
            lows.append(start(f.day))
            highs.append(start(f.day + timedelta(days=1)))
    return (max(lows) if lows else None, min(highs) if highs else None)


def _quote(lexeme: str) -> str:
    return "'" + lexeme.replace("\\", "\\\\").replace("'", "''") + "'"


async def _plan(conn: asyncpg.Connection, query: Query, languages: list[str]) -> Plan:
    plan = Plan()
    compiled = await q.compile_terms(conn, terms=[t.text for t in query.terms], languages=languages)
    for term, c in zip(query.terms, compiled, strict=True):
        check, index = _term_plan(term, c)
        plan.checks.append(check)
        if not term.negated:
            if index is None:
                raise invalid("this term needs at least 3 characters or a word", term.position)
            plan.index.append(index)
            plan.bounds.append(_bounds(term, c))
            plan.highlight.append(check)
            if c.words:
                plan.rank.append(c.words)
    for f in query.filters:
        if f.key == "has" and f.value == "link":
            plan.checks.append(q.Check("marker", "", "' has:link'", f.negated))
            if not f.negated:
                plan.index.append("' has:link'")
                plan.bounds.append(([], [" has:link"]))
    return plan


def _term_plan(term: Term, c: q.CompiledTerm) -> tuple[q.Check, str | None]:
    """How a term is confirmed, and the index query that finds its candidates."""
    if term.kind == "prefix":
        if len(c.folded) < 2 or " " in c.folded:
            raise invalid("a prefix is one word of at least 2 characters", term.position)
        prefix = _quote(c.folded) + ":*"
        return q.Check("prefix", c.folded, prefix, term.negated), prefix
    if term.kind == "word" and c.words:
        if c.grams:
            check = q.Check("word", c.folded, c.words, term.negated)
            return check, f"({c.words}) | ({c.grams})"
        return q.Check("whole", c.folded, c.words, term.negated), c.words
    return q.Check("literal", c.folded, "", term.negated), c.grams or c.plain


def _lexemes(tsquery: str | None) -> list[str]:
    """The lexemes of tsquery text as compile_terms writes it."""
    return [m.replace("''", "'").replace("\\\\", "\\") for m in _LEXEME.findall(tsquery or "")]


_LEXEME = re.compile(r"'((?:[^']|'')*)'")


def _bounds(term: Term, c: q.CompiledTerm) -> tuple[list[str], list[str]]:
    """(words, grams): a message matching the term holds one of `words` or, where the
    term has grams, all of `grams` (so the rarest gram bounds how common it is)."""
    grams = _lexemes(c.grams)
    if term.kind == "word" and c.words:
        return _lexemes(c.words), grams
    if term.kind == "prefix" or not grams:
        return ([], grams) if grams else (["(any)"], [])
    return [], grams


async def _choose_walk(conn: asyncpg.Connection, plan: Plan, channel_ids: list[UUID]) -> None:
    """Walk the newest messages first when the query likely matches more than its
    window many times over among the channels searched; else leave it to the planner
    (the index finds the few matches, or narrows them with the channels')."""
    if not plan.bounds:
        return
    wanted = sorted({lx for words, grams in plan.bounds for lx in words + grams})
    estimate = await q.get_walk_estimate(conn, lexemes=wanted, channel_ids=channel_ids)
    listed, least = estimate.shares, estimate.least
    rare = least / 2  # a lexeme not listed is rarer than any listed (as the planner says)
    share = 1.0
    for words, grams in plan.bounds:
        word_share = sum(1.0 if w == "(any)" else listed.get(w, rare) for w in words)
        gram_share = min((listed.get(g, rare) for g in grams), default=0.0)
        share *= min(1.0, word_share + gram_share)
    if estimate.rows * share > NEWEST_FIRST_ABOVE * SEARCH_WINDOW:
        await q.prefer_newest_first(conn)


async def _results(
    conn: asyncpg.Connection, actor: Actor, page: list[q.Hit], plan: Plan
) -> list[dict[str, Any]]:
    if not page:
        return []
    ids = [h.id for h in page]
    rows = {
        r.id: r for r in await messages_q.list_message_views(conn, viewer=actor.user_id, ids=ids)
    }
    marked: dict[UUID, str] = {}
    if plan.rank:  # the words of every positive term (a word term's check is its words)
        query = " | ".join(f"({w})" for w in plan.rank)
        marked = {
            h.id: h.marked for h in await q.list_word_highlights(conn, message_ids=ids, query=query)
        }
    return [
        {
            "message": view_json(rows[i]),
            "snippet": snippet(rows[i].content, plan.highlight, marked.get(i)),
        }
        for i in ids
        if i in rows
    ]
