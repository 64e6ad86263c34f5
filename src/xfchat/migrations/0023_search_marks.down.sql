DROP INDEX messages_search_idx;
CREATE INDEX messages_search_idx ON messages USING gin (search);
DROP FUNCTION xf_search_marks(uuid, timestamptz);
