-- xfchat: no transaction
-- xfchat: no data lost: indexes only (0007's, 0018's and 0037's again, built
-- CONCURRENTLY as the up built these: a plain build would stop the event log's writes).
DROP INDEX CONCURRENTLY IF EXISTS events_message_idx;
-- xfchat: statement break
CREATE INDEX CONCURRENTLY events_message_idx ON events ((data ->> 'id'))
    WHERE type IN ('message.created', 'message.updated');
-- xfchat: statement break
DROP INDEX CONCURRENTLY IF EXISTS events_reply_to_idx;
-- xfchat: statement break
CREATE INDEX CONCURRENTLY events_reply_to_idx ON events ((data -> 'reply_to' ->> 'id'))
    WHERE type IN ('message.created', 'message.updated')
      AND (data -> 'reply_to' ->> 'id') IS NOT NULL;
-- xfchat: statement break
DROP INDEX CONCURRENTLY IF EXISTS events_reaction_message_idx;
-- xfchat: statement break
CREATE INDEX CONCURRENTLY events_reaction_message_idx ON events ((data ->> 'message_id'))
    WHERE type IN ('reaction.added', 'reaction.removed');
-- xfchat: statement break
DROP INDEX CONCURRENTLY IF EXISTS events_message_pos_idx;
-- xfchat: statement break
DROP INDEX CONCURRENTLY IF EXISTS events_reply_to_pos_idx;
-- xfchat: statement break
DROP INDEX CONCURRENTLY IF EXISTS events_reaction_pos_idx;
