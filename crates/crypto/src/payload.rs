//! The plaintext of a message: a typed payload, serialized to bytes and padded to a bucket.
//!
//! Byte layout (all integers big-endian):
//!
//! ```text
//! Text:  0x01 | len: u32 | UTF-8 text (len bytes)
//! File:  0x02 | id_len: u8 | blob id (ASCII, 1..=64) | file key (32) | ciphertext SHA-256 (32)
//!             | size: u64 | name_len: u16 | name (UTF-8) | mime_len: u8 | MIME type (ASCII)
//! Upgrade (version 2, only inside a version 1 direct conversation):
//!        0x03 | Ed25519 identity signing key (32) | MLS group id (16)
//! GroupName (version 2, only inside a group's MLS messages):
//!        0x04 | len: u8 | name (UTF-8, 1..=128 bytes, no control characters, not blank)
//! ```
//! Tags 0x05.. are reserved for edits, deletions, reactions and receipts. A decoder refuses an unknown tag and any trailing byte.
//!
//! Padding: `padded = payload | 0x80 | 0x00 …` up to `max(256, next_power_of_two(len + 1))`
//! bytes; unpadding strips the zeros and requires the 0x80 marker.

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::{Error, Result};

/// Smallest padded plaintext.
pub const MIN_PADDED: usize = 256;
/// Largest padded plaintext (so the largest payload is one byte less).
pub const MAX_PADDED: usize = 65536;
/// Largest UTF-8 text a `Text` payload can carry.
pub const MAX_TEXT_BYTES: usize = MAX_PADDED - 1 - 5;
/// Longest blob id.
pub const MAX_BLOB_ID: usize = 64;
/// Longest file name in bytes.
pub const MAX_FILE_NAME: usize = 1024;
/// Longest MIME type.
pub const MAX_MIME: usize = 127;

const TAG_TEXT: u8 = 0x01;
const TAG_FILE: u8 = 0x02;
const TAG_UPGRADE: u8 = 0x03;
const TAG_GROUP_NAME: u8 = 0x04;
/// Longest group name in bytes.
pub const MAX_GROUP_NAME: usize = 128;

/// What a message says.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Payload {
    /// A text message (any Unicode).
    Text(String),
    /// A reference to an encrypted attachment stored by the relay.
    File(FileRef),
    /// A group conversation's name, set or changed (version 2: the name travels inside MLS,
    /// never in anything the relay can read).
    GroupName(String),
    /// The sender's introduction of their identity signing key, sealed under the version 1
    /// pair key (so it is as authentic as the pinned X25519 key), and the MLS group the direct
    /// conversation moves to (version 2): the history shows the move here.
    Upgrade {
        /// The sender's Ed25519 identity signing key.
        signing_key: crate::SigningPublic,
        /// The MLS group the conversation continues in.
        group_id: [u8; 16],
    },
}

/// A 32-byte attachment key, random per file.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct FileKey(pub(crate) [u8; 32]);

impl FileKey {
    /// A fresh random key.
    pub fn generate() -> Result<Self> {
        let mut key = [0u8; 32];
        crate::kdf::random_bytes(&mut key)?;
        Ok(FileKey(key))
    }

    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        FileKey(bytes)
    }

    /// The raw key bytes.
    pub fn expose_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for FileKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FileKey(..)")
    }
}

/// Everything a recipient needs to fetch and decrypt an attachment; the relay sees none of it
/// but the blob id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRef {
    /// The relay's id for the encrypted blob (ASCII, 1 to 64 bytes).
    pub blob_id: String,
    /// The per-file key.
    pub file_key: FileKey,
    /// SHA-256 of the whole encrypted blob.
    pub ciphertext_sha256: [u8; 32],
    /// Plaintext size in bytes.
    pub size: u64,
    /// File name (UTF-8, at most 1024 bytes).
    pub name: String,
    /// MIME type (ASCII, at most 127 bytes).
    pub mime: String,
}

