//! Version 2: the history archive, one entry per message, sealed under the user's archive key.
//!
//! With forward secrecy a new device cannot decrypt past MLS epochs, so every message a
//! device of the user sends or decrypts is also kept, sealed this way, in the user's archive
//! on the relay (docs/CRYPTO.md, "The history archive"):
//!
//! ```text
//! entry = 0x01 | nonce (24) | XChaCha20-Poly1305(archive_key, nonce, padded payload, AAD)
//! AAD   = "sealroom/v2/archive" | 0x01 | name_len: u8 | username
//!       | conversation_id: u64 BE | log_sequence: u64 BE | sender_len: u8 | sender
//!       | sent_ms: u64 BE
//! ```
//!
//! The place of the entry (whose archive, which conversation, which position in its log) and
//! who sent it when are authenticated: the relay cannot move an entry to another conversation
//! or user, reorder it, or relabel its sender.

use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::kdf::random_bytes;
use crate::payload::{open_payload, seal_payload, Payload};
use crate::{Error, Result};

/// The label at the start of every entry's associated data.
pub const AAD_LABEL_ARCHIVE: &[u8] = b"sealroom/v2/archive";
/// The entry format this build writes and reads.
pub const ARCHIVE_VERSION: u8 = 0x01;

/// The user's archive key: 32 random bytes kept in the key backup (record 0x05), so a password
/// change re-seals the backup and never the archive.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct ArchiveKey([u8; 32]);

impl std::fmt::Debug for ArchiveKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ArchiveKey(…)")
    }
}

impl ArchiveKey {
    /// A fresh random key.
    pub fn generate() -> Result<Self> {
        let mut key = [0u8; 32];
        random_bytes(&mut key)?;
        Ok(ArchiveKey(key))
    }

    /// The key from the backup's bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        ArchiveKey(bytes)
    }

    /// The bytes, to seal in the key backup.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0)
    }
}

/// Where an archived message belongs and who sent it: all authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivePlace {
    /// Whose archive (the user the key belongs to).
    pub owner: String,
    /// The conversation's id at the relay.
    pub conversation_id: u64,
    /// The message's position in the conversation's log.
    pub log_sequence: u64,
    /// Who sent it.
    pub sender: String,
    /// The sender's clock at sending, Unix milliseconds.
    pub sent_ms: u64,
}

impl ArchivePlace {
    /// The entry's associated data.
    pub fn aad(&self) -> Result<Vec<u8>> {
        let name = |n: &str| -> Result<u8> {
            u8::try_from(n.len()).ok().filter(|&l| l > 0).ok_or(Error::Malformed("username"))
        };
        let mut aad =
            Vec::with_capacity(AAD_LABEL_ARCHIVE.len() + 2 + self.owner.len() + 17 + self.sender.len() + 8);
        aad.extend_from_slice(AAD_LABEL_ARCHIVE);
        aad.push(ARCHIVE_VERSION);
        aad.push(name(&self.owner)?);
        aad.extend_from_slice(self.owner.as_bytes());
        aad.extend_from_slice(&self.conversation_id.to_be_bytes());
        aad.extend_from_slice(&self.log_sequence.to_be_bytes());
        aad.push(name(&self.sender)?);
        aad.extend_from_slice(self.sender.as_bytes());
        aad.extend_from_slice(&self.sent_ms.to_be_bytes());
        Ok(aad)
    }
}

/// Seals one message for the archive, with a random nonce.
pub fn seal_archive_entry(key: &ArchiveKey, place: &ArchivePlace, payload: &Payload) -> Result<Vec<u8>> {
    let mut nonce = [0u8; 24];
    random_bytes(&mut nonce)?;
    seal_archive_entry_with_nonce(key, place, payload, &nonce)
}

/// [`seal_archive_entry`] with a caller-chosen nonce. Only for known-answer tests.
#[doc(hidden)]
pub fn seal_archive_entry_with_nonce(
    key: &ArchiveKey,
    place: &ArchivePlace,
    payload: &Payload,
    nonce: &[u8; 24],
) -> Result<Vec<u8>> {
    let ct = seal_payload(&key.0, nonce, &place.aad()?, payload)?;
    let mut entry = Vec::with_capacity(1 + 24 + ct.len());
    entry.push(ARCHIVE_VERSION);
    entry.extend_from_slice(nonce);
    entry.extend_from_slice(&ct);
    Ok(entry)
}

/// Opens an archive entry found at `place`. Any failure is the opaque [`Error::Decryption`]
/// (an entry of an unknown payload type excepted, as for messages).
pub fn open_archive_entry(key: &ArchiveKey, place: &ArchivePlace, entry: &[u8]) -> Result<Payload> {
    let (&version, rest) = entry.split_first().ok_or(Error::Decryption)?;
    if version != ARCHIVE_VERSION {
        return Err(Error::UnsupportedVersion { what: "archive entry", version });
    }
    if rest.len() < 24 {
        return Err(Error::Decryption);
    }
    let (nonce, ct) = rest.split_at(24);
    let nonce: [u8; 24] = nonce.try_into().map_err(|_| Error::Decryption)?;
    open_payload(&key.0, &nonce, &place.aad()?, ct)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place() -> ArchivePlace {
        ArchivePlace {
            owner: "alice".into(),
            conversation_id: 7,
            log_sequence: 42,
            sender: "bob".into(),
            sent_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn an_entry_opens_only_in_its_place_and_under_its_key() {
        let key = ArchiveKey::generate().unwrap();
        let text = Payload::Text("from the archive ✓".into());
        let entry = seal_archive_entry(&key, &place(), &text).unwrap();
        assert_eq!(open_archive_entry(&key, &place(), &entry).unwrap(), text);
        // Every authenticated field, moved: refused.
        let moved = [
            ArchivePlace { owner: "carol".into(), ..place() },
            ArchivePlace { conversation_id: 8, ..place() },
            ArchivePlace { log_sequence: 41, ..place() },
            ArchivePlace { sender: "mallory".into(), ..place() },
            ArchivePlace { sent_ms: 0, ..place() },
        ];
        for p in moved {
            assert!(matches!(open_archive_entry(&key, &p, &entry), Err(Error::Decryption)), "{p:?}");
        }
        assert!(open_archive_entry(&ArchiveKey::generate().unwrap(), &place(), &entry).is_err());
        for i in 1..entry.len() {
            let mut bad = entry.clone();
            bad[i] ^= 0x80;
            assert!(matches!(open_archive_entry(&key, &place(), &bad), Err(Error::Decryption)), "byte {i}");
        }
        assert!(matches!(open_archive_entry(&key, &place(), &entry[..20]), Err(Error::Decryption)));
        let mut v2 = entry.clone();
        v2[0] = 2;
        assert!(matches!(open_archive_entry(&key, &place(), &v2), Err(Error::UnsupportedVersion { .. })));
        // Names must fit their length byte.
        let long = ArchivePlace { sender: "x".repeat(256), ..place() };
        assert!(seal_archive_entry(&key, &long, &text).is_err());
        assert_eq!(format!("{key:?}"), "ArchiveKey(…)");
    }
}
