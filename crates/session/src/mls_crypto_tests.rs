//! The one-ciphersuite provider against OpenMLS's own `RustCrypto`: the same bytes where the
//! output is deterministic, each other's HPKE ciphertexts and exports where it is not, and a
//! clear refusal for everything outside the ciphersuite.

use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::{MemoryStorage, RustCrypto};
use openmls_traits::{
    crypto::OpenMlsCrypto,
    random::OpenMlsRand,
    signatures::Signer,
    types::{
        AeadType, Ciphersuite, CryptoError, HashType, HpkeAeadType, HpkeCiphertext, HpkeConfig, HpkeKdfType,
        HpkeKemType, SignatureScheme,
    },
};

use super::{LeafSigner, SuiteCrypto};
use crate::mls::CIPHERSUITE;

fn bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

fn config() -> HpkeConfig {
    CIPHERSUITE.hpke_config()
}

#[test]
fn hashes_macs_and_hkdf_are_byte_for_byte_openmls_rust_crypto() {
    let (ours, theirs) = (SuiteCrypto, RustCrypto::default());
    let sha = HashType::Sha2_256;
    for len in [0, 1, 31, 32, 33, 64, 65, 1000] {
        let data = bytes(len, 7);
        let key = bytes(len.max(1), 99);
        assert_eq!(ours.hash(sha, &data).unwrap(), theirs.hash(sha, &data).unwrap());
        assert_eq!(
            ours.hmac(sha, &key, &data).unwrap().as_slice(),
            theirs.hmac(sha, &key, &data).unwrap().as_slice()
        );
        let prk = ours.hkdf_extract(sha, &key, &data).unwrap();
        assert_eq!(prk.as_slice(), theirs.hkdf_extract(sha, &key, &data).unwrap().as_slice());
        for okm_len in [0, 16, 32, 100, 255 * 32] {
            assert_eq!(
                ours.hkdf_expand(sha, prk.as_slice(), &data, okm_len).unwrap().as_slice(),
                theirs.hkdf_expand(sha, prk.as_slice(), &data, okm_len).unwrap().as_slice()
            );
        }
    }
    // HKDF's limit is 255 blocks, for both.
    let prk = ours.hkdf_extract(sha, b"salt", b"ikm").unwrap();
    assert_eq!(
        ours.hkdf_expand(sha, prk.as_slice(), b"", 255 * 32 + 1).unwrap_err(),
        CryptoError::HkdfOutputLengthInvalid
    );
}

#[test]
fn the_aead_is_byte_for_byte_openmls_rust_crypto_and_refuses_tampering() {
    let (ours, theirs) = (SuiteCrypto, RustCrypto::default());
    let alg = AeadType::ChaCha20Poly1305;
    let (key, nonce) = (bytes(32, 1), bytes(12, 2));
    for len in [0, 1, 63, 64, 65, 4096] {
        let (msg, aad) = (bytes(len, 3), bytes(len % 17, 4));
        let sealed = ours.aead_encrypt(alg, &key, &msg, &nonce, &aad).unwrap();
        assert_eq!(sealed, theirs.aead_encrypt(alg, &key, &msg, &nonce, &aad).unwrap());
        assert_eq!(ours.aead_decrypt(alg, &key, &sealed, &nonce, &aad).unwrap(), msg);
        let mut bad = sealed.clone();
        bad[len / 2] ^= 1;
        assert_eq!(
            ours.aead_decrypt(alg, &key, &bad, &nonce, &aad).unwrap_err(),
            CryptoError::AeadDecryptionError
        );
        assert_eq!(
            ours.aead_decrypt(alg, &key, &sealed, &nonce, b"other aad").unwrap_err(),
            CryptoError::AeadDecryptionError
        );
    }
    // Wrong lengths are errors, not panics.
    assert!(ours.aead_encrypt(alg, &key[..31], b"m", &nonce, b"").is_err());
    assert_eq!(
        ours.aead_encrypt(alg, &key, b"m", &nonce[..11], b"").unwrap_err(),
        CryptoError::InvalidLength
    );
    assert_eq!(
        ours.aead_decrypt(alg, &key, b"short", &nonce, b"").unwrap_err(),
        CryptoError::AeadDecryptionError
    );
}

