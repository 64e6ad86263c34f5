-- One global, gap-free order of everything appended to the event log: the order in
-- which the appending transactions committed.
--
-- Every append to a stream (a transaction's events for one stream) becomes a commit
-- entry with the next `g`. It is taken by a deferred trigger, that is at COMMIT, and the
-- clock row stays locked until the transaction has ended and is visible. So `g` follows
-- commit order, has no gaps (a rolled-back transaction never takes one), and whoever
-- sees commit g already sees every commit before it. Writers do not wait for each
-- other any longer than NOTIFY already makes them: PostgreSQL serialises the commits
-- of notifying transactions with a lock of its own, held over the same span.
--
-- The trigger also announces the commit (NOTIFY xfchat_events) with its g and, when
-- they fit in a notification, the events themselves.

CREATE TABLE event_clock (
    singleton boolean PRIMARY KEY DEFAULT true,
    g         bigint NOT NULL DEFAULT 0,
    CONSTRAINT event_clock_one_row CHECK (singleton),
    CONSTRAINT event_clock_non_negative CHECK (g >= 0)
);

CREATE TABLE event_commits (
    g          bigint PRIMARY KEY,
    stream_id  bigint NOT NULL REFERENCES event_streams (id) ON DELETE CASCADE,
    first_pos  bigint NOT NULL,
    last_pos   bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT event_commits_positions CHECK (first_pos BETWEEN 1 AND last_pos)
);
CREATE INDEX event_commits_stream_idx ON event_commits (stream_id, g);
CREATE INDEX event_commits_created_at_idx ON event_commits (created_at);

-- Commits up to pruned_g were removed by retention: a resume from before needs a resync.
CREATE TABLE event_retention (
    singleton boolean PRIMARY KEY DEFAULT true,
    pruned_g  bigint NOT NULL DEFAULT 0,
    CONSTRAINT event_retention_one_row CHECK (singleton)
);

-- Events written before this migration: one commit each, in the order they were made.
INSERT INTO event_commits (g, stream_id, first_pos, last_pos, created_at)
SELECT row_number() OVER (ORDER BY created_at, stream_id, pos), stream_id, pos, pos, created_at
FROM events;
INSERT INTO event_clock (g) SELECT count(*) FROM events;
INSERT INTO event_retention DEFAULT VALUES;

-- Changes to who may see a channel bump it, so that a send batch can tell whether the
-- access it read is still current (see db/queries/messages_send.py).
ALTER TABLE channels ADD COLUMN access_version bigint NOT NULL DEFAULT 0;

CREATE FUNCTION event_log_commit() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    first_pos  bigint := CASE TG_OP WHEN 'INSERT' THEN 1 ELSE OLD.last_pos + 1 END;
    -- NOTIFY payloads are limited to 8000 bytes; leave room for the head.
    budget     constant int := 7400;
    items      text[];
    positions  bigint[];
    clock      bigint;
    head       text;
    chunk      text := '';
    chunk_n    int := 0;
    chunk_last bigint;
BEGIN
    -- The bodies are read before the clock is taken: its lock lasts until the commit
    -- ends, so as little as possible happens under it.
    SELECT array_agg('["' || type || '",' || data::text || ']' ORDER BY pos),
           array_agg(pos ORDER BY pos)
    INTO items, positions
    FROM events WHERE stream_id = NEW.id AND pos BETWEEN first_pos AND NEW.last_pos;

    UPDATE event_clock SET g = event_clock.g + 1 RETURNING event_clock.g INTO clock;
    INSERT INTO event_commits (g, stream_id, first_pos, last_pos)
    VALUES (clock, NEW.id, first_pos, NEW.last_pos);

    head := '{"g":' || clock || ',"s":' || NEW.id || ',"k":"' || NEW.kind || '","e":"'
            || NEW.entity_id || '","f":' || first_pos || ',"l":' || NEW.last_pos;
    FOR i IN 1 .. coalesce(array_length(items, 1), 0) LOOP
        IF chunk_n > 0 AND octet_length(chunk) + octet_length(items[i]) > budget THEN
            PERFORM pg_notify('xfchat_events', head || ',"p":' || chunk_last || ',"n":'
                              || chunk_n || ',"ev":[' || chunk || ']}');
            chunk := '';
            chunk_n := 0;
        END IF;
        IF octet_length(items[i]) > budget THEN
            -- Too big to carry: announced without its body, read from the log instead.
            PERFORM pg_notify('xfchat_events', head || ',"p":' || positions[i] || ',"n":1}');
        ELSE
            chunk := CASE WHEN chunk_n = 0 THEN items[i] ELSE chunk || ',' || items[i] END;
            chunk_n := chunk_n + 1;
            chunk_last := positions[i];
        END IF;
    END LOOP;
    IF chunk_n > 0 THEN
        PERFORM pg_notify('xfchat_events', head || ',"p":' || chunk_last || ',"n":' || chunk_n
                          || ',"ev":[' || chunk || ']}');
    END IF;
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER event_streams_commit_new
    AFTER INSERT ON event_streams DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (NEW.last_pos > 0) EXECUTE FUNCTION event_log_commit();
CREATE CONSTRAINT TRIGGER event_streams_commit
    AFTER UPDATE OF last_pos ON event_streams DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (NEW.last_pos > OLD.last_pos) EXECUTE FUNCTION event_log_commit();
