//! Limits shared by the relay and its clients.

/// WebSocket protocol version spoken by this build.
pub const PROTOCOL_VERSION: u32 = 1;
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
