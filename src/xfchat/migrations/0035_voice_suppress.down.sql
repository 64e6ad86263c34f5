-- xfchat: no data lost: suppress is derived from the permissions of those in voice now
ALTER TABLE voice_states DROP COLUMN suppress;
