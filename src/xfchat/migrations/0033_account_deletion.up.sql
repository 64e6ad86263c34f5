-- Account deletion (POST /api/users/@me/delete, domain/account_deletion.py): the row
-- stays, scrubbed (a reserved placeholder username and email, no password), so that
-- the messages it wrote keep an author; deleted_at says it is gone. Its sessions end
-- with a reason of their own.
ALTER TABLE users ADD COLUMN deleted_at timestamptz;

ALTER TABLE sessions DROP CONSTRAINT sessions_revoked_reason_known;
ALTER TABLE sessions ADD CONSTRAINT sessions_revoked_reason_known CHECK (
    revoked_reason IS NULL
    OR revoked_reason IN (
        'logout', 'revoked', 'password_changed', 'token_reuse', 'session_limit', 'account_deleted'
    )
);
