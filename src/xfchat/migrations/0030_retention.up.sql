-- xfchat: no transaction
-- What the retention job (domain/retention.py) deletes, found by index rather than by
-- reading whole tables every time: ended sessions (with their refresh tokens), answered
-- friend requests, usage days past what GET /api/users/@me/usage returns, and audit log
-- entries past XFCHAT_AUDIT_RETENTION_DAYS. Built CONCURRENTLY: a six-month-old
-- installation's tables are what this is for, and a plain build would stop their writes.
DROP INDEX CONCURRENTLY IF EXISTS sessions_ended_idx;
-- xfchat: statement break
CREATE INDEX CONCURRENTLY sessions_ended_idx ON sessions ((coalesce(revoked_at, expires_at)));
-- xfchat: statement break
DROP INDEX CONCURRENTLY IF EXISTS friend_requests_answered_idx;
-- xfchat: statement break
CREATE INDEX CONCURRENTLY friend_requests_answered_idx ON friend_requests (responded_at)
    WHERE status <> 'pending';
-- xfchat: statement break
DROP INDEX CONCURRENTLY IF EXISTS usage_tracking_day_idx;
-- xfchat: statement break
CREATE INDEX CONCURRENTLY usage_tracking_day_idx ON usage_tracking (day);
-- xfchat: statement break
DROP INDEX CONCURRENTLY IF EXISTS audit_log_created_at_idx;
-- xfchat: statement break
CREATE INDEX CONCURRENTLY audit_log_created_at_idx ON audit_log (created_at);
