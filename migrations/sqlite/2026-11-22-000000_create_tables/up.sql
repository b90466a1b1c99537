-- Sealroom relay storage. The relay stores opaque bytes: public keys, sealed key backups,
-- message envelopes. Nothing here decrypts anything.
CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    username TEXT NOT NULL UNIQUE,
    auth_hash TEXT NOT NULL,                 -- Argon2id PHC string of the client's auth_key
    kdf_salt BLOB NOT NULL,                  -- the client's Argon2id salt (16 bytes)
    kdf_m_kib INTEGER NOT NULL,
    kdf_t INTEGER NOT NULL,
    kdf_p INTEGER NOT NULL,
    identity_key BLOB NOT NULL,              -- X25519 public key (32 bytes)
    key_backup BLOB NOT NULL,                -- sealed under a key the server never sees
    key_backup_version BIGINT NOT NULL DEFAULT 1,
    created_at BIGINT NOT NULL,
    last_seen BIGINT
);

CREATE TABLE sessions (
    id TEXT PRIMARY KEY NOT NULL,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX sessions_user ON sessions(user_id);

CREATE TABLE conversations (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    user_lo BIGINT NOT NULL REFERENCES users(id),
    user_hi BIGINT NOT NULL REFERENCES users(id),
    created_at BIGINT NOT NULL,
    last_activity BIGINT NOT NULL,
    UNIQUE (user_lo, user_hi),
    CHECK (user_lo < user_hi)
);

-- Each participant's own view of a conversation.
CREATE TABLE members (
    conversation_id BIGINT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users(id),
    peer_id BIGINT NOT NULL REFERENCES users(id),
    cleared_up_to BIGINT NOT NULL DEFAULT 0,
    read_up_to BIGINT NOT NULL DEFAULT 0,
    delivered_up_to BIGINT NOT NULL DEFAULT 0,
    pinned BOOLEAN NOT NULL DEFAULT 0,
    hidden BOOLEAN NOT NULL DEFAULT 0,
    PRIMARY KEY (conversation_id, user_id)
);
CREATE UNIQUE INDEX members_user_peer ON members(user_id, peer_id);

CREATE TABLE messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    conversation_id BIGINT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    sender_id BIGINT NOT NULL REFERENCES users(id),
    recipient_id BIGINT NOT NULL REFERENCES users(id),
    client_msg_id BLOB NOT NULL,
    envelope BLOB NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (sender_id, client_msg_id)
);
CREATE INDEX messages_conversation ON messages(conversation_id, id);
CREATE INDEX messages_recipient ON messages(recipient_id, id);
CREATE INDEX messages_sender ON messages(sender_id, id);
