DROP TABLE group_blobs;
DROP TABLE past_members;
DROP TABLE archive;
