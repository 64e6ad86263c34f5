-- xfchat: no data lost: presence_processes and presence_connections hold only the live connections of running processes
ALTER TABLE users DROP CONSTRAINT users_status_known;
ALTER TABLE users ADD CONSTRAINT users_status_known
    CHECK (status IN ('online', 'idle', 'dnd', 'invisible', 'offline'));
ALTER TABLE users ALTER COLUMN status SET DEFAULT 'offline';
DROP TABLE presence_connections;
DROP TABLE presence_processes;
