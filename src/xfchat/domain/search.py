"""Message search over everything the searcher may read (README, "Search").

The channels searched are those whose history the actor may read, through the one
access seam (`visible_channels`, `access_channel`, `access_server`); the index is read
only for them, so nothing else is returned, counted or quoted. Results come from the
newest SEARCH_WINDOW matches: ranked by relevance (the default) or newest first, with a
capped total and an opaque cursor. Every search runs under a time budget.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from time import monotonic
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import asyncpg

from xfchat.db.queries import messages as messages_q
from xfchat.db.queries import search as q
from xfchat.db.queries import servers as servers_q
from xfchat.domain import search_text
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
from xfchat.domain.search_cursor import Cursor, channels_digest, read_cursor, write_cursor
from xfchat.domain.search_snippets import snippet
from xfchat.domain.search_syntax import Filter, Query, Term, invalid, parse
from xfchat.domain.validation import caseless
from xfchat.errors import BadRequest, XFChatError

SEARCH_WINDOW = 1000  # the newest matches a search ranks and counts
# Read a span of days at a time when the matches may be more than this many windows.
SLICE_ABOVE = 2
MAX_SLICES = 4  # spans of days read before the rest of history is read at once
# A gram held by more than this share of messages is left out of the index query (it
# narrows little and costs a long read); the term is still confirmed on the text.
COMMON_GRAM = 0.2
GRAMS_PER_TOKEN = 2
# Narrow by channel in the index when the channels searched hold at most this share of
# all messages (1/4), and are at most this many.
SMALL_SHARE = 4
MAX_CHANNEL_MARKS = 64
MAX_LIMIT = 100
# A from: names at most this many members by their nickname (more: 400 INVALID_QUERY),
# so that one name never puts a whole server's members in the window's author filter.
MAX_NAMESAKES = 100
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


@dataclass(frozen=True)
class Need:
    """How the index finds the candidates of one positive term: any of its words, or
    all of its grams; or `text` (a prefix, words too short for grams, a marker), which
    holds all of `all_of`."""

    words: str | None = None  # tsquery text
    all_of: tuple[tuple[str, ...], ...] = ()  # the grams of each token (or what `text` implies)
    text: str | None = None  # tsquery text

    @property
    def any_of(self) -> tuple[str, ...]:
        """The lexemes of `words`."""
        return tuple(_lexemes(self.words))

    def share(self, listed: dict[str, float], unlisted: float) -> float:
        """About the share of messages that are candidates (a lexeme not listed is held
        by at most `unlisted`): its words, in each language, and its grams mostly find
        the same messages, so the most common of them; the grams of one token come
        together, so the rarest of them."""
        if not self.any_of and not self.all_of:
            return 1.0
        tokens = [min(listed.get(g, unlisted) for g in t) for t in self.all_of if t]
        # tokens come together less often than each alone, more often than by chance
        every = math.sqrt(min(tokens) * math.prod(tokens)) if tokens else 0.0
        return max([every, *(listed.get(w, unlisted) for w in self.any_of)])

    def index(self, listed: dict[str, float]) -> str:
        """tsquery text finding every message the term may match: of each token's grams
        the rarest few, none that is common (a gram narrows a token's candidates little
        once two others have, and each costs a read of its list)."""
        if self.text is not None:
            return self.text
        parts = [self.words] if self.words else []
        if self.all_of:
            kept = [
                g
                for token in self.all_of
                for g in sorted(token, key=lambda g: listed.get(g, 0.0))[:GRAMS_PER_TOKEN]
                if listed.get(g, 0.0) <= COMMON_GRAM
            ] or [min((g for t in self.all_of for g in t), key=lambda g: listed.get(g, 0.0))]
            parts.append(" & ".join(_quote(g) for g in kept))
        return " | ".join(f"({p})" for p in parts)


@dataclass
class Plan:
    """A parsed query made ready for the window."""

    needs: list[Need] = field(default_factory=list)  # all must hold
    checks: list[q.Check] = field(default_factory=list)
    rank: list[str] = field(default_factory=list)  # tsquery texts, any may hold
    highlight: list[q.Check] = field(default_factory=list)  # the positive terms
    # tsquery texts of the positive word and prefix terms, whose words a snippet marks
    # wherever they stand (a phrase or a punctuated literal is marked where it matches,
    # never at each of its words alone)
    marks: list[str] = field(default_factory=list)


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
    cursor_key: bytes,
) -> SearchPage:
    """A page of the live messages matching `text` that the actor may read (its cursor
    signed with `cursor_key`).

    Raises: BadRequest (INVALID_QUERY with its position, INVALID_PAGE, INVALID_CURSOR,
    INVALID_TIMEZONE); NotFound (SERVER_NOT_FOUND, CHANNEL_NOT_FOUND) for a scope the
    actor cannot read; SearchTimeout (SEARCH_TIMEOUT) past the time budget."""
    if sort not in SORTS:
        raise BadRequest("sort is relevance or recent", code="INVALID_PAGE", field="sort")
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"limit is 1 to {MAX_LIMIT}", code="INVALID_PAGE", field="limit")
    zone = _zone(tz)
    query = parse(text)
    fingerprint = [str(actor.user_id), text, sort, tz, str(scope.server_id), str(scope.channel_id)]
    after = read_cursor(cursor, cursor_key, fingerprint) if cursor else None
    channels = await _readable(conn, actor, scope)
    deadline = monotonic() + budget_ms / 1000
    try:
        channel_ids = await _in_channels(conn, query, channels)
        # (a bad term is a 400 even with no channels)
        plan = await _plan(conn, query, channel_ids, channels)
        filters = await _filters(conn, query, zone, _server_of(scope, channels))
        if not channel_ids or filters is None:
            return SearchPage([], 0, False, None)
        # one snapshot: the spans of days a search reads in turn see the same messages
        async with conn.transaction(readonly=True, isolation="repeatable_read"):
            # (those still there: a channel deleted since its access was read leaves
            # its messages for the purge, migration 0055, and this snapshot must not
            # find them)
            channel_ids = await q.existing_channels(conn, channel_ids)
            if not channel_ids:
                return SearchPage([], 0, False, None)
            return await _search(
                conn,
                actor,
                plan,
                channel_ids,
                filters,
                sort,
                after,
                limit,
                deadline,
                cursor_key,
                fingerprint,
            )
    except (asyncpg.QueryCanceledError, TimeoutError):
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
    plan: Plan,
    channel_ids: list[UUID],
    filters: q.Filters,
    sort: str,
    after: Cursor | None,
    limit: int,
    deadline: float,
    cursor_key: bytes,
    fingerprint: list[str],
) -> SearchPage:
    rank = " | ".join(f"({p})" for p in plan.rank) if sort == "relevance" and plan.rank else None
    searched = channels_digest(channel_ids)
    if after is not None and sort == "recent":
        if after.channels == searched:  # the first page's total holds: read the page only
            hits = await _window(
                conn, plan, channel_ids, filters, after.last[1:], limit + 2, None, deadline
            )
            hits = [h for h in hits if h.id != after.last[2]]
            total, capped = after.total, after.capped
        else:
            hits, total, capped = await _recount(
                conn, plan, channel_ids, filters, after, limit, deadline
            )
    else:
        upto = None if after is None else after.snapshot
        hits = await _window(
            conn, plan, channel_ids, filters, upto, SEARCH_WINDOW + 1, rank, deadline
        )
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
            Cursor(snapshot, (last.rank, last.created_at, last.id), total, capped, searched),
            cursor_key,
            fingerprint,
        )
    return SearchPage(results, total, capped, next_cursor)


async def _recount(
    conn: asyncpg.Connection,
    plan: Plan,
    channel_ids: list[UUID],
    filters: q.Filters,
    after: Cursor,
    limit: int,
    deadline: float,
) -> tuple[list[q.Hit], int, bool]:
    """A later page newest first when the channels the actor may read are no longer
    those its first page counted in (one hidden, a group left): its matches after the
    cursor, and the total counted again as of the first page (its newest match), in
    the one read that finds the page too unless the page lies past the window."""
    counted = await _window(
        conn, plan, channel_ids, filters, after.snapshot, SEARCH_WINDOW + 1, None, deadline
    )
    total, capped = min(len(counted), SEARCH_WINDOW), len(counted) > SEARCH_WINDOW
    hits = [h for h in counted if (h.created_at, h.id) < after.last[1:]]
    if capped and len(hits) <= limit:  # (more may lie past the window)
        older = await _window(
            conn, plan, channel_ids, filters, after.last[1:], limit + 2, None, deadline
        )
        hits = [h for h in older if h.id != after.last[2]]
    return hits, total, capped


def _channel_key(name: str) -> str:
    return search_text.fold(caseless(name))


async def _in_channels(
    conn: asyncpg.Connection, query: Query, channels: dict[UUID, VisibleChannel]
) -> list[UUID]:
    """The channels left after in: and -in:."""
    ids = sorted(channels)
    # (compared as search compares text: caselessly in NFC, `in:#cafe` + U+0301 is #Café,
    # `in:#ΣΑΣ` is #σας; and without Latin accents, as `ecole` finds École: `in:#cafe`
    # is #café too)
    wanted = {_channel_key(f.value) for f in query.filters_of("in")}
    unwanted = {_channel_key(f.value) for f in query.filters_of("in", negated=True)}
    if not wanted and not unwanted:
        return ids
    names = {
        c.id: _channel_key(c.name or "") for c in await q.list_channel_names(conn, channel_ids=ids)
    }
    return [
        c for c in ids if (not wanted or names.get(c) in wanted) and names.get(c) not in unwanted
    ]


def _server_of(scope: Scope, channels: dict[UUID, VisibleChannel]) -> UUID | None:
    """The server a search is confined to: its scope's, or that of the one channel it
    searches (whose reader is a member, so sees the member list: its nicknames); None
    for a conversation and for a search of everything."""
    if scope.server_id is not None:
        return scope.server_id
    one = channels.get(scope.channel_id) if scope.channel_id is not None else None
    return one.server_id if one is not None else None


async def _filters(
    conn: asyncpg.Connection, query: Query, zone: ZoneInfo, server_id: UUID | None
) -> q.Filters | None:
    """The filters as the window takes them; None when they can match nothing (a from:
    or mentions: naming nobody who exists, or dates that exclude each other). In a
    server, a from: names the user of that username and every member whose nickname
    there it is."""
    names = [f.value for f in query.filters if f.key in {"from", "mentions"}]
    ids = await q.list_user_ids_by_name(conn, usernames=names) if names else {}
    nicknamed = await _nicknamed(conn, query, server_id)

    def named(f: Filter) -> list[UUID]:
        found = [ids[f.value.lower()]] if f.value.lower() in ids else []
        return found + nicknamed.get(f.value, []) if f.key == "from" else found

    def users(key: str, negated: bool) -> list[UUID] | None:
        given = query.filters_of(key, negated=negated)
        # (a user named twice, by username and nickname or by two filters, once)
        return list(dict.fromkeys(u for f in given for u in named(f))) if given else None

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


async def _nicknamed(
    conn: asyncpg.Connection, query: Query, server_id: UUID | None
) -> dict[str, list[UUID]]:
    """The members of the server each from: names by nickname (none outside a server).

    Raises: BadRequest (INVALID_QUERY) for a name more than MAX_NAMESAKES have."""
    given = query.filters_of("from") + query.filters_of("from", negated=True)
    if server_id is None or not given:
        return {}
    found = await servers_q.list_member_ids_by_nickname(
        conn, server_id=server_id, names=[f.value for f in given], limit=MAX_NAMESAKES + 1
    )
    for f in given:
        if len(found.get(f.value, ())) > MAX_NAMESAKES:
            raise invalid(
                f"more than {MAX_NAMESAKES} members have this nickname: name one by username",
                f.position,
            )
    return found


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


async def _plan(
    conn: asyncpg.Connection,
    query: Query,
    channel_ids: list[UUID],
    channels: dict[UUID, VisibleChannel],
) -> Plan:
    """The query's terms, stemmed in the languages of the channels searched."""
    plan = Plan()
    server_ids = {channels[c].server_id for c in channel_ids}
    compiled = await q.compile_terms(
        conn,
        terms=[t.text for t in query.terms],
        server_ids=sorted(s for s in server_ids if s is not None),
        conversations=None in server_ids,
    )
    for term, c in zip(query.terms, compiled, strict=True):
        check, need = _term_plan(term, c)
        plan.checks.append(check)
        if not term.negated:
            if need is None:
                raise invalid("this term needs at least 3 characters or a word", term.position)
            plan.needs.append(need)
            plan.highlight.append(check)
            if c.words:
                plan.rank.append(c.words)
                if check.kind != "literal":
                    plan.marks.append(c.words)
    for f in query.filters:
        if f.key == "has" and f.value == "link":
            plan.checks.append(q.Check("marker", "", "' has:link'", f.negated))
            if not f.negated:
                plan.needs.append(Need(all_of=((" has:link",),), text="' has:link'"))
    return plan


