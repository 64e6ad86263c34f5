"""Message search: the statements that read the search index (migrations 0021, 0023).

Text is compared in NFC, folded (`xf_fold(xf_nfc(...))`, migration 0036): a decomposed
accent is the composed one, in the messages' stored vectors and here alike.

A search runs in a few statements. `compile_terms` turns each term of the query into
tsquery text with the database's own fold, grams and parsers (so a term and the
messages it should find are always cut up the same way). `search_window` then reads
the newest matches of the combined index query among a span of days, checks each term
exactly against the message (the index finds candidates; a substring, a phrase or a
prefix is then confirmed on the folded text) and ranks what it found.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple
from uuid import UUID

import asyncpg

from xfchat.db.queries import many

# Spaces and ASCII controls separate tokens (xf_grams cuts on the same class).
_WHITESPACE = r"[\x01-\x20\x7F]+"


@dataclass(frozen=True)
class CompiledTerm:
    ord: int
    folded: str  # the term folded, its spaces collapsed
    grams: list[list[str]]  # the grams (index lexemes) of each of its tokens that has any
    words: str | None  # tsquery text: the term's words, stemmed in each language, or as is
    plain: str | None  # tsquery text: the term's words as written, all of them


# The languages of the servers searched, those their channels queued for re-indexing
# may still hold messages in (migration 0057), and English when a conversation is
# searched too or no server is (conversations are stemmed in English).
_COMPILE_TERMS = rf"""
    WITH langs AS (
        SELECT array_agg(DISTINCT l.c) AS cs
        FROM (SELECT search_language AS c FROM servers WHERE id = ANY($2::uuid[])
              UNION ALL
              SELECT unnest(r.earlier) FROM search_reindexes r
              JOIN channels ch ON ch.id = r.channel_id WHERE ch.server_id = ANY($2::uuid[])
              UNION ALL
              SELECT 'english'::regconfig
              WHERE $3::bool OR NOT EXISTS (SELECT 1 FROM servers WHERE id = ANY($2::uuid[]))) l
    ), t AS (
        SELECT u.ord, btrim(regexp_replace(xf_fold(xf_nfc(u.raw)), '{_WHITESPACE}', ' ', 'g')) AS f
        FROM unnest($1::text[]) WITH ORDINALITY AS u(raw, ord)
    )
    SELECT t.ord, t.f AS folded,
           (SELECT COALESCE(json_agg(g.grams ORDER BY g.n), '[]')::text
            FROM (SELECT k.n, json_agg(' ' || x.gram) AS grams
                  FROM regexp_split_to_table(t.f, ' ') WITH ORDINALITY AS k(token, n),
                       unnest(xf_grams(k.token)) AS x(gram)
                  GROUP BY k.n) g) AS grams,
           (SELECT string_agg('(' || q::text || ')', ' | ')
            FROM (SELECT plainto_tsquery(c, t.f) AS q
                  FROM unnest((SELECT cs FROM langs) || 'simple'::regconfig) AS c) w
            WHERE numnode(w.q) > 0) AS words,
           nullif(plainto_tsquery('simple'::regconfig, t.f)::text, '') AS plain
    FROM t ORDER BY t.ord
"""


async def compile_terms(
    conn: asyncpg.Connection, *, terms: list[str], server_ids: list[UUID], conversations: bool
) -> list[CompiledTerm]:
    """Each term folded, with its grams and its words as tsquery text (stemmed in the
    language of each of these servers, in English too with `conversations`, and as
    written)."""
    records = await conn.fetch(_COMPILE_TERMS, terms, server_ids, conversations)
    return [CompiledTerm(**{**r, "grams": json.loads(r["grams"])}) for r in records]


# A search's settings for the rest of its transaction ($1: the statement timeout in
# milliseconds; $2: 'off' to read messages only through the search index).
_SETTINGS = """
    set_config('statement_timeout', $1, true),
    set_config('plan_cache_mode', 'force_custom_plan', true),
    set_config('max_parallel_workers_per_gather', '0', true),
    set_config('enable_seqscan', $2, true), set_config('enable_indexscan', $2, true)
