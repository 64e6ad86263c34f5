-- xfchat: destroys which sessions the session limit ended (their revoked_reason 'session_limit' becomes 'revoked') and which refresh tokens are self-describing (refresh_tokens.self_describing)
UPDATE sessions SET revoked_reason = 'revoked' WHERE revoked_reason = 'session_limit';
ALTER TABLE sessions DROP CONSTRAINT sessions_revoked_reason_known;
ALTER TABLE sessions ADD CONSTRAINT sessions_revoked_reason_known CHECK (
    revoked_reason IS NULL
    OR revoked_reason IN ('logout', 'revoked', 'password_changed', 'token_reuse')
);
ALTER TABLE refresh_tokens DROP COLUMN self_describing;
