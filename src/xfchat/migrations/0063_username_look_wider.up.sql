-- xfchat: no data lost: the index of usernames' looks rebuilt over every existing row with the wider fold (a zero as O, m as rn and w as vv, besides a capital I as l, case aside), which registration and renames consult; names taken before it stay as they are, look-alikes under the new fold included (the index is not unique: only new names are refused).
DROP INDEX users_username_look_idx;
CREATE INDEX users_username_look_idx
    ON users (replace(replace(lower(translate(username, 'I0', 'lo')), 'm', 'rn'), 'w', 'vv'));
