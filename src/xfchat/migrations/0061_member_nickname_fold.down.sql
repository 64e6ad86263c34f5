-- xfchat: no data lost: only the index of members' folded nicknames, which the code before this migration does not consult.
DROP INDEX IF EXISTS server_members_nickname_idx;
