-- xfchat: no data lost: a new column, `diff`, of each update entry's changed fields as {key, old_value, new_value}; entries written before it keep NULL there (they recorded only the new values, in `changes`), and the API serves them as before with `diff: null`.
ALTER TABLE audit_log ADD COLUMN diff jsonb;
