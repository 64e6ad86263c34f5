-- xfchat: no transaction
-- The live messages' index (migration 0040), which the unread counts walk in order
-- (xf_unread_count, migration 0048), holds the author and the time of each message as
-- well, so that the walk reads the index alone where the table's pages are all visible.
-- After a mass deletion (a channel of 100,000 messages, 99,000 of them deleted, say)
-- that a VACUUM without ANALYZE followed, the planner, its statistics older than the
-- deletion, saw the live index's many near-empty pages and took the channel's
-- (channel_id, seq) key instead: every deleted message walked again, 99,100 rows a count
-- for every reader behind in that channel, on every `ready`, until the next ANALYZE.
-- Read alone, the live index is the cheaper walk whatever the statistics say.
--
-- Built CONCURRENTLY beside the old one (messages is the busiest table); then the new one
-- takes the old one's place. A run again first drops what a failed build left.
DROP INDEX CONCURRENTLY IF EXISTS messages_live_covering_idx;
-- xfchat: statement break
CREATE INDEX CONCURRENTLY messages_live_covering_idx ON messages (channel_id, seq)
    INCLUDE (author_id, created_at) WHERE deleted_at IS NULL;
-- xfchat: statement break
-- (The old one dropped and the new one renamed in one transaction, in a moment's lock of
-- messages: stopped before it, a run again drops and builds the new one again while the
-- old one still serves; dropped CONCURRENTLY first, a stop before the rename left the new
-- one alone, which a run again then dropped, and messages had no live index until the
-- build ended.)
DROP INDEX IF EXISTS messages_live_idx;
ALTER INDEX messages_live_covering_idx RENAME TO messages_live_idx;
