-- xfchat: no data lost: indexes only.
DROP INDEX IF EXISTS sessions_ended_idx;
DROP INDEX IF EXISTS friend_requests_answered_idx;
DROP INDEX IF EXISTS usage_tracking_day_idx;
DROP INDEX IF EXISTS audit_log_created_at_idx;
