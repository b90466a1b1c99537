//! `tests/vectors/v1.json`: generated from fixed inputs through the production code paths, and
//! checked here. The check fails on any difference, so a format change is a visible change of
//! the committed file. Regenerate with
//! `SEALROOM_WRITE_VECTORS=1 cargo test -p sealroom-crypto --lib vectors`.
//!
//! Each AEAD layer is also recomputed with the upstream `chacha20poly1305` crate directly and
//! each derivation from its inputs, so the file is self-consistent for an outside implementer.

use chacha20poly1305::aead::{Aead, KeyInit, Payload as AeadPayload};
use chacha20poly1305::{ChaCha20Poly1305, XChaCha20Poly1305};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::*;

const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/v1.json");

fn hx(b: impl AsRef<[u8]>) -> String {
    hex::encode(b)
}

fn unhex(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().expect("hex string")).expect("valid hex")
}

fn arr32(v: &Value) -> [u8; 32] {
    unhex(v).try_into().expect("32 bytes")
}

/// RFC 7748's Alice and Bob: well-known keys, so the X25519 step can be checked anywhere.
const A_SECRET: &str = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a";
const B_SECRET: &str = "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb";
const PASSWORD: &str = "correct horse battery staple";
/// RFC 8032 §7.1's first two Ed25519 secret keys (their public keys are in the RFC).
const ED_A_SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
const ED_B_SEED: &str = "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb";

fn argon2_inputs() -> Vec<(&'static str, Vec<u8>, KdfParams)> {
    vec![
        (PASSWORD, (0u8..16).collect(), KdfParams::PRODUCTION),
        ("pässwörd ✓", vec![0x5a; 16], KdfParams { m_kib: 256, t: 2, p: 1 }),
        ("", vec![0xa5; 16], KdfParams { m_kib: 64, t: 1, p: 2 }),
    ]
}

fn file_ref() -> FileRef {
    FileRef {
        blob_id: "01JD8Z6Q4R2M7".into(),
        file_key: FileKey::from_bytes(core::array::from_fn(|i| 0xf0 ^ i as u8)),
        ciphertext_sha256: core::array::from_fn(|i| i as u8),
        size: 132_072,
        name: "Urlaubsfoto – Strand.jpg".into(),
        mime: "image/jpeg".into(),
    }
}

