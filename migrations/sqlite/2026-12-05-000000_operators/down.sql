DROP TABLE relay_status;
DROP TABLE kicks;
ALTER TABLE users DROP COLUMN is_admin;
ALTER TABLE users DROP COLUMN disabled_at;
DROP TABLE invites;
