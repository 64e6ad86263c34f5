-- xfchat: no data lost: indexes only.
DROP INDEX IF EXISTS users_deleted_idx;
DROP INDEX IF EXISTS friend_requests_from_idx;
DROP INDEX IF EXISTS friend_requests_to_idx;
