-- xfchat: no data lost: an index only.
DROP INDEX IF EXISTS messages_live_idx;
