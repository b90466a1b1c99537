-- Version 2: MLS conversations (docs/CRYPTO.md "Version 2", docs/PROTOCOL.md "MLS").
-- The relay stores devices' certificates and key packages, each group's epoch and latest
-- GroupInfo, the Welcomes waiting for devices, and one ordered log per group. All of it is
-- public or opaque: certificates and key packages are public keys signed by users, GroupInfo
-- is public to whoever may join, and every log entry is an MLS message the relay cannot read.
--
-- A conversation may now be a group: `conversations` is rebuilt (SQLite cannot change a CHECK
-- in place) keeping every row, id and the id sequence. The relay runs migrations with foreign
-- keys off and checks them after (store::open), so the rebuild cascades nothing.

CREATE TABLE conversations_v2 (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    kind TEXT NOT NULL DEFAULT 'direct' CHECK (kind IN ('direct', 'group')),
    user_lo BIGINT REFERENCES users(id),
    user_hi BIGINT REFERENCES users(id),
    created_at BIGINT NOT NULL,
    last_activity BIGINT NOT NULL,
    CHECK ((kind = 'direct' AND user_lo IS NOT NULL AND user_hi IS NOT NULL AND user_lo < user_hi)
        OR (kind = 'group' AND user_lo IS NULL AND user_hi IS NULL))
);
INSERT INTO conversations_v2 (id, kind, user_lo, user_hi, created_at, last_activity)
    SELECT id, kind, user_lo, user_hi, created_at, last_activity FROM conversations;
-- The next id continues where the old table's sequence was (ids of deleted rows stay unused).
-- (sqlite_sequence has no key on name: replace the row the copy made.)
CREATE TEMP TABLE next_conversation AS SELECT MAX(seq) AS seq FROM (
        SELECT seq FROM sqlite_sequence WHERE name = 'conversations'
        UNION ALL SELECT COALESCE(MAX(id), 0) FROM conversations_v2);
DELETE FROM sqlite_sequence WHERE name = 'conversations_v2';
INSERT INTO sqlite_sequence (name, seq) SELECT 'conversations_v2', seq FROM next_conversation;
DROP TABLE next_conversation;
DROP TABLE conversations;
ALTER TABLE conversations_v2 RENAME TO conversations;
CREATE UNIQUE INDEX conversations_direct_pair ON conversations(user_lo, user_hi) WHERE kind = 'direct';

-- Admins of a group (only they add or remove other users); in a direct conversation both are.
ALTER TABLE members ADD COLUMN admin BOOLEAN NOT NULL DEFAULT 0;

-- The user's identity signing key (Ed25519 public), published beside the X25519 key once the
-- user's client has made one.
ALTER TABLE users ADD COLUMN signing_key BLOB;

CREATE TABLE devices (
    id BLOB PRIMARY KEY NOT NULL CHECK (length(id) = 16),
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    certificate BLOB NOT NULL,               -- signed by the user's identity signing key
    created_at BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX devices_user ON devices(user_id);

CREATE TABLE key_packages (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    device_id BLOB NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    data BLOB NOT NULL,
    last_resort BOOLEAN NOT NULL DEFAULT 0
);
CREATE INDEX key_packages_device ON key_packages(device_id, last_resort);

CREATE TABLE mls_groups (
    conversation_id BIGINT PRIMARY KEY NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    group_id BLOB NOT NULL UNIQUE,
    epoch BIGINT NOT NULL,
    group_info BLOB NOT NULL                 -- the latest, for external joins
);

-- One log per group; `seq` is strictly increasing (across all groups, hence within each).
CREATE TABLE group_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    conversation_id BIGINT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    sender_id BIGINT NOT NULL REFERENCES users(id),
    sender_device BLOB NOT NULL,
    epoch BIGINT NOT NULL,
    content_type INTEGER NOT NULL CHECK (content_type IN (1, 2, 3)),
    client_msg_id BLOB NOT NULL,
    data BLOB NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (sender_device, client_msg_id)
);
CREATE INDEX group_log_conversation ON group_log(conversation_id, seq);

CREATE TABLE welcomes (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    device_id BLOB NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    conversation_id BIGINT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    log_seq BIGINT NOT NULL,                 -- the commit that added the device
    data BLOB NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX welcomes_device ON welcomes(device_id);
