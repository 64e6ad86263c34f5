-- Presence: who is connected right now, on which server process. UNLOGGED: it is
-- derived from live connections, cheap to write, and a database crash (which empties
-- these tables) only means every process registers its connections again.
CREATE UNLOGGED TABLE presence_processes (
    id         uuid PRIMARY KEY,
    started_at timestamptz NOT NULL DEFAULT now(),
    seen_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX presence_processes_seen_idx ON presence_processes (seen_at);

CREATE UNLOGGED TABLE presence_connections (
    process_id uuid NOT NULL REFERENCES presence_processes (id) ON DELETE CASCADE,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    since      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, process_id)
);
CREATE INDEX presence_connections_process_idx ON presence_connections (process_id);

-- users.status is now the status a user chose (shown while connected); nobody chooses
-- "offline": being disconnected is.
UPDATE users SET status = 'online' WHERE status = 'offline';
ALTER TABLE users ALTER COLUMN status SET DEFAULT 'online';
ALTER TABLE users DROP CONSTRAINT users_status_known;
ALTER TABLE users ADD CONSTRAINT users_status_known
    CHECK (status IN ('online', 'idle', 'dnd', 'invisible'));
