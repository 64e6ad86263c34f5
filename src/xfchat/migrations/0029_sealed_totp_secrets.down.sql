-- The code before 0029 reads secrets only in the clear, and SQL cannot open a sealed
-- one: refuse while any is stored. To go back anyway, turn those users' two-factor
-- sign-in off (they set it up again), recovery codes included:
--   DELETE FROM recovery_codes WHERE user_id IN
--       (SELECT user_id FROM user_totp WHERE secret LIKE 'v1.%');
--   DELETE FROM user_totp WHERE secret LIKE 'v1.%';
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM user_totp WHERE secret LIKE 'v1.%') THEN
        RAISE EXCEPTION 'two-factor secrets are sealed: see 0029_sealed_totp_secrets.down.sql';
    END IF;
END $$;
ALTER TABLE user_totp DROP CONSTRAINT user_totp_secret_form;
ALTER TABLE user_totp ADD CONSTRAINT user_totp_secret_base32 CHECK (secret ~ '^[A-Z2-7]{32}$');
