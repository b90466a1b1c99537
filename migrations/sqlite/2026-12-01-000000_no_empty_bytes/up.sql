-- Every variable-length byte field now needs at least one byte where it is decoded
-- (sealroom-protocol's bounded byte types), so the relay can no longer answer with an empty
-- one. Before that, a client could store an empty device certificate, key package or Welcome:
-- none of them could ever be used (a peer refuses a device whose certificate does not verify,
-- and OpenMLS an empty key package or Welcome), and reading them back would now be refused as
-- corrupt. They go; a device's key packages and Welcomes go with it (ON DELETE CASCADE).
DELETE FROM key_packages WHERE length(data) = 0;
DELETE FROM welcomes WHERE length(data) = 0;
DELETE FROM devices WHERE length(certificate) = 0;
