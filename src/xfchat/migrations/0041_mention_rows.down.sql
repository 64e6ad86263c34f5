-- xfchat: no data lost: the rows are derived from messages' own columns.
DROP TRIGGER IF EXISTS messages_mentions_changed ON messages;
DROP TRIGGER IF EXISTS messages_mentions_added ON messages;
DROP FUNCTION IF EXISTS xf_message_mentions();
DROP TABLE IF EXISTS message_mentions;
