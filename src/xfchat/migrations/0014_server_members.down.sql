ALTER TABLE read_states DROP COLUMN last_sent_at;
DROP INDEX bans_user_idx;
ALTER TABLE channels DROP COLUMN permissions_synced;
ALTER TABLE server_members DROP COLUMN timed_out_until;
