-- Prefix search of users by username or display name (GET /api/users/search), whatever
-- the database's collation: text_pattern_ops orders bytes, so "starts with" is a range.
CREATE INDEX users_username_prefix_idx ON users (lower(username) text_pattern_ops);
CREATE INDEX users_display_name_prefix_idx ON users (lower(display_name) text_pattern_ops);
