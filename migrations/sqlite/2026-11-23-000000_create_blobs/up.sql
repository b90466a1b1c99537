-- Attachment blobs: opaque, client-encrypted files stored under <data-dir>/blobs/<id>.
-- The relay knows only an id, an owner, a size and which messages point at a blob.
CREATE TABLE blobs (
    id TEXT PRIMARY KEY NOT NULL,            -- 16 random bytes, base64url (22 characters)
    owner_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    size BIGINT NOT NULL,                    -- bytes of ciphertext
    created_at BIGINT NOT NULL,
    attached BOOLEAN NOT NULL DEFAULT 0      -- referenced by a message at least once
);
CREATE INDEX blobs_owner ON blobs(owner_id);
CREATE INDEX blobs_unattached ON blobs(attached, created_at);

-- Which messages reference which blobs (declared by the sender in the `send` frame).
CREATE TABLE message_blobs (
    message_id BIGINT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    blob_id TEXT NOT NULL REFERENCES blobs(id) ON DELETE CASCADE,
    PRIMARY KEY (message_id, blob_id)
);
CREATE INDEX message_blobs_blob ON message_blobs(blob_id);