"""


async def set_time_budget(
    conn: asyncpg.Connection, *, milliseconds: int, index_only: bool = False
) -> None:
    """Cancel any statement of this transaction that runs longer; plan each with its
    actual values (a search's best plan depends on how common its words are). With
    `index_only`, for the rest of the transaction, read messages only through the search
    index: the planner cannot see that the grams of one word come together, nor what
    the markers narrow, and would otherwise walk or scan the whole table. No parallel
    workers: starting them costs more than a search's reads."""
    await conn.execute(f"SELECT {_SETTINGS}", str(milliseconds), "off" if index_only else "on")


class Hit(NamedTuple):  # (a window holds a thousand: a tuple is made fastest)
    id: UUID
    created_at: datetime
    rank: float


# How each term is confirmed on a candidate `m`: 'word' by its words or as a substring,
# 'whole' by its words only (too short for a substring), 'literal' as a substring of
# the folded text (its runs of spaces collapsed, where it has any), 'prefix' by a word
# (as written or stemmed) that starts with it, 'marker' by the index alone ('whole',
# 'prefix' and 'marker' on the stored vector). A negated term must not hold. The cheap tests come first:
# the folded term found in the text as written is found in the folded text (the fold
# maps one character to one, and a folded character to itself), and most text has
# single spaces only.
_TERMS_HOLD = rf"""
    NOT EXISTS (
        SELECT 1 FROM terms t
        WHERE (CASE t.kind
                 WHEN 'word' THEN m.search @@ t.q OR strpos(m.content, t.f) > 0
                     OR strpos(xf_fold(xf_nfc(m.content)), t.f) > 0
                 WHEN 'literal' THEN strpos(m.content, t.f) > 0
                     OR strpos(xf_fold(xf_nfc(m.content)), t.f) > 0
                     OR (strpos(t.f, ' ') > 0 AND m.content ~ '[^\x20-\x7E]|  '
                         AND strpos(regexp_replace(xf_fold(xf_nfc(m.content)), '{_WHITESPACE}', ' ', 'g'),
                                    t.f) > 0)
                 ELSE m.search @@ t.q
               END) = t.neg)
"""

# The channels and date bounds. Where the search index reads the candidates, its
# channel and day markers narrow them as far as either could, and a condition the
# planner could serve from another index (`messages_channel_seq_key`,
# `messages_created_idx`) would only add a second, longer read: so there they are
# written as tests no index serves (IS TRUE).
_BOUNDS = """
    m.channel_id = ANY($1::uuid[])
    AND ($11::timestamptz IS NULL OR m.created_at >= $11::timestamptz)
    AND ($12::timestamptz IS NULL OR m.created_at < $12::timestamptz)
"""
_BOUNDS_UNINDEXED = """
    (m.channel_id = ANY($1::uuid[])) IS TRUE
    AND ($11::timestamptz IS NULL OR (m.created_at >= $11::timestamptz) IS TRUE)
    AND ($12::timestamptz IS NULL OR (m.created_at < $12::timestamptz) IS TRUE)
"""

_WINDOW_FROM = """
    WITH terms AS MATERIALIZED (
        SELECT u.kind, u.f, u.q::tsquery AS q, u.neg
        FROM unnest($3::text[], $4::text[], $5::text[], $6::bool[]) AS u(kind, f, q, neg)
    ), w AS (
        SELECT m.id, m.created_at, m.search
        FROM messages m
        WHERE m.deleted_at IS NULL
          AND ($2::tsquery IS NULL
               OR (m.search || xf_search_marks(m.channel_id, m.created_at)) @@ $2::tsquery)
          AND ($21::tsquery IS NULL
               OR (m.search || xf_search_marks(m.channel_id, m.created_at)) @@ $21::tsquery)
          AND ($22::tsquery IS NULL
               OR (m.search || xf_search_marks(m.channel_id, m.created_at)) @@ $22::tsquery)
          AND ($7::uuid[] IS NULL OR m.author_id = ANY($7::uuid[]))
          AND ($8::uuid[] IS NULL OR m.author_id IS NULL OR m.author_id <> ALL($8::uuid[]))
          -- (`mentions <> '{}'` as messages_mentions_idx's predicate says it: without
          -- it that index cannot serve the filter, and a search of `mentions:` alone
          -- scanned the whole table)
          AND ($9::uuid[] IS NULL OR (m.mentions <> '{}' AND m.mentions && $9::uuid[]))
          AND ($10::uuid[] IS NULL OR NOT m.mentions && $10::uuid[])
"""
_WINDOW_REST = f"""
          AND ($13::timestamptz IS NULL OR (m.created_at, m.id) <= ($13::timestamptz, $14::uuid))
          AND ($15::bool IS NULL
               OR EXISTS (SELECT 1 FROM attachments a WHERE a.message_id = m.id) = $15::bool)
          AND ($16::bool IS NULL
               OR EXISTS (SELECT 1 FROM attachments a
                          WHERE a.message_id = m.id AND a.content_type LIKE 'image/%')
                  = $16::bool)
          AND ($17::bool IS NULL
               OR EXISTS (SELECT 1 FROM reactions r WHERE r.message_id = m.id) = $17::bool)
          AND ($18::bool IS NULL OR (m.pinned_at IS NOT NULL) = $18::bool)
          AND {_TERMS_HOLD}
        ORDER BY m.created_at DESC, m.id DESC
        LIMIT $19
    )
    SELECT w.id, w.created_at,
           CASE WHEN $20::tsquery IS NULL THEN 0 ELSE ts_rank(w.search, $20::tsquery, 1) END AS rank
    FROM w
"""
# A search for messages with files (or reactions) and no index query, where the
# channels searched hold few: the candidates are those messages, their ids read by
# channel first (from the attachments; from the reaction counts, migration 0051) and
# then looked up by key, rather than every message walked newest first and tested for
# a file (a `has:file` with none in scope read the channels' whole history, up to the
# 2 s budget; given as a subquery, the planner kept that walk whenever other channels
# held many files). The tests in _WINDOW_REST stay. Where files are common the walk
# finds them soon, and reading them all first costs more (8,000 files in scope: 62 ms
# against 10; 1,600: 10 against 4): so only under FEW_CANDIDATES messages, whose rows
# are read first (at most CANDIDATE_ROWS: a few milliseconds).
FEW_CANDIDATES = 1000
# A message holds up to 10 files (domain/attachments.py MAX_FILES) and 20 emoji
# (domain/messages.py MAX_REACTION_EMOJI), a row each: so FEW_CANDIDATES messages hold
# at most this many rows, which are read, and the messages counted among them. (Counted
# by rows, 50 messages with 20 emoji each brought the walk back for every search there.)
CANDIDATE_ROWS = 20 * FEW_CANDIDATES
# How many rows there are, up to the limit $2, and their messages.
_FILES_IN_SCOPE_UP_TO = """
    SELECT count(*), COALESCE(array_agg(DISTINCT f.message_id), '{}') FROM (
        SELECT message_id FROM attachments
        WHERE channel_id = ANY($1::uuid[]) AND ($3::bool IS NOT TRUE OR content_type LIKE 'image/%')
        LIMIT $2) f
"""
_REACTED_IN_SCOPE_UP_TO = """
    SELECT count(*), COALESCE(array_agg(DISTINCT r.message_id), '{}') FROM (
        SELECT message_id FROM reaction_counts WHERE channel_id = ANY($1::uuid[]) LIMIT $2) r
"""
_CANDIDATES = "AND m.id = ANY($23::uuid[])"
_SEARCH_WINDOW = f"{_WINDOW_FROM} AND {_BOUNDS} {_WINDOW_REST}"
_SEARCH_WINDOW_INDEXED = f"{_WINDOW_FROM} AND {_BOUNDS_UNINDEXED} {_WINDOW_REST}"
_SEARCH_WINDOW_CANDIDATES = f"{_WINDOW_FROM} AND {_BOUNDS} {_CANDIDATES} {_WINDOW_REST}"


@dataclass(frozen=True)
class Filters:
    """What narrows a search besides its terms (None: no such filter)."""

    authors: list[UUID] | None = None
    not_authors: list[UUID] | None = None
    mentions: list[UUID] | None = None
    not_mentions: list[UUID] | None = None
    after: datetime | None = None  # inclusive
    before: datetime | None = None  # exclusive
    has_file: bool | None = None
    has_image: bool | None = None
    has_reaction: bool | None = None
    pinned: bool | None = None


@dataclass(frozen=True)
class Check:
    """One term as the window confirms it."""

    kind: str  # word, whole, literal, prefix, marker
    folded: str
    query: str  # tsquery text ('' for literal terms)
    negated: bool


async def search_window(
    conn: asyncpg.Connection,
    *,
    channel_ids: list[UUID],
    index_query: str | None,
    checks: list[Check],
    filters: Filters,
    upto: tuple[datetime, UUID] | None,
    limit: int,
    rank_query: str | None,
    days: str | None = None,
    channels: str | None = None,
    seconds: float | None = None,
) -> list[Hit]:
    """The newest `limit` live messages of these channels (no newer than `upto`) that
    match the index query, every check and the filters, newest first, each ranked
    against `rank_query` (0 without one). `days` and `channels` (tsquery text of markers:
    `day_marks`, `channel_marks`) narrow the index query, each as a key of its own (the
    index then skips through each list by the others, rather than testing the whole
    query on every message of those days or channels). Past `seconds` the
    statement is cancelled (TimeoutError)."""
    statement = _SEARCH_WINDOW_INDEXED if index_query is not None else _SEARCH_WINDOW
    candidates = await _few_candidates(conn, channel_ids, filters) if index_query is None else None
    if candidates is not None:
        statement = _SEARCH_WINDOW_CANDIDATES
    records = await conn.fetch(
        statement,
        channel_ids,
        index_query,
        [c.kind for c in checks],
        [c.folded for c in checks],
        [c.query for c in checks],
        [c.negated for c in checks],
        filters.authors,
        filters.not_authors,
        filters.mentions,
        filters.not_mentions,
        filters.after,
        filters.before,
        upto[0] if upto else None,
        upto[1] if upto else None,
        filters.has_file,
        filters.has_image,
        filters.has_reaction,
        filters.pinned,
        limit,
        rank_query,
        days,
        channels,
        *([] if candidates is None else [candidates]),
        timeout=seconds,
    )
    return [Hit(*r) for r in records]


async def _few_candidates(
    conn: asyncpg.Connection, channel_ids: list[UUID], filters: Filters
) -> list[UUID] | None:
    """Ids of every message of these channels with a file (an image), or else with a
    reaction, as the filters ask, where there are fewer than FEW_CANDIDATES; None where
    there are more, or no such filter."""
    reads: list[tuple[str, tuple[object, ...]]] = []
    if filters.has_file or filters.has_image:
        reads.append((_FILES_IN_SCOPE_UP_TO, (filters.has_image,)))
    if filters.has_reaction:
        reads.append((_REACTED_IN_SCOPE_UP_TO, ()))
    for statement, more in reads:
        rows, ids = await conn.fetchrow(statement, channel_ids, CANDIDATE_ROWS, *more)
        if rows < CANDIDATE_ROWS and len(ids) < FEW_CANDIDATES:  # (every one of them)
            return list(ids)
    return None


@dataclass(frozen=True)
class Highlight:
    id: UUID
    marked: str  # the folded text with every word match between \x01 and \x02


async def list_word_highlights(
    conn: asyncpg.Connection, *, message_ids: list[UUID], query: str
) -> list[Highlight]:
    """The folded text of each message with the words that match `query` (tsquery
    text) marked, as its own parser and language see them (the fold maps neither mark,
    so they are unambiguous)."""
    records = await conn.fetch(
        r"""
        SELECT m.id, ts_headline(m.search_config, xf_fold(xf_nfc(m.content)), $2::tsquery,
                                 'HighlightAll=true, StartSel=' || chr(1) || ', StopSel=' || chr(2))
                     AS marked
        FROM messages m WHERE m.id = ANY($1::uuid[])
        """,
        message_ids,
        query,
    )
    return many(Highlight, records)


@dataclass(frozen=True)
class NamedChannel:
    id: UUID
    name: str | None


async def list_channel_names(
    conn: asyncpg.Connection, *, channel_ids: list[UUID]
) -> list[NamedChannel]:
    return many(
        NamedChannel,
        await conn.fetch("SELECT id, name FROM channels WHERE id = ANY($1::uuid[])", channel_ids),
    )


async def list_user_ids_by_name(
    conn: asyncpg.Connection, *, usernames: list[str]
) -> dict[str, UUID]:
    """The ids of these usernames (compared without case), by the lowercased name."""
    records = await conn.fetch(
        "SELECT lower(username) AS name, id FROM users WHERE lower(username) = ANY($1::text[])",
        [u.lower() for u in usernames],
    )
    return {r["name"]: r["id"] for r in records}


async def list_languages(conn: asyncpg.Connection) -> list[str]:
    """The text search configurations PostgreSQL comes with (a server may pick one)."""
    records = await conn.fetch(
        "SELECT c.cfgname::text AS name FROM pg_ts_config c "
        "JOIN pg_namespace n ON n.oid = c.cfgnamespace WHERE n.nspname = 'pg_catalog' "
        "ORDER BY 1"
    )
    return [r["name"] for r in records]


async def queue_reindex(conn: asyncpg.Connection, *, server_id: UUID, earlier: str) -> int:
    """Queue every channel of the server that holds a message for re-indexing in its
    language (migration 0056), up to its last message now, from its first (again, if
    it was queued), with `earlier` (its language before the change) among those its
    messages may still be in, which searches read meanwhile (0057); how many. Its
    channels are locked first, in id order, as changes of access lock them: a send in
    flight (which holds its channel's row FOR KEY SHARE) commits before, and is queued
    too; a later one waits, then reads the new language."""
    await conn.execute(
        "SELECT 1 FROM channels WHERE server_id = $1 ORDER BY id FOR UPDATE", server_id
    )
    result: str = await conn.execute(
        """
        INSERT INTO search_reindexes AS r (channel_id, through_seq, earlier)
        SELECT id, last_seq, ARRAY[$2::text::regconfig] FROM channels
        WHERE server_id = $1 AND last_seq > 0 ORDER BY id
        ON CONFLICT (channel_id) DO UPDATE
            SET done_seq = 0, through_seq = EXCLUDED.through_seq, queued_at = now(),
                earlier = ARRAY(SELECT DISTINCT l FROM unnest(r.earlier || EXCLUDED.earlier) l)
        """,
        server_id,
        earlier,
    )
    return int(result.split()[-1])


@dataclass(frozen=True)
class QueuedReindex:
    channel_id: UUID
    done_seq: int  # re-indexed through this sequence number
    through_seq: int  # and to be, through this one
    language: str  # its server's


async def claim_reindex(conn: asyncpg.Connection, *, passing: list[UUID]) -> QueuedReindex | None:
    """A channel queued for re-indexing, the longest waiting first, but none of
    `passing`, its place in the queue locked until the caller's transaction ends (one
    another transaction holds is skipped); None if there is none.

    Its server's language is read after the lock, in a statement of its own: read in
    the same statement, it came from that statement's snapshot, while the lock took the
    newest version of the queue's row. A change of the language that committed in
    between (a second change while the channel was queued, which starts it again from
    the first) was then re-indexed in the language before it, and the channel left the
    queue so. A change that has not committed waits for this lock (queue_reindex), and
    starts the channel again after it."""
    record = await conn.fetchrow(
        """
        SELECT channel_id, done_seq, through_seq FROM search_reindexes
        WHERE channel_id <> ALL($1::uuid[])
        ORDER BY queued_at, channel_id LIMIT 1
        FOR UPDATE SKIP LOCKED
        """,
        passing,
    )
    if record is None:
        return None
    language: str = await conn.fetchval(
        """
        SELECT COALESCE(s.search_language, 'english'::regconfig)::text
        FROM channels c LEFT JOIN servers s ON s.id = c.server_id WHERE c.id = $1
        """,
        record["channel_id"],
    )
    return QueuedReindex(**record, language=language)


async def reindex_range(conn: asyncpg.Connection, *, job: QueuedReindex, through: int) -> int:
    """Index the channel's messages after `job.done_seq` through `through` in its
    server's language (their search vectors are rebuilt), move the queue's place there,
    or take the channel out of the queue when that was its last; how many changed. The
    rows are locked first in id order, as a bulk deletion locks its messages
    (messages.lock_messages): in the order the scan met them, a batch and a deletion
    of two of them each held one and waited for the other (one ended by PostgreSQL as
    deadlocked, the moderator's deletion a 503)."""
    result: str = await conn.execute(
        """
        UPDATE messages SET search_config = $4::text::regconfig
        WHERE id IN (
            SELECT id FROM messages
            WHERE channel_id = $1 AND seq > $2 AND seq <= $3
              AND search_config <> $4::text::regconfig
            ORDER BY id FOR NO KEY UPDATE
        )
        """,
        job.channel_id,
        job.done_seq,
        through,
        job.language,
    )
    if through >= job.through_seq:
        await conn.execute("DELETE FROM search_reindexes WHERE channel_id = $1", job.channel_id)
    else:
        await conn.execute(
            "UPDATE search_reindexes SET done_seq = $2 WHERE channel_id = $1",
            job.channel_id,
            through,
        )
    return int(result.split()[-1])


async def existing_channels(conn: asyncpg.Connection, channel_ids: list[UUID]) -> list[UUID]:
    """Those of `channel_ids` not deleted, in the order given."""
    there = {
        r["id"]
        for r in await conn.fetch("SELECT id FROM channels WHERE id = ANY($1::uuid[])", channel_ids)
    }
    return [c for c in channel_ids if c in there]


@dataclass(frozen=True)
class Extent:
    rows: int  # messages ever written in the channels searched
    rows_all: int  # about how many messages there are in all
    oldest: datetime | None  # the oldest and newest live messages (None: there are none)
    newest: datetime | None
    statistics: tuple[str, int, datetime | None]  # the database, table and last ANALYZE


_EXTENT = f"""
    SELECT (SELECT COALESCE(sum(last_seq), 0) FROM channels WHERE id = ANY($3::uuid[])) AS rows,
           (SELECT reltuples FROM pg_class WHERE oid = 'messages'::regclass) AS rows_all,
           (SELECT created_at FROM messages WHERE deleted_at IS NULL
            ORDER BY created_at, id LIMIT 1) AS oldest,
           (SELECT created_at FROM messages WHERE deleted_at IS NULL
            ORDER BY created_at DESC, id DESC LIMIT 1) AS newest,
           current_database() AS db, 'messages'::regclass::oid::bigint AS rel,
           GREATEST(pg_stat_get_last_analyze_time('messages'::regclass),
                    pg_stat_get_last_autoanalyze_time('messages'::regclass)) AS analyzed,
           {_SETTINGS}
"""


async def begin_window(
    conn: asyncpg.Connection, *, channel_ids: list[UUID], milliseconds: int, index_only: bool
) -> Extent:
    """What a search would read (how many messages the channels hold, from their
    counters: no message row is read; the span of days messages were written in; which
    statistics describe them), as the first statement of the search's transaction,
    which also sets its budget and settings (`set_time_budget`), in the same round
    trip."""
    r = await conn.fetchrow(
        _EXTENT,
        str(milliseconds),
        "off" if index_only else "on",
        channel_ids,
        timeout=milliseconds / 1000,  # (the settings it makes apply from the next statement)
    )
    assert r is not None
    return Extent(
        int(r["rows"]),
        max(int(r["rows"]), int(r["rows_all"])),  # (-1 before the first ANALYZE)
        r["oldest"],
        r["newest"],
        (r["db"], r["rel"], r["analyzed"]),
    )


@dataclass(frozen=True)
class Shares:
    listed: dict[str, float]  # lexeme -> share of messages holding it, for those listed
    least: float  # the least share listed (0: no statistics yet)
    authors: dict[UUID, float]  # author -> share of messages they wrote, the most prolific
    other_author: float  # at most the share of any author not listed (1: unknown)


async def get_lexeme_shares(conn: asyncpg.Connection) -> Shares:
    """How common the index's most common lexemes, and the most prolific authors, are
    (ANALYZE's sample)."""
    records = await conn.fetch(
        """
        SELECT s.attname::text AS col, x.value, x.freq
        FROM pg_stats s,
             unnest(COALESCE(s.most_common_elems, s.most_common_vals)::text::text[],
                    COALESCE(s.most_common_elem_freqs, s.most_common_freqs))
                 WITH ORDINALITY AS x(value, freq, n)
        WHERE s.schemaname = current_schema() AND s.tablename = 'messages'
          AND s.attname IN ('search', 'author_id')
        ORDER BY s.attname, x.n
        """
    )
    lexemes = [r for r in records if r["col"] == "search"]
    tail = [r["freq"] for r in lexemes if r["value"] is None and r["freq"] is not None]
    authors = {UUID(r["value"]): r["freq"] for r in records if r["col"] == "author_id"}
    return Shares(
        {r["value"]: r["freq"] for r in lexemes if r["value"] is not None},
        tail[0] if tail else 0.0,  # (the tail: least, most, share without any)
        authors,
        min(authors.values()) if authors else 1.0,  # (those listed are the most common)
    )


DAY_SPANS = (512, 64, 8, 1)  # the spans of days the index marks (migration 0023)


def day_marks(first: int, last: int) -> str:
    """tsquery text matching the messages written on days `first` to `last` (UTC days
    since 1970, both included): the fewest markers of aligned spans that cover them."""
    marks = []
    day = first
    while day <= last:
        span = next(s for s in DAY_SPANS if day % s == 0 and day + s - 1 <= last)
        marks.append(f"' @{span}:{day // span}'")
        day += span
    return " | ".join(marks)


def channel_marks(channel_ids: list[UUID]) -> str:
    """tsquery text matching the messages of these channels (migration 0023)."""
    return " | ".join(f"' #{c}'" for c in channel_ids)