def _term_plan(term: Term, c: q.CompiledTerm) -> tuple[q.Check, Need | None]:
    """How a term is confirmed, and how the index finds its candidates."""
    grams = tuple(tuple(token) for token in c.grams)
    if term.kind == "prefix":
        if len(c.folded) < 2 or " " in c.folded or not _lettered(c.folded):
            raise invalid("a prefix is one word of at least 2 characters", term.position)
        prefix = _quote(c.folded) + ":*"
        check = q.Check("prefix", c.folded, prefix, term.negated)
        # a word that starts with it holds its grams (a prefix read from the index is
        # every word that starts so, read in full: grams can be skipped through)
        return check, Need(all_of=grams) if grams else Need(text=prefix)
    if term.kind == "word" and c.words:
        words = Need(words=c.words, all_of=grams)
        if grams:
            return q.Check("word", c.folded, c.words, term.negated), words
        return q.Check("whole", c.folded, c.words, term.negated), words
    check = q.Check("literal", c.folded, "", term.negated)
    if grams:
        return check, Need(all_of=grams)
    if c.plain and _lettered(c.folded):
        return check, Need(all_of=(tuple(_lexemes(c.plain)),), text=c.plain)
    return check, None


def _lettered(folded: str) -> bool:
    """Whether text has a letter or digit. Punctuation too short for grams is found by
    nothing, whatever lexemes the parser makes of it (`..` is its "file" token, and under
    the C locale every non-ASCII character is a letter to it: `€`, `«`, a curly quote)."""
    return any(ch.isalnum() for ch in folded)


