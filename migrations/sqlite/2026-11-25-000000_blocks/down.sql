ALTER TABLE messages DROP COLUMN withheld;
DROP TABLE blocks;
