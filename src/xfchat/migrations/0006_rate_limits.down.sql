-- xfchat: no data lost: rate_limits holds only the current windows' counters
DROP TABLE rate_limits;
