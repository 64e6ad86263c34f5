-- xfchat: destroys the real-time event log (events, event_streams): clients cannot resume from before it and reload
DROP TABLE events;
DROP TABLE event_streams;
