-- xfchat: no data lost: indexes only.
CREATE INDEX IF NOT EXISTS events_message_idx ON events ((data ->> 'id'))
    WHERE type IN ('message.created', 'message.updated');
CREATE INDEX IF NOT EXISTS events_reaction_message_idx ON events ((data ->> 'message_id'))
    WHERE type IN ('reaction.added', 'reaction.removed');
DROP INDEX IF EXISTS events_message_pos_idx;
DROP INDEX IF EXISTS events_reaction_pos_idx;
