-- Passkeys (WebAuthn credentials), and the ceremonies begun and not yet finished.
CREATE TABLE passkeys (
    id            TEXT PRIMARY KEY NOT NULL,
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- base64url of the credential ID its authenticator chose: one account's only.
    credential_id TEXT NOT NULL UNIQUE,
    -- The relying party it was made for: it signs for that RP ID alone.
    rp_id         TEXT NOT NULL,
    name          TEXT NOT NULL,
    -- The credential as the WebAuthn library keeps it (public key, counter, backup
    -- flags), as JSON.
    credential    TEXT NOT NULL,
    -- The authenticator's signature counter at its last use (0: it keeps none).
    sign_count    bigint NOT NULL DEFAULT 0,
    created_at    bigint NOT NULL,
    last_used_at  bigint
);
CREATE INDEX passkeys_user ON passkeys (user_id);

-- A registration or sign-in begun: its challenge and state until it is finished (once)
-- or expires. Any instance finishes what another began.
CREATE TABLE webauthn_ceremonies (
    id_hash    TEXT PRIMARY KEY NOT NULL,
    kind       TEXT NOT NULL,
    -- NULL for a sign-in that names no user (discoverable credentials).
    user_id    TEXT REFERENCES users (id) ON DELETE CASCADE,
    -- What auth keeps of it, opaque to the store.
    state      TEXT NOT NULL,
    created_at bigint NOT NULL,
    expires_at bigint NOT NULL
);
CREATE INDEX webauthn_ceremonies_expiry ON webauthn_ceremonies (expires_at);
