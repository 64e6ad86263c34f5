-- xfchat: no transaction
-- The unread counts (db/queries/messages.py, list_unreads_of_pairs; a conversation's in
-- db/queries/conversations.py, with its last live message) walk a channel's live
-- messages after a reader's read position. By the channel's (channel_id, seq) index that
-- walk passed every deleted message there one by one: a spam run deleted by its author
-- or a moderator (20,000 tombstones) was walked again for every reader who had not read
-- past it, on every `ready`. Only live messages are in this one. Built CONCURRENTLY:
-- messages is the busiest table, and a plain build would stop its writes.
DROP INDEX CONCURRENTLY IF EXISTS messages_live_idx;
-- xfchat: statement break
CREATE INDEX CONCURRENTLY messages_live_idx ON messages (channel_id, seq) WHERE deleted_at IS NULL;
