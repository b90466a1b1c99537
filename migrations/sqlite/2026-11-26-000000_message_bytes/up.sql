-- Bytes of envelopes each user has stored as a sender, for the per-user message quota
-- (--message-quota): kept in step by every insert and every deletion, counted once here for
-- what is already stored.
ALTER TABLE users ADD COLUMN message_bytes BIGINT NOT NULL DEFAULT 0;
UPDATE users SET message_bytes =
    (SELECT COALESCE(SUM(LENGTH(envelope)), 0) FROM messages WHERE messages.sender_id = users.id);
