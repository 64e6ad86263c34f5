-- xfchat: no data lost: the rows deleted are counters of zero hits in the current windows
DELETE FROM rate_limits WHERE hits = 0;
ALTER TABLE rate_limits DROP CONSTRAINT rate_limits_hits_non_negative;
ALTER TABLE rate_limits ADD CONSTRAINT rate_limits_hits_positive CHECK (hits > 0);
