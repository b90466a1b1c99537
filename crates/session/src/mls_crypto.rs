//! OpenMLS's crypto provider for the one ciphersuite Sealroom speaks,
//! `MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519`.
//!
//! Why not `openmls_rust_crypto::RustCrypto`: it chooses every primitive at run time from the
//! ciphersuite, so every binary that uses it links all the ciphersuites it knows: ECDSA over
//! P-256 and P-384, secp256k1, ML-KEM, X-Wing and ML-DSA. The web client never runs any of
//! them, yet they were about 190 KiB of its `.wasm` (issue 14's size budget). This provider is
//! the same RustCrypto primitives OpenMLS's provider calls (`sha2`, `hkdf`, `hmac`,
//! `chacha20poly1305`, `ed25519-dalek`, the versions sealroom-crypto uses), with HPKE from the
//! `hpke` crate (RFC 9180, rozbb/rust-hpke), whose KEM, KDF and AEAD are types: only X25519 is
//! linked. Anything outside the ciphersuite is refused with OpenMLS's "unsupported" errors.
//!
//! The tests (`mls_crypto_tests.rs`) check it against `RustCrypto` byte for byte where the
//! output is deterministic, and each way round where it is not (HPKE encapsulates to a fresh
//! key), so a device on either provider reads the other's messages.

use chacha20poly1305::{
    aead::{Aead, KeyInit, Payload},
    ChaCha20Poly1305,
};
use ed25519_dalek::Signer as _;
use hkdf::Hkdf;
use hmac::Mac;
use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};
use openmls::prelude::tls_codec::SecretVLBytes;
use openmls_traits::{
    crypto::OpenMlsCrypto,
    random::OpenMlsRand,
    signatures::{Signer, SignerError},
    storage::{self, StorageProvider, CURRENT_VERSION},
    types::{
        AeadType, Ciphersuite, CryptoError, ExporterSecret, HashType, HpkeAeadType, HpkeCiphertext,
        HpkeConfig, HpkeKdfType, HpkeKemType, HpkeKeyPair, SignatureScheme,
    },
};
use rand_core::{OsRng, RngCore as _};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroize as _;

use crate::mls::CIPHERSUITE;

type HpkeKem = hpke::kem::X25519HkdfSha256;
type HpkeKdf = hpke::kdf::HkdfSha256;
type HpkeAead = hpke::aead::ChaCha20Poly1305;

/// The crypto and randomness OpenMLS uses on a Sealroom device.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct SuiteCrypto;

/// Fills `buf` from the operating system (in the browser, `crypto.getRandomValues`).
pub(crate) fn fill_random(buf: &mut [u8]) -> Result<(), RandomError> {
    OsRng.try_fill_bytes(buf).map_err(|_| RandomError)
}

/// An Ed25519 key from 32 fresh random bytes (its RFC 8032 seed).
fn new_ed25519() -> Result<ed25519_dalek::SigningKey, RandomError> {
    let mut seed = zeroize::Zeroizing::new([0u8; 32]);
    fill_random(seed.as_mut())?;
    Ok(ed25519_dalek::SigningKey::from_bytes(&seed))
}

/// The operating system gave no randomness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the system's random number generator failed")]
pub(crate) struct RandomError;

/// `rand_core` 0.9 (the `hpke` crate's) over the same system source.
struct SystemRng;

impl hpke::rand_core::RngCore for SystemRng {
    fn next_u32(&mut self) -> u32 {
        OsRng.next_u32()
    }
    fn next_u64(&mut self) -> u64 {
        OsRng.next_u64()
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        OsRng.fill_bytes(dest)
    }
}

impl hpke::rand_core::CryptoRng for SystemRng {}

fn check_hash(hash: HashType) -> Result<(), CryptoError> {
    match hash {
        HashType::Sha2_256 => Ok(()),
        _ => Err(CryptoError::UnsupportedHashAlgorithm),
    }
}

fn check_aead(aead: AeadType) -> Result<(), CryptoError> {
    match aead {
        AeadType::ChaCha20Poly1305 => Ok(()),
        _ => Err(CryptoError::UnsupportedAeadAlgorithm),
    }
}

fn check_signature(scheme: SignatureScheme) -> Result<(), CryptoError> {
    match scheme {
        SignatureScheme::ED25519 => Ok(()),
        _ => Err(CryptoError::UnsupportedSignatureScheme),
    }
}

