-- xfchat: no transaction
-- Search finds a decomposed accent as it finds a composed one: `e` + U+0301 (what some
-- keyboards and clipboards write) is `é`, so `ecole` and `école` find `e\u0301cole`
-- and the other way round. The fold (xf_fold) maps one character to one, so it cannot
-- drop a combining mark: the text is put in NFC (xf_nfc) before it is folded, on both
-- sides (xf_search_vector for the stored vector; db/queries/search.py for the terms, the
-- confirmation on the text and the highlights; the snippet in Python). xf_fold itself,
-- and the user-search index on xf_fold_name, are unchanged. ASCII text and text already
-- in NFC (nearly all) are returned as they are, without normalising.
CREATE OR REPLACE FUNCTION xf_nfc(t text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN octet_length(t) = length(t) OR t IS NFC NORMALIZED THEN t
                ELSE normalize(t, NFC) END
$$;
-- xfchat: statement break
-- Committed before the rewrite below, so every message sent from here on (by this
-- release or one still running the code before it) is indexed in NFC.
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
-- xfchat: statement break
-- The stored vectors of messages not in NFC are computed again (the generated column is,
-- on an UPDATE of content; the index follows row by row: nothing is rebuilt). Only
-- those rows are written, but every message is read: in slices of 8,192 pages (64 MiB)
-- of the table, each committed on its own, so no row stays locked for longer than its
-- slice (an edit of one waits that long at most) and a run stopped part way leaves what
-- it did; run again, it rewrites only what is still stale. Rows written meanwhile are
-- indexed by the function above already.
DO $$
DECLARE
    pages bigint := pg_relation_size('messages') / current_setting('block_size')::bigint;
    slice constant bigint := 8192;
    at bigint := 0;
BEGIN
    WHILE at <= pages LOOP
        UPDATE messages SET content = content
        WHERE ctid >= format('(%s,0)', at)::tid AND ctid < format('(%s,0)', at + slice)::tid
          AND octet_length(content) <> length(content)
          AND content IS NOT NFC NORMALIZED
          AND search IS DISTINCT FROM xf_search_vector(search_config, content);
        COMMIT;
        at := at + slice;
    END LOOP;
END $$;
