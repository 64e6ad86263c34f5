-- xfchat: no transaction
-- A message's reactions summed up, kept per (message, emoji): how many, and since when
-- the emoji has been on the message. Every view of a message (a page of history, a
-- search result, a pin) read all of its reactions and counted them, and every reaction
-- added or taken back read them all again for the message's emoji: 5,000 rows for each
-- view of a message 5,000 people reacted to, and a reaction storm on one message cost
-- in proportion to the square of its size. A view now reads at most MAX_REACTION_EMOJI
-- (20) rows, and looks the viewer's own up by key.
--
-- Kept by statement triggers on reactions, so that every writer keeps it (a reaction
-- added or taken back, a message's deletion, a cascade from a message or an account).
-- A statement taking reactions back locks their count rows in key order first (two
-- statements changing the counts of several messages never wait on each other in a
-- cycle), then counts them down in a statement of its own, whose snapshot is taken
-- after those locks: one statement doing both counted down from what its snapshot saw
-- before it waited, and three reactions taken back while a fourth was being added made
-- 3 - 3 = 0, refused by the CHECK. An emoji's place among the message's reactions is
-- when its reaction was written (clock_timestamp(), under the message's lock that every
-- toggle takes: the order of the events; not now(), its transaction's start), and it
-- keeps that place while anyone still reacts with it, as on Discord.
--
-- The first part is one transaction: the triggers' creation locks reactions against
-- writes (not reads) until the counts of the reactions already there are written, so
-- none is counted twice or missed. The table's key to messages comes after, in a
-- moment's lock of messages (NOT VALID), then is validated while messages are written:
-- created with the table it would have locked messages against writes for the whole
-- count. Each part can run again (the first counts everything anew).
CREATE TABLE IF NOT EXISTS reaction_counts (
    message_id uuid NOT NULL,
    emoji      text NOT NULL,
    count      integer NOT NULL CHECK (count > 0),
    first_at   timestamptz NOT NULL,
    PRIMARY KEY (message_id, emoji)
);

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

-- (OR REPLACE: a trigger dropped would lock reactions against reads too, as the count
-- runs; created, it locks out only writes)
CREATE OR REPLACE TRIGGER reactions_counted_added AFTER INSERT ON reactions
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION xf_reaction_counts();
CREATE OR REPLACE TRIGGER reactions_counted_gone AFTER DELETE ON reactions
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION xf_reaction_counts();

DELETE FROM reaction_counts;
INSERT INTO reaction_counts (message_id, emoji, count, first_at)
SELECT message_id, emoji, count(*), min(created_at) FROM reactions GROUP BY message_id, emoji;
-- xfchat: statement break
ALTER TABLE reaction_counts DROP CONSTRAINT IF EXISTS reaction_counts_message_id_fkey;
ALTER TABLE reaction_counts ADD CONSTRAINT reaction_counts_message_id_fkey
    FOREIGN KEY (message_id) REFERENCES messages (id) ON DELETE CASCADE NOT VALID;
-- xfchat: statement break
ALTER TABLE reaction_counts VALIDATE CONSTRAINT reaction_counts_message_id_fkey;
