//! The crate in the browser: headless Chromium through wasm-bindgen-test.
//! Run with `cargo test -p sealroom-crypto --target wasm32-unknown-unknown`.
#![cfg(target_arch = "wasm32")]
#![allow(clippy::unwrap_used)] // test code: a failure should panic with its location

use sealroom_crypto::*;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

/// The whole life of two accounts, as the web client does it: register (keys made here with
/// the browser's RNG, production Argon2id), seal the backup, "log in elsewhere" by unsealing
/// it, then exchange messages both ways.
#[wasm_bindgen_test]
fn register_seal_unseal_encrypt_decrypt() {
    let salt = generate_salt().unwrap();
    assert_ne!(salt, [0u8; 16], "browser RNG works");
    let keys = PasswordKeys::derive("correct horse battery staple", &salt, KdfParams::PRODUCTION).unwrap();
    let alice = IdentitySecret::generate().unwrap();
    let alice_pub = alice.public_key();
    let sealed = seal_backup(&keys.backup_key, "alice", &BackupContents::new(alice)).unwrap();

    // Another browser: derive again from the password, unseal.
    let again = PasswordKeys::derive("correct horse battery staple", &salt, KdfParams::PRODUCTION).unwrap();
    assert_eq!(again.auth_key.as_bytes(), keys.auth_key.as_bytes());
    let restored = unseal_backup(&again.backup_key, "alice", &sealed).unwrap().identity;
    assert_eq!(restored.public_key(), alice_pub);

    let wrong = PasswordKeys::from_master(&[0; 32]);
    assert_eq!(unseal_backup(&wrong.backup_key, "alice", &sealed).unwrap_err(), Error::Decryption);

    let bob = IdentitySecret::generate().unwrap();
    let bob_pub = bob.public_key();
    let k_alice = restored.pair_key(&bob_pub).unwrap();
    let k_bob = bob.pair_key(&alice_pub).unwrap();
    let h1 = MessageHeader::new(js_sys::Date::now() as u64).unwrap();
    let e1 = seal_message(&k_alice, &alice_pub, &bob_pub, &h1, &Payload::Text("hi bob 👋".into())).unwrap();
    assert_eq!(
        open_message(&k_bob, &alice_pub, &bob_pub, &e1).unwrap().payload,
        Payload::Text("hi bob 👋".into())
    );
    let h2 = MessageHeader::new(js_sys::Date::now() as u64).unwrap();
    let e2 = seal_message(&k_bob, &bob_pub, &alice_pub, &h2, &Payload::Text("hi alice".into())).unwrap();
    assert_eq!(
        open_message(&k_alice, &bob_pub, &alice_pub, &e2).unwrap().payload,
        Payload::Text("hi alice".into())
    );
    let mut bad = e2.clone();
    bad[60] ^= 1;
    assert_eq!(open_message(&k_alice, &bob_pub, &alice_pub, &bad).unwrap_err(), Error::Decryption);

    let sn_a = SafetyNumber::compute("alice", &alice_pub, "bob", &bob_pub).unwrap();
    let sn_b = SafetyNumber::compute("bob", &bob_pub, "alice", &alice_pub).unwrap();
    assert_eq!(sn_a, sn_b);
}

/// The committed vectors hold in the browser too (the wasm build is the same code, but a
/// 32-bit `usize` and another RNG backend are reasons to check).
#[wasm_bindgen_test]
fn vectors_hold_in_the_browser() {
    let v: &str = include_str!("vectors/v1.json");
    // The vectors' production-parameter Argon2id entry, checked without a JSON parser: the
    // password, salt and output are fixed in the file.
    assert!(v.contains("\"out_hex\": \"0d1a3c6523c8f06e4e0af9c515aa5b5448cfebd6838f2d52c3d8b6ef8ddc3c2e\""));
    let salt: Vec<u8> = (0u8..16).collect();
    let out = argon2id(b"correct horse battery staple", &salt, KdfParams::PRODUCTION).unwrap();
    assert_eq!(
        out.iter().map(|b| format!("{b:02x}")).collect::<String>(),
        "0d1a3c6523c8f06e4e0af9c515aa5b5448cfebd6838f2d52c3d8b6ef8ddc3c2e"
    );
}

#[wasm_bindgen_test]
fn attachment_stream_in_the_browser() {
    let key = FileKey::generate().unwrap();
    let data: Vec<u8> = (0..(3 * CHUNK_SIZE + 123)).map(|i| (i % 253) as u8).collect();
    let (blob, hash) = encrypt_attachment(&key, &data).unwrap();
    assert_eq!(decrypt_attachment(&key, &blob, Some(&hash)).unwrap(), data);
    assert!(decrypt_attachment(&key, &blob[..blob.len() - ENCRYPTED_CHUNK_SIZE + 1], None).is_err());
}

#[wasm_bindgen_test]
fn device_certificates_in_the_browser() {
    // The committed vector: RFC 8032's first key signs alice's device certificate.
    let user = SigningSecret::from_seed([
        0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec, 0x2c, 0xc4, 0x44,
        0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19, 0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae, 0x7f, 0x60,
    ]);
    let leaf = SigningSecret::from_seed([0x42; 32]).public_key();
    let cert =
        DeviceCertificate::issue(&user, "alice", [0x11; 16], *leaf.as_bytes(), 1_700_000_000_000).unwrap();
    let hex: String = cert.encode().iter().map(|b| format!("{b:02x}")).collect();
    assert!(include_str!("vectors/v1.json").contains(&format!("\"certificate_hex\": \"{hex}\"")));
    let fresh = SigningSecret::generate().unwrap();
    assert!(cert.verify(&fresh.public_key(), "alice", leaf.as_bytes()).is_err());
    cert.verify(&user.public_key(), "alice", leaf.as_bytes()).unwrap();
}
