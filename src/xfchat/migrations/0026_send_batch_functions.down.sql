DROP FUNCTION xf_send_batch(uuid, bigint, boolean, uuid[], uuid[], text[], text[], int[],
    int[], uuid[], uuid[], text[], text[], text[], text[], boolean[], int[]);
DROP FUNCTION xf_write_messages(uuid, timestamptz, uuid[], uuid[], text[], text[], uuid[],
    text[], text[], boolean[], text[], text[], int[]);
DROP FUNCTION xf_iso(timestamptz);
DROP FUNCTION xf_hit_buckets(text[], int[], int[]);
