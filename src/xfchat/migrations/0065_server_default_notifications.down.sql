-- xfchat: destroys each server's default notification level (servers.default_notifications); every server's members fall back to `all` again.
ALTER TABLE servers DROP COLUMN default_notifications;
