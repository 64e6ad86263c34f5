-- Rate-limit counters shared by every server process on this database.
-- UNLOGGED: no WAL, so a check costs one small in-memory upsert; after a crash the table
-- comes back empty, which only forgives the requests of the current window.
-- bucket is "<rule>:<sha256 of the key>", so no IP address or login name is stored.
CREATE UNLOGGED TABLE rate_limits (
    bucket       text PRIMARY KEY,
    window_start timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    hits         integer NOT NULL,
    CONSTRAINT rate_limits_hits_positive CHECK (hits > 0),
    CONSTRAINT rate_limits_window_order CHECK (expires_at > window_start)
);
CREATE INDEX rate_limits_expires_idx ON rate_limits (expires_at);
