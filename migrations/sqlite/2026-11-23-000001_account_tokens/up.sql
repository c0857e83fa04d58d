-- Single-use links mailed to a user: a password reset (1 day) or the confirmation of a new
-- email address (7 days). Only a SHA-256 hash of the token is stored; a used link's row is
-- deleted, so a link works once; a user has at most one link of each purpose, so a new one
-- replaces the older even when two are asked for at once. `new_email` is the address being
-- confirmed.
CREATE TABLE account_tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose TEXT NOT NULL CHECK (purpose IN ('reset_password', 'confirm_email')),
    new_email TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX account_tokens_user_purpose_key ON account_tokens (user_id, purpose);
