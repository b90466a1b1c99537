-- A user blocks another: the blocker no longer receives what the blocked user sends (their
-- messages are stored for the sender, marked withheld, and never shown or relayed to the
-- blocker; unblocking does not release them), nor their typing or presence. The blocked user
-- is not told.
CREATE TABLE blocks (
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    blocked_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, blocked_id),
    CHECK (user_id <> blocked_id)
);
ALTER TABLE messages ADD COLUMN withheld BOOLEAN NOT NULL DEFAULT 0;
