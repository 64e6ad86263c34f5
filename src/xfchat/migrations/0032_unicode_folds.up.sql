-- Ignoring case in every script, whatever the database's locale (lower() folds only A-Z
-- under the C locale, so "É" never found "Émile" and "émile@" registered beside "Émile@").

-- User search by display name compares xf_fold (0021: case, Latin accents, Greek,
-- Cyrillic, full-width forms, Unicode spaces) of both sides. Through xf_fold_name, which
-- keeps its search_path: an index rebuilt by pg_restore (under an empty search_path)
-- finds xf_fold and xf_fold_wide. Usernames are ASCII: lower() serves them.
CREATE FUNCTION xf_fold_name(t text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path FROM CURRENT
AS $$ SELECT xf_fold(t) $$;
DROP INDEX users_display_name_prefix_idx;
CREATE INDEX users_display_name_fold_idx ON users (xf_fold_name(display_name) text_pattern_ops);

-- Emails: email_key is the email as uniqueness and login compare it, NFC and case-folded
-- by the code (domain/validation.py email_key; SQL has no casefold). Existing rows get the
-- old rule's key, lower(email), which users_email_lower_key already made unique, so this
-- cannot fail on any installation; for ASCII emails (under any locale but a Turkish one)
-- that is already the exact key. `xfchat serve` then recomputes the others in Python
-- (domain/email_keys.py), except where the exact key is already another account's (two
-- accounts whose emails differ only in a non-ASCII letter's case): the other keeps its
-- old key, and a login finds it by the old rule too.
ALTER TABLE users ADD COLUMN email_key text;
UPDATE users SET email_key = lower(email);
ALTER TABLE users ALTER COLUMN email_key SET NOT NULL;
CREATE UNIQUE INDEX users_email_key ON users (email_key);
DROP INDEX users_email_lower_key;
