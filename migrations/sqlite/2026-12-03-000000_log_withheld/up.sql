-- Blocking in MLS (docs/PROTOCOL.md "Blocking"): an application message from a user whom a
-- member has blocked is withheld from that member: never relayed to them, listed in the log
-- for them, or counted as unread for them; unblocking does not release it. Commits are never
-- withheld (every device needs them to stay in the group). One row per (message, member).
CREATE TABLE log_withheld (
    conversation_id BIGINT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, seq)
);
CREATE INDEX log_withheld_conversation ON log_withheld(conversation_id, seq);