impl Payload {
    /// Serializes the payload (without padding).
    pub fn encode(&self) -> Result<Vec<u8>> {
        match self {
            Payload::Text(text) => {
                if text.len() > MAX_TEXT_BYTES {
                    return Err(Error::TooLarge { what: "text", max: MAX_TEXT_BYTES, actual: text.len() });
                }
                let mut out = Vec::with_capacity(5 + text.len());
                out.push(TAG_TEXT);
                out.extend_from_slice(&(text.len() as u32).to_be_bytes());
                out.extend_from_slice(text.as_bytes());
                Ok(out)
            }
            Payload::File(f) => {
                check_ascii(&f.blob_id, 1, MAX_BLOB_ID, "blob id")?;
                check_ascii(&f.mime, 0, MAX_MIME, "MIME type")?;
                if f.name.len() > MAX_FILE_NAME {
                    return Err(Error::TooLarge {
                        what: "file name",
                        max: MAX_FILE_NAME,
                        actual: f.name.len(),
                    });
                }
                let mut out =
                    Vec::with_capacity(1 + 1 + f.blob_id.len() + 72 + 2 + f.name.len() + 1 + f.mime.len());
                out.push(TAG_FILE);
                out.push(f.blob_id.len() as u8);
                out.extend_from_slice(f.blob_id.as_bytes());
                out.extend_from_slice(&f.file_key.0);
                out.extend_from_slice(&f.ciphertext_sha256);
                out.extend_from_slice(&f.size.to_be_bytes());
                out.extend_from_slice(&(f.name.len() as u16).to_be_bytes());
                out.extend_from_slice(f.name.as_bytes());
                out.push(f.mime.len() as u8);
                out.extend_from_slice(f.mime.as_bytes());
                Ok(out)
            }
            Payload::Upgrade { signing_key, group_id } => {
                let mut out = Vec::with_capacity(1 + 32 + 16);
                out.push(TAG_UPGRADE);
                out.extend_from_slice(signing_key.as_bytes());
                out.extend_from_slice(group_id);
                Ok(out)
            }
            Payload::GroupName(name) => {
                check_group_name(name)?;
                let mut out = Vec::with_capacity(2 + name.len());
                out.push(TAG_GROUP_NAME);
                out.push(name.len() as u8);
                out.extend_from_slice(name.as_bytes());
                Ok(out)
            }
        }
    }

    /// Parses a serialized payload, refusing unknown tags and trailing bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes);
        let payload = match r.u8()? {
            TAG_TEXT => {
                let len = r.u32()? as usize;
                if len > MAX_TEXT_BYTES {
                    return Err(Error::Malformed("payload text"));
                }
                let text = std::str::from_utf8(r.take(len)?).map_err(|_| Error::Malformed("payload text"))?;
                Payload::Text(text.to_owned())
            }
            TAG_FILE => {
                let id_len = r.u8()? as usize;
                // Found by fuzzing (fuzz/fuzz_targets/payload.rs): ids of 65..=255 bytes were
                // read although the format allows 1..=64 and `encode` refuses them.
                if id_len > MAX_BLOB_ID {
                    return Err(Error::Malformed("payload blob id"));
                }
                let blob_id = r.ascii(id_len, "blob id")?;
                if blob_id.is_empty() {
                    return Err(Error::Malformed("payload blob id"));
                }
                let file_key = FileKey(r.array()?);
                let ciphertext_sha256 = r.array()?;
                let size = u64::from_be_bytes(r.array()?);
                let name_len = u16::from_be_bytes(r.array()?) as usize;
                if name_len > MAX_FILE_NAME {
                    return Err(Error::Malformed("payload file name"));
                }
                let name = std::str::from_utf8(r.take(name_len)?)
                    .map_err(|_| Error::Malformed("payload file name"))?
                    .to_owned();
                let mime_len = r.u8()? as usize;
                if mime_len > MAX_MIME {
                    return Err(Error::Malformed("payload MIME type"));
                }
                let mime = r.ascii(mime_len, "MIME type")?;
                Payload::File(FileRef { blob_id, file_key, ciphertext_sha256, size, name, mime })
            }
            TAG_UPGRADE => {
                let key: [u8; 32] = r.array()?;
                let signing_key = crate::SigningPublic::from_bytes(&key)
                    .map_err(|_| Error::Malformed("payload signing key"))?;
                Payload::Upgrade { signing_key, group_id: r.array()? }
            }
            TAG_GROUP_NAME => {
                let len = r.u8()? as usize;
                let name =
                    std::str::from_utf8(r.take(len)?).map_err(|_| Error::Malformed("payload group name"))?;
                check_group_name(name).map_err(|_| Error::Malformed("payload group name"))?;
                Payload::GroupName(name.to_owned())
            }
            tag => return Err(Error::UnsupportedVersion { what: "payload type", version: tag }),
        };
        if !r.is_empty() {
            return Err(Error::Malformed("payload (trailing bytes)"));
        }
        Ok(payload)
    }
}

