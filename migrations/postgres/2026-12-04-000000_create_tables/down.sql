DROP TABLE log_withheld, log_messages, group_blobs, past_members, archive, welcomes, group_log,
    mls_groups, key_packages, devices, blocks, members, message_blobs, blobs, messages,
    conversations, sessions, users;
