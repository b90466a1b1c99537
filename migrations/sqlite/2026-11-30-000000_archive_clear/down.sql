ALTER TABLE members DROP COLUMN archive_cleared_up_to;
