-- A server's earlier messages are re-indexed in the background after a change of its
-- search language (domain/search_reindex.py, reindex_queued_channels), a range of
-- sequence numbers a transaction, no longer inside the change's request.
--
-- Re-indexed in the request, a change held its transaction as long as every message
-- of the server took (about 0.1 ms a chat line, 15 ms one of 4,000 characters): a
-- server whose messages took longer than the statement timeout could not change its
-- language at all (503), and a smaller one held its channels' rows meanwhile. Now the
-- change queues each of the server's channels that holds a message, with the last
-- sequence number it had (its later messages are written in the new language: a send
-- reads the language after its channel's row, which the change locks), and the job
-- walks each from the start to there.
--
-- search_reindexes: a channel whose messages up to through_seq may still be indexed in
-- another language than its server's; those up to done_seq are done. A change while
-- one is queued starts it again from the first (some are in neither language then).
CREATE TABLE search_reindexes (
    channel_id  uuid PRIMARY KEY REFERENCES channels (id) ON DELETE CASCADE,
    done_seq    bigint NOT NULL DEFAULT 0,
    through_seq bigint NOT NULL,
    queued_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT search_reindexes_range CHECK (done_seq >= 0 AND done_seq < through_seq)
);
-- (the job takes the longest waiting first, at every batch: a change queues as many
-- channels as its server has, up to thousands, so the order is an index's)
CREATE INDEX search_reindexes_queue_idx ON search_reindexes (queued_at, channel_id);
