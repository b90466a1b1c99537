//! Limits shared by the relay and its clients.

/// WebSocket protocol version spoken by this build.
pub const PROTOCOL_VERSION: u32 = 2;
/// Shortest username.
pub const USERNAME_MIN: usize = 3;
/// Longest username.
pub const USERNAME_MAX: usize = 32;
/// Largest envelope (crypto v1's maximum: 49-byte header + 65,536 padded + 16-byte tag).
pub const MAX_ENVELOPE_BYTES: usize = 65_601;
/// Largest sealed key backup.
pub const MAX_KEY_BACKUP_BYTES: usize = 1 << 20;
/// Largest WebSocket frame a client may send (an envelope in base64 plus the JSON around it).
pub const MAX_FRAME_BYTES: usize = 96 * 1024;
/// Largest REST JSON body: a commit with its Welcome and GroupInfo, each up to
/// [`MAX_MLS_BYTES`], in base64, plus the JSON around them (a key backup is smaller).
pub const MAX_JSON_BODY_BYTES: usize = 9 * 1024 * 1024;
/// Largest MLS message, key package, Welcome or GroupInfo. A GroupInfo and a Welcome carry the
/// ratchet tree, a few hundred bytes per member device, so a group of 1,000 members with two
/// devices each fits.
pub const MAX_MLS_BYTES: usize = 2 << 20;
/// Largest device certificate.
pub const MAX_CERTIFICATE_BYTES: usize = 1024;
/// Most members (users) of a group conversation.
pub const MAX_GROUP_MEMBERS: usize = 1000;
/// Most one-use key packages the relay holds for one device.
pub const MAX_KEY_PACKAGES_PER_DEVICE: usize = 100;
/// Most users whose key packages one claim asks for.
pub const MAX_CLAIM_USERS: usize = 100;
/// Most log entries in one page of the group log.
pub const MAX_LOG_PAGE: u32 = 500;
/// Largest history archive entry: version (1) + nonce (24) + the largest padded payload
/// (65,536) + tag (16).
pub const MAX_ARCHIVE_ENTRY_BYTES: usize = 65_577;
/// Most entries one archive upload carries.
pub const MAX_ARCHIVE_BATCH: usize = 100;
/// Most entries in one page of an archived conversation.
pub const MAX_ARCHIVE_PAGE: u32 = 200;
/// Most messages in one history page or sync batch.
pub const MAX_PAGE: u32 = 500;
/// Default history page size.
pub const DEFAULT_PAGE: u32 = 50;
/// Most users a directory search returns.
pub const MAX_SEARCH: u32 = 50;
/// Most attachment blobs one message may reference.
pub const MAX_BLOBS_PER_MESSAGE: usize = 8;
/// Plaintext bytes per attachment chunk (crypto v1's STREAM; see docs/CRYPTO.md).
pub const ATTACHMENT_CHUNK: u64 = 65_536;
/// Bytes each attachment chunk adds (its Poly1305 tag).
pub const ATTACHMENT_CHUNK_OVERHEAD: u64 = 16;

/// Size of the blob holding a file of `file_size` bytes: every 64 KiB chunk (and the single
/// chunk of an empty file) carries a 16-byte tag. The relay's limits are stated in file bytes
/// and checked in blob bytes with this.
pub const fn blob_size_for(file_size: u64) -> u64 {
    let chunks = file_size.div_ceil(ATTACHMENT_CHUNK);
    let chunks = if chunks == 0 { 1 } else { chunks };
    file_size.saturating_add(chunks.saturating_mul(ATTACHMENT_CHUNK_OVERHEAD))
}
