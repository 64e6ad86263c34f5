-- Finds the events that carry a message's text, so that deleting the message can
-- empty them too (a resume must not replay deleted content).
CREATE INDEX events_message_idx ON events ((data ->> 'id'))
    WHERE type IN ('message.created', 'message.updated');
