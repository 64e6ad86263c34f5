-- Deleting a message also empties the previews of it that replies (and pin notices)
-- carry in the event log: this finds those events by the id they preview.
CREATE INDEX events_reply_to_idx ON events ((data -> 'reply_to' ->> 'id'))
    WHERE type IN ('message.created', 'message.updated')
      AND (data -> 'reply_to' ->> 'id') IS NOT NULL;
-- An uploaded icon is deleted only when no server shows it any more.
CREATE INDEX servers_icon_url_idx ON servers (icon_url) WHERE icon_url LIKE '/api/media/%';
