-- A message's search vector at about two thirds of its cost (issue 14: the stored search
-- column and its index were a quarter of what a message cost PostgreSQL at bench.load's
-- 10 x 100, and the grams more than half of the vector). xf_grams (migration 0027) took a short token's grams
-- by a query (a set-returning join, started by the executor for every message), and
-- xf_search_vector prefixed each gram by another query. Now the grams are taken by a
-- PL/pgSQL loop of plain expressions, which the executor does not start, already
-- prefixed as index lexemes (xf_grams(f, ' ')), and so are a text's emoji; long tokens
-- and CJK runs keep 0027's linear queries, which only text with them starts. The same
-- grams in the same order, so the same vectors: stored vectors and the index stay valid
-- (tests/db/test_search_text.py compares the two definitions over thousands of texts).
-- One token's grams: every 3 characters of a token of at most 64; of a longer one, of
-- its first 1,024 by three regular-expression passes (a substr() walk from the token's
-- start each time would be quadratic).
CREATE OR REPLACE FUNCTION xf_grams(f text, prefix text) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
DECLARE
    grams text[] := '{}';
    tok text;
    n int;
BEGIN
    -- Tokens are cut at spaces and ASCII controls (as 0027's [\x01-\x20\x7F]+): each
    -- control but the space is made a space (32 of them, 32 spaces), then cut at each
    -- space; the empty tokens between two separators have no grams.
    FOREACH tok IN ARRAY string_to_array(
        translate(f, E'\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0A\x0B\x0C\x0D\x0E\x0F\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1A\x1B\x1C\x1D\x1E\x1F\x7F',
                  repeat(' ', 32)),
        ' ') LOOP
        n := length(tok);
        IF n <= 64 THEN
            FOR i IN 1 .. n - 2 LOOP
                grams := grams || (prefix || substr(tok, i, 3));
            END LOOP;
        ELSE
            grams := grams || ARRAY(
                SELECT prefix || m[1] FROM generate_series(1, 3) AS s,
                       regexp_matches(substr(left(tok, 1024), s), '(...)', 'g') AS m);
        END IF;
    END LOOP;
    IF octet_length(f) <> length(f) THEN
        -- Each 1 and 2 characters of every CJK run (a query, as 0027: only text that
        -- has such a run pays it).
        IF f ~ '[\u3040-\u30FF\u3131-\u318E\u3400-\u4DBF\u4E00-\u9FFF\uAC00-\uD7AF\uF900-\uFAFF\uFF66-\uFF9F]' THEN
            grams := grams || ARRAY(
                SELECT prefix || x.g
                FROM regexp_matches(f, '([\u3040-\u30FF\u3131-\u318E\u3400-\u4DBF\u4E00-\u9FFF\uAC00-\uD7AF\uF900-\uFAFF\uFF66-\uFF9F]+)', 'g') AS r(m),
                     LATERAL (SELECT regexp_split_to_table(r.m[1], '')
                              UNION ALL
                              SELECT (regexp_matches(substr(r.m[1], s), '(..)', 'g'))[1]
                              FROM generate_series(1, 2) AS s) AS x(g));
        END IF;
        -- Each emoji or symbol, in the order written: the text without anything else,
        -- cut into its characters.
        FOREACH tok IN ARRAY string_to_array(
            regexp_replace(f, '[^\u00A9\u00AE\u203C\u2049\u2122\u2139\u2190-\u21FF\u2300-\u23FF\u2460-\u24FF\u25A0-\u27BF\u2900-\u297F\u2B00-\u2BFF\u3030\u303D\u3297\u3299\U0001F000-\U0001FAFF]+', '', 'g'),
            NULL) LOOP
            grams := grams || (prefix || tok);
        END LOOP;
    END IF;
    RETURN grams;
END
$$;

-- The grams as search's terms take them (db/queries/search.py): a single expression,
-- which the planner inlines.
CREATE OR REPLACE FUNCTION xf_grams(f text) RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
    SELECT xf_grams(f, '')
$$;

CREATE OR REPLACE FUNCTION xf_search_vector(cfg regconfig, content text) RETURNS tsvector
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
SET search_path FROM CURRENT
AS $$
DECLARE
    f text := xf_fold(xf_nfc(content));
BEGIN
    RETURN strip(to_tsvector(cfg, f) || to_tsvector('simple'::regconfig, f))
           || array_to_tsvector(
                  xf_grams(f, ' ')
                  || CASE WHEN f ~ '(https?|ftp)://[^\x01-\x20\x7F]|www\.[^\x01-\x20\x7F]'
                          THEN ARRAY[' has:link'] ELSE '{}'::text[] END);
END
$$;
