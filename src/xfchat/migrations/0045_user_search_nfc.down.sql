-- xfchat: no transaction
-- xfchat: no data lost: a function and the index built from it.
CREATE OR REPLACE FUNCTION xf_fold_name(t text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path FROM CURRENT
AS $$ SELECT xf_fold(t) $$;
-- xfchat: statement break
DROP INDEX CONCURRENTLY IF EXISTS users_display_name_fold_idx_ccnew;
-- xfchat: statement break
REINDEX INDEX CONCURRENTLY users_display_name_fold_idx;
