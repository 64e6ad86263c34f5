-- xfchat: no data lost: the messages still queued are re-indexed here, in one statement, as the code before it did in the change's request.
UPDATE messages m SET search_config = COALESCE(s.search_language, 'english'::regconfig)
FROM search_reindexes r
JOIN channels c ON c.id = r.channel_id
LEFT JOIN servers s ON s.id = c.server_id
WHERE m.channel_id = r.channel_id AND m.seq <= r.through_seq
  AND m.search_config <> COALESCE(s.search_language, 'english'::regconfig);
DROP TABLE search_reindexes;
