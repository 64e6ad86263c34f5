-- xfchat: no transaction
-- A user's server memberships and conversations, indexed by user, hold the server (the
-- conversation) after the user as well, so that a lookup of one membership by its whole
-- key reads one entry whichever of a table's two indexes serves it. The access facts
-- (db/queries/access.py) look a user's membership and participation up once per
-- channel; planned generically, PostgreSQL may take the user's index for it, which read
-- all of the user's memberships (participations) for each channel: at the caps (200
-- servers, 1,000 conversations) 300,000 rows for a user's conversations, on every
-- `ready`.
--
-- Each built CONCURRENTLY beside the old one (sends and joins go on), then put in its
-- place in one transaction (a moment's lock of the table), so the old one serves until
-- then. A run again first drops what a failed build left.
DROP INDEX CONCURRENTLY IF EXISTS server_members_user_server_idx;
-- xfchat: statement break
CREATE INDEX CONCURRENTLY server_members_user_server_idx ON server_members (user_id, server_id);
-- xfchat: statement break
DROP INDEX IF EXISTS server_members_user_idx;
ALTER INDEX server_members_user_server_idx RENAME TO server_members_user_idx;
-- xfchat: statement break
DROP INDEX CONCURRENTLY IF EXISTS conversation_participants_user_channel_idx;
-- xfchat: statement break
CREATE INDEX CONCURRENTLY conversation_participants_user_channel_idx
    ON conversation_participants (user_id, channel_id);
-- xfchat: statement break
DROP INDEX IF EXISTS conversation_participants_user_idx;
ALTER INDEX conversation_participants_user_channel_idx RENAME TO conversation_participants_user_idx;