fn check_hpke(config: &HpkeConfig) -> Result<(), CryptoError> {
    match config {
        HpkeConfig(HpkeKemType::DhKem25519, HpkeKdfType::HkdfSha256, HpkeAeadType::ChaCha20Poly1305) => {
            Ok(())
        }
        _ => Err(CryptoError::UnsupportedCiphersuite),
    }
}

fn public_key(bytes: &[u8]) -> Result<<HpkeKem as hpke::Kem>::PublicKey, CryptoError> {
    <HpkeKem as hpke::Kem>::PublicKey::from_bytes(bytes).map_err(|_| CryptoError::InvalidPublicKey)
}

fn private_key(bytes: &[u8]) -> Result<<HpkeKem as hpke::Kem>::PrivateKey, CryptoError> {
    <HpkeKem as hpke::Kem>::PrivateKey::from_bytes(bytes).map_err(|_| CryptoError::InvalidLength)
}

fn encapped_key(bytes: &[u8]) -> Result<<HpkeKem as hpke::Kem>::EncappedKey, CryptoError> {
    <HpkeKem as hpke::Kem>::EncappedKey::from_bytes(bytes).map_err(|_| CryptoError::InvalidLength)
}

fn chacha(key: &[u8]) -> Result<ChaCha20Poly1305, CryptoError> {
    ChaCha20Poly1305::new_from_slice(key).map_err(|_| CryptoError::CryptoLibraryError)
}

fn nonce(nonce: &[u8]) -> Result<&chacha20poly1305::Nonce, CryptoError> {
    if nonce.len() != 12 {
        return Err(CryptoError::InvalidLength);
    }
    Ok(chacha20poly1305::Nonce::from_slice(nonce))
}

impl OpenMlsCrypto for SuiteCrypto {
    fn supports(&self, ciphersuite: Ciphersuite) -> Result<(), CryptoError> {
        if ciphersuite == CIPHERSUITE {
            Ok(())
        } else {
            Err(CryptoError::UnsupportedCiphersuite)
        }
    }

    fn supported_ciphersuites(&self) -> Vec<Ciphersuite> {
        vec![CIPHERSUITE]
    }

    fn hkdf_extract(
        &self,
        hash_type: HashType,
        salt: &[u8],
        ikm: &[u8],
    ) -> Result<SecretVLBytes, CryptoError> {
        check_hash(hash_type)?;
        Ok(Hkdf::<Sha256>::extract(Some(salt), ikm).0.as_slice().into())
    }

    fn hmac(&self, hash_type: HashType, key: &[u8], message: &[u8]) -> Result<SecretVLBytes, CryptoError> {
        check_hash(hash_type)?;
        let mut mac =
            <hmac::Hmac<Sha256> as Mac>::new_from_slice(key).map_err(|_| CryptoError::CryptoLibraryError)?;
        mac.update(message);
        Ok(SecretVLBytes::new(mac.finalize().into_bytes().to_vec()))
    }

    fn hkdf_expand(
        &self,
        hash_type: HashType,
        prk: &[u8],
        info: &[u8],
        okm_len: usize,
    ) -> Result<SecretVLBytes, CryptoError> {
        check_hash(hash_type)?;
        let hkdf = Hkdf::<Sha256>::from_prk(prk).map_err(|_| CryptoError::HkdfOutputLengthInvalid)?;
        let mut okm = vec![0u8; okm_len];
        hkdf.expand(info, &mut okm).map_err(|_| CryptoError::HkdfOutputLengthInvalid)?;
        Ok(okm.into())
    }

    fn hash(&self, hash_type: HashType, data: &[u8]) -> Result<Vec<u8>, CryptoError> {
        check_hash(hash_type)?;
        Ok(Sha256::digest(data).to_vec())
    }

    fn aead_encrypt(
        &self,
        alg: AeadType,
        key: &[u8],
        data: &[u8],
        nonce_bytes: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        check_aead(alg)?;
        chacha(key)?
            .encrypt(nonce(nonce_bytes)?, Payload { msg: data, aad })
            .map_err(|_| CryptoError::CryptoLibraryError)
    }

