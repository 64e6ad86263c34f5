-- When each periodic job of the server (xfchat/tasks.py: the rate limits' prune, the
-- event log's retention, the hourly retention of rows) last ran, for the whole cluster.
-- Each process counted a job's period from its own start: one restarted more often than
-- the period (a crash loop, autoscaling, a deploy every half hour) never ran the hourly
-- job at all, and N worker processes ran each job N times a period, at once.
CREATE TABLE periodic_runs (
    name text PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 64),
    ran_at timestamptz NOT NULL
);
