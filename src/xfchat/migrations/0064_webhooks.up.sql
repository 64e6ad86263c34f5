-- Incoming webhooks (README, "Webhooks"): a name, an avatar and a secret (only its
-- SHA-256 kept) that posts into one server text channel without an account. At most
-- 15 per channel and 1,000 per server (domain/webhooks.py counts them under the
-- server's advisory lock). A channel's or a server's deletion takes its webhooks.
CREATE TABLE webhooks (
    id          uuid PRIMARY KEY,
    server_id   uuid NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    channel_id  uuid NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    name        text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 80),
    avatar_url  text,
    token_hash  bytea NOT NULL CHECK (octet_length(token_hash) = 32),
    created_by  uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhooks_channel_idx ON webhooks (channel_id, created_at);
CREATE INDEX webhooks_server_idx ON webhooks (server_id, created_at);
CREATE INDEX webhooks_created_by_idx ON webhooks (created_by) WHERE created_by IS NOT NULL;

-- A webhook's message has no author_id; it keeps the webhook's id and the name and
-- avatar it was posted with (a per-message override, as Discord's), which outlive the
-- webhook. No foreign key, so no index either: a webhook's deletion (or its channel's,
-- whose messages the purge job deletes a thousand a transaction) rewrites none of the
-- messages it posted, up to 43,200 a day at its rate limit (ids are random uuids,
-- never reused: a deleted webhook's id names nothing else).
ALTER TABLE messages
    ADD COLUMN webhook_id uuid,
    ADD COLUMN webhook_name text,
    ADD COLUMN webhook_avatar_url text;

-- As migration 0026's, but a message without an author (a webhook's) moves nobody's
-- read position: read_states.user_id is NOT NULL.
CREATE OR REPLACE FUNCTION xf_write_messages(
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
        SELECT t.author, p_channel, max(t.seq), p_at FROM t WHERE t.author IS NOT NULL
        GROUP BY t.author ORDER BY t.author
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