    fn aead_decrypt(
        &self,
        alg: AeadType,
        key: &[u8],
        ct_tag: &[u8],
        nonce_bytes: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        check_aead(alg)?;
        chacha(key)?
            .decrypt(nonce(nonce_bytes)?, Payload { msg: ct_tag, aad })
            .map_err(|_| CryptoError::AeadDecryptionError)
    }

    fn signature_key_gen(&self, alg: SignatureScheme) -> Result<(Vec<u8>, Vec<u8>), CryptoError> {
        check_signature(alg)?;
        let key = new_ed25519().map_err(|_| CryptoError::InsufficientRandomness)?;
        Ok((key.to_bytes().to_vec(), key.verifying_key().to_bytes().to_vec()))
    }

    fn verify_signature(
        &self,
        alg: SignatureScheme,
        data: &[u8],
        pk: &[u8],
        signature: &[u8],
    ) -> Result<(), CryptoError> {
        check_signature(alg)?;
        let key = ed25519_dalek::VerifyingKey::try_from(pk).map_err(|_| CryptoError::CryptoLibraryError)?;
        let signature =
            ed25519_dalek::Signature::from_slice(signature).map_err(|_| CryptoError::CryptoLibraryError)?;
        key.verify_strict(data, &signature).map_err(|_| CryptoError::InvalidSignature)
    }

    fn sign(&self, alg: SignatureScheme, data: &[u8], key: &[u8]) -> Result<Vec<u8>, CryptoError> {
        check_signature(alg)?;
        let key = ed25519_dalek::SigningKey::try_from(key).map_err(|_| CryptoError::CryptoLibraryError)?;
        Ok(key.sign(data).to_bytes().to_vec())
    }

    fn hpke_seal(
        &self,
        config: HpkeConfig,
        pk_r: &[u8],
        info: &[u8],
        aad: &[u8],
        ptxt: &[u8],
    ) -> Result<HpkeCiphertext, CryptoError> {
        check_hpke(&config)?;
        let (enc, ciphertext) = hpke::single_shot_seal::<HpkeAead, HpkeKdf, HpkeKem, _>(
            &OpModeS::Base,
            &public_key(pk_r)?,
            info,
            ptxt,
            aad,
            &mut SystemRng,
        )
        .map_err(|_| CryptoError::HpkeEncryptionError)?;
        Ok(HpkeCiphertext { kem_output: enc.to_bytes().to_vec().into(), ciphertext: ciphertext.into() })
    }

    fn hpke_open(
        &self,
        config: HpkeConfig,
        input: &HpkeCiphertext,
        sk_r: &[u8],
        info: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        check_hpke(&config)?;
        hpke::single_shot_open::<HpkeAead, HpkeKdf, HpkeKem>(
            &OpModeR::Base,
            &private_key(sk_r)?,
            &encapped_key(input.kem_output.as_slice()).map_err(|_| CryptoError::HpkeDecryptionError)?,
            info,
            input.ciphertext.as_slice(),
            aad,
        )
        .map_err(|_| CryptoError::HpkeDecryptionError)
    }

    fn hpke_setup_sender_and_export(
        &self,
        config: HpkeConfig,
        pk_r: &[u8],
        info: &[u8],
        exporter_context: &[u8],
        exporter_length: usize,
    ) -> Result<(Vec<u8>, ExporterSecret), CryptoError> {
        check_hpke(&config)?;
        let (enc, context) = hpke::setup_sender::<HpkeAead, HpkeKdf, HpkeKem, _>(
            &OpModeS::Base,
            &public_key(pk_r)?,
            info,
            &mut SystemRng,
        )
        .map_err(|_| CryptoError::SenderSetupError)?;
        let mut secret = vec![0u8; exporter_length];
        context.export(exporter_context, &mut secret).map_err(|_| CryptoError::ExporterError)?;
        Ok((enc.to_bytes().to_vec(), secret.into()))
    }

    fn hpke_setup_receiver_and_export(
        &self,
        config: HpkeConfig,
        enc: &[u8],
        sk_r: &[u8],
        info: &[u8],
        exporter_context: &[u8],
        exporter_length: usize,
    ) -> Result<ExporterSecret, CryptoError> {
        check_hpke(&config)?;
        let context = hpke::setup_receiver::<HpkeAead, HpkeKdf, HpkeKem>(
            &OpModeR::Base,
            &private_key(sk_r)?,
            &encapped_key(enc).map_err(|_| CryptoError::ReceiverSetupError)?,
            info,
        )
        .map_err(|_| CryptoError::ReceiverSetupError)?;
        let mut secret = vec![0u8; exporter_length];
        context.export(exporter_context, &mut secret).map_err(|_| CryptoError::ExporterError)?;
        Ok(secret.into())
    }

