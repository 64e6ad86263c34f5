-- xfchat: destroys the messages of deleted channels not purged yet (and their files'
-- attachments), which the restored foreign keys would refuse; no other data lost.
DELETE FROM messages m WHERE NOT EXISTS (SELECT 1 FROM channels c WHERE c.id = m.channel_id);
DELETE FROM attachments a WHERE NOT EXISTS (SELECT 1 FROM channels c WHERE c.id = a.channel_id);
ALTER TABLE attachments ADD CONSTRAINT attachments_channel_id_fkey
    FOREIGN KEY (channel_id) REFERENCES channels (id) ON DELETE CASCADE;
ALTER TABLE messages ADD CONSTRAINT messages_channel_id_fkey
    FOREIGN KEY (channel_id) REFERENCES channels (id) ON DELETE CASCADE;
DROP TRIGGER channels_queue_purge ON channels;
DROP FUNCTION xf_queue_channel_purge();
DROP TABLE channel_purges;
