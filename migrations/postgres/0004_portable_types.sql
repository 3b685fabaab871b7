-- The same column types as SQLite's, so that both backends run the same statements
-- (src/store/sql/): ids as UUID text, times as Unix seconds, roles as a JSON array,
-- key material and server secrets as base64. Every value is carried over.
ALTER TABLE refresh_tokens DROP CONSTRAINT refresh_tokens_session_id_fkey;
ALTER TABLE sessions DROP CONSTRAINT sessions_user_id_fkey;

ALTER TABLE users
    ALTER COLUMN id TYPE text USING id::text,
    ALTER COLUMN roles DROP DEFAULT,
    ALTER COLUMN roles TYPE text USING array_to_json(roles)::text,
    ALTER COLUMN roles SET DEFAULT '[]',
    ALTER COLUMN created_at TYPE bigint USING floor(extract(epoch FROM created_at))::bigint,
    ALTER COLUMN updated_at TYPE bigint USING floor(extract(epoch FROM updated_at))::bigint;

ALTER TABLE sessions
    ALTER COLUMN id TYPE text USING id::text,
    ALTER COLUMN user_id TYPE text USING user_id::text,
    ALTER COLUMN created_at TYPE bigint USING floor(extract(epoch FROM created_at))::bigint,
    ALTER COLUMN last_used_at TYPE bigint USING floor(extract(epoch FROM last_used_at))::bigint,
    ALTER COLUMN expires_at TYPE bigint USING floor(extract(epoch FROM expires_at))::bigint,
    ALTER COLUMN max_expires_at TYPE bigint USING floor(extract(epoch FROM max_expires_at))::bigint,
    ALTER COLUMN revoked_at TYPE bigint USING floor(extract(epoch FROM revoked_at))::bigint;

ALTER TABLE refresh_tokens
    ALTER COLUMN session_id TYPE text USING session_id::text,
    ALTER COLUMN created_at TYPE bigint USING floor(extract(epoch FROM created_at))::bigint,
    ALTER COLUMN expires_at TYPE bigint USING floor(extract(epoch FROM expires_at))::bigint,
    ALTER COLUMN used_at TYPE bigint USING floor(extract(epoch FROM used_at))::bigint;

ALTER TABLE signing_keys
    ALTER COLUMN private_key TYPE text USING translate(encode(private_key, 'base64'), E'\n', ''),
    ALTER COLUMN created_at TYPE bigint USING floor(extract(epoch FROM created_at))::bigint,
    ALTER COLUMN signs_from TYPE bigint USING floor(extract(epoch FROM signs_from))::bigint,
    ALTER COLUMN retired_at TYPE bigint USING floor(extract(epoch FROM retired_at))::bigint,
    ALTER COLUMN retires_at TYPE bigint USING floor(extract(epoch FROM retires_at))::bigint;

ALTER TABLE server_secrets
    ALTER COLUMN value TYPE text USING translate(encode(value, 'base64'), E'\n', ''),
    ALTER COLUMN created_at TYPE bigint USING floor(extract(epoch FROM created_at))::bigint;

ALTER TABLE revocations
    ALTER COLUMN session_id TYPE text USING session_id::text,
    ALTER COLUMN user_id TYPE text USING user_id::text,
    ALTER COLUMN created_at TYPE bigint USING floor(extract(epoch FROM created_at))::bigint;

ALTER TABLE sessions ADD CONSTRAINT sessions_user_id_fkey
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE;
ALTER TABLE refresh_tokens ADD CONSTRAINT refresh_tokens_session_id_fkey
    FOREIGN KEY (session_id) REFERENCES sessions (id) ON DELETE CASCADE;
