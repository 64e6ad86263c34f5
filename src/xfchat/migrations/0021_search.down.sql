-- xfchat: destroys each server's search language and the language each message was indexed in (servers.search_language, messages.search_config)
DROP INDEX messages_search_idx;
ALTER TABLE messages DROP COLUMN search;
ALTER TABLE messages DROP COLUMN search_config;
ALTER TABLE servers DROP COLUMN search_language;
DROP FUNCTION xf_search_vector(regconfig, text);
DROP FUNCTION xf_grams(text);
DROP FUNCTION xf_fold(text);
DROP FUNCTION xf_fold_wide(text);
ALTER TABLE messages ADD COLUMN search tsvector
    GENERATED ALWAYS AS (to_tsvector('english', content)) STORED;
CREATE INDEX messages_search_idx ON messages USING gin (search);
