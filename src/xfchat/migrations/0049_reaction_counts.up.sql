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
-- A count row is locked in key order by every statement that changes it, so that two
-- statements changing the counts of several messages never wait on each other in a
-- cycle. An emoji's place among the message's reactions is when it came (first_at): it
-- keeps its place while anyone still reacts with it, as on Discord.
--
-- In one transaction: the triggers' creation locks reactions against writes (not
-- reads) until the counts of the reactions already there are written, so none is
-- counted twice or missed; a reaction or a message's deletion meanwhile waits that long.
CREATE TABLE reaction_counts (
    message_id uuid NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    emoji      text NOT NULL,
    count      integer NOT NULL CHECK (count > 0),
    first_at   timestamptz NOT NULL,
    PRIMARY KEY (message_id, emoji)
);

CREATE FUNCTION xf_reaction_counts() RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO reaction_counts AS rc (message_id, emoji, count, first_at)
        SELECT message_id, emoji, count(*), min(created_at) FROM added
        GROUP BY message_id, emoji ORDER BY message_id, emoji
        ON CONFLICT (message_id, emoji) DO UPDATE SET count = rc.count + EXCLUDED.count;
    ELSE
        -- (the rows locked in key order, then each taken away or counted down)
        WITH g AS (
            SELECT message_id, emoji, count(*) AS n FROM gone GROUP BY message_id, emoji
        ), locked AS (
            SELECT rc.message_id, rc.emoji, rc.count, g.n
            FROM reaction_counts rc JOIN g USING (message_id, emoji)
            ORDER BY rc.message_id, rc.emoji FOR UPDATE OF rc
        ), emptied AS (
            DELETE FROM reaction_counts rc USING locked l
            WHERE rc.message_id = l.message_id AND rc.emoji = l.emoji AND l.count <= l.n
        )
        UPDATE reaction_counts rc SET count = rc.count - l.n FROM locked l
        WHERE rc.message_id = l.message_id AND rc.emoji = l.emoji AND l.count > l.n;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER reactions_counted_added AFTER INSERT ON reactions
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION xf_reaction_counts();
CREATE TRIGGER reactions_counted_gone AFTER DELETE ON reactions
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION xf_reaction_counts();

INSERT INTO reaction_counts (message_id, emoji, count, first_at)
SELECT message_id, emoji, count(*), min(created_at) FROM reactions GROUP BY message_id, emoji;
