-- Bumped by every change that must void a login in flight (password, deactivation,
-- roles): a session opens only if the stamp the login read is still the stamp.
ALTER TABLE users ADD COLUMN security_stamp INTEGER NOT NULL DEFAULT 0;
-- The absolute end of a session (login + TOKENGATE_SESSION_MAX_LIFETIME): no refresh
-- extends it past this. NULL for sessions opened before this column existed.
ALTER TABLE sessions ADD COLUMN max_expires_at INTEGER;
-- Random keys made once per database and shared by every instance on it (HMAC keys
-- for CSRF and device tokens). value: base64.
CREATE TABLE server_secrets (
    name       TEXT PRIMARY KEY NOT NULL,
    value      TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
