-- Back to v1: every member row names the other member of its direct conversation again.
CREATE TABLE members_v1 (
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
INSERT INTO members_v1
    SELECT m.conversation_id, m.user_id,
           CASE WHEN c.user_lo = m.user_id THEN c.user_hi ELSE c.user_lo END,
           m.cleared_up_to, m.read_up_to, m.delivered_up_to, m.pinned, m.hidden
    FROM members m JOIN conversations c ON c.id = m.conversation_id;
DROP TABLE members;
ALTER TABLE members_v1 RENAME TO members;
CREATE UNIQUE INDEX members_user_peer ON members(user_id, peer_id);
ALTER TABLE conversations DROP COLUMN kind;
