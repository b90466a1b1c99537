//! The sealed key backup: the user's secrets and trust decisions, sealed under `backup_key`.
//!
//! ```text
//! sealed   = 0x02 (format version) | generation: u64 BE | nonce (24)
//!            | XChaCha20-Poly1305(backup_key, nonce, contents, AAD)
//! AAD      = "sealroom/v1/backup" | 0x02 | generation: u64 BE | username_len: u8 | username (UTF-8)
//! contents = 0x01 (contents version) | record*
//! record   = tag: u8 | len: u32 big-endian | value (len bytes)
//!   0x01 identity secret: 32 bytes; exactly once
//!   0x02 pinned peer: name_len: u8 | username | public key (32) | flags: u8 (bit 0: verified)
//!   0x03 settings: UTF-8 text (the client's own JSON); at most once
//!   0x04 identity signing seed (version 2): 32 bytes; at most once
//!   0x05 history archive key (version 2): 32 bytes; at most once
//!   0x06 pinned peer, version 2: name_len: u8 | username | X25519 public (32)
//!        | Ed25519 public (32) | flags: u8 (instead of 0x02 for that peer)
//!   0x07 history archive off (version 2, strict forward secrecy): empty; at most once
//!   other tags: kept verbatim and written back, so an older client re-sealing a backup made
//!   by a newer one loses nothing.
//! ```
//!
//! The generation counts the writes of one account's backup (the first is 1, each write one
//! more than the newest the writer had seen). It is authenticated, so a server that hands out
//! an older backup cannot pass it off as the newest: a client that has seen generation n
//! refuses anything below n. Format 1 (`0x01 | nonce | ciphertext`, AAD without the
//! generation) is still read, as generation 0, and never written.

use std::collections::BTreeMap;

use zeroize::Zeroizing;

use crate::archive::ArchiveKey;
use crate::device::{SigningPublic, SigningSecret};
use crate::identity::{IdentitySecret, PublicKey, KEY_LEN};
use crate::kdf::{random_bytes, xopen, xseal};
use crate::password::BackupKey;
use crate::payload::Reader;
use crate::{Error, Result};

/// The sealed format version written.
pub const BACKUP_VERSION: u8 = 0x02;
/// The first sealed format, still read (as generation 0).
pub const BACKUP_VERSION_1: u8 = 0x01;
/// The contents format version.
pub const CONTENTS_VERSION: u8 = 0x01;
/// AAD label of the key backup.
pub const AAD_LABEL_BACKUP: &[u8] = b"sealroom/v1/backup";
/// Largest sealed backup a client produces or accepts (1 MiB).
pub const MAX_SEALED_BACKUP: usize = 1 << 20;

const TAG_IDENTITY: u8 = 0x01;
const TAG_PIN: u8 = 0x02;
const TAG_SETTINGS: u8 = 0x03;
const TAG_SIGNING: u8 = 0x04;
const TAG_ARCHIVE: u8 = 0x05;
const TAG_PIN_V2: u8 = 0x06;
const TAG_ARCHIVE_OFF: u8 = 0x07;
const FLAG_VERIFIED: u8 = 0x01;

/// A peer's identity key as this user first saw it (trust on first use).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pin {
    /// The pinned key.
    pub public_key: PublicKey,
    /// The peer's Ed25519 identity signing key, once pinned (version 2).
    pub signing_key: Option<SigningPublic>,
    /// The user compared safety numbers and marked the key verified.
    pub verified: bool,
    /// Flag bits this build does not know, kept as found.
    pub other_flags: u8,
}

/// What the key backup holds.
pub struct BackupContents {
    /// The user's X25519 identity secret.
    pub identity: IdentitySecret,
    /// Pinned peer keys, by username.
    pub pins: BTreeMap<String, Pin>,
    /// The client's settings (opaque text, JSON by convention).
    pub settings: Option<String>,
    /// The user's Ed25519 identity signing key (version 2).
    pub signing: Option<SigningSecret>,
    /// The user's history archive key (version 2).
    pub archive_key: Option<ArchiveKey>,
    /// The user turned the history archive off (strict forward secrecy): no device writes or
    /// reads it, and a new device starts with no history (version 2).
    pub archive_off: bool,
    /// Records of newer versions, kept verbatim: (tag, value).
    pub unknown: Vec<(u8, Vec<u8>)>,
    /// Which write this is (authenticated with the sealed backup; 0 for a format-1 backup).
    pub generation: u64,
}

