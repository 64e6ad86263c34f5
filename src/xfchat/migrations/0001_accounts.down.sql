DROP TABLE usage_tracking;
DROP TABLE blocks;
DROP TABLE friendships;
DROP TABLE friend_requests;
DROP TABLE refresh_tokens;
DROP TABLE sessions;
DROP TABLE users;
