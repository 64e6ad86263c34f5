-- xfchat: no data lost: it deletes only messages of deleted channels, which no route shows and the purge deletes anyway (and their attachments), before the restored foreign keys would refuse them.
DELETE FROM messages m WHERE NOT EXISTS (SELECT 1 FROM channels c WHERE c.id = m.channel_id);
DELETE FROM attachments a WHERE NOT EXISTS (SELECT 1 FROM channels c WHERE c.id = a.channel_id);
ALTER TABLE attachments ADD CONSTRAINT attachments_channel_id_fkey
    FOREIGN KEY (channel_id) REFERENCES channels (id) ON DELETE CASCADE;
ALTER TABLE messages ADD CONSTRAINT messages_channel_id_fkey
    FOREIGN KEY (channel_id) REFERENCES channels (id) ON DELETE CASCADE;
DROP TRIGGER channels_queue_purge ON channels;
DROP FUNCTION xf_queue_channel_purge();
DROP TABLE channel_purges;
