-- Mutes: a user's choice to hear less of a channel (a server's text channel or a
-- conversation) or of a whole server, until `muted_until` (NULL: until unmuted). It
-- changes only how that user's own clients show unread messages; nothing is counted
-- differently. A mute whose time has passed is no mute: readers filter by time, each
-- change of a user's mutes deletes their ended ones, and the retention job the rest.
-- One row per user and target (channel and server ids never collide: both are random
-- uuids); it goes with its channel or server, and when the user leaves them
-- (domain/mutes.py).
CREATE TABLE mutes (
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    channel_id  uuid REFERENCES channels (id) ON DELETE CASCADE,
    server_id   uuid REFERENCES servers (id) ON DELETE CASCADE,
    target_id   uuid GENERATED ALWAYS AS (coalesce(channel_id, server_id)) STORED,
    muted_until timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, target_id),
    CONSTRAINT mutes_one_target CHECK ((channel_id IS NULL) <> (server_id IS NULL))
);
-- (the cascades from channels and servers find their rows by these)
CREATE INDEX mutes_channel_idx ON mutes (channel_id) WHERE channel_id IS NOT NULL;
CREATE INDEX mutes_server_idx ON mutes (server_id) WHERE server_id IS NOT NULL;
-- (the retention job's ended mutes)
CREATE INDEX mutes_until_idx ON mutes (muted_until) WHERE muted_until IS NOT NULL;
