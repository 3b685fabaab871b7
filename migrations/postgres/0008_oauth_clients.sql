-- The applications that sign their users in here (OAuth2 / OpenID Connect clients).
CREATE TABLE oauth_clients (
    id                        TEXT PRIMARY KEY NOT NULL,
    name                      TEXT NOT NULL,
    -- SHA-256 of the secret, hex; NULL for a public client (a SPA, a mobile app).
    secret_hash               TEXT,
    -- JSON arrays of the URIs registered (matched exactly).
    redirect_uris             TEXT NOT NULL,
    post_logout_redirect_uris TEXT NOT NULL,
    -- The scopes it may ask for, space-separated.
    scopes                    TEXT NOT NULL,
    -- First-party: its users are not asked to consent.
    trusted                   boolean NOT NULL DEFAULT false,
    -- The `aud` of the access tokens it gets; NULL: the server's (TOKENGATE_AUDIENCE).
    audience                  TEXT,
    created_at                bigint NOT NULL,
    updated_at                bigint NOT NULL
);
