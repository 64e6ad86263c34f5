-- xfchat: no data lost: only the index of usernames' looks, which the code before this migration does not consult.
DROP INDEX users_username_look_idx;
