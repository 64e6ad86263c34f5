-- The whole table's index again: a deleted account's placeholder key taken since by a
-- live account (someone who registered that placeholder email) is refused here, rather
-- than reverted into a failing CREATE INDEX; change one's email first.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM users GROUP BY email_key HAVING count(*) > 1) THEN
        RAISE EXCEPTION 'two accounts have one email_key: see 0034_deleted_emails_unkeyed.down.sql';
    END IF;
END $$;
DROP INDEX users_email_key;
CREATE UNIQUE INDEX users_email_key ON users (email_key);
