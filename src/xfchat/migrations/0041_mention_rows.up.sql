-- xfchat: no transaction
-- Mentions kept by whom they name and where: one row per (user or role, channel, seq)
-- for every live message that names someone (`mentions`) or a role (`mention_roles`).
-- The unread counts' mention count (db/queries/messages.py, list_unreads_of_pairs; a
-- conversation's in db/queries/conversations.py) found the messages naming a reader by
-- the GIN indexes on those arrays, which hold every channel: each count read every
-- message that ever named the reader, read long ago or not, once for each channel
-- counted (a member named 5,000 times, over 300 channels: 1.5 million rows a `ready`).
-- By this table a count reads the mentions of the reader (and of their roles) after
-- their read position in that channel, and nothing else.
--
-- Kept by triggers on messages, so that every writer keeps it (sends, edits, deletions,
-- bulk deletions): a message inserted with mentions adds its rows; a change of its
-- mentions, or its deletion, takes its rows and puts back those of what it names now
-- if it is live; a message removed takes its rows with it (the foreign key).
--
-- Outside a transaction, so that writes to messages go on while the rows of the
-- messages already there are written: the table and its triggers first (each a moment's
-- lock), then the backfill, then a pass that takes out what the backfill wrote from a
-- message as it was before an edit or a deletion that committed meanwhile (the
-- triggers kept every later change). Each statement can run again.
CREATE TABLE IF NOT EXISTS message_mentions (
    target_id  uuid NOT NULL,  -- a user or a role the message names
    channel_id uuid NOT NULL,
    seq        bigint NOT NULL,
    PRIMARY KEY (target_id, channel_id, seq),
    FOREIGN KEY (channel_id, seq) REFERENCES messages (channel_id, seq) ON DELETE CASCADE
);
-- xfchat: statement break
CREATE INDEX IF NOT EXISTS message_mentions_message_idx ON message_mentions (channel_id, seq);
-- xfchat: statement break
CREATE OR REPLACE FUNCTION xf_message_mentions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        DELETE FROM message_mentions WHERE channel_id = OLD.channel_id AND seq = OLD.seq;
    END IF;
    IF NEW.deleted_at IS NULL THEN
        INSERT INTO message_mentions (target_id, channel_id, seq)
        SELECT DISTINCT t, NEW.channel_id, NEW.seq FROM unnest(NEW.mentions || NEW.mention_roles) AS t
        ON CONFLICT DO NOTHING;  -- (the backfill may have written it first)
    END IF;
    RETURN NULL;
END
$$;
-- xfchat: statement break
DROP TRIGGER IF EXISTS messages_mentions_added ON messages;
-- xfchat: statement break
CREATE TRIGGER messages_mentions_added AFTER INSERT ON messages
    FOR EACH ROW WHEN (NEW.mentions <> '{}' OR NEW.mention_roles <> '{}')
    EXECUTE FUNCTION xf_message_mentions();
-- xfchat: statement break
DROP TRIGGER IF EXISTS messages_mentions_changed ON messages;
-- xfchat: statement break
-- (an edit sets the mentions whether they changed or not: only a change fires it)
CREATE TRIGGER messages_mentions_changed AFTER UPDATE OF mentions, mention_roles, deleted_at
    ON messages
    FOR EACH ROW WHEN ((OLD.mentions <> '{}' OR OLD.mention_roles <> '{}'
                        OR NEW.mentions <> '{}' OR NEW.mention_roles <> '{}')
                       AND (OLD.mentions IS DISTINCT FROM NEW.mentions
                            OR OLD.mention_roles IS DISTINCT FROM NEW.mention_roles
                            OR (OLD.deleted_at IS NULL) <> (NEW.deleted_at IS NULL)))
    EXECUTE FUNCTION xf_message_mentions();
-- xfchat: statement break
INSERT INTO message_mentions (target_id, channel_id, seq)
SELECT DISTINCT t, m.channel_id, m.seq
FROM messages m, unnest(m.mentions || m.mention_roles) AS t
WHERE m.deleted_at IS NULL AND (m.mentions <> '{}' OR m.mention_roles <> '{}')
ON CONFLICT DO NOTHING;
-- xfchat: statement break
DELETE FROM message_mentions mm
WHERE NOT EXISTS (SELECT 1 FROM messages m
                  WHERE m.channel_id = mm.channel_id AND m.seq = mm.seq AND m.deleted_at IS NULL
                    AND mm.target_id = ANY(m.mentions || m.mention_roles));
-- xfchat: statement break
ANALYZE message_mentions;
