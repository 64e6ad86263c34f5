-- A reader's unread count in a channel (db/queries/messages.py, list_unreads_of_pairs; a
-- conversation's in db/queries/conversations.py): their first `cap` unread messages
-- (someone else's, live; where `since` is given, written from then on), counted in
-- order by the live messages' index (migration 0040), a walk that stops at the cap
-- however far behind the reader is.
-- Written inside those statements, the walk was planned generically, with a channel's
-- messages estimated as the average channel's: a few dozen, fewer than the cap once
-- filtered, where most channels are conversations. PostgreSQL then read them all by a
-- bitmap and sorted them, which for a channel of 150,000 messages is all 150,000, for
-- every reader behind in it (a newcomer: read position 0), on every `ready` (1.1 s for
-- a newcomer in a server of 50 channels). In a function of its own, planned with
-- neither a bitmap nor a sort to choose, only the walk in order is left.
CREATE OR REPLACE FUNCTION xf_unread_count(
    channel uuid, after_seq bigint, reader uuid, since timestamptz, cap int
) RETURNS bigint
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path FROM CURRENT
SET enable_bitmapscan = off
SET enable_sort = off
SET enable_incremental_sort = off
AS $$
    SELECT count(*) FROM (
        SELECT 1 FROM messages m
        WHERE m.channel_id = channel AND m.seq > after_seq
          -- (someone else's, as db/queries/conversations.py OTHERS_LIVE says)
          AND coalesce(m.author_id <> reader, true) AND m.deleted_at IS NULL
          AND (since IS NULL OR m.created_at >= since)
        ORDER BY m.seq LIMIT cap) x
$$;