impl std::fmt::Debug for BackupContents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupContents")
            .field("identity", &self.identity)
            .field("pins", &self.pins)
            .field("settings", &self.settings.as_ref().map(|s| s.len()))
            .field("signing", &self.signing)
            .field("archive_key", &self.archive_key)
            .field("archive_off", &self.archive_off)
            .field("unknown", &self.unknown.len())
            .field("generation", &self.generation)
            .finish()
    }
}

impl BackupContents {
    /// Contents holding only an identity: a new account's first backup (generation 1).
    pub fn new(identity: IdentitySecret) -> Self {
        BackupContents {
            identity,
            pins: BTreeMap::new(),
            settings: None,
            signing: None,
            archive_key: None,
            archive_off: false,
            unknown: Vec::new(),
            generation: 1,
        }
    }

    /// Folds in a newer copy stored by another client (after a stale write was refused):
    /// every pin from `theirs` is kept, this copy's pins win where both name a user, this
    /// copy's settings and archive choice win, and records unknown to this build are kept from
    /// both. The identity is this copy's (it is the same key in every copy); the generation is
    /// the newer of the two.
    pub fn merge_from(&mut self, theirs: BackupContents) {
        self.generation = self.generation.max(theirs.generation);
        let mut pins = theirs.pins;
        pins.extend(std::mem::take(&mut self.pins));
        self.pins = pins;
        if self.settings.is_none() {
            self.settings = theirs.settings;
        }
        // `archive_off` stays this copy's: like the settings, it is the user's latest choice.
        // Version 2 keys are made once per account and the stored copy's win: two devices
        // that each made one before either saved it keep the one saved first. (A key is used,
        // published or sealed to, only once a backup holding it is stored, and every later
        // copy merges it in; so this copy's, when it differs, was never used.)
        if theirs.signing.is_some() {
            self.signing = theirs.signing;
        }
        if theirs.archive_key.is_some() {
            self.archive_key = theirs.archive_key;
        }
        for record in theirs.unknown {
            if !self.unknown.contains(&record) {
                self.unknown.push(record);
            }
        }
    }

    /// Serializes the contents (the plaintext that gets sealed).
    pub fn encode(&self) -> Result<Zeroizing<Vec<u8>>> {
        let mut out = Zeroizing::new(Vec::with_capacity(64 + self.pins.len() * 64));
        out.push(CONTENTS_VERSION);
        record(&mut out, TAG_IDENTITY, &self.identity.to_bytes()[..])?;
        if let Some(signing) = &self.signing {
            record(&mut out, TAG_SIGNING, &Zeroizing::new(signing.seed())[..])?;
        }
        if let Some(archive) = &self.archive_key {
            record(&mut out, TAG_ARCHIVE, &archive.to_bytes()[..])?;
        }
        if self.archive_off {
            record(&mut out, TAG_ARCHIVE_OFF, &[])?;
        }
        for (name, pin) in &self.pins {
            if name.is_empty() || name.len() > 255 {
                return Err(Error::Malformed("pinned username"));
            }
            let mut value = Vec::with_capacity(1 + name.len() + 2 * KEY_LEN + 1);
            value.push(name.len() as u8);
            value.extend_from_slice(name.as_bytes());
            value.extend_from_slice(pin.public_key.as_bytes());
            if let Some(signing) = &pin.signing_key {
                value.extend_from_slice(signing.as_bytes());
            }
            value.push(pin.other_flags & !FLAG_VERIFIED | if pin.verified { FLAG_VERIFIED } else { 0 });
            record(&mut out, if pin.signing_key.is_some() { TAG_PIN_V2 } else { TAG_PIN }, &value)?;
        }
        if let Some(settings) = &self.settings {
            record(&mut out, TAG_SETTINGS, settings.as_bytes())?;
        }
        for (tag, value) in &self.unknown {
            record(&mut out, *tag, value)?;
        }
        Ok(out)
    }

