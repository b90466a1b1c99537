//! Sealroom's end-to-end cryptography, version 1, and the first formats of version 2 (the
//! identity signing key, device certificates, the history archive, a device's sealed MLS
//! state).
//!
//! This crate is what makes the relay unable to read anything: every key is made on the
//! client, and every byte the relay stores is produced here. It builds natively and for
//! `wasm32-unknown-unknown` (the browser's `crypto.getRandomValues` supplies randomness).
//! `docs/CRYPTO.md` specifies every format byte by byte; `tests/vectors/v1.json` holds
//! known-answer vectors for all of them.
//!
//! What this crate must never do: print a secret (no secret type has a revealing `Debug`), keep
//! a secret after drop (they are zeroized), panic on any input, or say *why* a decryption
//! failed.
//!
//! # Example
//!
//! ```
//! use sealroom_crypto::{
//!     open_message, seal_message, IdentitySecret, MessageHeader, Payload,
//! };
//!
//! # fn main() -> Result<(), sealroom_crypto::Error> {
//! let alice = IdentitySecret::generate()?;
//! let bob = IdentitySecret::generate()?;
//! let (alice_pub, bob_pub) = (alice.public_key(), bob.public_key());
//!
//! // Each side derives the same pair key from its own secret and the other's public key.
//! let key_at_alice = alice.pair_key(&bob_pub)?;
//! let key_at_bob = bob.pair_key(&alice_pub)?;
//! assert_eq!(key_at_alice, key_at_bob);
//!
//! let header = MessageHeader::new(1_700_000_000_000)?;
//! let envelope = seal_message(&key_at_alice, &alice_pub, &bob_pub, &header,
//!                             &Payload::Text("héllo 👋".into()))?;
//! let opened = open_message(&key_at_bob, &alice_pub, &bob_pub, &envelope)?;
//! assert_eq!(opened.payload, Payload::Text("héllo 👋".into()));
//!
//! // The wrong direction (a reflected message) does not open.
//! assert!(open_message(&key_at_bob, &bob_pub, &alice_pub, &envelope).is_err());
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod archive;
mod attachment;
mod backup;
mod device;
mod device_state;
mod error;
mod identity;
mod kdf;
mod message;
mod password;
mod payload;
mod safety;

#[cfg(test)]
mod tests;

pub use archive::{
    open_archive_entry, seal_archive_entry, seal_archive_entry_with_nonce, ArchiveKey, ArchivePlace,
    AAD_LABEL_ARCHIVE, ARCHIVE_VERSION,
};
pub use attachment::{
    chunk_nonce, decrypt_attachment, encrypt_attachment, encrypted_size, FileDecryptor, StreamDecryptor,
    StreamEncryptor, AAD_ATTACHMENT, CHUNK_SIZE, ENCRYPTED_CHUNK_SIZE,
};
pub use backup::{
    backup_aad, seal_backup, seal_backup_with_nonce, sealed_generation, unseal_backup, BackupContents, Pin,
    AAD_LABEL_BACKUP, BACKUP_VERSION, BACKUP_VERSION_1, CONTENTS_VERSION, MAX_SEALED_BACKUP,
};
pub use device::{
    DeviceCertificate, SigningPublic, SigningSecret, DEVICE_CERT_LABEL, DEVICE_CERT_VERSION, DEVICE_ID_LEN,
};
pub use device_state::{
    device_state_aad, open_device_state, seal_device_state, seal_device_state_with_nonce, DeviceStateKey,
    DEVICE_STATE_LABEL, DEVICE_STATE_VERSION,
};
pub use error::{Error, Result};
pub use identity::{pair_info, IdentitySecret, PairKey, PublicKey, SharedSecret, KEY_LEN};
pub use kdf::{hkdf32, INFO_AUTH, INFO_BACKUP, INFO_PAIR, SALT_PAIR};
pub use message::{
    message_aad, open_message, seal_message, seal_message_with_nonce, MessageHeader, OpenedMessage,
    AAD_LABEL_MSG, ENVELOPE_HEADER_LEN, ENVELOPE_VERSION, MAX_ENVELOPE_LEN, MIN_ENVELOPE_LEN, TAG_LEN,
};
pub use password::{
    argon2id, argon2id_keyed, generate_salt, AuthKey, BackupKey, KdfParams, PasswordKeys, SALT_LEN,
};
pub use payload::{
    check_group_name, pad, padded_len, unpad, FileKey, FileRef, Payload, MAX_BLOB_ID, MAX_FILE_NAME,
    MAX_GROUP_NAME, MAX_MIME, MAX_PADDED, MAX_TEXT_BYTES, MIN_PADDED,
};
pub use safety::{SafetyNumber, SAFETY_ITERATIONS, SAFETY_LABEL, SAFETY_LABEL_V2};
