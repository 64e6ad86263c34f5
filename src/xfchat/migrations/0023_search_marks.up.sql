-- Search narrows its matches in the index itself (domain/search.py, _window): besides
-- the message's words and grams, the index holds markers of the channel it is in and
-- of the day it was written, with the 8-, 64- and 512-day spans that day falls in (UTC
-- days since 1970). A query ANDs the markers of the days it reads (the newest first, a
-- few at a time) and, when the searcher reads a small share of all messages, of their
-- channels: only the messages left are read from the table, however common the words.
-- The markers live in the index only (an expression), not in the stored vector. The
-- body names only built-in functions, so it needs no search_path (a restore has none).
CREATE FUNCTION xf_search_marks(channel uuid, at timestamptz) RETURNS tsvector
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT array_to_tsvector(ARRAY[
        ' #' || channel::text,
        ' @1:' || d::text, ' @8:' || (d >> 3)::text,
        ' @64:' || (d >> 6)::text, ' @512:' || (d >> 9)::text])
    FROM (SELECT floor(extract(epoch FROM at - timestamptz '1970-01-01 00:00:00+00')
                       / 86400)::int AS d) AS day
$$;

DROP INDEX messages_search_idx;
CREATE INDEX messages_search_idx ON messages
    USING gin ((search || xf_search_marks(channel_id, created_at)));
