//! Byte newtypes that travel as standard base64 (with padding) and check their length while
//! decoding, so a wrong-length or non-base64 value is refused before any code sees it.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a byte field was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BytesError {
    /// Not standard base64.
    #[error("{what}: invalid base64")]
    Base64 {
        /// The field.
        what: &'static str,
    },
    /// Decoded to the wrong number of bytes.
    #[error("{what}: expected {expected} bytes, got {actual}")]
    Length {
        /// The field.
        what: &'static str,
        /// Required length (or maximum, for variable-length fields).
        expected: usize,
        /// Decoded length.
        actual: usize,
    },
    /// Empty, where at least one byte is required (every variable-length field).
    #[error("{what}: expected 1 or more bytes, got 0")]
    Empty {
        /// The field.
        what: &'static str,
    },
}

/// Decodes base64 text into at most `max` bytes, refusing oversized text before decoding.
pub fn decode_b64(text: &str, what: &'static str, max: usize) -> Result<Vec<u8>, BytesError> {
    if text.len() > max.div_ceil(3).saturating_mul(4).saturating_add(4) {
        return Err(BytesError::Length { what, expected: max, actual: text.len() / 4 * 3 });
    }
    let bytes = B64.decode(text).map_err(|_| BytesError::Base64 { what })?;
    if bytes.len() > max {
        return Err(BytesError::Length { what, expected: max, actual: bytes.len() });
    }
    Ok(bytes)
}

/// Encodes bytes as standard base64 with padding.
pub fn encode_b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

macro_rules! fixed_bytes {
    ($(#[$doc:meta])* $name:ident, $len:expr, $what:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; $len]);

        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                crate::openapi::base64_bytes($what, $len, $len)
            }
        }
        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {}

        impl $name {
            /// Length in bytes.
            pub const LEN: usize = $len;

            /// From a slice of exactly the right length.
            pub fn from_slice(bytes: &[u8]) -> Result<Self, BytesError> {
                let arr: [u8; $len] = bytes
                    .try_into()
                    .map_err(|_| BytesError::Length { what: $what, expected: $len, actual: bytes.len() })?;
                Ok($name(arr))
            }

            /// From base64 text.
            pub fn from_b64(text: &str) -> Result<Self, BytesError> {
                let bytes = decode_b64(text, $what, $len)?;
                Self::from_slice(&bytes)
            }

            /// As base64 text.
            pub fn to_b64(&self) -> String {
                encode_b64(&self.0)
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_b64())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_b64())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::from_b64(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

fixed_bytes!(
    /// An X25519 identity public key (32 bytes).
    IdentityKey, 32, "identity_key"
);
fixed_bytes!(
    /// The password-derived login credential (32 bytes). Sent only to register, log in and
    /// change the password; the server stores Argon2id of it.
    AuthKeyBytes, 32, "auth_key"
);
fixed_bytes!(
    /// An Argon2id salt (16 bytes).
    Salt, 16, "salt"
);
fixed_bytes!(
    /// The sender's random message id (16 bytes), the relay's de-duplication key.
    ClientMsgId, 16, "client_msg_id"
);

macro_rules! bounded_bytes {
    ($(#[$doc:meta])* $name:ident, $max:expr, $what:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq)]
        pub struct $name(Vec<u8>);

        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                crate::openapi::base64_bytes($what, 1, $max)
            }
        }
        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {}

        impl $name {
            /// Largest accepted length.
            pub const MAX: usize = $max;

            /// From bytes, refusing none or more than `MAX`.
            pub fn new(bytes: Vec<u8>) -> Result<Self, BytesError> {
                if bytes.is_empty() {
                    return Err(BytesError::Empty { what: $what });
                }
                if bytes.len() > $max {
                    return Err(BytesError::Length { what: $what, expected: $max, actual: bytes.len() });
                }
                Ok($name(bytes))
            }

            /// The bytes.
            pub fn as_bytes(&self) -> &[u8] {
                &self.0
            }

            /// The bytes, owned.
            pub fn into_bytes(self) -> Vec<u8> {
                self.0
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                // Lengths only: these are ciphertexts, and logs never carry contents.
                write!(f, "{}({} bytes)", stringify!($name), self.0.len())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&encode_b64(&self.0))
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                let bytes = decode_b64(&text, $what, $max).map_err(serde::de::Error::custom)?;
                $name::new(bytes).map_err(serde::de::Error::custom)
            }
        }
    };
}

bounded_bytes!(
    /// A message envelope: opaque to the relay (format in docs/CRYPTO.md).
    Envelope, crate::limits::MAX_ENVELOPE_BYTES, "envelope"
);
bounded_bytes!(
    /// A sealed key backup: opaque to the relay.
    SealedBackup, crate::limits::MAX_KEY_BACKUP_BYTES, "key_backup"
);
fixed_bytes!(
    /// A user's Ed25519 identity signing key (32 bytes): it signs the certificates of the
    /// user's devices.
    SigningKey, 32, "signing_key"
);
fixed_bytes!(
    /// An MLS group id (16 random bytes, chosen by the group's creator).
    GroupId, 16, "group_id"
);
bounded_bytes!(
    /// An MLS message, key package, Welcome or GroupInfo (RFC 9420): opaque to the relay but
    /// for the framing it orders by (`sealroom_protocol::mls`).
    MlsBytes, crate::limits::MAX_MLS_BYTES, "mls"
);
bounded_bytes!(
    /// A history archive entry (format in docs/CRYPTO.md "The history archive"): sealed under
    /// the user's archive key, opaque to the relay.
    ArchiveBytes, crate::limits::MAX_ARCHIVE_ENTRY_BYTES, "archive_entry"
);
bounded_bytes!(
    /// A device certificate (format in docs/CRYPTO.md): opaque to the relay, checked by peers.
    CertificateBytes, crate::limits::MAX_CERTIFICATE_BYTES, "certificate"
);
