-- xfchat: destroys members' timeouts (server_members.timed_out_until), channels' permissions_synced flags and read_states.last_sent_at
ALTER TABLE read_states DROP COLUMN last_sent_at;
DROP INDEX bans_user_idx;
ALTER TABLE channels DROP COLUMN permissions_synced;
ALTER TABLE server_members DROP COLUMN timed_out_until;
