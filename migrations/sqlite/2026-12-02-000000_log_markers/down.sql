DROP TABLE log_messages;
ALTER TABLE members DROP COLUMN log_read_up_to;
ALTER TABLE members DROP COLUMN log_delivered_up_to;
