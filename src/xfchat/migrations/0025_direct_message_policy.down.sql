ALTER TABLE users DROP COLUMN dm_policy;
