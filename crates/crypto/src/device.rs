//! Version 2: the user's identity signing key and the certificates it gives each device.
//!
//! In version 2 every device (a browser profile, a CLI state directory) is an MLS client with
//! its own leaf signature key. A device certificate, signed by the user's Ed25519 identity
//! signing key, ties that leaf key to the user; peers pin the user's key and accept a device
//! only with a certificate that verifies under it (docs/CRYPTO.md, "Devices and their
//! certificates"):
//!
//! ```text
//! device_cert = 0x01 | name_len: u8 | username | device_id (16) | leaf_signature_public (32)
//!             | created_ms: u64 BE | signature (64)
//! signature   = Ed25519(identity signing secret, "sealroom/v2/device" | every byte before it)
//! ```

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use zeroize::Zeroize;

use crate::{Error, Result};

/// Prefix of every device certificate signature's message.
pub const DEVICE_CERT_LABEL: &[u8] = b"sealroom/v2/device";
/// The certificate format this build writes and reads.
pub const DEVICE_CERT_VERSION: u8 = 0x01;
/// Bytes in a device id.
pub const DEVICE_ID_LEN: usize = 16;

/// The user's Ed25519 identity signing key (its 32-byte seed; zeroized on drop).
#[derive(Clone)]
pub struct SigningSecret(SigningKey);

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningSecret(…)")
    }
}

impl SigningSecret {
    /// A fresh random key.
    pub fn generate() -> Result<Self> {
        let mut seed = [0u8; 32];
        crate::kdf::random_bytes(&mut seed)?;
        let key = SigningSecret::from_seed(seed);
        seed.zeroize();
        Ok(key)
    }

    /// The key from its 32-byte seed (as sealed in the key backup).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        SigningSecret(SigningKey::from_bytes(&seed))
    }

    /// The seed, to seal in the key backup.
    pub fn seed(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The public key peers pin.
    pub fn public_key(&self) -> SigningPublic {
        SigningPublic(self.0.verifying_key().to_bytes())
    }
}

/// A user's Ed25519 identity public key (32 bytes, as published and pinned).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SigningPublic([u8; 32]);

impl std::fmt::Debug for SigningPublic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningPublic({:02x}{:02x}{:02x}{:02x}…)", self.0[0], self.0[1], self.0[2], self.0[3])
    }
}

impl SigningPublic {
    /// Wraps 32 bytes; refuses anything that is not a valid Ed25519 point encoding.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| Error::InvalidLength {
            what: "signing key",
            expected: 32,
            actual: bytes.len(),
        })?;
        VerifyingKey::from_bytes(&bytes).map_err(|_| Error::Malformed("signing key"))?;
        Ok(SigningPublic(bytes))
    }

    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// A device's certificate: which user's device it is and which MLS leaf key it signs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceCertificate {
    /// The user the device belongs to.
    pub username: String,
    /// The device's random id.
    pub device_id: [u8; DEVICE_ID_LEN],
    /// The device's MLS leaf signature key (Ed25519 public).
    pub leaf_key: [u8; 32],
    /// When it was issued (Unix milliseconds).
    pub created_ms: u64,
    signature: [u8; 64],
}

impl DeviceCertificate {
    /// Signs a certificate for one of the user's devices.
    pub fn issue(
        signer: &SigningSecret,
        username: &str,
        device_id: [u8; DEVICE_ID_LEN],
        leaf_key: [u8; 32],
        created_ms: u64,
    ) -> Result<Self> {
        check_username(username)?;
        let mut cert = DeviceCertificate {
            username: username.to_owned(),
            device_id,
            leaf_key,
            created_ms,
            signature: [0; 64],
        };
        cert.signature = signer.0.sign(&cert.signed_message()).to_bytes();
        Ok(cert)
    }

