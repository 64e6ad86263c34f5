-- Back to the quadratic grams of migration 0021.
CREATE OR REPLACE FUNCTION xf_grams(f text) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
DECLARE
    grams text[];
BEGIN
    grams := ARRAY(
        SELECT substr(tok, i, 3)
        FROM regexp_split_to_table(f, '[\x01-\x20\x7F]+') AS tok,
             generate_series(1, length(tok) - 2) AS i);
    IF octet_length(f) <> length(f) THEN
        grams := grams || ARRAY(
            SELECT substr(r.m[1], i, w.n)
            FROM regexp_matches(f, '([\u3040-\u30FF\u3131-\u318E\u3400-\u4DBF\u4E00-\u9FFF\uAC00-\uD7AF\uF900-\uFAFF\uFF66-\uFF9F]+)', 'g') AS r(m),
                 (VALUES (1), (2)) AS w(n),
                 generate_series(1, length(r.m[1]) - w.n + 1) AS i)
        || ARRAY(SELECT s.m[1] FROM regexp_matches(f, '([\u00A9\u00AE\u203C\u2049\u2122\u2139\u2190-\u21FF\u2300-\u23FF\u2460-\u24FF\u25A0-\u27BF\u2900-\u297F\u2B00-\u2BFF\u3030\u303D\u3297\u3299\U0001F000-\U0001FAFF])', 'g') AS s(m));
    END IF;
    RETURN grams;
END
$$;
