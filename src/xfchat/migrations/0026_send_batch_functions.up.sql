-- A send batch in one round trip (domain/messages_send.py, db/queries/messages_send.py).
--
-- xf_hit_buckets: the rate-limit count, one definition for every caller (it was a
-- fragment of SQL pasted into two statements). xf_write_messages: the write of a batch
-- (sequence numbers, messages, their events, read positions, rate-limit counts), one
-- definition for both paths. xf_send_batch: the fast path, checks and write in one
-- statement, run outside any explicit transaction so that its reply comes after its
-- commit: a batch whose authors' access facts the process has seen before, with no
-- reply, no role mention, no repeated id or nonce, in a channel without slowmode and
-- within its rate limits. When a check fails it writes nothing (but the renewal of a
-- rate-limit window, which counts nothing) and says which, and the caller takes the
-- checked path (a transaction of two statements).

-- Count `counts[i]` hits in bucket `buckets[i]` (a window of `periods[i]` seconds that
-- opens at its first hit), locking the rows in bucket order so that concurrent
-- statements cannot deadlock: each bucket's count after this, its window's end, its
-- place in the arrays, and the clock the windows were judged by.
CREATE FUNCTION xf_hit_buckets(p_buckets text[], p_periods int[], p_counts int[])
RETURNS TABLE (o_ord bigint, o_hits int, o_expires_at timestamptz, o_clock timestamptz)
LANGUAGE plpgsql VOLATILE AS $$
-- (PL/pgSQL rather than SQL: its statements' plans are kept for the session, where a
-- SQL function's would be made again at every call.)
BEGIN
    RETURN QUERY
    WITH t AS (SELECT clock_timestamp() AS clock),
    w AS (
        SELECT b.bucket, b.period, b.n, b.ord, t.clock AS start
        FROM t, unnest(p_buckets, p_periods, p_counts) WITH ORDINALITY AS b(bucket, period, n, ord)
    ), h AS (
        INSERT INTO rate_limits AS r (bucket, window_start, expires_at, hits)
        SELECT w.bucket, w.start, w.start + make_interval(secs => w.period), w.n
        FROM w ORDER BY w.bucket
        ON CONFLICT (bucket) DO UPDATE SET
            hits = CASE WHEN r.expires_at > EXCLUDED.window_start
                        THEN r.hits + EXCLUDED.hits ELSE EXCLUDED.hits END,
            window_start = CASE WHEN r.expires_at > EXCLUDED.window_start
                                THEN r.window_start ELSE EXCLUDED.window_start END,
            expires_at = CASE WHEN r.expires_at > EXCLUDED.window_start
                              THEN r.expires_at ELSE EXCLUDED.expires_at END
        RETURNING r.bucket, r.hits, r.expires_at
    )
    SELECT w.ord, h.hits, h.expires_at, w.start FROM h JOIN w USING (bucket) ORDER BY w.ord;
END
$$;

-- How Python's datetime.isoformat() writes a UTC instant (as the API shows created_at).
CREATE FUNCTION xf_iso(at timestamptz) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')
           || CASE WHEN date_part('microseconds', at)::bigint % 1000000 = 0 THEN ''
                   ELSE to_char(at AT TIME ZONE 'UTC', '.US') END
           || '+00:00'
$$;

-- Write a batch of checked sends to one channel at `at`: take the channel's next
-- sequence numbers (locking its counter until the transaction ends), insert the
-- messages, append one message.created event per message (each body's "seq":0, and a
-- "created_at":"@now", filled in), move each author's read position to their newest
-- message, and add counts[i] hits to rate-limit bucket buckets[i] (whose rows the
-- caller has locked). Mentions and role mentions are comma-separated ids. Returns the
-- last sequence number taken (the messages hold last-n+1 .. last, in order).
CREATE FUNCTION xf_write_messages(
    p_channel uuid, p_at timestamptz, p_ids uuid[], p_authors uuid[], p_contents text[],
    p_nonces text[], p_reply_tos uuid[], p_mentions text[], p_datas text[],
    p_everyone boolean[], p_roles text[], p_buckets text[], p_counts int[]
) RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    last bigint;
BEGIN
    WITH c AS (
        UPDATE channels SET last_seq = last_seq + cardinality(p_ids)
        WHERE id = p_channel
        RETURNING last_seq
    ), t AS (
        SELECT u.*, c.last_seq - cardinality(p_ids) + u.ord AS seq
        FROM c, unnest(p_ids, p_authors, p_contents, p_nonces, p_reply_tos, p_mentions, p_datas,
                       p_everyone, p_roles)
                WITH ORDINALITY AS u(id, author, content, nonce, reply_to, mentions, data,
                                     everyone, roles, ord)
    ), m AS (
        INSERT INTO messages (id, channel_id, seq, author_id, content, nonce, reply_to_id,
                              mentions, mention_everyone, mention_roles, created_at,
                              search_config)
        SELECT t.id, p_channel, t.seq, t.author, t.content, t.nonce, t.reply_to,
               CASE WHEN t.mentions = '' THEN '{}'::uuid[]
                    ELSE string_to_array(t.mentions, ',')::uuid[] END,
               t.everyone,
               CASE WHEN t.roles = '' THEN '{}'::uuid[]
                    ELSE string_to_array(t.roles, ',')::uuid[] END,
               p_at,
               (SELECT COALESCE(s.search_language, 'english'::regconfig)
                FROM channels ch LEFT JOIN servers s ON s.id = ch.server_id
                WHERE ch.id = p_channel)
        FROM t
    ), s AS (
        -- Taken after the counter (it hangs off c): the same lock order as every other
        -- writer of this channel, which locks the channel row first.
        INSERT INTO event_streams AS es (kind, entity_id, last_pos)
        SELECT 'channel', p_channel, cardinality(p_ids) FROM c
        ON CONFLICT (kind, entity_id) DO UPDATE
            SET last_pos = es.last_pos + cardinality(p_ids)
        RETURNING id, last_pos
    ), e AS (
        INSERT INTO events (stream_id, pos, type, data)
        SELECT s.id, s.last_pos - cardinality(p_ids) + t.ord, 'message.created',
               replace(replace(t.data, '"seq":0,', '"seq":' || t.seq || ','),
                       '"created_at":"@now"', '"created_at":"' || xf_iso(p_at) || '"')::jsonb
        FROM s, t
    ), read AS (
        -- Sending marks the channel read up to the author's own message.
        -- last_sent_at is what slowmode measures from.
        INSERT INTO read_states AS r (user_id, channel_id, last_read_seq, last_sent_at)
        SELECT t.author, p_channel, max(t.seq), p_at FROM t GROUP BY t.author ORDER BY t.author
        ON CONFLICT (user_id, channel_id) DO UPDATE
            SET last_read_seq = GREATEST(r.last_read_seq, EXCLUDED.last_read_seq),
                last_sent_at = EXCLUDED.last_sent_at, updated_at = now()
    ), counted AS (
        UPDATE rate_limits r SET hits = r.hits + b.n
        FROM unnest(p_buckets, p_counts) AS b(bucket, n)
        WHERE r.bucket = b.bucket
    )
    SELECT c.last_seq INTO last FROM c;
    RETURN last;
END
$$;

-- The fast path. `version` and `facts_current` come from the calling statement's
-- snapshot (the channel's access version, and whether the access facts of everyone
-- the batch names are those the caller decided from); the channel's row is then
-- share-locked (FOR KEY SHARE, as every send holds it: a change of who may see the
-- channel waits for this transaction, and this one for it) and its version read
-- again, newest: equal versions mean the facts were current. Then: no slowmode, none
-- of `check_ids` (the client's message ids) and none of the (author, nonce) pairs
-- already stored, and every rate-limit bucket within its limit with this batch's hits
-- added. Status 'ok' (written), 'gone' (no such channel), 'stale', 'slowmode',
-- 'repeat' or 'limited' (nothing written); the transaction's time, the last sequence
-- number, and each bucket's count before the batch and its window's end.
CREATE FUNCTION xf_send_batch(
    p_channel uuid, p_version bigint, p_facts_current boolean,
    p_check_ids uuid[], p_nonce_authors uuid[], p_check_nonces text[],
    p_buckets text[], p_periods int[], p_limits int[],
    p_ids uuid[], p_authors uuid[], p_contents text[], p_nonces text[], p_mentions text[],
    p_datas text[], p_everyone boolean[], p_counts int[],
    OUT o_status text, OUT o_at timestamptz, OUT o_last bigint, OUT o_hits int[],
    OUT o_ends timestamptz[]
) LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    ch record;
    n int := cardinality(p_ids);
BEGIN
    o_at := now();
    SELECT c.access_version, c.rate_limit_per_user INTO ch
    FROM channels c WHERE c.id = p_channel FOR KEY SHARE;
    IF NOT FOUND THEN
        o_status := 'gone';
        RETURN;
    ELSIF ch.access_version IS DISTINCT FROM p_version OR NOT p_facts_current THEN
        o_status := 'stale';
        RETURN;
    ELSIF ch.rate_limit_per_user <> 0 THEN
        o_status := 'slowmode';
        RETURN;
    ELSIF EXISTS (SELECT 1 FROM unnest(p_check_ids) AS i(id),
                  LATERAL (SELECT 1 FROM messages m WHERE m.id = i.id OFFSET 0) x)
       OR EXISTS (SELECT 1 FROM unnest(p_nonce_authors, p_check_nonces) AS k(author, nonce),
                  LATERAL (SELECT 1 FROM messages m WHERE m.channel_id = p_channel
                           AND m.author_id = k.author AND m.nonce = k.nonce OFFSET 0) x) THEN
        o_status := 'repeat';
        RETURN;
    END IF;
    -- Renew the windows and lock the rows, counting nothing yet.
    SELECT COALESCE(array_agg(b.o_hits ORDER BY b.o_ord), '{}'),
           COALESCE(array_agg(b.o_expires_at ORDER BY b.o_ord), '{}')
    INTO o_hits, o_ends
    FROM xf_hit_buckets(p_buckets, p_periods, array_fill(0, ARRAY[cardinality(p_buckets)])) b;
    IF EXISTS (SELECT 1 FROM unnest(o_hits, p_counts, p_limits) AS b(h, k, l)
               WHERE b.h + b.k > b.l) THEN
        o_status := 'limited';
        RETURN;
    END IF;
    o_last := xf_write_messages(
        p_channel, o_at, p_ids, p_authors, p_contents, p_nonces,
        array_fill(NULL::uuid, ARRAY[n]), p_mentions, p_datas, p_everyone,
        array_fill(''::text, ARRAY[n]), p_buckets, p_counts);
    o_status := 'ok';
END
$$;
