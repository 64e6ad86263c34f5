-- xfchat: no data lost: only the index of usernames' looks, rebuilt with the fold of migration 0059 (a capital I as l, case aside) that the code before this migration consults.
DROP INDEX users_username_look_idx;
CREATE INDEX users_username_look_idx ON users (lower(translate(username, 'I', 'l')));
