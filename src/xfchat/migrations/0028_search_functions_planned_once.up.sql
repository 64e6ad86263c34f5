-- A send's search vector, index markers and event time without planning SQL at every
-- statement (issue 14). xf_search_vector (migration 0021) and xf_search_marks (0023) were SQL
-- functions the planner cannot inline (a FROM clause; a SET clause), so every statement
-- that wrote messages parsed, analysed and planned their bodies again: 7 % of the
-- database's CPU at bench.load's 10 x 100 point (perf). Now xf_search_vector is
-- PL/pgSQL, whose plans are kept for the session, and xf_search_marks a single
-- expression, which the planner inlines (into the index's expression, once per
-- connection). Both return exactly what they returned before: stored vectors and the
-- index stay valid.
CREATE OR REPLACE FUNCTION xf_search_vector(cfg regconfig, content text) RETURNS tsvector
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
SET search_path FROM CURRENT
AS $$
DECLARE
    f text := xf_fold(content);
BEGIN
    RETURN strip(to_tsvector(cfg, f) || to_tsvector('simple'::regconfig, f))
           || array_to_tsvector(
                  ARRAY(SELECT ' ' || g FROM unnest(xf_grams(f)) AS g)
                  || CASE WHEN f ~ '(https?|ftp)://[^\x01-\x20\x7F]|www\.[^\x01-\x20\x7F]'
                          THEN ARRAY[' has:link'] ELSE '{}'::text[] END);
END
$$;

CREATE OR REPLACE FUNCTION xf_search_marks(channel uuid, at timestamptz) RETURNS tsvector
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT array_to_tsvector(ARRAY[
        ' #' || channel::text,
        ' @1:' || (floor(extract(epoch FROM at - timestamptz '1970-01-01 00:00:00+00')
                         / 86400)::int)::text,
        ' @8:' || ((floor(extract(epoch FROM at - timestamptz '1970-01-01 00:00:00+00')
                          / 86400)::int) >> 3)::text,
        ' @64:' || ((floor(extract(epoch FROM at - timestamptz '1970-01-01 00:00:00+00')
                           / 86400)::int) >> 6)::text,
        ' @512:' || ((floor(extract(epoch FROM at - timestamptz '1970-01-01 00:00:00+00')
                            / 86400)::int) >> 9)::text])
$$;

-- xf_iso (0026), which writes each new event's created_at, is declared IMMUTABLE but
-- calls to_char, which is STABLE: so the planner would not inline it, and every send
-- statement planned it again (a statement of five rows: 32-37 us, inlined 9-11 us).
-- STABLE is what it is (it reads no table and no setting that changes its answer).
ALTER FUNCTION xf_iso(timestamptz) STABLE;

-- A connection keeps an index's expression as it simplified it when it first read it:
-- one opened before this migration would keep the call it cannot inline, and stop
-- matching its re-planned searches to the index. Touching the index's catalogue row
-- makes every connection read the expression again (a reset of a storage parameter
-- left at its default: nothing else changes).
ALTER INDEX messages_search_idx RESET (fastupdate);
