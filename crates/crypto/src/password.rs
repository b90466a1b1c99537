//! Password-derived keys: Argon2id, then HKDF-SHA256 into `auth_key` and `backup_key`.

use argon2::{Algorithm, Argon2, AssociatedData, ParamsBuilder, Version};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::kdf::{hkdf32, random_bytes, INFO_AUTH, INFO_BACKUP};
use crate::{Error, Result};

/// Length of the per-user Argon2id salt.
pub const SALT_LEN: usize = 16;

/// Argon2id cost parameters. They travel with the account (the server stores them beside the
/// salt) so that they can be raised later without breaking old accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_kib: u32,
    /// Passes over memory.
    pub t: u32,
    /// Lanes.
    pub p: u32,
}

impl KdfParams {
    /// The production parameters of version 1: 64 MiB, 3 passes, 1 lane.
    pub const PRODUCTION: KdfParams = KdfParams { m_kib: 65536, t: 3, p: 1 };
    /// Largest memory cost a client accepts (1 GiB): more would hang or crash a browser tab.
    pub const MAX_M_KIB: u32 = 1 << 20;
    /// Largest pass count a client accepts.
    pub const MAX_T: u32 = 16;
    /// Largest lane count a client accepts.
    pub const MAX_P: u32 = 8;

    /// Checks that these parameters are at least the production ones and not absurd.
    ///
    /// A client runs this on parameters it gets from a server before deriving anything, so a
    /// malicious server cannot downgrade the password hash to make offline guessing cheap, nor
    /// make the client allocate unbounded memory.
    pub fn validate(&self) -> Result<()> {
        let min = Self::PRODUCTION;
        if self.m_kib < min.m_kib || self.t < min.t || self.p < min.p {
            return Err(Error::KdfParams("weaker than the version 1 minimum"));
        }
        if self.m_kib > Self::MAX_M_KIB || self.t > Self::MAX_T || self.p > Self::MAX_P {
            return Err(Error::KdfParams("above the accepted maximum"));
        }
        if self.m_kib < 8 * self.p {
            return Err(Error::KdfParams("memory must be at least 8 KiB per lane"));
        }
        Ok(())
    }
}

impl Default for KdfParams {
    fn default() -> Self {
        Self::PRODUCTION
    }
}

/// A fresh random 16-byte salt for a new account.
pub fn generate_salt() -> Result<[u8; SALT_LEN]> {
    let mut salt = [0u8; SALT_LEN];
    random_bytes(&mut salt)?;
    Ok(salt)
}

/// Raw Argon2id (version 0x13) with a 32-byte output, without the range check of
/// [`KdfParams::validate`]. [`PasswordKeys::derive`] uses this after validating; it is public so
/// that the known-answer tests of RFC 9106 run through the exact same code.
pub fn argon2id(password: &[u8], salt: &[u8], params: KdfParams) -> Result<Zeroizing<[u8; 32]>> {
    argon2id_keyed(password, salt, &[], &[], params)
}

/// Argon2id with the optional secret and associated-data inputs of RFC 9106 (only the RFC's
/// test vector uses them; Sealroom passes none).
pub fn argon2id_keyed(
    password: &[u8],
    salt: &[u8],
    secret: &[u8],
    ad: &[u8],
    params: KdfParams,
) -> Result<Zeroizing<[u8; 32]>> {
    let mut builder = ParamsBuilder::new();
    builder.m_cost(params.m_kib).t_cost(params.t).p_cost(params.p).output_len(32);
    if !ad.is_empty() {
        let ad = AssociatedData::new(ad).map_err(|_| Error::KdfParams("associated data too long"))?;
        builder.data(ad);
    }
    let params = builder.build().map_err(|_| Error::KdfParams("rejected by Argon2"))?;
    let argon = if secret.is_empty() {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
    } else {
        Argon2::new_with_secret(secret, Algorithm::Argon2id, Version::V0x13, params)
            .map_err(|_| Error::KdfParams("secret too long"))?
    };
    let mut out = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(password, salt, out.as_mut_slice())
        .map_err(|_| Error::KdfParams("salt or password length rejected by Argon2"))?;
    Ok(out)
}

/// The two keys derived from a password.
///
/// `auth_key` is the only password-derived value that ever leaves the client (the server
/// stores Argon2id of it); `backup_key` seals the key backup and never leaves the client.
pub struct PasswordKeys {
    /// Sent to the server to register and log in.
    pub auth_key: AuthKey,
    /// Seals and unseals the key backup.
    pub backup_key: BackupKey,
}

impl std::fmt::Debug for PasswordKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordKeys { .. }")
    }
}

impl PasswordKeys {
    /// `master = Argon2id(password, salt, params)`, then
    /// `auth_key = HKDF(master, no salt, "sealroom/v1/auth")` and
    /// `backup_key = HKDF(master, no salt, "sealroom/v1/backup")`.
    ///
    /// Fails if `params` are below the version 1 minimum or the salt is not 16 bytes.
    pub fn derive(password: &str, salt: &[u8], params: KdfParams) -> Result<Self> {
        params.validate()?;
        if salt.len() != SALT_LEN {
            return Err(Error::InvalidLength { what: "KDF salt", expected: SALT_LEN, actual: salt.len() });
        }
        let master = argon2id(password.as_bytes(), salt, params)?;
        Ok(Self::from_master(&master))
    }

    /// The HKDF step alone, from an Argon2id output.
    pub fn from_master(master: &[u8; 32]) -> Self {
        PasswordKeys {
            auth_key: AuthKey(*hkdf32(master, &[], INFO_AUTH)),
            backup_key: BackupKey(*hkdf32(master, &[], INFO_BACKUP)),
        }
    }
}

/// The login credential derived from the password. Sent to the server; never stored by a client.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct AuthKey([u8; 32]);

impl AuthKey {
    /// The raw bytes, to send to the server.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for AuthKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthKey(..)")
    }
}

/// The key that seals the key backup. Never leaves the client.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct BackupKey(pub(crate) [u8; 32]);

impl BackupKey {
    /// Wraps raw key bytes (for the known-answer tests and for keys restored from storage).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        BackupKey(bytes)
    }

    /// The raw bytes, for a client that keeps the key wrapped in browser storage.
    pub fn expose_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for BackupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BackupKey(..)")
    }
}
