-- Back to the SQL bodies of migrations 0021 and 0023 and xf_iso's IMMUTABLE (the same
-- results).
ALTER FUNCTION xf_iso(timestamptz) IMMUTABLE;

CREATE OR REPLACE FUNCTION xf_search_vector(cfg regconfig, content text) RETURNS tsvector
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path FROM CURRENT
AS $$
    SELECT strip(to_tsvector(cfg, f) || to_tsvector('simple'::regconfig, f))
           || array_to_tsvector(
                  ARRAY(SELECT ' ' || g FROM unnest(xf_grams(f)) AS g)
                  || CASE WHEN f ~ '(https?|ftp)://[^\x01-\x20\x7F]|www\.[^\x01-\x20\x7F]'
                          THEN ARRAY[' has:link'] ELSE '{}'::text[] END)
    FROM xf_fold(content) AS f
$$;

CREATE OR REPLACE FUNCTION xf_search_marks(channel uuid, at timestamptz) RETURNS tsvector
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT array_to_tsvector(ARRAY[
        ' #' || channel::text,
        ' @1:' || d::text, ' @8:' || (d >> 3)::text,
        ' @64:' || (d >> 6)::text, ' @512:' || (d >> 9)::text])
    FROM (SELECT floor(extract(epoch FROM at - timestamptz '1970-01-01 00:00:00+00')
                       / 86400)::int AS d) AS day
$$;

ALTER INDEX messages_search_idx RESET (fastupdate);  -- (as in the up migration)
