-- xfchat: destroys who opened each direct conversation (channels.opened_by)
ALTER TABLE channels DROP COLUMN opened_by;
