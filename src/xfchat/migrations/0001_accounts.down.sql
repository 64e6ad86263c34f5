-- xfchat: destroys every account, session, friendship, friend request and block (the tables users, sessions, refresh_tokens, friend_requests, friendships, blocks, usage_tracking)
DROP TABLE usage_tracking;
DROP TABLE blocks;
DROP TABLE friendships;
DROP TABLE friend_requests;
DROP TABLE refresh_tokens;
DROP TABLE sessions;
DROP TABLE users;
