//! Version 2: a device's MLS state, sealed at rest.
//!
//! A device (a CLI state directory, a browser profile) keeps its MLS state (its leaf
//! signature key, unused key packages, and each group's tree and secrets) in one file, sealed
//! under a key only the user's password unlocks (docs/CRYPTO.md, "A device's state at rest"):
//!
//! ```text
//! state_key = HKDF-SHA256(ikm = identity signing seed, salt = none,
//!                         info = "sealroom/v2/device-state" | device_id (16))
//! sealed    = 0x01 | nonce (24, random)
//!           | XChaCha20-Poly1305(state_key, nonce, state, AAD)
//! AAD       = "sealroom/v2/device-state" | 0x01 | name_len: u8 | username | device_id (16)
//! ```
//!
//! The seed lives only in the key backup, which the password opens: a copy of the disk alone
//! opens nothing. Each write replaces the whole file, so a secret the state has deleted (a
//! consumed key, a past epoch) is gone from the disk with the old file.

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::device::{SigningSecret, DEVICE_ID_LEN};
use crate::kdf::{hkdf32, random_bytes, xopen, xseal};
use crate::{Error, Result};

/// The label of the key derivation and of the associated data.
pub const DEVICE_STATE_LABEL: &[u8] = b"sealroom/v2/device-state";
/// The sealed format this build writes and reads.
pub const DEVICE_STATE_VERSION: u8 = 0x01;

/// The key a device's state is sealed under.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct DeviceStateKey([u8; 32]);

impl std::fmt::Debug for DeviceStateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceStateKey(…)")
    }
}

impl DeviceStateKey {
    /// The key of device `device_id`, from the user's identity signing key.
    pub fn derive(identity: &SigningSecret, device_id: &[u8; DEVICE_ID_LEN]) -> Self {
        let seed = zeroize::Zeroizing::new(identity.seed());
        let mut info = Vec::with_capacity(DEVICE_STATE_LABEL.len() + DEVICE_ID_LEN);
        info.extend_from_slice(DEVICE_STATE_LABEL);
        info.extend_from_slice(device_id);
        DeviceStateKey(*hkdf32(seed.as_slice(), &[], &info))
    }

    /// The key's bytes. Only for known-answer tests.
    #[doc(hidden)]
    pub fn expose_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// The associated data of user `username`'s device `device_id`.
pub fn device_state_aad(username: &str, device_id: &[u8; DEVICE_ID_LEN]) -> Result<Vec<u8>> {
    let len = u8::try_from(username.len()).ok().filter(|&l| l > 0).ok_or(Error::Malformed("username"))?;
    let mut aad = Vec::with_capacity(DEVICE_STATE_LABEL.len() + 2 + username.len() + DEVICE_ID_LEN);
    aad.extend_from_slice(DEVICE_STATE_LABEL);
    aad.push(DEVICE_STATE_VERSION);
    aad.push(len);
    aad.extend_from_slice(username.as_bytes());
    aad.extend_from_slice(device_id);
    Ok(aad)
}

/// Seals a device's state with a random nonce.
pub fn seal_device_state(
    key: &DeviceStateKey,
    username: &str,
    device_id: &[u8; DEVICE_ID_LEN],
    state: &[u8],
) -> Result<Vec<u8>> {
    let mut nonce = [0u8; 24];
    random_bytes(&mut nonce)?;
    seal_device_state_with_nonce(key, username, device_id, state, &nonce)
}

/// [`seal_device_state`] with a caller-chosen nonce. Only for known-answer tests.
#[doc(hidden)]
pub fn seal_device_state_with_nonce(
    key: &DeviceStateKey,
    username: &str,
    device_id: &[u8; DEVICE_ID_LEN],
    state: &[u8],
    nonce: &[u8; 24],
) -> Result<Vec<u8>> {
    let ct = xseal(&key.0, nonce, &device_state_aad(username, device_id)?, state)?;
    let mut sealed = Vec::with_capacity(1 + 24 + ct.len());
    sealed.push(DEVICE_STATE_VERSION);
    sealed.extend_from_slice(nonce);
    sealed.extend_from_slice(&ct);
    Ok(sealed)
}

/// Opens a sealed device state. Another user's or another device's state, a wrong key or any
/// altered byte is the opaque [`Error::Decryption`].
pub fn open_device_state(
    key: &DeviceStateKey,
    username: &str,
    device_id: &[u8; DEVICE_ID_LEN],
    sealed: &[u8],
) -> Result<zeroize::Zeroizing<Vec<u8>>> {
    let (&version, rest) = sealed.split_first().ok_or(Error::Decryption)?;
    if version != DEVICE_STATE_VERSION {
        return Err(Error::UnsupportedVersion { what: "device state", version });
    }
    if rest.len() < 24 {
        return Err(Error::Decryption);
    }
    let (nonce, ct) = rest.split_at(24);
    let nonce: [u8; 24] = nonce.try_into().map_err(|_| Error::Decryption)?;
    xopen(&key.0, &nonce, &device_state_aad(username, device_id)?, ct).map(zeroize::Zeroizing::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_opens_only_for_its_user_device_and_key() {
        let identity = SigningSecret::generate().unwrap();
        let device = [7u8; DEVICE_ID_LEN];
        let key = DeviceStateKey::derive(&identity, &device);
        let sealed = seal_device_state(&key, "alice", &device, b"tree and secrets").unwrap();
        assert_eq!(&open_device_state(&key, "alice", &device, &sealed).unwrap()[..], b"tree and secrets");

        assert!(matches!(open_device_state(&key, "mallory", &device, &sealed), Err(Error::Decryption)));
        assert!(matches!(
            open_device_state(&key, "alice", &[8; DEVICE_ID_LEN], &sealed),
            Err(Error::Decryption)
        ));
        let other_device = DeviceStateKey::derive(&identity, &[8; DEVICE_ID_LEN]);
        assert_ne!(other_device, key);
        assert!(matches!(
            open_device_state(&other_device, "alice", &device, &sealed),
            Err(Error::Decryption)
        ));
        let other_user = DeviceStateKey::derive(&SigningSecret::generate().unwrap(), &device);
        assert!(matches!(open_device_state(&other_user, "alice", &device, &sealed), Err(Error::Decryption)));
        for i in 0..sealed.len() {
            let mut altered = sealed.clone();
            altered[i] ^= 0x01;
            assert!(open_device_state(&key, "alice", &device, &altered).is_err(), "byte {i}");
        }
        assert!(open_device_state(&key, "alice", &device, &sealed[..24]).is_err());
        assert!(open_device_state(&key, "alice", &device, &[]).is_err());
    }
}
