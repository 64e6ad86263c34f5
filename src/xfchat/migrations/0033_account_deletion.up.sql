-- xfchat: no transaction
-- Account deletion (POST /api/users/@me/delete, domain/account_deletion.py): the row
-- stays, scrubbed (a reserved placeholder username and email, no password), so that
-- the messages it wrote keep an author; deleted_at says it is gone. Its sessions end
-- with a reason of their own. Outside a transaction: the new CHECK is added NOT VALID
-- (a moment's ACCESS EXCLUSIVE, no scan) and validated on its own, under a lock that
-- lets the sessions be read and written meanwhile. Each statement may run again.
ALTER TABLE users ADD COLUMN IF NOT EXISTS deleted_at timestamptz;
-- xfchat: statement break
ALTER TABLE sessions
    DROP CONSTRAINT IF EXISTS sessions_revoked_reason_known,
    ADD CONSTRAINT sessions_revoked_reason_known CHECK (
        revoked_reason IS NULL
        OR revoked_reason IN (
            'logout', 'revoked', 'password_changed', 'token_reuse', 'session_limit',
            'account_deleted'
        )
    ) NOT VALID;
-- xfchat: statement break
ALTER TABLE sessions VALIDATE CONSTRAINT sessions_revoked_reason_known;
