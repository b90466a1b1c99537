//! X25519 identity keys and the 1:1 pair key.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use subtle::ConstantTimeEq;
use x25519_dalek::StaticSecret;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::kdf::{hkdf32, random_bytes, INFO_PAIR, SALT_PAIR};
use crate::{Error, Result};

/// Length of an X25519 public or secret key.
pub const KEY_LEN: usize = 32;

/// A user's X25519 identity public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey([u8; KEY_LEN]);

impl PublicKey {
    /// From exactly 32 bytes; any other length is an error.
    pub fn from_slice(bytes: &[u8]) -> Result<Self> {
        let arr: [u8; KEY_LEN] = bytes.try_into().map_err(|_| Error::InvalidLength {
            what: "X25519 public key",
            expected: KEY_LEN,
            actual: bytes.len(),
        })?;
        Ok(PublicKey(arr))
    }

    /// From standard base64 (with padding) of exactly 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self> {
        // 32 bytes are 44 base64 characters: refuse anything much longer before decoding.
        if text.len() > 64 {
            return Err(Error::InvalidLength {
                what: "X25519 public key (base64)",
                expected: 44,
                actual: text.len(),
            });
        }
        let bytes = B64.decode(text).map_err(|_| Error::InvalidBase64("X25519 public key"))?;
        Self::from_slice(&bytes)
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// Standard base64 with padding, as used on the wire.
    pub fn to_base64(&self) -> String {
        B64.encode(self.0)
    }
}

impl From<[u8; KEY_LEN]> for PublicKey {
    fn from(bytes: [u8; KEY_LEN]) -> Self {
        PublicKey(bytes)
    }
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", self.to_base64())
    }
}

/// A user's X25519 identity secret key. Zeroized on drop; never printed.
pub struct IdentitySecret(StaticSecret);

impl IdentitySecret {
    /// A fresh key from the OS RNG (in the browser, `crypto.getRandomValues`).
    pub fn generate() -> Result<Self> {
        let mut bytes = [0u8; KEY_LEN];
        random_bytes(&mut bytes)?;
        let secret = Self::from_bytes(bytes);
        bytes.zeroize();
        Ok(secret)
    }

    /// From 32 raw bytes (as unsealed from a key backup). X25519 clamps on use, so every
    /// 32-byte string is a valid secret.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        IdentitySecret(StaticSecret::from(bytes))
    }

    /// The raw secret bytes, for sealing into a key backup.
    pub fn to_bytes(&self) -> zeroize::Zeroizing<[u8; KEY_LEN]> {
        zeroize::Zeroizing::new(self.0.to_bytes())
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(x25519_dalek::PublicKey::from(&self.0).to_bytes())
    }

    /// Raw X25519(self, peer). Fails with [`Error::NonContributory`] when the result is all
    /// zeros (the peer sent a low-order point), which must never be used as a key.
    pub fn diffie_hellman(&self, peer: &PublicKey) -> Result<SharedSecret> {
        let shared = self.0.diffie_hellman(&x25519_dalek::PublicKey::from(peer.0));
        if !shared.was_contributory() {
            return Err(Error::NonContributory);
        }
        Ok(SharedSecret(shared.to_bytes()))
    }

    /// The pair key shared with `peer` (see [`PairKey::derive`]).
    pub fn pair_key(&self, peer: &PublicKey) -> Result<PairKey> {
        let shared = self.diffie_hellman(peer)?;
        Ok(PairKey::derive(&shared, &self.public_key(), peer))
    }
}

impl Clone for IdentitySecret {
    fn clone(&self) -> Self {
        IdentitySecret(self.0.clone())
    }
}

impl std::fmt::Debug for IdentitySecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdentitySecret(..)")
    }
}

/// The output of X25519, before key derivation.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct SharedSecret([u8; KEY_LEN]);

impl SharedSecret {
    /// The raw bytes (for the known-answer tests).
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl std::fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedSecret(..)")
    }
}

/// The symmetric key two users share for their 1:1 conversation. Callers cache it per peer.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct PairKey(pub(crate) [u8; KEY_LEN]);

impl PairKey {
    /// `HKDF-SHA256(ikm = shared, salt = "sealroom/v1/pair-salt",
    /// info = "sealroom/v1/pair" || min(a, b) || max(a, b))`, with the public keys ordered as
    /// byte strings, so both sides derive the same key.
    pub fn derive(shared: &SharedSecret, a: &PublicKey, b: &PublicKey) -> Self {
        let info = pair_info(a, b);
        PairKey(*hkdf32(&shared.0, SALT_PAIR, &info))
    }

    /// Wraps raw key bytes (for the known-answer tests).
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        PairKey(bytes)
    }

    /// The raw key bytes (for the known-answer tests).
    pub fn expose_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl PartialEq for PairKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}
impl Eq for PairKey {}

impl std::fmt::Debug for PairKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PairKey(..)")
    }
}

/// The HKDF info of the pair key: the label, then both public keys in canonical order.
pub fn pair_info(a: &PublicKey, b: &PublicKey) -> Vec<u8> {
    let (lo, hi) = if a.0 <= b.0 { (a, b) } else { (b, a) };
    let mut info = Vec::with_capacity(INFO_PAIR.len() + 2 * KEY_LEN);
    info.extend_from_slice(INFO_PAIR);
    info.extend_from_slice(&lo.0);
    info.extend_from_slice(&hi.0);
    info
}
