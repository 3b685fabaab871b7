-- What the provider hands out: authorization codes, users' consents, and the sessions
-- opened for applications.

-- The application a session was opened for (NULL: a first-party sign-in), and the
-- scopes its tokens carry.
ALTER TABLE sessions ADD COLUMN client_id TEXT;
ALTER TABLE sessions ADD COLUMN scope TEXT;
CREATE INDEX sessions_client ON sessions (user_id, client_id);

-- An authorization code: SHA-256 only; used once, within its minute, by the client,
-- redirect URI and PKCE verifier it was issued for.
CREATE TABLE oauth_codes (
    code_hash      TEXT PRIMARY KEY NOT NULL,
    client_id      TEXT NOT NULL REFERENCES oauth_clients (id) ON DELETE CASCADE,
    user_id        TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    redirect_uri   TEXT NOT NULL,
    -- base64url(SHA-256(verifier)): S256 only.
    code_challenge TEXT NOT NULL,
    nonce          TEXT,
    scope          TEXT NOT NULL,
    -- The browser sign-in the code stands for.
    auth_time      bigint NOT NULL,
    amr            TEXT NOT NULL,
    -- The user's security stamp when the code was issued: a change since voids it.
    user_stamp     bigint NOT NULL,
    created_at     bigint NOT NULL,
    expires_at     bigint NOT NULL,
    used_at        bigint,
    -- The session its exchange opens (chosen when it is used), and when the code came
    -- back a second time (that session may then never open, or dies).
    session_id     TEXT,
    reused_at      bigint
);
CREATE INDEX oauth_codes_expiry ON oauth_codes (expires_at);

-- What a user allowed an application (the scopes), asked once per new scope.
CREATE TABLE oauth_consents (
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL REFERENCES oauth_clients (id) ON DELETE CASCADE,
    scope      TEXT NOT NULL,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL,
    PRIMARY KEY (user_id, client_id)
);
