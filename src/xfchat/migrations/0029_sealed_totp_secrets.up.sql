-- Two-factor secrets sealed at rest (domain/sealed_secrets.py): `v1.<key id>.<nonce and
-- AES-GCM ciphertext, base64url>`. Secrets stored in the clear before this migration
-- stay readable until `xfchat serve` seals them again, before it serves.
ALTER TABLE user_totp DROP CONSTRAINT user_totp_secret_base32;
ALTER TABLE user_totp ADD CONSTRAINT user_totp_secret_form CHECK (
    secret ~ '^[A-Z2-7]{32}$' OR secret ~ '^v1\.[0-9a-f]{8}\.[A-Za-z0-9_-]{80}$'
);
