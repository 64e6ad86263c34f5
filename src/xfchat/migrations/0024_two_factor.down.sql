-- xfchat: destroys every user's two-factor set-up and recovery codes (user_totp, recovery_codes): their two-factor sign-in is off
DROP INDEX sessions_user_ip_idx;
DROP TABLE recovery_codes;
DROP TABLE user_totp;
