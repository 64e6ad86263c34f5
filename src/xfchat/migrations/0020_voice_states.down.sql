-- xfchat: destroys members' server mute and deafen (server_members.voice_mute, voice_deaf), and who is in a voice channel now
ALTER TABLE server_members DROP COLUMN voice_deaf, DROP COLUMN voice_mute;
DELETE FROM voice_states;
DROP INDEX voice_states_process_idx;
ALTER TABLE voice_states
    DROP CONSTRAINT voice_states_connection_key,
    DROP COLUMN connection_id,
    DROP COLUMN process_id;
