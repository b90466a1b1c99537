-- Version 2: each user's history archive (docs/CRYPTO.md "The history archive"). Every message
-- a device of the user sends or decrypts is also kept here sealed under the user's archive key,
-- once per (conversation, log position), so a new device can read the history forward secrecy
-- hides from it. Sender and sender's clock are stored beside the entry because they are part of
-- its associated data; the relay knows both from the log anyway.
CREATE TABLE archive (
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    conversation_id BIGINT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    sender TEXT NOT NULL,
    sent_ms BIGINT NOT NULL,
    entry BLOB NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, conversation_id, seq)
);

-- Where a user stopped being a member of a group (removed, or left): the last log position
-- their devices may still archive. A user added again is a member beside this row.
CREATE TABLE past_members (
    conversation_id BIGINT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    until_seq BIGINT NOT NULL,
    PRIMARY KEY (conversation_id, user_id)
);

-- The attachments a group message carries: members, and past members up to where they left,
-- may download them. (A group's messages are MLS messages in its log, which the relay cannot
-- read, so the sender names them beside the message, as for direct messages.)
CREATE TABLE group_blobs (
    conversation_id BIGINT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    blob_id TEXT NOT NULL REFERENCES blobs(id) ON DELETE CASCADE,
    PRIMARY KEY (blob_id, conversation_id, seq)
);
