-- xfchat: no transaction
-- The index of the messages webhooks posted (migration 0064's messages.webhook_id),
-- which a webhook's deletion reads to let go of them (ON DELETE SET NULL). Built
-- CONCURRENTLY outside a transaction: one read of messages while sends, edits and
-- deletions go on (built inside 0064's transaction, it held the table unwritable for
-- the whole scan). Run again after it stopped part way: a build that failed left an
-- INVALID index, dropped first.
DROP INDEX CONCURRENTLY IF EXISTS messages_webhook_idx;
-- xfchat: statement break
CREATE INDEX CONCURRENTLY messages_webhook_idx ON messages (webhook_id)
    WHERE webhook_id IS NOT NULL;
