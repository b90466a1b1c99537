-- Receipts and unread counts for conversations in MLS (docs/PROTOCOL.md "Receipts in a
-- group's log"). A member's markers in a group's log are log positions (`seq`), which are not
-- message ids: a direct conversation that moved has both, so each has its own column.
ALTER TABLE members ADD COLUMN log_delivered_up_to BIGINT NOT NULL DEFAULT 0;
ALTER TABLE members ADD COLUMN log_read_up_to BIGINT NOT NULL DEFAULT 0;

-- The application messages of each group's log, by position and sender: what unread counts
-- and receipts count. The log's entries go once every device has processed them (prune_log),
-- long before a person may have read them; this index stays until every member has read or
-- cleared past a message. It holds nothing the log did not show the relay already.
CREATE TABLE log_messages (
    conversation_id BIGINT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    sender_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (conversation_id, seq)
);
INSERT INTO log_messages (conversation_id, seq, sender_id)
    SELECT conversation_id, seq, sender_id FROM group_log WHERE content_type = 1;