/// A group name: 1 to 128 bytes of UTF-8, not only white space, without control characters.
pub fn check_group_name(name: &str) -> Result<()> {
    if name.len() > MAX_GROUP_NAME {
        return Err(Error::TooLarge { what: "group name", max: MAX_GROUP_NAME, actual: name.len() });
    }
    if name.trim().is_empty() || name.chars().any(char::is_control) {
        return Err(Error::Malformed("group name"));
    }
    Ok(())
}

fn check_ascii(s: &str, min: usize, max: usize, what: &'static str) -> Result<()> {
    if s.len() > max {
        return Err(Error::TooLarge { what, max, actual: s.len() });
    }
    if s.len() < min || !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::Malformed(what));
    }
    Ok(())
}

/// The padded length for a payload of `len` bytes.
pub fn padded_len(len: usize) -> Result<usize> {
    let needed = len + 1;
    if needed > MAX_PADDED {
        return Err(Error::TooLarge { what: "payload", max: MAX_PADDED - 1, actual: len });
    }
    Ok(needed.next_power_of_two().max(MIN_PADDED))
}

/// Pads a serialized payload: `payload | 0x80 | zeros`.
pub fn pad(payload: &[u8]) -> Result<Vec<u8>> {
    let total = padded_len(payload.len())?;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(payload);
    out.push(0x80);
    out.resize(total, 0);
    Ok(out)
}

/// Removes the padding added by [`pad`].
pub fn unpad(padded: &[u8]) -> Result<&[u8]> {
    let end = padded.iter().rposition(|&b| b != 0).ok_or(Error::Malformed("padding"))?;
    if padded[end] != 0x80 {
        return Err(Error::Malformed("padding"));
    }
    Ok(&padded[..end])
}

/// Encodes, pads and seals a payload with XChaCha20-Poly1305: the ciphertext (with its tag)
/// of a message envelope and of an archive entry alike.
pub(crate) fn seal_payload(
    key: &[u8; 32],
    nonce: &[u8; 24],
    aad: &[u8],
    payload: &Payload,
) -> Result<Vec<u8>> {
    let encoded = zeroize::Zeroizing::new(payload.encode()?);
    let padded = zeroize::Zeroizing::new(pad(&encoded)?);
    crate::kdf::xseal(key, nonce, aad, &padded)
}

/// Opens what [`seal_payload`] sealed. Every failure is the opaque [`Error::Decryption`]
/// (a payload that decrypts but does not parse cannot come from an honest sender), except an
/// authentic payload of a type this build does not know: [`Error::UnsupportedVersion`], so the
/// caller can say "update to read this" rather than "tampered".
pub(crate) fn open_payload(key: &[u8; 32], nonce: &[u8; 24], aad: &[u8], ct: &[u8]) -> Result<Payload> {
    let padded = zeroize::Zeroizing::new(crate::kdf::xopen(key, nonce, aad, ct)?);
    unpad(&padded).and_then(Payload::decode).map_err(|e| match e {
        Error::UnsupportedVersion { .. } => e,
        _ => Error::Decryption,
    })
}

/// A bounds-checked reader over a byte slice: every read that runs past the end is an error.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes }
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.bytes.len() {
            return Err(Error::Malformed("truncated data"));
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }
    pub(crate) fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    pub(crate) fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    pub(crate) fn ascii(&mut self, n: usize, what: &'static str) -> Result<String> {
        let bytes = self.take(n)?;
        if !bytes.iter().all(|b| b.is_ascii_graphic()) {
            return Err(Error::Malformed(what));
        }
        // ASCII is valid UTF-8.
        Ok(String::from_utf8_lossy(bytes).into_owned())
    }
}
