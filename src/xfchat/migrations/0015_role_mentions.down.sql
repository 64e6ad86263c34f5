-- xfchat: destroys the role mentions of every message (messages.mention_roles)
DROP INDEX messages_mention_everyone_idx;
DROP INDEX messages_mention_roles_idx;
ALTER TABLE messages DROP COLUMN mention_roles;
