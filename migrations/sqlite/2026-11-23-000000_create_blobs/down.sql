DROP TABLE message_blobs;
DROP TABLE blobs;