    fn derive_hpke_keypair(&self, config: HpkeConfig, ikm: &[u8]) -> Result<HpkeKeyPair, CryptoError> {
        check_hpke(&config)?;
        let (private, public) = HpkeKem::derive_keypair(ikm);
        Ok(HpkeKeyPair { private: private.to_bytes().to_vec().into(), public: public.to_bytes().to_vec() })
    }
}

impl OpenMlsRand for SuiteCrypto {
    type Error = RandomError;

    fn random_array<const N: usize>(&self) -> Result<[u8; N], Self::Error> {
        let mut out = [0u8; N];
        fill_random(&mut out)?;
        Ok(out)
    }

    fn random_vec(&self, len: usize) -> Result<Vec<u8>, Self::Error> {
        let mut out = vec![0u8; len];
        fill_random(&mut out)?;
        Ok(out)
    }
}

/// A device's leaf signing key (Ed25519), kept in OpenMLS's store in the shape and under the
/// key that `openmls_basic_credential::SignatureKeyPair` uses, so device states written before
/// this provider read unchanged (a test stores one with each and reads it with the other).
#[derive(Serialize, Deserialize)]
pub(crate) struct LeafSigner {
    private: Vec<u8>,
    public: Vec<u8>,
    signature_scheme: SignatureScheme,
}

impl Drop for LeafSigner {
    fn drop(&mut self) {
        self.private.zeroize();
    }
}

impl std::fmt::Debug for LeafSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeafSigner").field("public", &self.public).finish_non_exhaustive()
    }
}

/// Where the store keeps a leaf key: its public key, a label and the scheme.
#[derive(Debug, Serialize, Deserialize)]
struct LeafKeyId {
    value: Vec<u8>,
}

impl storage::Key<CURRENT_VERSION> for LeafKeyId {}
impl storage::traits::SignaturePublicKey<CURRENT_VERSION> for LeafKeyId {}
impl storage::Entity<CURRENT_VERSION> for LeafSigner {}
impl storage::traits::SignatureKeyPair<CURRENT_VERSION> for LeafSigner {}

fn leaf_key_id(public: &[u8]) -> LeafKeyId {
    let mut value = public.to_vec();
    value.extend_from_slice(b"RustCryptoSignatureKey");
    value.extend_from_slice(&(SignatureScheme::ED25519 as u16).to_be_bytes());
    LeafKeyId { value }
}

impl LeafSigner {
    /// A fresh Ed25519 key pair.
    pub(crate) fn generate() -> Result<Self, RandomError> {
        let key = new_ed25519()?;
        Ok(Self {
            private: key.to_bytes().to_vec(),
            public: key.verifying_key().to_bytes().to_vec(),
            signature_scheme: SignatureScheme::ED25519,
        })
    }

    /// The Ed25519 public key.
    pub(crate) fn public(&self) -> &[u8] {
        &self.public
    }

    /// Keeps the key in `store`.
    pub(crate) fn store<S: StorageProvider<CURRENT_VERSION>>(&self, store: &S) -> Result<(), S::Error> {
        store.write_signature_key_pair(&leaf_key_id(&self.public), self)
    }

    /// The key whose public half is `public`, from `store`.
    pub(crate) fn read(store: &impl StorageProvider<CURRENT_VERSION>, public: &[u8]) -> Option<Self> {
        store.signature_key_pair(&leaf_key_id(public)).ok().flatten()
    }
}

impl Signer for LeafSigner {
    fn sign(&self, payload: &[u8]) -> Result<Vec<u8>, SignerError> {
        if self.signature_scheme != SignatureScheme::ED25519 {
            return Err(SignerError::CryptoError(CryptoError::UnsupportedSignatureScheme));
        }
        let key = ed25519_dalek::SigningKey::try_from(self.private.as_slice())
            .map_err(|_| SignerError::SigningError)?;
        Ok(key.sign(payload).to_bytes().to_vec())
    }

    fn signature_scheme(&self) -> SignatureScheme {
        self.signature_scheme
    }
}

#[cfg(test)]
#[path = "mls_crypto_tests.rs"]
mod tests;
