-- xfchat: no transaction
-- xfchat: no data lost: only the stored search vectors of messages not in NFC are computed again (from their text, as before 0036)
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
-- xfchat: statement break
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
-- xfchat: statement break
DROP FUNCTION IF EXISTS xf_nfc(text);
