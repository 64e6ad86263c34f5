-- Who is in which voice channel (a user is in at most one at a time).
CREATE TABLE voice_states (
    user_id     uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    channel_id  uuid NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    server_id   uuid REFERENCES servers (id) ON DELETE CASCADE,
    session_id  uuid REFERENCES sessions (id) ON DELETE CASCADE,
    self_mute   boolean NOT NULL DEFAULT false,
    self_deaf   boolean NOT NULL DEFAULT false,
    server_mute boolean NOT NULL DEFAULT false,
    server_deaf boolean NOT NULL DEFAULT false,
    self_video  boolean NOT NULL DEFAULT false,
    joined_at   timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX voice_states_channel_idx ON voice_states (channel_id);
CREATE INDEX voice_states_server_idx ON voice_states (server_id) WHERE server_id IS NOT NULL;
