-- Migration 0008 gave the events written before it one commit each, numbered by
-- created_at: the time their transaction began, not the order in which it committed, so
-- within a stream two of them can be numbered out of order. Nothing may replay them in
-- that order: they now count as pruned, and a resume token pointing before the end of
-- them gets the documented resync (the log starts after them), never a misordered
-- replay. (Tokens handed out before 0008 were of the old format and are refused anyway.)
UPDATE event_retention
SET pruned_g = GREATEST(pruned_g, COALESCE((
    SELECT max(c.g) FROM event_commits c
    WHERE c.created_at < (SELECT applied_at FROM schema_migrations WHERE version = 8)
), 0));
