-- xfchat: no transaction
-- xfchat: no data lost: the index of usernames' looks rebuilt over every existing row with the wider fold (a zero as O, m as rn and w as vv, besides a capital I as l, case aside), which registration and renames consult; names taken before it stay as they are, look-alikes under the new fold included (the index is not unique: only new names are refused).
-- Built CONCURRENTLY under a new name beside 0059's (users stay readable and writable
-- meanwhile: a DROP INDEX and a build in one transaction held ACCESS EXCLUSIVE on users
-- for the whole build, and every login waited), then put in its place. Run again after
-- it stopped part way: a build that failed left an INVALID index, and one that stopped
-- after the old index went is built again (not unique: nothing is guarded meanwhile).
DROP INDEX CONCURRENTLY IF EXISTS users_username_look_wide_idx;
-- xfchat: statement break
CREATE INDEX CONCURRENTLY users_username_look_wide_idx
    ON users (replace(replace(lower(translate(username, 'I0', 'lo')), 'm', 'rn'), 'w', 'vv'));
-- xfchat: statement break
DROP INDEX CONCURRENTLY IF EXISTS users_username_look_idx;
-- xfchat: statement break
ALTER INDEX users_username_look_wide_idx RENAME TO users_username_look_idx;
