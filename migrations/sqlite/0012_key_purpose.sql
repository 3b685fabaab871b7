-- What a signing key signs: access tokens ('access'), or the provider's id_tokens
-- ('id_token': RS256 whatever the access tokens use). One active key per purpose,
-- each rotated the same way.
ALTER TABLE signing_keys ADD COLUMN purpose TEXT NOT NULL DEFAULT 'access' CHECK (purpose IN ('access', 'id_token'));
DROP INDEX signing_keys_one_active;
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (purpose) WHERE state = 'active';
-- The provider's id_token key was kept as a server secret before it had a purpose here
-- (never released): nothing reads that row any more.
DELETE FROM server_secrets WHERE name = 'oidc-id-token-rs256';
