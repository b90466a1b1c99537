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
/// Largest REST JSON body (a key backup in base64 plus the JSON around it).
pub const MAX_JSON_BODY_BYTES: usize = 1_500_000;
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
