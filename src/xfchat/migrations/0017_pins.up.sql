-- Pins: a pinned message says when and by whom; a channel's pins are found through
-- the partial index. Pinning posts a system message of kind 'pin' (reply_to_id: the
-- pinned message).
ALTER TABLE messages
    ADD COLUMN pinned_at timestamptz,
    ADD COLUMN pinned_by uuid REFERENCES users (id) ON DELETE SET NULL;
CREATE INDEX messages_pinned_idx ON messages (channel_id, pinned_at DESC)
    WHERE pinned_at IS NOT NULL;
ALTER TABLE messages DROP CONSTRAINT messages_kind_known;
ALTER TABLE messages ADD CONSTRAINT messages_kind_known
    CHECK (kind IN ('default', 'system', 'pin'));
