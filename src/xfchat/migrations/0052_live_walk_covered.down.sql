-- xfchat: no transaction
-- xfchat: no data lost: an index only.
DROP INDEX CONCURRENTLY IF EXISTS messages_live_plain_idx;
-- xfchat: statement break
CREATE INDEX CONCURRENTLY messages_live_plain_idx ON messages (channel_id, seq)
    WHERE deleted_at IS NULL;
-- xfchat: statement break
DROP INDEX IF EXISTS messages_live_idx;
ALTER INDEX messages_live_plain_idx RENAME TO messages_live_idx;
