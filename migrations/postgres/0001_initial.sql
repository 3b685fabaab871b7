-- The PostgreSQL schema: the same tables as SQLite's, in native types (uuid,
-- timestamptz, text[]). Every instance of a deployment shares it.
CREATE TABLE users (
    id             uuid PRIMARY KEY,
    username       text NOT NULL,
    email          text NOT NULL,
    password_hash  text NOT NULL,
    is_active      boolean NOT NULL DEFAULT true,
    roles          text[] NOT NULL DEFAULT '{}',
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    -- Moved by every change that must void a login in flight (password, activity, roles).
    security_stamp bigint NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX users_username_ci ON users (lower(username));
CREATE UNIQUE INDEX users_email_ci ON users (lower(email));
CREATE INDEX users_created ON users (created_at, id);

CREATE TABLE sessions (
    id             uuid PRIMARY KEY,
    user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at     timestamptz NOT NULL,
    last_used_at   timestamptz NOT NULL,
    expires_at     timestamptz NOT NULL,
    -- No rotation extends the session past this.
    max_expires_at timestamptz,
    revoked_at     timestamptz,
    user_agent     text,
    ip             text
);
CREATE INDEX sessions_user ON sessions (user_id);

-- Refresh tokens: SHA-256 only.
CREATE TABLE refresh_tokens (
    token_hash text PRIMARY KEY,
    session_id uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);
CREATE INDEX refresh_tokens_expiry ON refresh_tokens (expires_at);

-- Asymmetric signing keys (private_key: DER; Ed25519 and P-256 PKCS#8, RSA PKCS#1).
CREATE TABLE signing_keys (
    kid         text PRIMARY KEY,
    algorithm   text NOT NULL,
    private_key bytea NOT NULL,
    state       text NOT NULL CHECK (state IN ('active', 'retired')),
    created_at  timestamptz NOT NULL,
    signs_from  timestamptz NOT NULL,
    retired_at  timestamptz,
    retires_at  timestamptz
);
-- Exactly one active key: two instances starting at once cannot both create one.
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (state) WHERE state = 'active';

-- Random keys made once per database and shared by every instance (HMAC keys).
CREATE TABLE server_secrets (
    name       text PRIMARY KEY,
    value      bytea NOT NULL,
    created_at timestamptz NOT NULL
);
