-- xfchat: no transaction
-- xfchat: no data lost: an index only.
-- The whole table's index again: a deleted account's placeholder key taken since by a
-- live account (someone who registered that placeholder email) is refused here, rather
-- than reverted into a failing CREATE INDEX; change one's email first. Built
-- CONCURRENTLY under a new name, then put in the partial one's place, as the up.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM users GROUP BY email_key HAVING count(*) > 1) THEN
        RAISE EXCEPTION 'two accounts have one email_key: see 0034_deleted_emails_unkeyed.down.sql';
    END IF;
END $$;
-- xfchat: statement break
DO $$
BEGIN
    -- (run again after it stopped part way: as the up's first statement)
    IF to_regclass('users_email_key') IS NULL
       AND (SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass('users_email_key_all'))
    THEN
        ALTER INDEX users_email_key_all RENAME TO users_email_key;
    END IF;
END $$;
-- xfchat: statement break
DROP INDEX CONCURRENTLY IF EXISTS users_email_key_all;
-- xfchat: statement break
CREATE UNIQUE INDEX CONCURRENTLY users_email_key_all ON users (email_key);
-- xfchat: statement break
DROP INDEX CONCURRENTLY IF EXISTS users_email_key;
-- xfchat: statement break
ALTER INDEX users_email_key_all RENAME TO users_email_key;
