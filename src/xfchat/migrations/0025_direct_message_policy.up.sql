-- Whom a user takes direct messages from: anyone (the default), or friends only. Never
-- shown to others, so a refusal cannot tell it apart from a block.
ALTER TABLE users ADD COLUMN dm_policy text NOT NULL DEFAULT 'everyone'
    CONSTRAINT users_dm_policy_known CHECK (dm_policy IN ('everyone', 'friends'));
