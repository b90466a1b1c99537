//! Known-answer tests for the primitives exactly as this crate calls them.

use chacha20poly1305::aead::{Aead, KeyInit, Payload as AeadPayload};
use chacha20poly1305::{ChaCha20Poly1305, XChaCha20Poly1305};

use crate::kdf::{xopen, xseal};
use crate::*;

fn h(s: &str) -> Vec<u8> {
    hex::decode(s.replace([' ', '\n'], "")).expect("test hex")
}
fn h32(s: &str) -> [u8; 32] {
    h(s).try_into().expect("32 bytes")
}

/// RFC 7748, section 6.1: Alice and Bob.
const RFC7748_A_SECRET: &str = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a";
const RFC7748_A_PUBLIC: &str = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a";
const RFC7748_B_SECRET: &str = "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb";
const RFC7748_B_PUBLIC: &str = "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f";
const RFC7748_SHARED: &str = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742";

#[test]
fn x25519_rfc7748_section_6_1() {
    let a = IdentitySecret::from_bytes(h32(RFC7748_A_SECRET));
    let b = IdentitySecret::from_bytes(h32(RFC7748_B_SECRET));
    assert_eq!(a.public_key().as_bytes(), &h32(RFC7748_A_PUBLIC));
    assert_eq!(b.public_key().as_bytes(), &h32(RFC7748_B_PUBLIC));
    assert_eq!(a.diffie_hellman(&b.public_key()).unwrap().as_bytes(), &h32(RFC7748_SHARED));
    assert_eq!(b.diffie_hellman(&a.public_key()).unwrap().as_bytes(), &h32(RFC7748_SHARED));
}

/// RFC 7748, section 5.2: the first single scalar multiplication vector.
#[test]
fn x25519_rfc7748_section_5_2() {
    let k =
        IdentitySecret::from_bytes(h32("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4"));
    let u = PublicKey::from(h32("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c"));
    assert_eq!(
        k.diffie_hellman(&u).unwrap().as_bytes(),
        &h32("c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552")
    );
}

#[test]
fn x25519_low_order_points_are_refused() {
    let a = IdentitySecret::from_bytes(h32(RFC7748_A_SECRET));
    let mut one = [0u8; 32];
    one[0] = 1;
    // 0 and 1 are low-order; so is this point of order 8 (from the curve25519 small-order list).
    let order8 = h32("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800");
    for point in [[0u8; 32], one, order8] {
        assert_eq!(a.diffie_hellman(&PublicKey::from(point)).unwrap_err(), Error::NonContributory);
        assert_eq!(a.pair_key(&PublicKey::from(point)).unwrap_err(), Error::NonContributory);
    }
}

#[test]
fn public_key_decoding_checks_length_and_base64() {
    let pk = PublicKey::from(h32(RFC7748_A_PUBLIC));
    assert_eq!(PublicKey::from_base64(&pk.to_base64()).unwrap(), pk);
    assert!(matches!(
        PublicKey::from_slice(&[0u8; 31]),
        Err(Error::InvalidLength { expected: 32, actual: 31, .. })
    ));
    assert!(matches!(PublicKey::from_slice(&[0u8; 33]), Err(Error::InvalidLength { .. })));
    assert_eq!(
        PublicKey::from_base64("not base64!!").unwrap_err(),
        Error::InvalidBase64("X25519 public key")
    );
    // Valid base64 of 31 bytes.
    assert!(matches!(PublicKey::from_base64(&"A".repeat(40)), Err(Error::InvalidLength { .. })));
    assert!(matches!(PublicKey::from_base64(&"A".repeat(10_000)), Err(Error::InvalidLength { .. })));
}

/// RFC 5869, appendix A.1 (test case 1) and A.3 (test case 3: no salt, no info). `hkdf32`
/// returns the first 32 bytes of the 42-byte OKM.
#[test]
fn hkdf_sha256_rfc5869() {
    let ikm = [0x0bu8; 22];
    let okm = hkdf32(&ikm, &h("000102030405060708090a0b0c"), &h("f0f1f2f3f4f5f6f7f8f9"));
    assert_eq!(&okm[..], &h("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf")[..]);
    let okm = hkdf32(&ikm, &[], &[]);
    assert_eq!(&okm[..], &h("8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d")[..]);
}

