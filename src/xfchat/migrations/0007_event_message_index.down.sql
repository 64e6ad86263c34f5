DROP INDEX events_message_idx;
