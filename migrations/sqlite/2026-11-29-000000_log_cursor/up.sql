-- How far each device has read the log of its groups (it processed every entry up to here in
-- every group it is in): the relay deletes what every device that still needs an entry has
-- passed (store::mls::prune_log).
ALTER TABLE devices ADD COLUMN log_cursor BIGINT NOT NULL DEFAULT 0;
