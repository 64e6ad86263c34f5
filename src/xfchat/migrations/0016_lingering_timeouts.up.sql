-- A timeout outlives leaving: a member who leaves (or is kicked) while timed out gets
-- the rest of it back on rejoining, so leaving and rejoining is no way out of one.
CREATE TABLE lingering_timeouts (
    server_id uuid NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    user_id   uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    until     timestamptz NOT NULL,
    PRIMARY KEY (server_id, user_id)
);
CREATE INDEX lingering_timeouts_user_idx ON lingering_timeouts (user_id);
