-- xfchat: no transaction
-- Only live accounts' email keys are unique. A deleted account's row keeps a placeholder
-- (domain/account_deletion.py), which nobody logs in by; and with the index partial,
-- email_key is no column a foreign key could reference, so the deletion's scrub of it is
-- an UPDATE that takes FOR NO KEY UPDATE, not FOR UPDATE, on the row: it never waits for
-- the KEY SHARE that every write naming the account (a message, a ban, a membership)
-- takes on it through its foreign key, and so never waits in a circle with one.
-- Built CONCURRENTLY under a new name (users stay readable and writable meanwhile; the
-- whole table's index keeps the keys unique until then), then put in the old one's
-- place. Run again after it stopped part way: a valid new index whose old one is gone
-- takes the old one's name first (the keys stay unique all along: the next statement
-- drops only what no longer guards them); a build that failed left an INVALID index,
-- which the next statement drops.
DO $$
BEGIN
    IF to_regclass('users_email_key') IS NULL
       AND (SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass('users_email_key_live'))
    THEN
        ALTER INDEX users_email_key_live RENAME TO users_email_key;
    END IF;
END $$;
-- xfchat: statement break
DROP INDEX CONCURRENTLY IF EXISTS users_email_key_live;
-- xfchat: statement break
CREATE UNIQUE INDEX CONCURRENTLY users_email_key_live ON users (email_key)
    WHERE deleted_at IS NULL;
-- xfchat: statement break
DROP INDEX CONCURRENTLY IF EXISTS users_email_key;
-- xfchat: statement break
ALTER INDEX users_email_key_live RENAME TO users_email_key;
