-- xfchat: destroys the old values the audit log recorded (its `diff` column: each update entry's {key, old_value, new_value}); the new values stay in `changes`.
ALTER TABLE audit_log DROP COLUMN diff;
