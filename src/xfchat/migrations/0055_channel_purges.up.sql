-- A deleted channel's messages are purged after its deletion, a batch at a time
-- (domain/messages_purge.py, purge_deleted_channels), no longer inside it.
--
-- Deleted with the channel's row, in the deletion's transaction, they held that
-- transaction, and the server's row it locks first, about 5,700 messages a second: a
-- channel of 150,000 messages kept every request that locks its server's row (a join,
-- a role or channel change, a voice move) waiting 26 s, and one past about 170,000
-- made them fail at the 30 s lock wait; a server of 300,000 messages took 44.5 s to
-- delete. Now the deletion removes the channel's row and what is bounded by its
-- members (read positions, overrides, invites, voice states, mutes), and its messages
-- stay behind without a channel: no route shows one, since every read of a message
-- finds its channel through the access facts first (a deleted channel has none: no
-- one may see it), and nothing can add one, since every writer of a message holds a
-- lock on its channel's row (sends FOR KEY SHARE, system messages by taking its
-- counter), which the deletion waits for.
--
-- channel_purges: the deleted channels whose messages are still to be purged, filled
-- by a trigger on every deletion of a channel that ever held one (a server's deletion
-- cascades to its channels, and the trigger fires for each): the purge reads it, the
-- longest waiting first, and takes the row away once the channel holds no message.
CREATE TABLE channel_purges (
    channel_id uuid PRIMARY KEY,
    queued_at timestamptz NOT NULL DEFAULT now()  -- (again when its purge failed)
);

CREATE FUNCTION xf_queue_channel_purge() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO channel_purges (channel_id) VALUES (OLD.id) ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

CREATE TRIGGER channels_queue_purge AFTER DELETE ON channels
    FOR EACH ROW WHEN (OLD.last_seq > 0) EXECUTE FUNCTION xf_queue_channel_purge();

-- The cascades the purge replaces: a message, and a file attached to one, may outlive
-- its channel until purged.
ALTER TABLE messages DROP CONSTRAINT messages_channel_id_fkey;
ALTER TABLE attachments DROP CONSTRAINT attachments_channel_id_fkey;