def _lexemes(tsquery: str | None) -> list[str]:
    """The lexemes of tsquery text as compile_terms writes it."""
    return [m.replace("''", "'").replace("\\\\", "\\") for m in _LEXEME.findall(tsquery or "")]


_LEXEME = re.compile(r"'((?:[^']|'')*)'")


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _day(at: datetime) -> int:
    """The UTC day since 1970 of `at`, as the index marks it (xf_day_marks)."""
    return (at - EPOCH) // timedelta(days=1)


async def _window(
    conn: asyncpg.Connection,
    plan: Plan,
    channel_ids: list[UUID],
    filters: q.Filters,
    upto: tuple[datetime, UUID] | None,
    needed: int,
    rank: str | None,
    deadline: float,
) -> list[q.Hit]:
    """The newest `needed` matches, newest first.

    The index narrows the candidates itself with its markers (migration 0023): of the
    days read, and of the channels searched when they hold a small share of all
    messages. When the query may match more than a few windows, its matches are read a
    span of days at a time, newest first: the first span sized by the statistics to hold
    about SLICE_ABOVE windows, each next one by the matches per day found so far.
    Reading stops once the window is full, so a common word costs what its newest
    matches cost, not what all of them do; after MAX_SLICES spans the rest is read at
    once."""
    hits: list[q.Hit] = []
    if not plan.needs:  # filters only: the planner reads them through their own indexes
        await q.set_time_budget(conn, milliseconds=_left(deadline))
        return await _read(conn, plan, channel_ids, filters, upto, needed, rank, deadline)
    extent = await q.begin_window(
        conn, channel_ids=channel_ids, milliseconds=_left(deadline), index_only=True
    )
    if extent.oldest is None or extent.newest is None:
        return []
    shares = await _shares(conn, extent)
    index = " & ".join(f"({n.index(shares.listed)})" for n in plan.needs)
    channels = None
    if extent.rows * SMALL_SHARE <= extent.rows_all and len(channel_ids) <= MAX_CHANNEL_MARKS:
        channels = q.channel_marks(channel_ids)
    history = _day(extent.newest) - _day(extent.oldest) + 1
    ends = [extent.newest, upto[0] if upto else None]
    ends.append(filters.before - timedelta(microseconds=1) if filters.before else None)
    last = _day(min(t for t in ends if t is not None))
    first = _day(max(t for t in (extent.oldest, filters.after) if t is not None))
    if last < first:
        return []
    unlisted = shares.least or 1.0  # (no statistics yet: any lexeme may be in all)
    share = min(n.share(shares.listed, unlisted) for n in plan.needs)
    if filters.authors is not None:  # (a from: filter leaves their share of the matches)
        share *= min(1.0, sum(shares.authors.get(a, shares.other_author) for a in filters.authors))
    expected = extent.rows * share * (last - first + 1) / history  # (in the days read)
    days = last - first + 1
    if expected > SLICE_ABOVE * needed:
        days = max(1, math.ceil(days * SLICE_ABOVE * needed / expected))
    for slices in range(MAX_SLICES + 1):
        low = max(first, last - days + 1) if slices < MAX_SLICES else first
        # the day markers cost a read of every message of those days: worth it when
        # they leave out most of history, else the dates alone bound the read
        marks = q.day_marks(low, last) if 2 * (last - low + 1) <= history else None
        got = await _read(
            conn,
            plan,
            channel_ids,
            _between(filters, low, last),
            upto,
            needed - len(hits),
            rank,
            deadline,
            index=index,
            days=marks,
            channels=channels,
        )
        hits += got
        if len(hits) >= needed or low == first:
            break
        wanted = (needed - len(hits)) * 1.5 * (last - low + 1)  # (days, were got 1/day)
        days = min(days * 16, max(1, math.ceil(wanted / len(got)))) if got else days * 16
        last = low - 1
    await q.set_time_budget(conn, milliseconds=_left(deadline))  # (and plan freely again)
    return hits


