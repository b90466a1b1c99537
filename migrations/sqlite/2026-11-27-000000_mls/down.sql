DROP TABLE welcomes;
DROP TABLE group_log;
DROP TABLE mls_groups;
DROP TABLE key_packages;
DROP TABLE devices;
ALTER TABLE users DROP COLUMN signing_key;
ALTER TABLE members DROP COLUMN admin;
DELETE FROM conversations WHERE kind = 'group';
CREATE TABLE conversations_v1 (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    user_lo BIGINT NOT NULL REFERENCES users(id),
    user_hi BIGINT NOT NULL REFERENCES users(id),
    created_at BIGINT NOT NULL,
    last_activity BIGINT NOT NULL,
    kind TEXT NOT NULL DEFAULT 'direct' CHECK (kind IN ('direct')),
    UNIQUE (user_lo, user_hi),
    CHECK (user_lo < user_hi)
);
INSERT INTO conversations_v1 (id, user_lo, user_hi, created_at, last_activity, kind)
    SELECT id, user_lo, user_hi, created_at, last_activity, kind FROM conversations;
DROP TABLE conversations;
ALTER TABLE conversations_v1 RENAME TO conversations;
