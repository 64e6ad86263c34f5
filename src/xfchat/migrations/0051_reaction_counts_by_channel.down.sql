-- xfchat: no data lost: a message's channel, copied from the message.
DROP INDEX IF EXISTS reaction_counts_channel_idx;
ALTER TABLE reaction_counts DROP CONSTRAINT IF EXISTS reaction_counts_channel_known;
CREATE OR REPLACE FUNCTION xf_reaction_counts() RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        -- (ON CONFLICT updates the newest version of a row, whatever the snapshot)
        INSERT INTO reaction_counts AS rc (message_id, emoji, count, first_at)
        SELECT message_id, emoji, count(*), clock_timestamp() FROM added
        GROUP BY message_id, emoji ORDER BY message_id, emoji
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
ALTER TABLE reaction_counts DROP COLUMN IF EXISTS channel_id;
