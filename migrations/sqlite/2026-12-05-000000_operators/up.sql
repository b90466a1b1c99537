-- Running Sealroom for other people (README "Operating a relay"): who may register, which
-- accounts the operator disabled or made admins, and how `sealroom admin` (another process)
-- reaches the relays' live connections.

-- Invite codes. Only a SHA-256 of each code is kept: the code itself is shown once, to whoever
-- created it. `max_uses` sign-ups at most; `expires_at` NULL never expires.
CREATE TABLE invites (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    code_hash BLOB NOT NULL UNIQUE,
    note TEXT NOT NULL DEFAULT '',
    max_uses BIGINT NOT NULL CHECK (max_uses > 0),
    uses BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    created_by BIGINT REFERENCES users(id) ON DELETE SET NULL,
    revoked_at BIGINT
);

ALTER TABLE users ADD COLUMN disabled_at BIGINT;
ALTER TABLE users ADD COLUMN is_admin BOOLEAN NOT NULL DEFAULT 0;

-- Sessions ended by `sealroom admin` (disable, revoke, delete), for the running relays: each
-- reads the rows of the last minute every 200 ms and closes those sessions' sockets (it
-- remembers which rows it has acted on; acting twice would do nothing anyway).
CREATE TABLE kicks (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    user_id BIGINT NOT NULL,
    session_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX kicks_at ON kicks(at);

-- Each running relay's open connections, refreshed every few seconds (`sealroom admin stats`).
CREATE TABLE relay_status (
    node TEXT PRIMARY KEY NOT NULL,
    connections BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
