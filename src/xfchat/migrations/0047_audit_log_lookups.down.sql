-- xfchat: no data lost: indexes only.
DROP INDEX IF EXISTS audit_log_actor_idx;
DROP INDEX IF EXISTS audit_log_action_idx;
DROP INDEX IF EXISTS audit_log_target_user_idx;
DROP INDEX IF EXISTS audit_log_message_author_idx;
