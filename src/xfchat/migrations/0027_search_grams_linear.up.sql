-- The substring grams of folded text in linear time. xf_grams (migration 0021) took
-- each gram with substr(), which walks a UTF-8 text from its start every time: a token
-- of n characters cost O(n^2) (a 4,000-character token 45 ms of the database's CPU per
-- send, a 100,000-character one 27 s: anyone could stall the database with a few
-- messages). Now a short token keeps substr() (cheapest for the words of ordinary
-- text), a long one is cut by three linear regular-expression passes (the grams at
-- positions 1, 4, 7, ...; 2, 5, 8, ...; 3, 6, 9, ...), only its first 1,024 characters
-- are grammed (a substring further into a longer word is not found: README "Search"),
-- and CJK runs are cut the same linear way, whole. The same grams as before otherwise.
-- A stored message keeps the vector it was given; a new one gets this.
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