async def _read(
    conn: asyncpg.Connection,
    plan: Plan,
    channel_ids: list[UUID],
    filters: q.Filters,
    upto: tuple[datetime, UUID] | None,
    limit: int,
    rank: str | None,
    deadline: float,
    *,
    index: str | None = None,
    days: str | None = None,
    channels: str | None = None,
) -> list[q.Hit]:
    """One read of the window within what is left of the budget."""
    return await q.search_window(
        conn,
        channel_ids=channel_ids,
        index_query=index,
        checks=plan.checks,
        filters=filters,
        upto=upto,
        limit=limit,
        rank_query=rank,
        days=days,
        channels=channels,
        seconds=_left(deadline) / 1000,
    )


# The lexeme shares of the latest statistics of each database this process searched
# (the statistics change only at ANALYZE: reading them costs as much as a search's
# narrowest read).
_SHARES: dict[tuple[str, int, datetime | None], q.Shares] = {}
SHARES_KEPT = 8


async def _shares(conn: asyncpg.Connection, extent: q.Extent) -> q.Shares:
    found = _SHARES.get(extent.statistics)
    if found is None:
        found = await q.get_lexeme_shares(conn)
        while len(_SHARES) >= SHARES_KEPT:
            del _SHARES[next(iter(_SHARES))]
        _SHARES[extent.statistics] = found
    return found


def _between(filters: q.Filters, first: int, last: int) -> q.Filters:
    """The filters, narrowed to days `first` to `last`."""
    after = EPOCH + timedelta(days=first)
    before = EPOCH + timedelta(days=last + 1)
    return replace(
        filters,
        after=max(after, filters.after) if filters.after else after,
        before=min(before, filters.before) if filters.before else before,
    )


def _left(deadline: float) -> int:
    """The milliseconds left of a search's budget (SEARCH_TIMEOUT when none are)."""
    left = int((deadline - monotonic()) * 1000)
    if left <= 0:
        raise asyncpg.QueryCanceledError("the search's time budget is spent")
    return left


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
    if plan.marks:  # the words of every positive word or prefix term
        query = " | ".join(f"({w})" for w in plan.marks)
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