    /// The certificate's bytes (the MLS credential's identity).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.body();
        out.extend_from_slice(&self.signature);
        out
    }

    /// Parses a certificate; anything but the exact format (a trailing byte, a short field,
    /// another version) is refused. The signature is not checked here: see [`Self::verify`].
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let malformed = || Error::Malformed("device certificate");
        let (&version, rest) = bytes.split_first().ok_or_else(malformed)?;
        if version != DEVICE_CERT_VERSION {
            return Err(Error::UnsupportedVersion { what: "device certificate", version });
        }
        let (&name_len, rest) = rest.split_first().ok_or_else(malformed)?;
        let name_len = usize::from(name_len);
        if rest.len() != name_len + DEVICE_ID_LEN + 32 + 8 + 64 {
            return Err(malformed());
        }
        let (name, rest) = rest.split_at(name_len);
        let username = std::str::from_utf8(name).map_err(|_| malformed())?.to_owned();
        check_username(&username)?;
        let (device_id, rest) = rest.split_at(DEVICE_ID_LEN);
        let (leaf_key, rest) = rest.split_at(32);
        let (created, signature) = rest.split_at(8);
        Ok(DeviceCertificate {
            username,
            device_id: array(device_id)?,
            leaf_key: array(leaf_key)?,
            created_ms: u64::from_be_bytes(array(created)?),
            signature: array(signature)?,
        })
    }

    /// Checks the certificate against the user's pinned key, the member it claims to be and the
    /// MLS leaf's signature key. One opaque error for any mismatch.
    pub fn verify(&self, user_key: &SigningPublic, username: &str, leaf_key: &[u8]) -> Result<()> {
        let key =
            VerifyingKey::from_bytes(user_key.as_bytes()).map_err(|_| Error::Malformed("signing key"))?;
        let signature = Signature::from_bytes(&self.signature);
        // Strict: no small-order keys, no non-canonical signatures.
        let signed = key.verify_strict(&self.signed_message(), &signature).is_ok();
        if signed && self.username == username && self.leaf_key[..] == *leaf_key {
            Ok(())
        } else {
            Err(Error::Malformed("device certificate"))
        }
    }

    /// Everything before the signature.
    fn body(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(2 + self.username.len() + DEVICE_ID_LEN + 32 + 8 + 64);
        out.push(DEVICE_CERT_VERSION);
        out.push(self.username.len() as u8);
        out.extend_from_slice(self.username.as_bytes());
        out.extend_from_slice(&self.device_id);
        out.extend_from_slice(&self.leaf_key);
        out.extend_from_slice(&self.created_ms.to_be_bytes());
        out
    }

    fn signed_message(&self) -> Vec<u8> {
        [DEVICE_CERT_LABEL, &self.body()].concat()
    }
}

/// A slice of the length already checked, as an array.
fn array<const N: usize>(bytes: &[u8]) -> Result<[u8; N]> {
    bytes.try_into().map_err(|_| Error::Malformed("device certificate"))
}

fn check_username(username: &str) -> Result<()> {
    if username.is_empty() || username.len() > 255 {
        return Err(Error::Malformed("username"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_verifies_only_for_its_user_key_member_and_leaf() {
        let alice = SigningSecret::generate().unwrap();
        let mallory = SigningSecret::generate().unwrap();
        let leaf = SigningSecret::generate().unwrap().public_key();
        let cert =
            DeviceCertificate::issue(&alice, "alice", [7; 16], *leaf.as_bytes(), 1_700_000_000_000).unwrap();
        let bytes = cert.encode();
        assert_eq!(bytes.len(), 1 + 1 + 5 + 16 + 32 + 8 + 64);
        let back = DeviceCertificate::decode(&bytes).unwrap();
        assert_eq!(back, cert);
        back.verify(&alice.public_key(), "alice", leaf.as_bytes()).unwrap();
        // Another user's key, another member's name, another leaf key: refused.
        assert!(back.verify(&mallory.public_key(), "alice", leaf.as_bytes()).is_err());
        assert!(back.verify(&alice.public_key(), "bob", leaf.as_bytes()).is_err());
        assert!(back.verify(&alice.public_key(), "alice", &[1; 32]).is_err());
        // Any flipped byte is refused (by the parser or by the signature).
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x01;
            let ok = DeviceCertificate::decode(&bad)
                .is_ok_and(|c| c.verify(&alice.public_key(), "alice", leaf.as_bytes()).is_ok());
            assert!(!ok, "byte {i} flipped still verifies");
        }
        // Truncated, extended, another version.
        assert!(DeviceCertificate::decode(&bytes[..bytes.len() - 1]).is_err());
        assert!(DeviceCertificate::decode(&[&bytes[..], &[0]].concat()).is_err());
        assert!(matches!(
            DeviceCertificate::decode(&[&[2u8][..], &bytes[1..]].concat()),
            Err(Error::UnsupportedVersion { version: 2, .. })
        ));
        assert!(DeviceCertificate::issue(&alice, "", [0; 16], [0; 32], 0).is_err());
    }

    #[test]
    fn the_seed_round_trips_and_a_bad_public_key_is_refused() {
        let key = SigningSecret::generate().unwrap();
        assert_eq!(SigningSecret::from_seed(key.seed()).public_key(), key.public_key());
        assert!(SigningPublic::from_bytes(&[0; 31]).is_err());
        assert_eq!(format!("{key:?}"), "SigningSecret(…)");
    }
}
