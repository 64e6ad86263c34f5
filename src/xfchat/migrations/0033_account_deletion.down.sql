-- xfchat: no transaction
-- xfchat: destroys which accounts were deleted (users.deleted_at: their scrubbed rows stay, and no password opens them) and which sessions ended with their account (revoked_reason 'account_deleted' becomes 'revoked')
-- As the up: the older CHECK added NOT VALID, then validated without stopping the
-- sessions' reads and writes. Each statement may run again.
UPDATE sessions SET revoked_reason = 'revoked' WHERE revoked_reason = 'account_deleted';
-- xfchat: statement break
ALTER TABLE sessions
    DROP CONSTRAINT IF EXISTS sessions_revoked_reason_known,
    ADD CONSTRAINT sessions_revoked_reason_known CHECK (
        revoked_reason IS NULL
        OR revoked_reason IN (
            'logout', 'revoked', 'password_changed', 'token_reuse', 'session_limit'
        )
    ) NOT VALID;
-- xfchat: statement break
ALTER TABLE sessions VALIDATE CONSTRAINT sessions_revoked_reason_known;
-- xfchat: statement break
ALTER TABLE users DROP COLUMN IF EXISTS deleted_at;