/// (description, alice → bob?, payload, client_msg_id, sent_at_ms, nonce)
type MessageInput = (&'static str, bool, Payload, [u8; 16], u64, [u8; 24]);

fn message_inputs() -> Vec<MessageInput> {
    vec![
        (
            "ascii text, alice to bob",
            true,
            Payload::Text("hello, bob".into()),
            [0x11; 16],
            1_732_000_000_000,
            [0x01; 24],
        ),
        (
            "non-ASCII text, bob to alice",
            false,
            Payload::Text("Grüße aus Köln 👋 — привет, 世界".into()),
            core::array::from_fn(|i| i as u8),
            1_732_000_123_456,
            core::array::from_fn(|i| 0x80 + i as u8),
        ),
        (
            "file reference, alice to bob",
            true,
            Payload::File(file_ref()),
            [0xfe; 16],
            1_732_000_999_999,
            [0x33; 24],
        ),
        (
            "upgrade introduction (version 2), alice to bob: her Ed25519 key and the MLS group",
            true,
            Payload::Upgrade {
                signing_key: SigningSecret::from_seed(arr32(&json!(ED_A_SEED))).public_key(),
                group_id: [0x5a; 16],
            },
            [0x03; 16],
            1_732_001_000_000,
            [0x55; 24],
        ),
        (
            "text of 300 bytes: the 512-byte bucket",
            true,
            Payload::Text("x".repeat(300)),
            [0; 16],
            0,
            [0x44; 24],
        ),
    ]
}

fn attachment_plaintext() -> Vec<u8> {
    (0..2 * CHUNK_SIZE + 1000).map(|i| (i % 251) as u8).collect()
}

/// Builds the whole vector file from the fixed inputs.
fn generate() -> Value {
    let a = IdentitySecret::from_bytes(hex::decode(A_SECRET).unwrap().try_into().unwrap());
    let b = IdentitySecret::from_bytes(hex::decode(B_SECRET).unwrap().try_into().unwrap());
    let (ap, bp) = (a.public_key(), b.public_key());
    let shared = a.diffie_hellman(&bp).unwrap();
    let pair = a.pair_key(&bp).unwrap();

    let argon: Vec<Value> = argon2_inputs()
        .into_iter()
        .map(|(pw, salt, p)| {
            let out = argon2id(pw.as_bytes(), &salt, p).unwrap();
            json!({"password_hex": hx(pw), "salt_hex": hx(&salt), "m_kib": p.m_kib, "t": p.t, "p": p.p,
                   "version": 19, "out_len": 32, "out_hex": hx(*out)})
        })
        .collect();

    let (pw, salt, params) = argon2_inputs().remove(0);
    let master = argon2id(pw.as_bytes(), &salt, params).unwrap();
    let keys = PasswordKeys::derive(pw, &salt, params).unwrap();
    let info = pair_info(&ap, &bp);
    let hkdf = vec![
        json!({"purpose": "auth", "ikm_hex": hx(*master), "salt_hex": "", "info_hex": hx(INFO_AUTH), "len": 32,
               "okm_hex": hx(keys.auth_key.as_bytes())}),
        json!({"purpose": "backup", "ikm_hex": hx(*master), "salt_hex": "", "info_hex": hx(INFO_BACKUP), "len": 32,
               "okm_hex": hx(keys.backup_key.expose_bytes())}),
        json!({"purpose": "pair", "ikm_hex": hx(shared.as_bytes()), "salt_hex": hx(SALT_PAIR), "info_hex": hx(&info),
               "len": 32, "okm_hex": hx(pair.expose_bytes())}),
    ];

    let x25519 =
        vec![json!({"a_secret_hex": A_SECRET, "a_public_hex": hx(ap.as_bytes()), "b_secret_hex": B_SECRET,
                            "b_public_hex": hx(bp.as_bytes()), "shared_hex": hx(shared.as_bytes())})];
    let pair_key = vec![json!({"a_public_hex": hx(ap.as_bytes()), "b_public_hex": hx(bp.as_bytes()),
                              "shared_hex": hx(shared.as_bytes()), "salt_hex": hx(SALT_PAIR), "info_hex": hx(&info),
                              "key_hex": hx(pair.expose_bytes())})];

    let messages: Vec<Value> = message_inputs()
        .into_iter()
        .map(|(desc, a_to_b, payload, id, at, nonce)| {
            let (s, r) = if a_to_b { (&ap, &bp) } else { (&bp, &ap) };
            let header = MessageHeader { client_msg_id: id, sent_at_ms: at };
            let plaintext = payload.encode().unwrap();
            let padded = pad(&plaintext).unwrap();
            let aad = message_aad(s, r, &header);
            let env = seal_message_with_nonce(&pair, s, r, &header, &payload, &nonce).unwrap();
            json!({"description": desc, "pair_key_hex": hx(pair.expose_bytes()), "sender_public_hex": hx(s.as_bytes()),
                   "recipient_public_hex": hx(r.as_bytes()), "client_msg_id_hex": hx(id), "sent_at_ms": at,
                   "nonce_hex": hx(nonce), "aad_hex": hx(&aad), "plaintext_hex": hx(&plaintext),
                   "padded_hex": hx(&padded), "ciphertext_hex": hx(&env[ENVELOPE_HEADER_LEN..]),
                   "envelope_hex": hx(&env),
                   "upgrade": match &payload {
                       Payload::Upgrade { signing_key, group_id } => Some(json!({
                           "signing_seed_hex": ED_A_SEED, "signing_public_hex": hx(signing_key.as_bytes()),
                           "group_id_hex": hx(group_id)})),
                       _ => None,
                   }})
        })
        .collect();

    let mut contents = BackupContents::new(a.clone());
    contents
        .pins
        .insert("bob".into(), Pin { public_key: bp, signing_key: None, verified: true, other_flags: 0 });
    contents.settings = Some(r#"{"theme":"dark"}"#.into());
    let nonce = [0x5c; 24];
    let plaintext = contents.encode().unwrap();
    // Format 1, as clients before generations wrote it: still read, as generation 0.
    let aad_v1 = crate::backup::backup_aad_v1("alice").unwrap();
    let ct_v1 = crate::kdf::xseal(keys.backup_key.expose_bytes(), &nonce, &aad_v1, &plaintext).unwrap();
    let sealed_v1 = [&[crate::BACKUP_VERSION_1][..], &nonce, &ct_v1].concat();
    // Format 2: the generation in the header and the AAD.
    contents.generation = 7;
    let sealed = seal_backup_with_nonce(&keys.backup_key, "alice", &contents, &nonce).unwrap();
    // Version 2 contents: the signing seed and archive key after the identity, bob pinned with
    // his Ed25519 key too (a 0x06 record).
    let mut contents_v2 = BackupContents::new(a.clone());
    contents_v2.signing = Some(SigningSecret::from_seed(arr32(&json!(ED_A_SEED))));
    contents_v2.archive_key = Some(ArchiveKey::from_bytes([0x5e; 32]));
    let bob_signing = SigningSecret::from_seed(arr32(&json!(ED_B_SEED))).public_key();
    contents_v2.pins.insert(
        "bob".into(),
        Pin { public_key: bp, signing_key: Some(bob_signing), verified: true, other_flags: 0 },
    );
    contents_v2.generation = 8;
    let plaintext_v2 = contents_v2.encode().unwrap();
    let sealed_v2 = seal_backup_with_nonce(&keys.backup_key, "alice", &contents_v2, &nonce).unwrap();
    // The history archive turned off (strict forward secrecy): an empty 0x07 record.
    contents_v2.archive_off = true;
    contents_v2.generation = 9;
    let plaintext_off = contents_v2.encode().unwrap();
    let sealed_off = seal_backup_with_nonce(&keys.backup_key, "alice", &contents_v2, &nonce).unwrap();
    let key_backup = vec![
        json!({"format": 2, "generation": 9, "username": "alice", "backup_key_hex": hx(keys.backup_key.expose_bytes()),
            "nonce_hex": hx(nonce), "aad_hex": hx(backup_aad("alice", 9).unwrap()),
            "plaintext_hex": hx(&plaintext_off[..]), "ciphertext_hex": hx(&sealed_off[33..]),
            "sealed_hex": hx(&sealed_off), "contents": "version 2 records, history archive off"}),
        json!({"format": 2, "generation": 8, "username": "alice", "backup_key_hex": hx(keys.backup_key.expose_bytes()),
            "nonce_hex": hx(nonce), "aad_hex": hx(backup_aad("alice", 8).unwrap()),
            "plaintext_hex": hx(&plaintext_v2[..]), "ciphertext_hex": hx(&sealed_v2[33..]),
            "sealed_hex": hx(&sealed_v2), "contents": "version 2 records"}),
        json!({"format": 1, "generation": 0, "username": "alice", "backup_key_hex": hx(keys.backup_key.expose_bytes()),
            "nonce_hex": hx(nonce), "aad_hex": hx(&aad_v1),
            "plaintext_hex": hx(&plaintext[..]), "ciphertext_hex": hx(&ct_v1),
            "sealed_hex": hx(&sealed_v1)}),
        json!({"format": 2, "generation": 7, "username": "alice", "backup_key_hex": hx(keys.backup_key.expose_bytes()),
            "nonce_hex": hx(nonce), "aad_hex": hx(backup_aad("alice", 7).unwrap()),
            "plaintext_hex": hx(&plaintext[..]), "ciphertext_hex": hx(&sealed[33..]),
            "sealed_hex": hx(&sealed)}),
    ];

    let attachment: Vec<Value> = [("three chunks, the last short", attachment_plaintext(), [0x77u8; 32]),
                                  ("empty file", Vec::new(), [0x78u8; 32])]
        .into_iter()
        .map(|(desc, data, k)| {
            let key = FileKey::from_bytes(k);
            let (blob, hash) = encrypt_attachment(&key, &data).unwrap();
            let mut chunks = Vec::new();
            let mut rest = &blob[..];
            let mut i = 0u64;
            while !rest.is_empty() {
                let n = rest.len().min(ENCRYPTED_CHUNK_SIZE);
                let last = n == rest.len();
                chunks.push(json!({"nonce_hex": hx(chunk_nonce(i, last)), "aad_hex": hx(AAD_ATTACHMENT),
                                   "ciphertext_hex": hx(&rest[..n])}));
                rest = &rest[n..];
                i += 1;
            }
            json!({"description": desc, "file_key_hex": hx(k), "chunk_size": CHUNK_SIZE, "plaintext_hex": hx(&data),
                   "chunks": chunks, "ciphertext_sha256_hex": hx(hash)})
        })
        .collect();

    let sn = SafetyNumber::compute("alice", &ap, "bob", &bp).unwrap();
    let safety = vec![json!({"a_username": "alice", "a_public_hex": hx(ap.as_bytes()), "b_username": "bob",
                            "b_public_hex": hx(bp.as_bytes()), "number": sn.digits(), "display": sn.to_string()})];

    // Version 2 formats (docs/CRYPTO.md, "Version 2"): the same users with fixed Ed25519 seeds
    // (RFC 8032 §7.1 test 1 and test 2), a device certificate and the version 2 safety number.
    let (a_seed, b_seed) = (arr32(&json!(ED_A_SEED)), arr32(&json!(ED_B_SEED)));
    let (a_sign, b_sign) = (SigningSecret::from_seed(a_seed), SigningSecret::from_seed(b_seed));
    let leaf = SigningSecret::from_seed([0x42; 32]).public_key();
    let device_certificate: Vec<Value> =
        [("alice", [0x11u8; 16], 1_700_000_000_000u64), ("ünïcødé", [0xfe; 16], 0)]
            .into_iter()
            .map(|(name, device_id, created_ms)| {
                let cert =
                    DeviceCertificate::issue(&a_sign, name, device_id, *leaf.as_bytes(), created_ms).unwrap();
                json!({"user_seed_hex": hx(a_seed), "user_public_hex": hx(a_sign.public_key().as_bytes()),
                   "username": name, "device_id_hex": hx(device_id), "leaf_key_hex": hx(leaf.as_bytes()),
                   "created_ms": created_ms, "certificate_hex": hx(cert.encode())})
            })
            .collect();
    let sn2 =
        SafetyNumber::compute_v2("alice", (&ap, &a_sign.public_key()), "bob", (&bp, &b_sign.public_key()))
            .unwrap();
    let safety_v2 = vec![json!({"a_username": "alice", "a_public_hex": hx(ap.as_bytes()),
                               "a_signing_public_hex": hx(a_sign.public_key().as_bytes()), "b_username": "bob",
                               "b_public_hex": hx(bp.as_bytes()), "b_signing_public_hex": hx(b_sign.public_key().as_bytes()),
                               "number": sn2.digits()})];

    let archive_key = [0x5eu8; 32];
    let archive: Vec<Value> = [
        (
            "alice",
            7u64,
            42u64,
            "bob",
            1_700_000_000_000u64,
            Payload::Text("from the archive ✓".into()),
            [0x24u8; 24],
        ),
        ("bob", 7, 43, "bob", 1_700_000_000_500, Payload::Text(String::new()), [0x99; 24]),
        ("carol", 9, 1, "alice", 1_700_000_001_000, Payload::GroupName("Ünïcode team ✓".into()), [0x3c; 24]),
    ]
    .into_iter()
    .map(|(owner, conversation_id, log_sequence, sender, sent_ms, payload, nonce)| {
        let place = ArchivePlace {
            owner: owner.into(),
            conversation_id,
            log_sequence,
            sender: sender.into(),
            sent_ms,
        };
        let entry =
            seal_archive_entry_with_nonce(&ArchiveKey::from_bytes(archive_key), &place, &payload, &nonce)
                .unwrap();
        json!({"archive_key_hex": hx(archive_key), "owner": owner, "conversation_id": conversation_id,
               "log_sequence": log_sequence, "sender": sender, "sent_ms": sent_ms,
               "plaintext_hex": hx(payload.encode().unwrap()), "nonce_hex": hx(nonce),
               "aad_hex": hx(place.aad().unwrap()), "entry_hex": hx(entry),
               "group_name": match &payload { Payload::GroupName(n) => Some(n.clone()), _ => None }})
    })
    .collect();

    // A device's sealed state: the key from alice's signing seed and the device id.
    let device_state: Vec<Value> = [("alice", [0x11u8; 16], b"mls state \x00\x01".to_vec(), [0x5au8; 24])]
        .into_iter()
        .map(|(name, device_id, state, nonce)| {
            let key = DeviceStateKey::derive(&a_sign, &device_id);
            let sealed = seal_device_state_with_nonce(&key, name, &device_id, &state, &nonce).unwrap();
            json!({"user_seed_hex": hx(a_seed), "username": name, "device_id_hex": hx(device_id),
                   "state_key_hex": hx(key.expose_bytes()), "state_hex": hx(&state), "nonce_hex": hx(nonce),
                   "aad_hex": hx(device_state_aad(name, &device_id).unwrap()), "sealed_hex": hx(sealed)})
        })
        .collect();

    json!({
        "version": 1,
        "argon2id": argon, "hkdf_sha256": hkdf, "x25519": x25519, "pair_key": pair_key, "message": messages,
        "key_backup": key_backup, "attachment": attachment, "safety_number": safety,
        "device_certificate": device_certificate, "safety_number_v2": safety_v2, "archive_entry": archive,
        "device_state": device_state,
    })
}

fn load() -> Value {
    let text = std::fs::read_to_string(PATH).expect("tests/vectors/v1.json is committed");
    serde_json::from_str(&text).expect("v1.json parses")
}

#[test]
fn vector_file_is_what_the_code_produces() {
    let generated = generate();
    if std::env::var_os("SEALROOM_WRITE_VECTORS").is_some() {
        let text = serde_json::to_string_pretty(&generated).unwrap() + "\n";
        std::fs::write(PATH, text).unwrap();
    }
    let committed = load();
    for section in [
        "argon2id",
        "hkdf_sha256",
        "x25519",
        "pair_key",
        "message",
        "key_backup",
        "attachment",
        "safety_number",
        "device_certificate",
        "safety_number_v2",
        "archive_entry",
        "device_state",
    ] {
        let list = committed[section].as_array().unwrap_or_else(|| panic!("section {section}"));
        assert!(!list.is_empty(), "section {section} is empty");
        assert_eq!(committed[section], generated[section], "section {section} differs from the code");
    }
    assert_eq!(committed, generated);
}

/// Every vector recomputed from its own fields, decrypt direction included, with each AEAD
/// layer also done by the upstream crate: what an outside implementer would do.
#[test]
fn vectors_check_from_their_own_fields() {
    if std::env::var_os("SEALROOM_WRITE_VECTORS").is_some() {
        return; // the file is being rewritten by the other test of this run
    }
    let v = load();
    for e in v["argon2id"].as_array().unwrap() {
        let p = KdfParams {
            m_kib: e["m_kib"].as_u64().unwrap() as u32,
            t: e["t"].as_u64().unwrap() as u32,
            p: e["p"].as_u64().unwrap() as u32,
        };
        assert_eq!(
            hx(*argon2id(&unhex(&e["password_hex"]), &unhex(&e["salt_hex"]), p).unwrap()),
            e["out_hex"]
        );
    }
    assert!(v["argon2id"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["m_kib"] == 65536 && e["t"] == 3 && e["p"] == 1));
    for e in v["hkdf_sha256"].as_array().unwrap() {
        let okm = hkdf32(&unhex(&e["ikm_hex"]), &unhex(&e["salt_hex"]), &unhex(&e["info_hex"]));
        assert_eq!(hx(*okm), e["okm_hex"], "{}", e["purpose"]);
    }
    for e in v["x25519"].as_array().unwrap() {
        let a = IdentitySecret::from_bytes(arr32(&e["a_secret_hex"]));
        let b = IdentitySecret::from_bytes(arr32(&e["b_secret_hex"]));
        assert_eq!(hx(a.public_key().as_bytes()), e["a_public_hex"]);
        assert_eq!(hx(b.public_key().as_bytes()), e["b_public_hex"]);
        assert_eq!(hx(b.diffie_hellman(&a.public_key()).unwrap().as_bytes()), e["shared_hex"]);
    }
    for e in v["pair_key"].as_array().unwrap() {
        let (ap, bp) =
            (PublicKey::from(arr32(&e["a_public_hex"])), PublicKey::from(arr32(&e["b_public_hex"])));
        assert_eq!(hx(pair_info(&bp, &ap)), e["info_hex"]);
        assert_eq!(
            hx(*hkdf32(&unhex(&e["shared_hex"]), &unhex(&e["salt_hex"]), &unhex(&e["info_hex"]))),
            e["key_hex"]
        );
    }
    let messages = v["message"].as_array().unwrap();
    assert!(messages.len() >= 3);
    assert!(messages.iter().any(|m| unhex(&m["plaintext_hex"])[0] == 0x02), "a File payload");
    assert!(
        messages.iter().any(|m| !String::from_utf8_lossy(&unhex(&m["plaintext_hex"])).is_ascii()),
        "non-ASCII"
    );
    for m in messages {
        let key = arr32(&m["pair_key_hex"]);
        let nonce = unhex(&m["nonce_hex"]);
        let (aad, padded, env) = (unhex(&m["aad_hex"]), unhex(&m["padded_hex"]), unhex(&m["envelope_hex"]));
        let ct = XChaCha20Poly1305::new((&key).into())
            .encrypt(nonce.as_slice().into(), AeadPayload { msg: &padded, aad: &aad })
            .unwrap();
        assert_eq!(hx(&ct), m["ciphertext_hex"]);
        assert_eq!(&env[ENVELOPE_HEADER_LEN..], &ct[..]);
        assert_eq!(&env[25..49], &nonce[..]);
        let (s, r) = (
            PublicKey::from(arr32(&m["sender_public_hex"])),
            PublicKey::from(arr32(&m["recipient_public_hex"])),
        );
        let opened = open_message(&PairKey::from_bytes(key), &s, &r, &env).unwrap();
        assert_eq!(hx(opened.payload.encode().unwrap()), m["plaintext_hex"]);
        assert_eq!(hx(pad(&unhex(&m["plaintext_hex"])).unwrap()), m["padded_hex"]);
        assert_eq!(hx(message_aad(&s, &r, &opened.header)), m["aad_hex"]);
        let mut bad = env.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert_eq!(open_message(&PairKey::from_bytes(key), &s, &r, &bad).unwrap_err(), Error::Decryption);
    }
    for e in v["key_backup"].as_array().unwrap() {
        let key = arr32(&e["backup_key_hex"]);
        let ct = XChaCha20Poly1305::new((&key).into())
            .encrypt(
                unhex(&e["nonce_hex"]).as_slice().into(),
                AeadPayload { msg: &unhex(&e["plaintext_hex"]), aad: &unhex(&e["aad_hex"]) },
            )
            .unwrap();
        assert_eq!(hx(&ct), e["ciphertext_hex"]);
        let user = e["username"].as_str().unwrap();
        let c = unseal_backup(&BackupKey::from_bytes(key), user, &unhex(&e["sealed_hex"])).unwrap();
        assert_eq!(hx(&c.encode().unwrap()[..]), e["plaintext_hex"]);
        assert_eq!(Some(c.generation), e["generation"].as_u64());
        assert_eq!(sealed_generation(&unhex(&e["sealed_hex"])), e["generation"].as_u64());
        let mut bad = unhex(&e["sealed_hex"]);
        bad[30] ^= 1;
        assert_eq!(unseal_backup(&BackupKey::from_bytes(key), user, &bad).unwrap_err(), Error::Decryption);
    }
    let atts = v["attachment"].as_array().unwrap();
    assert!(atts.iter().any(|a| a["chunks"].as_array().unwrap().len() == 3));
    assert!(atts.iter().any(|a| a["plaintext_hex"] == ""));
    for a in atts {
        let key = arr32(&a["file_key_hex"]);
        let cipher = ChaCha20Poly1305::new((&key).into());
        let size = a["chunk_size"].as_u64().unwrap() as usize;
        let plain = unhex(&a["plaintext_hex"]);
        let mut pieces: Vec<&[u8]> = plain.chunks(size).collect();
        if pieces.is_empty() {
            pieces.push(&[]);
        }
        let mut blob = Vec::new();
        let chunks = a["chunks"].as_array().unwrap();
        assert_eq!(chunks.len(), pieces.len());
        for (c, piece) in chunks.iter().zip(pieces) {
            let ct = cipher
                .encrypt(
                    unhex(&c["nonce_hex"]).as_slice().into(),
                    AeadPayload { msg: piece, aad: &unhex(&c["aad_hex"]) },
                )
                .unwrap();
            assert_eq!(hx(&ct), c["ciphertext_hex"]);
            blob.extend_from_slice(&ct);
        }
        assert_eq!(hx(Sha256::digest(&blob)), a["ciphertext_sha256_hex"]);
        let hash = arr32(&a["ciphertext_sha256_hex"]);
        assert_eq!(decrypt_attachment(&FileKey::from_bytes(key), &blob, Some(&hash)).unwrap(), plain);
    }
    for e in v["safety_number"].as_array().unwrap() {
        let sn = SafetyNumber::compute(
            e["a_username"].as_str().unwrap(),
            &PublicKey::from(arr32(&e["a_public_hex"])),
            e["b_username"].as_str().unwrap(),
            &PublicKey::from(arr32(&e["b_public_hex"])),
        )
        .unwrap();
        assert_eq!(sn.digits(), e["number"]);
    }
    for e in v["device_certificate"].as_array().unwrap() {
        let user = SigningSecret::from_seed(arr32(&e["user_seed_hex"]));
        assert_eq!(hx(user.public_key().as_bytes()), e["user_public_hex"]);
        let cert = DeviceCertificate::decode(&unhex(&e["certificate_hex"])).unwrap();
        let name = e["username"].as_str().unwrap();
        cert.verify(&user.public_key(), name, &unhex(&e["leaf_key_hex"])).unwrap();
        assert_eq!(
            (cert.device_id.to_vec(), cert.created_ms),
            (unhex(&e["device_id_hex"]), e["created_ms"].as_u64().unwrap())
        );
        // The signature by the upstream crate, over the label and the body (Ed25519 is deterministic).
        use ed25519_dalek::Signer as _;
        let bytes = unhex(&e["certificate_hex"]);
        let body = &bytes[..bytes.len() - 64];
        let upstream = ed25519_dalek::SigningKey::from_bytes(&arr32(&e["user_seed_hex"]));
        assert_eq!(
            upstream.sign(&[DEVICE_CERT_LABEL, body].concat()).to_bytes()[..],
            bytes[bytes.len() - 64..]
        );
    }
    for e in v["archive_entry"].as_array().unwrap() {
        let place = ArchivePlace {
            owner: e["owner"].as_str().unwrap().into(),
            conversation_id: e["conversation_id"].as_u64().unwrap(),
            log_sequence: e["log_sequence"].as_u64().unwrap(),
            sender: e["sender"].as_str().unwrap().into(),
            sent_ms: e["sent_ms"].as_u64().unwrap(),
        };
        assert_eq!(hx(place.aad().unwrap()), e["aad_hex"]);
        let key = arr32(&e["archive_key_hex"]);
        let entry = unhex(&e["entry_hex"]);
        let opened = open_archive_entry(&ArchiveKey::from_bytes(key), &place, &entry).unwrap();
        assert_eq!(hx(opened.encode().unwrap()), e["plaintext_hex"]);
        // The AEAD layer by the upstream crate.
        let upstream = XChaCha20Poly1305::new((&key).into())
            .decrypt((&entry[1..25]).into(), AeadPayload { msg: &entry[25..], aad: &unhex(&e["aad_hex"]) })
            .unwrap();
        assert_eq!(hx(upstream), hx(crate::payload::pad(&unhex(&e["plaintext_hex"])).unwrap()));
    }
    for e in v["device_state"].as_array().unwrap() {
        let device_id: [u8; 16] = unhex(&e["device_id_hex"]).try_into().unwrap();
        let key = DeviceStateKey::derive(&SigningSecret::from_seed(arr32(&e["user_seed_hex"])), &device_id);
        assert_eq!(hx(key.expose_bytes()), e["state_key_hex"]);
        let name = e["username"].as_str().unwrap();
        assert_eq!(hx(device_state_aad(name, &device_id).unwrap()), e["aad_hex"]);
        let sealed = unhex(&e["sealed_hex"]);
        assert_eq!(hx(&open_device_state(&key, name, &device_id, &sealed).unwrap()[..]), e["state_hex"]);
        // HKDF and the AEAD by the upstream crates.
        let mut okm = [0u8; 32];
        hkdf::Hkdf::<sha2::Sha256>::new(None, &unhex(&e["user_seed_hex"]))
            .expand(&[&b"sealroom/v2/device-state"[..], &device_id].concat(), &mut okm)
            .unwrap();
        assert_eq!(hx(okm), e["state_key_hex"]);
        let upstream = XChaCha20Poly1305::new((&okm).into())
            .decrypt((&sealed[1..25]).into(), AeadPayload { msg: &sealed[25..], aad: &unhex(&e["aad_hex"]) })
            .unwrap();
        assert_eq!(hx(upstream), e["state_hex"]);
    }
    for e in v["safety_number_v2"].as_array().unwrap() {
        let key = |k: &str| SigningPublic::from_bytes(&unhex(&e[k])).unwrap();
        let sn = SafetyNumber::compute_v2(
            e["a_username"].as_str().unwrap(),
            (&PublicKey::from(arr32(&e["a_public_hex"])), &key("a_signing_public_hex")),
            e["b_username"].as_str().unwrap(),
            (&PublicKey::from(arr32(&e["b_public_hex"])), &key("b_signing_public_hex")),
        )
        .unwrap();
        assert_eq!(sn.digits(), e["number"]);
    }
}
