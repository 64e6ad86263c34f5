-- xfchat: no data lost: functions only (the vectors they give are the same).
-- Back to migration 0027's grams and 0036's vector.
CREATE OR REPLACE FUNCTION xf_search_vector(cfg regconfig, content text) RETURNS tsvector
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
SET search_path FROM CURRENT
AS $$
DECLARE
    f text := xf_fold(xf_nfc(content));
BEGIN
    RETURN strip(to_tsvector(cfg, f) || to_tsvector('simple'::regconfig, f))
           || array_to_tsvector(
                  ARRAY(SELECT ' ' || g FROM unnest(xf_grams(f)) AS g)
                  || CASE WHEN f ~ '(https?|ftp)://[^\x01-\x20\x7F]|www\.[^\x01-\x20\x7F]'
                          THEN ARRAY[' has:link'] ELSE '{}'::text[] END);
END
$$;

CREATE OR REPLACE FUNCTION xf_grams(f text) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
DECLARE
    grams text[];
BEGIN
    grams := ARRAY(
        SELECT x.g FROM regexp_split_to_table(f, '[\x01-\x20\x7F]+') AS tok,
             LATERAL (SELECT substr(tok, i, 3) FROM generate_series(1, length(tok) - 2) AS i
                      WHERE length(tok) <= 64
                      UNION ALL
                      SELECT m[1] FROM generate_series(1, 3) AS s,
                             regexp_matches(substr(left(tok, 1024), s), '(...)', 'g') AS m
                      WHERE length(tok) > 64) AS x(g));
    IF octet_length(f) <> length(f) THEN
        grams := grams || ARRAY(
            SELECT x.g
            FROM regexp_matches(f, '([\u3040-\u30FF\u3131-\u318E\u3400-\u4DBF\u4E00-\u9FFF\uAC00-\uD7AF\uF900-\uFAFF\uFF66-\uFF9F]+)', 'g') AS r(m),
                 LATERAL (SELECT regexp_split_to_table(r.m[1], '')
                          UNION ALL
                          SELECT (regexp_matches(substr(r.m[1], s), '(..)', 'g'))[1]
                          FROM generate_series(1, 2) AS s) AS x(g))
        || ARRAY(SELECT s.m[1] FROM regexp_matches(f, '([\u00A9\u00AE\u203C\u2049\u2122\u2139\u2190-\u21FF\u2300-\u23FF\u2460-\u24FF\u25A0-\u27BF\u2900-\u297F\u2B00-\u2BFF\u3030\u303D\u3297\u3299\U0001F000-\U0001FAFF])', 'g') AS s(m));
    END IF;
    RETURN grams;
END
$$;

DROP FUNCTION xf_grams(text, text);
