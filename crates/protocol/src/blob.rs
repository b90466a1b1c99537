//! Attachment blob ids: the relay's name for an uploaded, encrypted file.

use serde::{Deserialize, Serialize};

/// Length of a blob id: 16 random bytes as unpadded base64url.
pub const BLOB_ID_LEN: usize = 22;

/// A blob id as the relay assigns it: exactly 22 characters of `A-Z a-z 0-9 - _`.
///
/// The id is random; it says nothing about the file. It is not a capability either: the relay
/// hands a blob only to the people of a conversation with a message that references it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BlobId(String);

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for BlobId {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        crate::openapi::string("A blob id: 22 characters of A-Z, a-z, 0-9, - and _.", "^[A-Za-z0-9_-]{22}$")
    }
}
#[cfg(feature = "openapi")]
impl utoipa::ToSchema for BlobId {}

/// Why a blob id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid blob id: must be 22 characters of A-Z, a-z, 0-9, - and _")]
pub struct BlobIdError;

impl BlobId {
    /// Checks the form of an id.
    pub fn parse(text: &str) -> Result<Self, BlobIdError> {
        let ok = text.len() == BLOB_ID_LEN
            && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(BlobId(text.to_owned()))
        } else {
            Err(BlobIdError)
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for BlobId {
    type Error = BlobIdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        BlobId::parse(&value)
    }
}

impl From<BlobId> for String {
    fn from(id: BlobId) -> String {
        id.0
    }
}

impl std::fmt::Display for BlobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
