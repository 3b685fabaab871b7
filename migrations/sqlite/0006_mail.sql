-- Account recovery by mail: whether the address is proven, one-time tokens (stored
-- only as SHA-256), and the durable outbox their mail goes through.
ALTER TABLE users ADD COLUMN email_verified INTEGER NOT NULL DEFAULT 0;

CREATE TABLE one_time_tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,
    purpose    TEXT NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The address the token was mailed to (for an email change: the new address).
    email      TEXT NOT NULL,
    -- The user's security stamp when it was issued: a password change kills it.
    stamp      INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
);
CREATE INDEX one_time_tokens_user ON one_time_tokens (user_id, purpose);
CREATE INDEX one_time_tokens_expiry ON one_time_tokens (expires_at);

CREATE TABLE mail_outbox (
    id              TEXT PRIMARY KEY NOT NULL,
    recipient       TEXT NOT NULL,
    -- What the message is (verify_email, password_reset, ...), for logs and metrics.
    kind            TEXT NOT NULL,
    -- The whole message as sent (sealed under TOKENGATE_ENCRYPTION_KEY when one is
    -- set); emptied once it is delivered.
    message         TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    -- Deliveries tried (an operator's retry starts it over) and claims made (never
    -- goes back: only the holder of the latest claim may record an outcome).
    attempts        INTEGER NOT NULL DEFAULT 0,
    claims          INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    -- A sender holds the message until then (one sender per message, on any instance).
    claimed_until   INTEGER,
    sent_at         INTEGER,
    failed_at       INTEGER,
    last_error      TEXT
);
CREATE INDEX mail_outbox_due ON mail_outbox (next_attempt_at) WHERE sent_at IS NULL AND failed_at IS NULL;
CREATE INDEX mail_outbox_sent ON mail_outbox (sent_at) WHERE sent_at IS NOT NULL;
