-- One message table for every channel and conversation.

CREATE TABLE messages (
    -- Client-chosen for idempotent PUT sends, server-generated otherwise.
    id               uuid PRIMARY KEY,
    channel_id       uuid NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    -- Gap-free per channel, allocated from channels.last_seq in the inserting transaction.
    seq              bigint NOT NULL,
    author_id        uuid REFERENCES users (id) ON DELETE SET NULL,
    kind             text NOT NULL DEFAULT 'default',
    content          text NOT NULL DEFAULT '',
    -- Client-supplied token for idempotent POST sends.
    nonce            text,
    reply_to_id      uuid REFERENCES messages (id) ON DELETE SET NULL,
    mentions         uuid[] NOT NULL DEFAULT '{}',
    mention_everyone boolean NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL DEFAULT now(),
    edited_at        timestamptz,
    deleted_at       timestamptz,
    deleted_by       uuid REFERENCES users (id) ON DELETE SET NULL,
    search           tsvector GENERATED ALWAYS AS (to_tsvector('english', content)) STORED,
    CONSTRAINT messages_channel_seq_key UNIQUE (channel_id, seq),
    CONSTRAINT messages_seq_positive CHECK (seq > 0),
    CONSTRAINT messages_kind_known CHECK (kind IN ('default', 'system')),
    CONSTRAINT messages_content_length CHECK (char_length(content) <= 4000),
    CONSTRAINT messages_nonce_length CHECK (nonce IS NULL OR char_length(nonce) BETWEEN 1 AND 64),
    CONSTRAINT messages_deleted_is_empty CHECK (deleted_at IS NULL OR content = ''),
    CONSTRAINT messages_not_reply_to_self CHECK (reply_to_id <> id)
);
CREATE INDEX messages_channel_time_idx ON messages (channel_id, created_at DESC);
CREATE INDEX messages_search_idx ON messages USING gin (search);
CREATE INDEX messages_author_idx ON messages (author_id, created_at DESC);
CREATE INDEX messages_mentions_idx ON messages USING gin (mentions) WHERE mentions <> '{}';
CREATE INDEX messages_reply_to_idx ON messages (reply_to_id) WHERE reply_to_id IS NOT NULL;
CREATE UNIQUE INDEX messages_nonce_key ON messages (channel_id, author_id, nonce) WHERE nonce IS NOT NULL;

-- Every earlier version of an edited message.
CREATE TABLE message_edits (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id  uuid NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    content     text NOT NULL,
    written_at  timestamptz NOT NULL,
    replaced_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT message_edits_content_length CHECK (char_length(content) <= 4000)
);
CREATE INDEX message_edits_message_idx ON message_edits (message_id, id);

CREATE TABLE reactions (
    message_id uuid NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    emoji      text NOT NULL,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (message_id, emoji, user_id),
    CONSTRAINT reactions_emoji_length CHECK (char_length(emoji) BETWEEN 1 AND 64)
);
CREATE INDEX reactions_user_idx ON reactions (user_id);

-- PostgreSQL is the only datastore, so file bytes live here too (TOAST keeps them out
-- of line; queries that list attachments never read the data column).
CREATE TABLE attachments (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    channel_id   uuid NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    message_id   uuid REFERENCES messages (id) ON DELETE CASCADE,
    uploader_id  uuid REFERENCES users (id) ON DELETE SET NULL,
    filename     text NOT NULL,
    content_type text NOT NULL,
    size_bytes   bigint NOT NULL,
    sha256       bytea NOT NULL,
    width        integer,
    height       integer,
    data         bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT attachments_filename_length CHECK (char_length(filename) BETWEEN 1 AND 255),
    CONSTRAINT attachments_content_type_length CHECK (char_length(content_type) BETWEEN 1 AND 255),
    CONSTRAINT attachments_size_matches CHECK (size_bytes = octet_length(data)),
    CONSTRAINT attachments_sha256_length CHECK (octet_length(sha256) = 32),
    CONSTRAINT attachments_dimensions_positive
        CHECK ((width IS NULL OR width > 0) AND (height IS NULL OR height > 0))
);
CREATE INDEX attachments_message_idx ON attachments (message_id) WHERE message_id IS NOT NULL;
CREATE INDEX attachments_unattached_idx ON attachments (uploader_id, created_at) WHERE message_id IS NULL;

-- How far each user has read each channel (by message sequence number).
CREATE TABLE read_states (
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    channel_id    uuid NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    last_read_seq bigint NOT NULL DEFAULT 0,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, channel_id),
    CONSTRAINT read_states_seq_non_negative CHECK (last_read_seq >= 0)
);
CREATE INDEX read_states_channel_idx ON read_states (channel_id);
