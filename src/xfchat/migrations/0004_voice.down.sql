-- xfchat: no data lost: voice_states holds only who is in a voice channel now, each row held by a live gateway connection
DROP TABLE voice_states;
