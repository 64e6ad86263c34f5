-- xfchat: no transaction
-- The unread counts' mention count (db/queries/messages.py, list_unreads_of_pairs)
-- walks the messages after a reader's read position that mention anyone, until it has
-- counted UNREAD_CAP of those that mention the reader. Without this it walked every
-- message after the read position: a member who never read a channel with a long
-- history, its whole history, on every `ready` and for every member a reveal counts.
-- Only messages that mention someone are in it. Built CONCURRENTLY: messages is the
-- busiest table, and a plain build would stop its writes.
DROP INDEX CONCURRENTLY IF EXISTS messages_mentioning_idx;
-- xfchat: statement break
CREATE INDEX CONCURRENTLY messages_mentioning_idx ON messages (channel_id, seq)
    WHERE deleted_at IS NULL AND (mention_everyone OR mentions <> '{}' OR mention_roles <> '{}');
