-- Multi-factor sign-in: a TOTP factor per user (its secret sealed like signing keys),
-- recovery codes (only their SHA-256), how each session's sign-in proved the user,
-- and attempts counted against a one-time token (an MFA step allows a few).
ALTER TABLE users ADD COLUMN mfa_enabled boolean NOT NULL DEFAULT false;

-- Sessions opened before: a password sign-in when it was opened.
ALTER TABLE sessions ADD COLUMN auth_time bigint NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN amr TEXT NOT NULL DEFAULT 'pwd';
UPDATE sessions SET auth_time = created_at;

ALTER TABLE one_time_tokens ADD COLUMN attempts bigint NOT NULL DEFAULT 0;
-- What auth keeps with the token (an MFA step: the sign-in it completes).
ALTER TABLE one_time_tokens ADD COLUMN context TEXT;

CREATE TABLE totp_factors (
    user_id      TEXT PRIMARY KEY NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- base64 of the secret as sealed (under TOKENGATE_ENCRYPTION_KEY when one is set).
    secret       TEXT NOT NULL,
    created_at   bigint NOT NULL,
    -- NULL: enrolment begun, not confirmed by a code (no factor yet).
    confirmed_at bigint,
    -- The last time step a code was accepted for: that step and older are refused.
    last_step    bigint
);

CREATE TABLE recovery_codes (
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash  TEXT NOT NULL,
    created_at bigint NOT NULL,
    used_at    bigint,
    PRIMARY KEY (user_id, code_hash)
);
