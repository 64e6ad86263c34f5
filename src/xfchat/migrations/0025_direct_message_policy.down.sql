-- xfchat: destroys every user's direct-message policy (users.dm_policy): all go back to accepting everyone
ALTER TABLE users DROP COLUMN dm_policy;
