-- xfchat: no transaction
-- xfchat: no data lost: only the index of usernames' looks, rebuilt with the fold of migration 0059 (a capital I as l, case aside) that the code before this migration consults.
-- Built CONCURRENTLY beside the wider one and put in its place, as the up does.
DROP INDEX CONCURRENTLY IF EXISTS users_username_look_narrow_idx;
-- xfchat: statement break
CREATE INDEX CONCURRENTLY users_username_look_narrow_idx
    ON users (lower(translate(username, 'I', 'l')));
-- xfchat: statement break
DROP INDEX CONCURRENTLY IF EXISTS users_username_look_idx;
-- xfchat: statement break
ALTER INDEX users_username_look_narrow_idx RENAME TO users_username_look_idx;
