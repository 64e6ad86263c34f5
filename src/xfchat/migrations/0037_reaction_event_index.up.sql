-- xfchat: no transaction
-- Deleting a message also empties the emoji of its reactions' events in the event log
-- (db/queries/event_log.py, scrub_message_events): this finds those events by the
-- message they name, as events_message_idx finds the message's own. Without it every
-- deletion read all of its channel's events in the log (a week of them, by default).
-- Built CONCURRENTLY: the event log is the busiest table, and a plain build would stop
-- its writes.
DROP INDEX CONCURRENTLY IF EXISTS events_reaction_message_idx;
-- xfchat: statement break
CREATE INDEX CONCURRENTLY events_reaction_message_idx ON events ((data ->> 'message_id'))
    WHERE type IN ('reaction.added', 'reaction.removed');
