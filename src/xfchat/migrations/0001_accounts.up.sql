-- Accounts: users, login sessions with rotating refresh tokens, friends, blocks, usage.

CREATE TABLE users (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    username      text NOT NULL,
    email         text NOT NULL,
    password_hash text NOT NULL,
    display_name  text,
    avatar_url    text,
    status        text NOT NULL DEFAULT 'offline',
    status_text   text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_username_format CHECK (username ~ '^[A-Za-z0-9_.]{2,32}$'),
    CONSTRAINT users_email_format CHECK (char_length(email) <= 254 AND email ~ '^[^@\s]+@[^@\s]+$'),
    CONSTRAINT users_status_known CHECK (status IN ('online', 'idle', 'dnd', 'invisible', 'offline')),
    CONSTRAINT users_display_name_length
        CHECK (display_name IS NULL OR char_length(display_name) BETWEEN 1 AND 64),
    CONSTRAINT users_status_text_length CHECK (status_text IS NULL OR char_length(status_text) <= 128),
    CONSTRAINT users_avatar_url_length CHECK (avatar_url IS NULL OR char_length(avatar_url) <= 2048)
);
-- Unique case-insensitively; the stored spelling is kept for display.
CREATE UNIQUE INDEX users_username_lower_key ON users (lower(username));
CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email));
CREATE INDEX users_created_at_idx ON users (created_at DESC);

-- One row per login (a "session family"): the device, where it came from, whether it
-- was revoked. The refresh tokens it has been issued live in refresh_tokens.
CREATE TABLE sessions (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    user_agent     text,
    ip             inet,
    created_at     timestamptz NOT NULL DEFAULT now(),
    last_used_at   timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    revoked_at     timestamptz,
    revoked_reason text,
    CONSTRAINT sessions_user_agent_length CHECK (user_agent IS NULL OR char_length(user_agent) <= 512),
    CONSTRAINT sessions_revoked_reason_known CHECK (
        revoked_reason IS NULL
        OR revoked_reason IN ('logout', 'revoked', 'password_changed', 'token_reuse')
    ),
    CONSTRAINT sessions_revoked_has_reason CHECK ((revoked_at IS NULL) = (revoked_reason IS NULL))
);
CREATE INDEX sessions_user_active_idx ON sessions (user_id, created_at DESC) WHERE revoked_at IS NULL;

-- Only the SHA-256 of a refresh token is stored. A token is used once: refreshing
-- marks it used and issues the next generation; presenting a used one again means it
-- was stolen, and the whole session is revoked.
CREATE TABLE refresh_tokens (
    token_hash bytea PRIMARY KEY,
    session_id uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    generation integer NOT NULL,
    issued_at  timestamptz NOT NULL DEFAULT now(),
    used_at    timestamptz,
    CONSTRAINT refresh_tokens_hash_length CHECK (octet_length(token_hash) = 32),
    CONSTRAINT refresh_tokens_generation_positive CHECK (generation > 0),
    CONSTRAINT refresh_tokens_one_per_generation UNIQUE (session_id, generation)
);

CREATE TABLE friend_requests (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    from_user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    to_user_id   uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    status       text NOT NULL DEFAULT 'pending',
    created_at   timestamptz NOT NULL DEFAULT now(),
    responded_at timestamptz,
    CONSTRAINT friend_requests_different_users CHECK (from_user_id <> to_user_id),
    CONSTRAINT friend_requests_status_known
        CHECK (status IN ('pending', 'accepted', 'declined', 'cancelled')),
    CONSTRAINT friend_requests_responded CHECK ((status = 'pending') = (responded_at IS NULL))
);
-- At most one pending request between two users, whichever way it goes.
CREATE UNIQUE INDEX friend_requests_one_pending_per_pair
    ON friend_requests (LEAST(from_user_id, to_user_id), GREATEST(from_user_id, to_user_id))
    WHERE status = 'pending';
CREATE INDEX friend_requests_incoming_idx ON friend_requests (to_user_id, created_at DESC)
    WHERE status = 'pending';
CREATE INDEX friend_requests_outgoing_idx ON friend_requests (from_user_id, created_at DESC)
    WHERE status = 'pending';

-- A friendship is stored once, lower id first.
CREATE TABLE friendships (
    user_low   uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    user_high  uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_low, user_high),
    CONSTRAINT friendships_ordered CHECK (user_low < user_high)
);
CREATE INDEX friendships_user_high_idx ON friendships (user_high);

CREATE TABLE blocks (
    blocker_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    blocked_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (blocker_id, blocked_id),
    CONSTRAINT blocks_different_users CHECK (blocker_id <> blocked_id)
);
CREATE INDEX blocks_blocked_idx ON blocks (blocked_id);

-- Per user and UTC day: what the account used.
CREATE TABLE usage_tracking (
    user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    day            date NOT NULL,
    requests       bigint NOT NULL DEFAULT 0,
    messages_sent  bigint NOT NULL DEFAULT 0,
    bytes_uploaded bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, day),
    CONSTRAINT usage_tracking_non_negative
        CHECK (requests >= 0 AND messages_sent >= 0 AND bytes_uploaded >= 0)
);
