-- Live sessions per account are capped (domain/accounts.py MAX_LIVE_SESSIONS): a login
-- past the cap ends the least recently used ones, with a reason of their own.
ALTER TABLE sessions DROP CONSTRAINT sessions_revoked_reason_known;
ALTER TABLE sessions ADD CONSTRAINT sessions_revoked_reason_known CHECK (
    revoked_reason IS NULL
    OR revoked_reason IN ('logout', 'revoked', 'password_changed', 'token_reuse', 'session_limit')
);

-- A refresh token issued from now on names its session and generation
-- (`<session>.<generation>.<chain>`, domain/tokens.py), so a replay of it is still
-- recognised after its row is gone: a live session keeps only its last two rows. Rows
-- of the tokens issued before (no such form) are kept while their session lives, as
-- nothing else could tell a replay of them from a forgery. The code before this
-- migration inserts rows without the column: false, as its tokens are of the old form.
ALTER TABLE refresh_tokens ADD COLUMN self_describing boolean NOT NULL DEFAULT false;
