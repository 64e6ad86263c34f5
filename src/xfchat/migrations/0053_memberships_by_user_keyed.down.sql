-- xfchat: no transaction
-- xfchat: no data lost: indexes only (0002's again, built CONCURRENTLY as the up built these).
DROP INDEX CONCURRENTLY IF EXISTS server_members_user_only_idx;
-- xfchat: statement break
CREATE INDEX CONCURRENTLY server_members_user_only_idx ON server_members (user_id);
-- xfchat: statement break
DROP INDEX IF EXISTS server_members_user_idx;
ALTER INDEX server_members_user_only_idx RENAME TO server_members_user_idx;
-- xfchat: statement break
DROP INDEX CONCURRENTLY IF EXISTS conversation_participants_user_only_idx;
-- xfchat: statement break
CREATE INDEX CONCURRENTLY conversation_participants_user_only_idx
    ON conversation_participants (user_id);
-- xfchat: statement break
DROP INDEX IF EXISTS conversation_participants_user_idx;
ALTER INDEX conversation_participants_user_only_idx RENAME TO conversation_participants_user_idx;
