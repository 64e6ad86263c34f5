-- xfchat: no data lost: a function only.
DROP FUNCTION IF EXISTS xf_unread_count(uuid, bigint, uuid, timestamptz, int);
