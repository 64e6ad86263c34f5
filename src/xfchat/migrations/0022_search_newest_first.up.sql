-- The newest matches first across channels: a search whose words are common walks this
-- backwards and stops at its window of 1,000 matches rather than reading every match
-- (domain/search.py, _choose_walk).
CREATE INDEX messages_created_idx ON messages (created_at DESC, id DESC) WHERE deleted_at IS NULL;
