-- xfchat: no data lost: an index only.
DROP INDEX IF EXISTS events_reaction_message_idx;
