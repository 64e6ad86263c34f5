-- xfchat: destroys which accounts were deleted (users.deleted_at: their scrubbed rows stay, and no password opens them) and which sessions ended with their account (revoked_reason 'account_deleted' becomes 'revoked')
UPDATE sessions SET revoked_reason = 'revoked' WHERE revoked_reason = 'account_deleted';
ALTER TABLE sessions DROP CONSTRAINT sessions_revoked_reason_known;
ALTER TABLE sessions ADD CONSTRAINT sessions_revoked_reason_known CHECK (
    revoked_reason IS NULL
    OR revoked_reason IN ('logout', 'revoked', 'password_changed', 'token_reuse', 'session_limit')
);
ALTER TABLE users DROP COLUMN deleted_at;