#[test]
fn ed25519_signatures_match_and_cross_verify() {
    let (ours, theirs) = (SuiteCrypto, RustCrypto::default());
    let scheme = SignatureScheme::ED25519;
    let (private, public) = ours.signature_key_gen(scheme).unwrap();
    assert_eq!((private.len(), public.len()), (32, 32));
    let data = bytes(300, 5);
    let signature = ours.sign(scheme, &data, &private).unwrap();
    assert_eq!(signature, theirs.sign(scheme, &data, &private).unwrap());
    theirs.verify_signature(scheme, &data, &public, &signature).unwrap();
    ours.verify_signature(scheme, &data, &public, &signature).unwrap();
    let mut bad = signature.clone();
    bad[10] ^= 1;
    assert_eq!(
        ours.verify_signature(scheme, &data, &public, &bad).unwrap_err(),
        CryptoError::InvalidSignature
    );
    assert_eq!(
        ours.verify_signature(scheme, b"other data", &public, &signature).unwrap_err(),
        CryptoError::InvalidSignature
    );
    assert!(ours.verify_signature(scheme, &data, &public[..31], &signature).is_err());
    assert!(ours.verify_signature(scheme, &data, &public, &signature[..63]).is_err());

    let leaf = LeafSigner::generate().unwrap();
    assert_eq!(leaf.signature_scheme(), scheme);
    theirs.verify_signature(scheme, &data, leaf.public(), &leaf.sign(&data).unwrap()).unwrap();
}

#[test]
fn a_leaf_key_is_stored_as_openmls_basic_credential_stores_it_both_ways() {
    let scheme = SignatureScheme::ED25519;
    let data = b"a commit to sign";

    // A device state written before this provider: the basic credential's key pair.
    let store = MemoryStorage::default();
    let (private, public) = SuiteCrypto.signature_key_gen(scheme).unwrap();
    let basic = SignatureKeyPair::from_raw(scheme, private, public.clone());
    basic.store(&store).unwrap();
    let leaf = LeafSigner::read(&store, &public).expect("the stored key pair reads");
    assert_eq!(leaf.public(), &public[..]);
    assert_eq!(leaf.sign(data).unwrap(), basic.sign(data).unwrap());

    // And the other way: what this provider stores, the basic credential reads.
    let store = MemoryStorage::default();
    let leaf = LeafSigner::generate().unwrap();
    leaf.store(&store).unwrap();
    let basic = SignatureKeyPair::read(&store, leaf.public(), scheme).expect("the leaf key reads");
    assert_eq!(basic.sign(data).unwrap(), leaf.sign(data).unwrap());
    assert!(LeafSigner::read(&store, &[7u8; 32]).is_none());
}

#[test]
fn hpke_derives_the_same_keys_and_opens_each_others_ciphertexts_and_exports() {
    let (ours, theirs) = (SuiteCrypto, RustCrypto::default());
    let (info, aad) = (b"MLS 1.0 Welcome".as_slice(), b"group context".as_slice());
    for ikm_len in [32, 33, 64] {
        let ikm = bytes(ikm_len, 11);
        let pair = ours.derive_hpke_keypair(config(), &ikm).unwrap();
        let same = theirs.derive_hpke_keypair(config(), &ikm).unwrap();
        assert_eq!(pair.public, same.public);
        assert_eq!(&pair.private[..], &same.private[..]);

        for len in [0, 1, 100, 5000] {
            let msg = bytes(len, 13);
            let sealed = ours.hpke_seal(config(), &pair.public, info, aad, &msg).unwrap();
            assert_eq!(theirs.hpke_open(config(), &sealed, &pair.private, info, aad).unwrap(), msg);
            let sealed = theirs.hpke_seal(config(), &pair.public, info, aad, &msg).unwrap();
            assert_eq!(ours.hpke_open(config(), &sealed, &pair.private, info, aad).unwrap(), msg);

            let mut bad = sealed.clone();
            let mut c = bad.ciphertext.as_slice().to_vec();
            c[0] ^= 1;
            bad.ciphertext = c.into();
            assert_eq!(
                ours.hpke_open(config(), &bad, &pair.private, info, aad).unwrap_err(),
                CryptoError::HpkeDecryptionError
            );
            assert_eq!(
                ours.hpke_open(config(), &sealed, &pair.private, b"other info", aad).unwrap_err(),
                CryptoError::HpkeDecryptionError
            );
        }

        let (enc, secret) =
            ours.hpke_setup_sender_and_export(config(), &pair.public, info, b"ctx", 32).unwrap();
        let received =
            theirs.hpke_setup_receiver_and_export(config(), &enc, &pair.private, info, b"ctx", 32).unwrap();
        assert_eq!(&secret[..], &received[..]);
        let (enc, secret) =
            theirs.hpke_setup_sender_and_export(config(), &pair.public, info, b"ctx", 48).unwrap();
        let received =
            ours.hpke_setup_receiver_and_export(config(), &enc, &pair.private, info, b"ctx", 48).unwrap();
        assert_eq!(&secret[..], &received[..]);
        assert_eq!(secret.len(), 48);
    }

    // Malformed keys and encapsulations are errors, not panics.
    let pair = ours.derive_hpke_keypair(config(), &bytes(32, 1)).unwrap();
    assert_eq!(
        ours.hpke_seal(config(), &pair.public[..31], b"", b"", b"m").unwrap_err(),
        CryptoError::InvalidPublicKey
    );
    let short = HpkeCiphertext { kem_output: vec![1u8; 5].into(), ciphertext: vec![0u8; 40].into() };
    assert_eq!(
        ours.hpke_open(config(), &short, &pair.private, b"", b"").unwrap_err(),
        CryptoError::HpkeDecryptionError
    );
    assert!(ours.hpke_setup_receiver_and_export(config(), &[0u8; 3], &pair.private, b"", b"", 32).is_err());
}

