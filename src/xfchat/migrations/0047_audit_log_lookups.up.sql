-- xfchat: no transaction
-- The audit log found by whom and what, rather than by reading a server's whole log:
-- GET /api/servers/{id}/audit-log?user_id= or ?action= read the server's entries newest
-- first and kept those of that actor or action (a filter naming someone who never acted
-- read them all, at every page), and `xfchat admin export` read the whole table for an
-- account's entries (by it, about it, about its messages). Built CONCURRENTLY: a large
-- log's writes go on meanwhile.
DROP INDEX CONCURRENTLY IF EXISTS audit_log_actor_idx;
-- xfchat: statement break
CREATE INDEX CONCURRENTLY audit_log_actor_idx ON audit_log (actor_id, server_id, id DESC);
-- xfchat: statement break
DROP INDEX CONCURRENTLY IF EXISTS audit_log_action_idx;
-- xfchat: statement break
CREATE INDEX CONCURRENTLY audit_log_action_idx ON audit_log (server_id, action, id DESC);
-- xfchat: statement break
DROP INDEX CONCURRENTLY IF EXISTS audit_log_target_user_idx;
-- xfchat: statement break
CREATE INDEX CONCURRENTLY audit_log_target_user_idx ON audit_log (target_id)
    WHERE target_type = 'user';
-- xfchat: statement break
DROP INDEX CONCURRENTLY IF EXISTS audit_log_message_author_idx;
-- xfchat: statement break
CREATE INDEX CONCURRENTLY audit_log_message_author_idx ON audit_log ((changes ->> 'author_id'))
    WHERE target_type = 'message';
