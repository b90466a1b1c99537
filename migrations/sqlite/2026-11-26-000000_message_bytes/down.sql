ALTER TABLE users DROP COLUMN message_bytes;
