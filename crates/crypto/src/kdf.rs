//! HKDF-SHA256 with the crate's domain-separation labels, and the AEAD helpers.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, XChaCha20Poly1305};
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::{Error, Result};

/// HKDF info for the key the server sees at login.
pub const INFO_AUTH: &[u8] = b"sealroom/v1/auth";
/// HKDF info for the key that seals the key backup.
pub const INFO_BACKUP: &[u8] = b"sealroom/v1/backup";
/// HKDF info prefix for a 1:1 pair key; the two public keys follow in canonical order.
pub const INFO_PAIR: &[u8] = b"sealroom/v1/pair";
/// HKDF salt for the pair key.
pub const SALT_PAIR: &[u8] = b"sealroom/v1/pair-salt";

/// HKDF-SHA256 extract-then-expand into 32 bytes. An empty `salt` means "no salt" (RFC 5869:
/// a string of 32 zero bytes).
pub fn hkdf32(ikm: &[u8], salt: &[u8], info: &[u8]) -> Zeroizing<[u8; 32]> {
    let salt = if salt.is_empty() { None } else { Some(salt) };
    let hk = Hkdf::<Sha256>::new(salt, ikm);
    let mut okm = Zeroizing::new([0u8; 32]);
    // 32 <= 255 * 32, so expand cannot fail.
    hk.expand(info, okm.as_mut_slice()).expect("HKDF-SHA256 output of 32 bytes is always within 255*HashLen");
    okm
}

pub(crate) fn xseal(key: &[u8; 32], nonce: &[u8; 24], aad: &[u8], msg: &[u8]) -> Result<Vec<u8>> {
    XChaCha20Poly1305::new(key.into())
        .encrypt(nonce.into(), Payload { msg, aad })
        .map_err(|_| Error::TooLarge { what: "plaintext", max: usize::MAX, actual: msg.len() })
}

pub(crate) fn xopen(key: &[u8; 32], nonce: &[u8; 24], aad: &[u8], ct: &[u8]) -> Result<Vec<u8>> {
    XChaCha20Poly1305::new(key.into())
        .decrypt(nonce.into(), Payload { msg: ct, aad })
        .map_err(|_| Error::Decryption)
}

pub(crate) fn chacha_cipher(key: &[u8; 32]) -> ChaCha20Poly1305 {
    ChaCha20Poly1305::new(key.into())
}

/// Fill `buf` from the OS (or, in the browser, `crypto.getRandomValues`).
pub(crate) fn random_bytes(buf: &mut [u8]) -> Result<()> {
    use rand_core::RngCore;
    rand_core::OsRng.try_fill_bytes(buf).map_err(|_| Error::Rng)
}
