-- xfchat: no transaction
-- Three indexes, each built CONCURRENTLY (logins, registrations and friend requests go
-- on), each dropped first if a failed build left it:
-- - the deleted accounts (users.deleted_at set), which the hourly sweep of what such an
--   account leaves behind (db/queries/retention.py) read by scanning every account;
-- - friend requests by sender and by recipient, whatever their status (0001's two cover
--   pending ones only): an account's deletion, which finds everyone it had a request
--   with, and the sweep, which finds a deleted account's requests, read every request
--   there is (a `from OR to` with no index for the answered ones), as did each cascade
--   of an account's row to them.
DROP INDEX CONCURRENTLY IF EXISTS users_deleted_idx;
-- xfchat: statement break
CREATE INDEX CONCURRENTLY users_deleted_idx ON users (id) WHERE deleted_at IS NOT NULL;
-- xfchat: statement break
DROP INDEX CONCURRENTLY IF EXISTS friend_requests_from_idx;
-- xfchat: statement break
CREATE INDEX CONCURRENTLY friend_requests_from_idx ON friend_requests (from_user_id);
-- xfchat: statement break
DROP INDEX CONCURRENTLY IF EXISTS friend_requests_to_idx;
-- xfchat: statement break
CREATE INDEX CONCURRENTLY friend_requests_to_idx ON friend_requests (to_user_id);
