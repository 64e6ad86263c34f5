-- xfchat: no data lost: email_key is derived from email, and the index from display_name
-- The old unique index compares lower(email): accounts registered since 0032 whose
-- emails it takes for one (none under the C locale; under others, say "İ" and "i") are
-- refused here, rather than reverted into a failing CREATE INDEX; change one's email first.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM users GROUP BY lower(email) HAVING count(*) > 1) THEN
        RAISE EXCEPTION 'two accounts have emails equal under lower(): see 0032_unicode_folds.down.sql';
    END IF;
END $$;
CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email));
DROP INDEX users_email_key;
ALTER TABLE users DROP COLUMN email_key;
DROP INDEX users_display_name_fold_idx;
CREATE INDEX users_display_name_prefix_idx ON users (lower(display_name) text_pattern_ops);
DROP FUNCTION xf_fold_name(text);
