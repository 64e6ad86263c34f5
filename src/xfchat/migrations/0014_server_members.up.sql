-- Servers, served: a member can be timed out until a moment (no sending, reacting or
-- joining voice meanwhile), and a channel can take its category's overrides.
ALTER TABLE server_members ADD COLUMN timed_out_until timestamptz;
ALTER TABLE channels ADD COLUMN permissions_synced boolean NOT NULL DEFAULT false;
-- Bans by user (account deletion, "where am I banned").
CREATE INDEX bans_user_idx ON bans (user_id);
-- Slowmode: when the member last sent a message in the channel (the send path already
-- writes this row, so it costs nothing extra).
ALTER TABLE read_states ADD COLUMN last_sent_at timestamptz;
