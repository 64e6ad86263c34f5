-- xfchat: no transaction
-- Only live accounts' email keys are unique. A deleted account's row keeps a placeholder
-- (domain/account_deletion.py), which nobody logs in by; and with the index partial,
-- email_key is no column a foreign key could reference, so the deletion's scrub of it is
-- an UPDATE that takes FOR NO KEY UPDATE, not FOR UPDATE, on the row: it never waits for
-- the KEY SHARE that every write naming the account (a message, a ban, a membership)
-- takes on it through its foreign key, and so never waits in a circle with one.
-- Built CONCURRENTLY under a new name (users stay readable and writable meanwhile; the
-- whole table's index keeps the keys unique until then), then put in the old one's
-- place. A build that failed leaves an INVALID index: the first statement drops it
-- when this runs again.
DROP INDEX CONCURRENTLY IF EXISTS users_email_key_live;
-- xfchat: statement break
CREATE UNIQUE INDEX CONCURRENTLY users_email_key_live ON users (email_key)
    WHERE deleted_at IS NULL;
-- xfchat: statement break
DROP INDEX CONCURRENTLY IF EXISTS users_email_key;
-- xfchat: statement break
ALTER INDEX users_email_key_live RENAME TO users_email_key;
