-- Deleted accounts (README "Running it for other people"; docs/PROTOCOL.md "Deleting an
-- account"). The user row stays as a tombstone, so the conversations their peers keep still
-- name them; its credential is wiped (an empty auth_hash never verifies, and marks it deleted),
-- its key backup, sessions, devices, archive and unsent uploads go. The name stays taken until
-- `name_released_at`: then the tombstone is renamed and the name can be registered again.
CREATE TABLE deleted_users (
    user_id BIGINT PRIMARY KEY NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    deleted_at BIGINT NOT NULL,
    name_released_at BIGINT
);
CREATE INDEX deleted_users_pending ON deleted_users(deleted_at) WHERE name_released_at IS NULL;
