DROP INDEX messages_mention_everyone_idx;
DROP INDEX messages_mention_roles_idx;
ALTER TABLE messages DROP COLUMN mention_roles;