    /// Parses serialized contents.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes);
        let version = r.u8()?;
        if version != CONTENTS_VERSION {
            return Err(Error::UnsupportedVersion { what: "key backup contents", version });
        }
        let mut identity = None;
        let mut pins = BTreeMap::new();
        let mut settings = None;
        let mut signing = None;
        let mut archive_key = None;
        let mut archive_off = false;
        let mut pins_v2: BTreeMap<String, Pin> = BTreeMap::new();
        let mut unknown = Vec::new();
        while !r.is_empty() {
            let tag = r.u8()?;
            let len = r.u32()? as usize;
            let value = r.take(len)?;
            match tag {
                TAG_IDENTITY => {
                    let arr: [u8; KEY_LEN] =
                        value.try_into().map_err(|_| Error::Malformed("backup identity"))?;
                    if identity.replace(IdentitySecret::from_bytes(arr)).is_some() {
                        return Err(Error::Malformed("backup has two identities"));
                    }
                }
                TAG_PIN | TAG_PIN_V2 => {
                    let mut v = Reader::new(value);
                    let name_len = v.u8()? as usize;
                    let name = std::str::from_utf8(v.take(name_len)?)
                        .map_err(|_| Error::Malformed("pinned username"))?
                        .to_owned();
                    let public_key = PublicKey::from(v.array::<KEY_LEN>()?);
                    let signing_key = match tag {
                        TAG_PIN_V2 => Some(SigningPublic::from_bytes(&v.array::<32>()?)?),
                        _ => None,
                    };
                    let flags = v.u8()?;
                    if !v.is_empty() || name.is_empty() {
                        return Err(Error::Malformed("pin record"));
                    }
                    let pin = Pin {
                        public_key,
                        signing_key,
                        verified: flags & FLAG_VERIFIED != 0,
                        other_flags: flags & !FLAG_VERIFIED,
                    };
                    let map = if tag == TAG_PIN_V2 { &mut pins_v2 } else { &mut pins };
                    if map.insert(name, pin).is_some() {
                        return Err(Error::Malformed("backup pins a user twice"));
                    }
                }
                TAG_SIGNING => {
                    let seed: [u8; 32] =
                        value.try_into().map_err(|_| Error::Malformed("backup signing key"))?;
                    if signing.replace(SigningSecret::from_seed(seed)).is_some() {
                        return Err(Error::Malformed("backup has two signing keys"));
                    }
                }
                TAG_ARCHIVE => {
                    let key: [u8; 32] =
                        value.try_into().map_err(|_| Error::Malformed("backup archive key"))?;
                    if archive_key.replace(ArchiveKey::from_bytes(key)).is_some() {
                        return Err(Error::Malformed("backup has two archive keys"));
                    }
                }
                TAG_ARCHIVE_OFF => {
                    if !value.is_empty() {
                        return Err(Error::Malformed("backup archive-off record"));
                    }
                    if std::mem::replace(&mut archive_off, true) {
                        return Err(Error::Malformed("backup turns the archive off twice"));
                    }
                }
                TAG_SETTINGS => {
                    let text = std::str::from_utf8(value).map_err(|_| Error::Malformed("backup settings"))?;
                    if settings.replace(text.to_owned()).is_some() {
                        return Err(Error::Malformed("backup has two settings records"));
                    }
                }
                other => unknown.push((other, value.to_vec())),
            }
        }
        let identity = identity.ok_or(Error::Malformed("backup without identity"))?;
        // A version 1 client keeps 0x06 records as unknown and may have pinned the same user
        // again with 0x02: its pin wins when it names another X25519 key (a key change the user
        // accepted there), the version 2 pin (which also holds the signing key) otherwise.
        for (name, v2) in pins_v2 {
            match pins.get(&name) {
                Some(v1) if v1.public_key != v2.public_key => {}
                previous => {
                    let verified = v2.verified || previous.is_some_and(|p| p.verified);
                    pins.insert(name, Pin { verified, ..v2 });
                }
            }
        }
        Ok(BackupContents {
            identity,
            pins,
            settings,
            signing,
            archive_key,
            archive_off,
            unknown,
            generation: 0,
        })
    }
}

fn record(out: &mut Vec<u8>, tag: u8, value: &[u8]) -> Result<()> {
    let len = u32::try_from(value.len()).map_err(|_| Error::TooLarge {
        what: "backup record",
        max: u32::MAX as usize,
        actual: value.len(),
    })?;
    out.push(tag);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(value);
    Ok(())
}

/// The AAD of a user's key backup of this `generation` (format 2).
pub fn backup_aad(username: &str, generation: u64) -> Result<Vec<u8>> {
    let mut aad = Vec::with_capacity(AAD_LABEL_BACKUP.len() + 10 + username.len());
    aad.extend_from_slice(AAD_LABEL_BACKUP);
    aad.push(BACKUP_VERSION);
    aad.extend_from_slice(&generation.to_be_bytes());
    push_username(&mut aad, username)?;
    Ok(aad)
}

