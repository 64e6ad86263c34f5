-- xfchat: no transaction
-- A deletion empties its message's events in the event log (db/queries/event_log.py,
-- scrub_message_events): its own (the sent text and every edit's), the previews of it
-- that replies and pin notices carry (and every edit of those), and its reactions'
-- (every reaction added or taken back). Each edit, pin and reaction toggle is counted
-- only in the API's 600 requests a minute, so one message can be named by millions of
-- events while the log keeps them: emptied in one statement, its deletion outlasted the
-- statement timeout, every time. These indexes find the events naming one message in
-- log order (they are all in its channel's stream), so that the deletion empties them a
-- bounded batch at a time, each batch starting where the last ended; they replace the
-- indexes of 0007, 0018 and 0037, which found them by the message alone, and are built
-- before those go (a run again after a failure finds the new ones already there, or
-- builds again one left invalid). Built CONCURRENTLY: the event log is the busiest
-- table, and a plain build would stop its writes. Then ANALYZE, so that the planner
-- knows the new expressions at once (their statistics went with the old indexes).
DROP INDEX CONCURRENTLY IF EXISTS events_message_pos_idx;
-- xfchat: statement break
CREATE INDEX CONCURRENTLY events_message_pos_idx ON events ((data ->> 'id'), pos)
    WHERE type IN ('message.created', 'message.updated');
-- xfchat: statement break
DROP INDEX CONCURRENTLY IF EXISTS events_reply_to_pos_idx;
-- xfchat: statement break
CREATE INDEX CONCURRENTLY events_reply_to_pos_idx
    ON events ((data -> 'reply_to' ->> 'id'), pos)
    WHERE type IN ('message.created', 'message.updated')
      AND (data -> 'reply_to' ->> 'id') IS NOT NULL;
-- xfchat: statement break
DROP INDEX CONCURRENTLY IF EXISTS events_reaction_pos_idx;
-- xfchat: statement break
CREATE INDEX CONCURRENTLY events_reaction_pos_idx
    ON events ((data ->> 'message_id'), pos)
    WHERE type IN ('reaction.added', 'reaction.removed');
-- xfchat: statement break
DROP INDEX CONCURRENTLY IF EXISTS events_message_idx;
-- xfchat: statement break
DROP INDEX CONCURRENTLY IF EXISTS events_reply_to_idx;
-- xfchat: statement break
DROP INDEX CONCURRENTLY IF EXISTS events_reaction_message_idx;
-- xfchat: statement break
ANALYZE events;
