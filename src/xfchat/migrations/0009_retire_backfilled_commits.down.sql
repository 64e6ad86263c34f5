-- Nothing to undo: how far the log counts as pruned only ever grows, and the commits
-- it covers keep their rows either way.
SELECT 1;
