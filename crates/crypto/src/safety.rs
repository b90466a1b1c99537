//! Safety numbers: what two users compare out of band to know they hold each other's real key.
//!
//! ```text
//! fingerprint(user) = H^5200 where H^0 = SHA-512("sealroom/v1/safety-number" | name_len: u8
//!                     | username | public key), H^i = SHA-512(H^(i-1) | public key)
//! digits(user)      = for k in 0..6: (bytes 5k..5k+5 of the fingerprint as a big-endian
//!                     40-bit integer) mod 100000, zero-padded to 5 digits  → 30 digits
//! number            = the two 30-digit strings, the smaller (as text) first → 60 digits,
//!                     shown as 12 groups of 5
//! ```

use sha2::{Digest, Sha512};

use crate::device::SigningPublic;
use crate::identity::PublicKey;
use crate::{Error, Result};

/// Label that starts every fingerprint.
pub const SAFETY_LABEL: &[u8] = b"sealroom/v1/safety-number";
/// Label of version 2 fingerprints, over both of a user's keys (X25519 | Ed25519).
pub const SAFETY_LABEL_V2: &[u8] = b"sealroom/v2/safety-number";
/// SHA-512 iterations per fingerprint: makes a second key with a colliding number costly.
pub const SAFETY_ITERATIONS: usize = 5200;

/// A 60-digit safety number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafetyNumber(String);

impl SafetyNumber {
    /// The number for two users; the same whichever of them computes it.
    pub fn compute(a_username: &str, a_key: &PublicKey, b_username: &str, b_key: &PublicKey) -> Result<Self> {
        let a = digits(SAFETY_LABEL, a_username, a_key.as_bytes())?;
        let b = digits(SAFETY_LABEL, b_username, b_key.as_bytes())?;
        Ok(Self::pair(a, b))
    }

    /// Version 2 (docs/CRYPTO.md): each user's fingerprint covers both their X25519 key and
    /// their Ed25519 identity signing key, under its own label.
    pub fn compute_v2(
        a_username: &str,
        a_keys: (&PublicKey, &SigningPublic),
        b_username: &str,
        b_keys: (&PublicKey, &SigningPublic),
    ) -> Result<Self> {
        let both = |(x, ed): (&PublicKey, &SigningPublic)| [&x.as_bytes()[..], &ed.as_bytes()[..]].concat();
        let a = digits(SAFETY_LABEL_V2, a_username, &both(a_keys))?;
        let b = digits(SAFETY_LABEL_V2, b_username, &both(b_keys))?;
        Ok(Self::pair(a, b))
    }

    fn pair(a: String, b: String) -> Self {
        let (first, second) = if a <= b { (a, b) } else { (b, a) };
        SafetyNumber(first + &second)
    }

    /// The 60 digits without spaces.
    pub fn digits(&self) -> &str {
        &self.0
    }

    /// The 12 groups of 5 digits.
    pub fn groups(&self) -> Vec<&str> {
        (0..12).map(|i| &self.0[i * 5..i * 5 + 5]).collect()
    }
}

impl std::fmt::Display for SafetyNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.groups().join(" "))
    }
}

fn digits(label: &[u8], username: &str, key: &[u8]) -> Result<String> {
    if username.is_empty() || username.len() > 255 {
        return Err(Error::Malformed("username"));
    }
    let mut h = Sha512::new();
    h.update(label);
    h.update([username.len() as u8]);
    h.update(username.as_bytes());
    h.update(key);
    let mut digest = h.finalize();
    for _ in 0..SAFETY_ITERATIONS {
        let mut h = Sha512::new();
        h.update(digest);
        h.update(key);
        digest = h.finalize();
    }
    let mut out = String::with_capacity(30);
    for k in 0..6 {
        let mut v: u64 = 0;
        for &b in &digest[5 * k..5 * k + 5] {
            v = (v << 8) | u64::from(b);
        }
        out.push_str(&format!("{:05}", v % 100_000));
    }
    Ok(out)
}