/// RFC 9106, section 5.3: Argon2id with secret and associated data.
#[test]
fn argon2id_rfc9106_section_5_3() {
    let tag = argon2id_keyed(
        &[0x01; 32],
        &[0x02; 16],
        &[0x03; 8],
        &[0x04; 12],
        KdfParams { m_kib: 32, t: 3, p: 4 },
    )
    .unwrap();
    assert_eq!(&tag[..], &h("0d640df58d78766c08c037a34a8b53c9d01ef0452d75b65eb52520e96b01e659")[..]);
}

#[test]
fn kdf_params_refuse_downgrades_and_absurd_costs() {
    assert!(KdfParams::PRODUCTION.validate().is_ok());
    for weak in [
        KdfParams { m_kib: 65535, t: 3, p: 1 },
        KdfParams { m_kib: 65536, t: 2, p: 1 },
        KdfParams { m_kib: 65536, t: 3, p: 0 },
        KdfParams { m_kib: u32::MAX, t: 3, p: 1 },
        KdfParams { m_kib: 65536, t: 1000, p: 1 },
    ] {
        assert!(matches!(weak.validate(), Err(Error::KdfParams(_))), "{weak:?}");
        assert!(PasswordKeys::derive("pw", &[0u8; 16], weak).is_err());
    }
    assert!(matches!(
        PasswordKeys::derive("pw", &[0u8; 15], KdfParams::PRODUCTION),
        Err(Error::InvalidLength { expected: 16, .. })
    ));
}

const SUNSCREEN: &[u8] = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";

/// draft-irtf-cfrg-xchacha-03, appendix A.3.1, through the crate's own AEAD helpers.
#[test]
fn xchacha20poly1305_draft_a_3_1() {
    let key = h32("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f");
    let nonce: [u8; 24] = h("404142434445464748494a4b4c4d4e4f5051525354555657").try_into().unwrap();
    let aad = h("50515253c0c1c2c3c4c5c6c7");
    let expected =
        h("bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb731c7f1b0b4aa6440bf3a82f4eda7e39
         ae64c6708c54c216cb96b72e1213b4522f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9
         21f9664c97637da9768812f615c68b13b52e
         c0875924c1c7987947deafd8780acf49");
    assert_eq!(xseal(&key, &nonce, &aad, SUNSCREEN).unwrap(), expected);
    assert_eq!(xopen(&key, &nonce, &aad, &expected).unwrap(), SUNSCREEN);
    // Tamper twin: every single flipped byte of ciphertext or tag fails.
    for i in 0..expected.len() {
        let mut bad = expected.clone();
        bad[i] ^= 0x01;
        assert_eq!(xopen(&key, &nonce, &aad, &bad).unwrap_err(), Error::Decryption);
    }
    let mut bad_aad = aad.clone();
    bad_aad[0] ^= 1;
    assert_eq!(xopen(&key, &nonce, &bad_aad, &expected).unwrap_err(), Error::Decryption);
    // And the upstream crate agrees with our helper.
    let direct = XChaCha20Poly1305::new((&key).into())
        .encrypt((&nonce).into(), AeadPayload { msg: SUNSCREEN, aad: &aad })
        .unwrap();
    assert_eq!(direct, expected);
}

/// RFC 8439, section 2.8.2: ChaCha20-Poly1305, the cipher of attachment chunks.
#[test]
fn chacha20poly1305_rfc8439_2_8_2() {
    let key = h32("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f");
    let nonce = h("070000004041424344454647");
    let aad = h("50515253c0c1c2c3c4c5c6c7");
    let expected =
        h("d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b
         1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc
         3ff4def08e4b7a9de576d26586cec64b6116
         1ae10b594f09e26a7e902ecbd0600691");
    let cipher = crate::kdf::chacha_cipher(&key);
    let ct = cipher.encrypt(nonce.as_slice().into(), AeadPayload { msg: SUNSCREEN, aad: &aad }).unwrap();
    assert_eq!(ct, expected);
    let mut bad = expected.clone();
    bad[5] ^= 0x80;
    assert!(ChaCha20Poly1305::new((&key).into())
        .decrypt(nonce.as_slice().into(), AeadPayload { msg: &bad, aad: &aad })
        .is_err());
}
