-- xfchat: no transaction
-- User search finds a display name written decomposed as it finds one written composed:
-- `E` + U+0301 `mile` is `Émile`, so `em` and `ém` find it (the query is put in NFC by
-- domain/profile.py). xf_fold_name folds the name's NFC form (xf_nfc, migration 0036:
-- a name in ASCII or already in NFC, nearly all, is returned as it is), as message
-- search does. The index on it is built again CONCURRENTLY (users is read by every
-- login): until then it holds the old fold, which differs only for names not in NFC.
CREATE OR REPLACE FUNCTION xf_fold_name(t text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path FROM CURRENT
AS $$ SELECT xf_fold(xf_nfc(t)) $$;
-- xfchat: statement break
-- (a REINDEX CONCURRENTLY that failed leaves its invalid copy, which every write to
-- users would keep up to date: gone before the run again)
DROP INDEX CONCURRENTLY IF EXISTS users_display_name_fold_idx_ccnew;
-- xfchat: statement break
REINDEX INDEX CONCURRENTLY users_display_name_fold_idx;
