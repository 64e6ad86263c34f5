-- Mentions of roles and of everyone: `mention_roles` holds the mentionable roles a
-- message mentions (`mention_everyone`, from the first schema, says @everyone/@here).
-- Both feed "my mentions" and mention counts, through the indexes below.
ALTER TABLE messages ADD COLUMN mention_roles uuid[] NOT NULL DEFAULT '{}';
CREATE INDEX messages_mention_roles_idx ON messages USING gin (mention_roles)
    WHERE mention_roles <> '{}';
CREATE INDEX messages_mention_everyone_idx ON messages (channel_id, seq)
    WHERE mention_everyone AND deleted_at IS NULL;
