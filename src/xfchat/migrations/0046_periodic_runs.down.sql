-- xfchat: no data lost: when the periodic jobs last ran (after a revert each process
-- counts their periods from its own start again).
DROP TABLE periodic_runs;
