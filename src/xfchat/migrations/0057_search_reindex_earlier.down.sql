-- xfchat: no data lost: only the languages queued channels are moving from, which searches read while the re-indexing runs (a search then finds those messages by their words as written, as before this migration).
ALTER TABLE search_reindexes DROP COLUMN earlier;
