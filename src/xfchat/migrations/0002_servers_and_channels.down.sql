-- xfchat: destroys every server, channel, membership, role, permission override, invite, ban and audit-log entry
DROP TABLE audit_log;
DROP TABLE bans;
DROP TABLE invites;
DROP TABLE channel_permission_overrides;
DROP TABLE member_roles;
DROP TABLE roles;
DROP TABLE conversation_participants;
DROP TABLE channels;
DROP TABLE server_members;
DROP TABLE servers;
