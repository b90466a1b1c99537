-- Protocol v2 addresses conversations by id. A conversation has a kind (today only 'direct',
-- whose two members are user_lo and user_hi) and members; a member row no longer names "the
-- peer", which a conversation of more than two would not have. Every stored row is kept.
ALTER TABLE conversations ADD COLUMN kind TEXT NOT NULL DEFAULT 'direct' CHECK (kind IN ('direct'));

CREATE TABLE members_v2 (
    conversation_id BIGINT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users(id),
    cleared_up_to BIGINT NOT NULL DEFAULT 0,
    read_up_to BIGINT NOT NULL DEFAULT 0,
    delivered_up_to BIGINT NOT NULL DEFAULT 0,
    pinned BOOLEAN NOT NULL DEFAULT 0,
    hidden BOOLEAN NOT NULL DEFAULT 0,
    PRIMARY KEY (conversation_id, user_id)
);
INSERT INTO members_v2 (conversation_id, user_id, cleared_up_to, read_up_to, delivered_up_to, pinned, hidden)
    SELECT conversation_id, user_id, cleared_up_to, read_up_to, delivered_up_to, pinned, hidden FROM members;
DROP TABLE members;
ALTER TABLE members_v2 RENAME TO members;
CREATE INDEX members_user ON members(user_id);
