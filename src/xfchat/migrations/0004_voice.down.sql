DROP TABLE voice_states;
