-- Two-factor sign-in (TOTP and recovery codes), and the lookup that tells a familiar
-- client address at login.

-- One authenticator per user. `confirmed_at` is NULL while it is being set up (the
-- secret shown, no code proven yet); `last_step` is the last TOTP time step accepted,
-- so a code works once.
CREATE TABLE user_totp (
    user_id      uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    secret       text NOT NULL,
    confirmed_at timestamptz,
    last_step    bigint NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT user_totp_secret_base32 CHECK (secret ~ '^[A-Z2-7]{32}$')
);

-- Only the SHA-256 of each code (50 random bits) is kept; a used one is spent.
CREATE TABLE recovery_codes (
    user_id   uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash bytea NOT NULL,
    used_at   timestamptz,
    PRIMARY KEY (user_id, code_hash),
    CONSTRAINT recovery_codes_hash_length CHECK (octet_length(code_hash) = 32)
);

CREATE INDEX sessions_user_ip_idx ON sessions (user_id, ip);
