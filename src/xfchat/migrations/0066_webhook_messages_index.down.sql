-- xfchat: no transaction
-- xfchat: no data lost: only the index of the messages webhooks posted (0064's revert drops the column itself).
DROP INDEX CONCURRENTLY IF EXISTS messages_webhook_idx;
