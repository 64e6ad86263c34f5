-- xfchat: no transaction
-- A server's default notification level (Discord's "Default Notification Settings"):
-- what a member's clients notify them of in its channels when neither the channel nor
-- the server has a setting of theirs (notification_settings): `all` messages or only
-- `mentions`. Clients decide notifications; the server only keeps and shows it.
-- A constant default is kept in the catalog (no rewrite of servers); the CHECK is added
-- NOT VALID (a moment's ACCESS EXCLUSIVE, no scan) and validated on its own, under a
-- lock that lets servers be read and written meanwhile (as 0033). Each statement may
-- run again.
ALTER TABLE servers ADD COLUMN IF NOT EXISTS default_notifications text NOT NULL DEFAULT 'all';
-- xfchat: statement break
ALTER TABLE servers
    DROP CONSTRAINT IF EXISTS servers_default_notifications_level,
    ADD CONSTRAINT servers_default_notifications_level
        CHECK (default_notifications IN ('all', 'mentions')) NOT VALID;
-- xfchat: statement break
ALTER TABLE servers VALIDATE CONSTRAINT servers_default_notifications_level;
