-- A voice state belongs to one gateway connection on one server process, and dies with
-- it: when the connection ends, when the process stops, and when the others sweep a
-- crashed process (domain/voice.py). Nothing wrote voice_states before this migration.
DELETE FROM voice_states;
ALTER TABLE voice_states
    ADD COLUMN process_id    uuid NOT NULL,
    ADD COLUMN connection_id uuid NOT NULL,
    ADD CONSTRAINT voice_states_connection_key UNIQUE (connection_id);
CREATE INDEX voice_states_process_idx ON voice_states (process_id);

-- A server mute or deafen is the member's, not the voice state's: it stays when they
-- leave voice and rejoin, until a moderator lifts it (or they leave the server).
ALTER TABLE server_members
    ADD COLUMN voice_mute boolean NOT NULL DEFAULT false,
    ADD COLUMN voice_deaf boolean NOT NULL DEFAULT false;
