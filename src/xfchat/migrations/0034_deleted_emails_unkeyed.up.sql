-- Only live accounts' email keys are unique. A deleted account's row keeps a placeholder
-- (domain/account_deletion.py), which nobody logs in by; and with the index partial,
-- email_key is no column a foreign key could reference, so the deletion's scrub of it is
-- an UPDATE that takes FOR NO KEY UPDATE, not FOR UPDATE, on the row: it never waits for
-- the KEY SHARE that every write naming the account (a message, a ban, a membership)
-- takes on it through its foreign key, and so never waits in a circle with one.
DROP INDEX users_email_key;
CREATE UNIQUE INDEX users_email_key ON users (email_key) WHERE deleted_at IS NULL;
