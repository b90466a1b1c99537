//! The one error type of this crate.

/// Everything that can go wrong in `sealroom-crypto`.
///
/// Decryption failures are deliberately opaque: a wrong key, a wrong direction, an altered
/// header, a truncated or flipped byte all give [`Error::Decryption`] and nothing more, so a
/// caller (or an attacker watching it) learns nothing about which check failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Authenticated decryption failed: wrong key or password, or the bytes were altered.
    #[error("decryption failed: wrong key or the data was altered")]
    Decryption,
    /// A byte string had the wrong length for what it claims to be.
    #[error("invalid length for {what}: expected {expected}, got {actual}")]
    InvalidLength {
        /// What was being decoded.
        what: &'static str,
        /// The length it must have (or the maximum).
        expected: usize,
        /// The length it had.
        actual: usize,
    },
    /// Text that should be base64 was not.
    #[error("invalid base64 for {0}")]
    InvalidBase64(&'static str),
    /// A format version this build does not understand.
    #[error("unsupported {what} version {version}")]
    UnsupportedVersion {
        /// Which format carried the version byte.
        what: &'static str,
        /// The version byte found.
        version: u8,
    },
    /// Structurally invalid data (after successful decryption, or in a cleartext header).
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// The X25519 exchange produced the all-zero value: the peer key is a low-order point.
    #[error("key exchange is not contributory (low-order public key)")]
    NonContributory,
    /// Argon2id parameters outside the accepted range.
    #[error("key derivation parameters out of range: {0}")]
    KdfParams(&'static str),
    /// Content too large for the format.
    #[error("{what} too large: {actual} bytes, at most {max}")]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// The limit.
        max: usize,
        /// The size given.
        actual: usize,
    },
    /// The operating system or browser could not supply randomness.
    #[error("no secure randomness available")]
    Rng,
    /// A stream was used after it had finished or failed.
    #[error("attachment stream already finished")]
    StreamFinished,
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
