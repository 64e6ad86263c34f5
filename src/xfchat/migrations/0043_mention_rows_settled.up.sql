-- xfchat: no transaction
-- 0041's last pass took out what its backfill wrote from a message as it was before an
-- edit or a deletion that committed meanwhile, as the pass saw the messages when it
-- began. An edit whose trigger ran before the backfill committed (so the trigger's
-- DELETE could not see the backfill's rows) and which committed only after that pass
-- began escaped both: the row of a mention the edit took back (or of a message it
-- deleted) stayed, and its person's unread mention count counted that message for as
-- long as it lives. First wait for every transaction writing messages now (such an edit
-- among them) to end, without blocking anyone (pg_locks polled, as CREATE INDEX
-- CONCURRENTLY waits for older transactions; 10 minutes at most, then the run fails
-- naming them), then the same pass again: any write that
-- begins after the wait sees the backfill's rows, and its trigger keeps them. Each
-- statement can run again.
DO $$
DECLARE
    writing constant text[] := ARRAY(
        SELECT DISTINCT virtualtransaction FROM pg_locks
        WHERE locktype = 'relation' AND relation = 'messages'::regclass
          AND mode = 'RowExclusiveLock' AND pid <> pg_backend_pid());
    deadline constant timestamptz := clock_timestamp() + interval '10 minutes';
BEGIN
    WHILE EXISTS (SELECT 1 FROM pg_locks
                  WHERE locktype = 'virtualxid' AND virtualxid = ANY(writing)) LOOP
        IF clock_timestamp() > deadline THEN
            RAISE EXCEPTION 'waited 10 minutes for the transactions writing messages at its start to end; still open, pids %: end them (pg_terminate_backend) or wait, and run it again',
                (SELECT string_agg(DISTINCT pid::text, ', ') FROM pg_locks
                 WHERE locktype = 'virtualxid' AND virtualxid = ANY(writing));
        END IF;
        PERFORM pg_sleep(0.05);
    END LOOP;
END $$;
-- xfchat: statement break
DELETE FROM message_mentions mm
WHERE NOT EXISTS (SELECT 1 FROM messages m
                  WHERE m.channel_id = mm.channel_id AND m.seq = mm.seq AND m.deleted_at IS NULL
                    AND mm.target_id = ANY(m.mentions || m.mention_roles));
