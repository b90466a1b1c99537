ALTER TABLE devices DROP COLUMN log_cursor;
