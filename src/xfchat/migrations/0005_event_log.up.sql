-- The durable event log that real-time delivery reads from.
--
-- A stream is what one subscriber follows in order: a user (their friends, sessions,
-- memberships), a channel (its messages, reactions, reads) or a server (its roles,
-- members, channels). last_pos is the stream's counter row: a writer increments it in
-- its own transaction, which holds the row lock until commit, so positions are
-- gap-free and committed in order. Different streams never wait on each other.
CREATE TABLE event_streams (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind           text NOT NULL,
    entity_id      uuid NOT NULL,
    last_pos       bigint NOT NULL DEFAULT 0,
    -- Events up to here were removed by retention; resuming from before it needs a resync.
    pruned_through bigint NOT NULL DEFAULT 0,
    CONSTRAINT event_streams_kind_known CHECK (kind IN ('user', 'channel', 'server')),
    CONSTRAINT event_streams_entity_key UNIQUE (kind, entity_id),
    CONSTRAINT event_streams_positions CHECK (last_pos >= 0 AND pruned_through BETWEEN 0 AND last_pos)
);

CREATE TABLE events (
    stream_id  bigint NOT NULL REFERENCES event_streams (id) ON DELETE CASCADE,
    pos        bigint NOT NULL,
    type       text NOT NULL,
    data       jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (stream_id, pos),
    CONSTRAINT events_pos_positive CHECK (pos > 0),
    CONSTRAINT events_type_format CHECK (type ~ '^[a-z_]+(\.[a-z_]+)+$')
);
CREATE INDEX events_created_at_idx ON events (created_at);
