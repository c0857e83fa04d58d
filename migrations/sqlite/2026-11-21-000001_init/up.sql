-- Times are milliseconds since the Unix epoch (BIGINT) so both backends share one schema.
CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    email TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    available_treats INTEGER NOT NULL DEFAULT 5 CHECK (available_treats >= 0),
    created_at BIGINT NOT NULL
);
-- Emails are unique case-insensitively; the app stores them lowercased.
CREATE UNIQUE INDEX users_email_key ON users (email);

CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY NOT NULL,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_user_id_idx ON sessions (user_id);

CREATE TABLE pets (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    species TEXT NOT NULL,
    age INTEGER NOT NULL DEFAULT 0,
    hunger INTEGER NOT NULL DEFAULT 250,
    is_alive BOOLEAN NOT NULL DEFAULT 1,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX pets_user_id_idx ON pets (user_id, id);
-- Startup loads live pets only.
CREATE INDEX pets_alive_idx ON pets (id) WHERE is_alive;
