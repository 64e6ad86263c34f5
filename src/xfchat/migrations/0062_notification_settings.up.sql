-- Notification settings: a user's choice of which new messages of a channel (a
-- server's text channel or a conversation) or of a whole server their clients notify
-- them of: `all`, `mentions` (those that mention them by id, by a role of theirs, or
-- @everyone / @here unless `suppress_everyone`), or `nothing`. Only that user's own
-- clients read it; nothing the server sends or counts changes. With no row a
-- conversation is `all`, a server channel its server's level, a server `all`.
-- One row per user and target (channel and server ids never collide: both are random
-- uuids); it goes with its channel or server, and when the user leaves them
-- (domain/notification_settings.py). At most 1,000 a user (the domain's bound).
CREATE TABLE notification_settings (
    user_id           uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    channel_id        uuid REFERENCES channels (id) ON DELETE CASCADE,
    server_id         uuid REFERENCES servers (id) ON DELETE CASCADE,
    target_id         uuid GENERATED ALWAYS AS (coalesce(channel_id, server_id)) STORED,
    level             text NOT NULL CHECK (level IN ('all', 'mentions', 'nothing')),
    suppress_everyone boolean NOT NULL DEFAULT false,
    created_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, target_id),
    CONSTRAINT notification_settings_one_target CHECK ((channel_id IS NULL) <> (server_id IS NULL)),
    -- (suppressing @everyone is a server's choice: a channel's follows its server's)
    CONSTRAINT notification_settings_suppress_of_server CHECK (
        server_id IS NOT NULL OR NOT suppress_everyone
    )
);
-- (the cascades from channels and servers find their rows by these)
CREATE INDEX notification_settings_channel_idx ON notification_settings (channel_id)
    WHERE channel_id IS NOT NULL;
CREATE INDEX notification_settings_server_idx ON notification_settings (server_id)
    WHERE server_id IS NOT NULL;
