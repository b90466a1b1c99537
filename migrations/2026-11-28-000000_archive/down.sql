DROP TABLE past_members;
DROP TABLE archive;
