-- A send batch reads its rate-limit buckets first (adding nothing) and adds only the
-- sends it writes, so a bucket may be opened with no hit yet.
ALTER TABLE rate_limits DROP CONSTRAINT rate_limits_hits_positive;
ALTER TABLE rate_limits ADD CONSTRAINT rate_limits_hits_non_negative CHECK (hits >= 0);