#[test]
fn everything_outside_the_ciphersuite_is_refused() {
    let ours = SuiteCrypto;
    assert_eq!(ours.supported_ciphersuites(), vec![CIPHERSUITE]);
    ours.supports(CIPHERSUITE).unwrap();
    for other in [
        Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519,
        Ciphersuite::MLS_128_DHKEMP256_AES128GCM_SHA256_P256,
        Ciphersuite::MLS_256_DHKEMX448_CHACHA20POLY1305_SHA512_Ed448,
    ] {
        assert_eq!(ours.supports(other).unwrap_err(), CryptoError::UnsupportedCiphersuite);
    }
    assert_eq!(ours.hash(HashType::Sha2_512, b"x").unwrap_err(), CryptoError::UnsupportedHashAlgorithm);
    assert_eq!(
        ours.hkdf_extract(HashType::Sha2_384, b"s", b"k").unwrap_err(),
        CryptoError::UnsupportedHashAlgorithm
    );
    assert_eq!(
        ours.aead_encrypt(AeadType::Aes128Gcm, &[0; 16], b"m", &[0; 12], b"").unwrap_err(),
        CryptoError::UnsupportedAeadAlgorithm
    );
    assert_eq!(
        ours.signature_key_gen(SignatureScheme::ECDSA_SECP256R1_SHA256).unwrap_err(),
        CryptoError::UnsupportedSignatureScheme
    );
    assert_eq!(
        ours.verify_signature(SignatureScheme::ECDSA_SECP384R1_SHA384, b"", b"", b"").unwrap_err(),
        CryptoError::UnsupportedSignatureScheme
    );
    let p256 = HpkeConfig(HpkeKemType::DhKemP256, HpkeKdfType::HkdfSha256, HpkeAeadType::AesGcm128);
    assert_eq!(ours.derive_hpke_keypair(p256, &[0; 32]).unwrap_err(), CryptoError::UnsupportedCiphersuite);
    let aes = HpkeConfig(HpkeKemType::DhKem25519, HpkeKdfType::HkdfSha256, HpkeAeadType::AesGcm128);
    assert_eq!(
        ours.hpke_seal(aes, &[9; 32], b"", b"", b"").unwrap_err(),
        CryptoError::UnsupportedCiphersuite
    );
}

#[test]
fn randomness_fills_what_is_asked() {
    let ours = SuiteCrypto;
    let a: [u8; 32] = ours.random_array().unwrap();
    let b: [u8; 32] = ours.random_array().unwrap();
    assert_ne!(a, b);
    assert_eq!(ours.random_vec(100).unwrap().len(), 100);
    assert!(ours.random_vec(0).unwrap().is_empty());
}
