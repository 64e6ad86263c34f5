-- xfchat: no transaction
-- A message's reaction counts (migration 0049) carry its channel, and are found by
-- channel: a search for `has:reaction` with no words (db/queries/search.py) reads the
-- reacted messages of the channels searched first, where they are few, and looks them up
-- by key, as `has:file` does with the attachments (which carry their channel). It walked
-- the channels' messages newest first instead, each tested for a reaction: a scope with
-- none, or few and long ago, was read to its beginning, up to the search's 2 s budget.
--
-- Five parts, each of which can run again. The first, one transaction in a moment: the
-- column (no default, so no rewrite), and the counting trigger's function, which fills it
-- in every count row written from then on (a message never changes channel). The second
-- fills it in the rows already there (about a second per million count rows; a reaction
-- toggled meanwhile on a row of the batch being filled waits for it). The third builds the
-- index CONCURRENTLY: reactions and their views go on. The last two make the column
-- required, added NOT VALID in a moment's lock, then validated while reactions go on.
ALTER TABLE reaction_counts ADD COLUMN IF NOT EXISTS channel_id uuid;

CREATE OR REPLACE FUNCTION xf_reaction_counts() RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        -- (ON CONFLICT updates the newest version of a row, whatever the snapshot)
        INSERT INTO reaction_counts AS rc (message_id, emoji, count, first_at, channel_id)
        SELECT a.message_id, a.emoji, count(*), clock_timestamp(),
               (SELECT m.channel_id FROM messages m WHERE m.id = a.message_id)
        FROM added a
        GROUP BY a.message_id, a.emoji ORDER BY a.message_id, a.emoji
        ON CONFLICT (message_id, emoji) DO UPDATE SET count = rc.count + EXCLUDED.count;
    ELSE
        PERFORM 1 FROM reaction_counts rc
        WHERE (rc.message_id, rc.emoji) IN (SELECT message_id, emoji FROM gone)
        ORDER BY rc.message_id, rc.emoji FOR UPDATE OF rc;
        WITH g AS (
            SELECT message_id, emoji, count(*) AS n FROM gone GROUP BY message_id, emoji
        ), emptied AS (
            DELETE FROM reaction_counts rc USING g
            WHERE rc.message_id = g.message_id AND rc.emoji = g.emoji AND rc.count <= g.n
        )
        UPDATE reaction_counts rc SET count = rc.count - g.n FROM g
        WHERE rc.message_id = g.message_id AND rc.emoji = g.emoji AND rc.count > g.n;
    END IF;
    RETURN NULL;
END
$$;
-- xfchat: statement break
-- (In batches of 10,000 rows, each its own transaction, walked by key: each batch locks
-- its rows in key order, the order in which the counting trigger locks them, so that a
-- statement taking back reactions of several messages at once (a moderator's bulk
-- deletion, an account's reactions) never waits on it in a cycle, as an UPDATE of all
-- rows in their order on disk did.)
DO $$
DECLARE
    last_message uuid := '00000000-0000-0000-0000-000000000000';
    last_emoji text := '';
BEGIN
    LOOP
        WITH todo AS (
            SELECT rc.message_id, rc.emoji FROM reaction_counts rc
            WHERE (rc.message_id, rc.emoji) > (last_message, last_emoji)
            ORDER BY rc.message_id, rc.emoji LIMIT 10000
            FOR UPDATE OF rc
        ), filled AS (
            UPDATE reaction_counts rc SET channel_id = m.channel_id
            FROM todo t JOIN messages m ON m.id = t.message_id
            WHERE rc.message_id = t.message_id AND rc.emoji = t.emoji AND rc.channel_id IS NULL
        )
        SELECT t.message_id, t.emoji INTO last_message, last_emoji
        FROM todo t ORDER BY t.message_id DESC, t.emoji DESC LIMIT 1;
        EXIT WHEN NOT FOUND;
        COMMIT;
    END LOOP;
END
$$;
-- xfchat: statement break
DROP INDEX CONCURRENTLY IF EXISTS reaction_counts_channel_idx;
-- xfchat: statement break
CREATE INDEX CONCURRENTLY reaction_counts_channel_idx ON reaction_counts (channel_id, message_id);
-- xfchat: statement break
ALTER TABLE reaction_counts DROP CONSTRAINT IF EXISTS reaction_counts_channel_known,
    ADD CONSTRAINT reaction_counts_channel_known CHECK (channel_id IS NOT NULL) NOT VALID;
-- xfchat: statement break
ALTER TABLE reaction_counts VALIDATE CONSTRAINT reaction_counts_channel_known;
