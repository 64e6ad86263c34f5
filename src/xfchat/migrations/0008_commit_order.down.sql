-- xfchat: destroys the event log's commit order (event_commits, event_clock, event_retention) and channels' access_version
DROP TRIGGER event_streams_commit ON event_streams;
DROP TRIGGER event_streams_commit_new ON event_streams;
DROP FUNCTION event_log_commit();
ALTER TABLE channels DROP COLUMN access_version;
DROP TABLE event_retention;
DROP TABLE event_commits;
DROP TABLE event_clock;