/// The AAD of a format-1 backup (read only).
pub(crate) fn backup_aad_v1(username: &str) -> Result<Vec<u8>> {
    let mut aad = Vec::with_capacity(AAD_LABEL_BACKUP.len() + 2 + username.len());
    aad.extend_from_slice(AAD_LABEL_BACKUP);
    aad.push(BACKUP_VERSION_1);
    push_username(&mut aad, username)?;
    Ok(aad)
}

fn push_username(aad: &mut Vec<u8>, username: &str) -> Result<()> {
    if username.is_empty() || username.len() > 255 {
        return Err(Error::Malformed("username"));
    }
    aad.push(username.len() as u8);
    aad.extend_from_slice(username.as_bytes());
    Ok(())
}

/// The generation a sealed backup claims, read without opening it (authenticated only once
/// [`unseal_backup`] succeeds); `None` if it is not a sealed backup.
pub fn sealed_generation(sealed: &[u8]) -> Option<u64> {
    match *sealed.first()? {
        BACKUP_VERSION => Some(u64::from_be_bytes(sealed.get(1..9)?.try_into().ok()?)),
        BACKUP_VERSION_1 => Some(0),
        _ => None,
    }
}

/// Seals `contents` (as its `generation`) for `username` under `key` with a random nonce.
pub fn seal_backup(key: &BackupKey, username: &str, contents: &BackupContents) -> Result<Vec<u8>> {
    let mut nonce = [0u8; 24];
    random_bytes(&mut nonce)?;
    seal_backup_with_nonce(key, username, contents, &nonce)
}

/// [`seal_backup`] with a caller-chosen nonce. Only for known-answer tests.
#[doc(hidden)]
pub fn seal_backup_with_nonce(
    key: &BackupKey,
    username: &str,
    contents: &BackupContents,
    nonce: &[u8; 24],
) -> Result<Vec<u8>> {
    let plaintext = contents.encode()?;
    let aad = backup_aad(username, contents.generation)?;
    let ct = xseal(&key.0, nonce, &aad, &plaintext)?;
    let mut sealed = Vec::with_capacity(33 + ct.len());
    sealed.push(BACKUP_VERSION);
    sealed.extend_from_slice(&contents.generation.to_be_bytes());
    sealed.extend_from_slice(nonce);
    sealed.extend_from_slice(&ct);
    if sealed.len() > MAX_SEALED_BACKUP {
        return Err(Error::TooLarge { what: "key backup", max: MAX_SEALED_BACKUP, actual: sealed.len() });
    }
    Ok(sealed)
}

/// Unseals a key backup (format 2, or format 1 as generation 0). A wrong password (so a wrong
/// key), another user's backup, a changed generation or any altered byte gives
/// [`Error::Decryption`].
pub fn unseal_backup(key: &BackupKey, username: &str, sealed: &[u8]) -> Result<BackupContents> {
    if sealed.len() > MAX_SEALED_BACKUP {
        return Err(Error::TooLarge { what: "key backup", max: MAX_SEALED_BACKUP, actual: sealed.len() });
    }
    let (header, generation, aad) = match sealed.first() {
        Some(&BACKUP_VERSION) if sealed.len() >= 9 => {
            let generation = u64::from_be_bytes(sealed[1..9].try_into().map_err(|_| Error::Decryption)?);
            (9, generation, backup_aad(username, generation)?)
        }
        Some(&BACKUP_VERSION_1) => (1, 0, backup_aad_v1(username)?),
        Some(&BACKUP_VERSION) | None => {
            return Err(Error::InvalidLength {
                what: "sealed key backup",
                expected: 49,
                actual: sealed.len(),
            })
        }
        Some(&version) => return Err(Error::UnsupportedVersion { what: "key backup", version }),
    };
    if sealed.len() < header + 24 + 16 {
        return Err(Error::InvalidLength {
            what: "sealed key backup",
            expected: header + 40,
            actual: sealed.len(),
        });
    }
    let mut nonce = [0u8; 24];
    nonce.copy_from_slice(&sealed[header..header + 24]);
    let plaintext = Zeroizing::new(xopen(&key.0, &nonce, &aad, &sealed[header + 24..])?);
    let mut contents = BackupContents::decode(&plaintext).map_err(|e| match e {
        Error::UnsupportedVersion { .. } => e,
        _ => Error::Decryption,
    })?;
    contents.generation = generation;
    Ok(contents)
}
