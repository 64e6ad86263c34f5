-- xfchat: no data lost: an index of each username's look (a capital I as l, case aside), which registration and renames consult so that `aIice` cannot pass for `alice`; names taken before it stay as they are.
CREATE INDEX users_username_look_idx ON users (lower(translate(username, 'I', 'l')));
