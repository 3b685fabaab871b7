-- Asymmetric signing keys, shared by every instance on this database.
-- private_key: base64 DER (Ed25519 and P-256: PKCS#8; RSA: PKCS#1).
CREATE TABLE signing_keys (
    kid         TEXT PRIMARY KEY NOT NULL,
    algorithm   TEXT NOT NULL,
    private_key TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('active', 'retired')),
    created_at  INTEGER NOT NULL,
    -- Published (JWKS) from created_at, signing from signs_from: verifiers see a new
    -- key before any token carries it.
    signs_from  INTEGER NOT NULL,
    retired_at  INTEGER,
    retires_at  INTEGER
);
-- Exactly one active key: two instances starting at once cannot both create one.
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (state) WHERE state = 'active';
