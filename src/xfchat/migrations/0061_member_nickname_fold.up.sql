-- xfchat: no transaction
-- A server's members found by their nickname as search's `from:` names them (folded
-- as people search folds display names: xf_fold_name, migrations 0032 and 0045), by
-- key: without it, `from:bob` in a server read every member of the server and folded
-- each nickname, however few were Bob. Only the members who have a nickname are in it.
-- Built CONCURRENTLY: joins and nickname changes go on meanwhile; a run again first
-- drops what a failed build left.
DROP INDEX CONCURRENTLY IF EXISTS server_members_nickname_idx;
-- xfchat: statement break
CREATE INDEX CONCURRENTLY server_members_nickname_idx
    ON server_members (server_id, xf_fold_name(nickname)) WHERE nickname IS NOT NULL;
