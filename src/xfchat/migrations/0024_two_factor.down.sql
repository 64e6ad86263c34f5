DROP INDEX sessions_user_ip_idx;
DROP TABLE recovery_codes;
DROP TABLE user_totp;
