-- The revocation log: every revocation writes a row in its own transaction, so a
-- per-instance cache of the session check can catch up on what it must forget
-- (session_id: that session; user_id: every session of that user and the user itself).
CREATE TABLE revocations (
    seq        bigserial PRIMARY KEY,
    session_id uuid,
    user_id    uuid,
    created_at timestamptz NOT NULL
);
CREATE INDEX revocations_created ON revocations (created_at);
