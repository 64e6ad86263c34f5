-- A voice state is suppressed where its member lacks SPEAK in the channel (Discord's
-- `suppress`): set on joining and moving, and again for whoever is in voice when a
-- change of roles or overrides flips it (domain/voice.py). States joined before this
-- migration start unsuppressed; the next such change, or their next join, sets theirs.
ALTER TABLE voice_states ADD COLUMN suppress boolean NOT NULL DEFAULT false;
