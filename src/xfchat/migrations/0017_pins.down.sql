-- xfchat: destroys every pin (messages.pinned_by, pinned_at) and every pin notice message
DELETE FROM messages WHERE kind = 'pin';
ALTER TABLE messages DROP CONSTRAINT messages_kind_known;
ALTER TABLE messages ADD CONSTRAINT messages_kind_known CHECK (kind IN ('default', 'system'));
DROP INDEX messages_pinned_idx;
ALTER TABLE messages DROP COLUMN pinned_by, DROP COLUMN pinned_at;
