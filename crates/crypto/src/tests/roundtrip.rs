//! Round trips of every construction, each with its tamper twins.

use crate::*;

fn keypair(seed: u8) -> (IdentitySecret, PublicKey) {
    let s = IdentitySecret::from_bytes([seed; 32]);
    let p = s.public_key();
    (s, p)
}

fn file_ref() -> FileRef {
    FileRef {
        blob_id: "b_01HZX3".into(),
        file_key: FileKey::from_bytes([9; 32]),
        ciphertext_sha256: [7; 32],
        size: 123_456,
        name: "Résumé (final).pdf".into(),
        mime: "application/pdf".into(),
    }
}

#[test]
fn both_sides_derive_the_same_pair_key_and_others_do_not() {
    let (a, ap) = keypair(1);
    let (b, bp) = keypair(2);
    let (c, _) = keypair(3);
    assert_eq!(a.pair_key(&bp).unwrap(), b.pair_key(&ap).unwrap());
    assert_ne!(a.pair_key(&bp).unwrap(), c.pair_key(&ap).unwrap());
    assert_eq!(pair_info(&ap, &bp), pair_info(&bp, &ap));
}

#[test]
fn message_round_trip_and_every_tamper_fails() {
    let (a, ap) = keypair(1);
    let (b, bp) = keypair(2);
    let key = a.pair_key(&bp).unwrap();
    let header = MessageHeader { client_msg_id: [0x42; 16], sent_at_ms: 1_732_000_000_000 };
    for payload in [
        Payload::Text("Grüße 👋 — привет".into()),
        Payload::Text(String::new()),
        Payload::File(file_ref()),
        Payload::GroupName("Ünïcode team ✓".into()),
        Payload::Upgrade { signing_key: SigningSecret::generate().unwrap().public_key(), group_id: [7; 16] },
    ] {
        let env = seal_message(&key, &ap, &bp, &header, &payload).unwrap();
        let opened = open_message(&b.pair_key(&ap).unwrap(), &ap, &bp, &env).unwrap();
        assert_eq!(opened.payload, payload);
        assert_eq!(opened.header, header);
        assert_eq!(MessageHeader::parse(&env).unwrap(), header);

        // Wrong direction (a reflected message), wrong key, wrong recipient.
        assert_eq!(open_message(&key, &bp, &ap, &env).unwrap_err(), Error::Decryption);
        let (_, cp) = keypair(3);
        assert_eq!(open_message(&key, &ap, &cp, &env).unwrap_err(), Error::Decryption);
        assert_eq!(
            open_message(&PairKey::from_bytes([0; 32]), &ap, &bp, &env).unwrap_err(),
            Error::Decryption
        );
        // Flip each byte after the version byte: header fields are in the AAD, the rest is
        // nonce, ciphertext or tag.
        for i in 1..env.len() {
            let mut bad = env.clone();
            bad[i] ^= 0x01;
            assert_eq!(open_message(&key, &ap, &bp, &bad).unwrap_err(), Error::Decryption, "byte {i}");
        }
        let mut bad = env.clone();
        bad[0] = 2;
        assert_eq!(
            open_message(&key, &ap, &bp, &bad).unwrap_err(),
            Error::UnsupportedVersion { what: "envelope", version: 2 }
        );
        // Truncated anywhere, or extended.
        for cut in [0, 1, 48, 49, env.len() - 17, env.len() - 1] {
            assert!(open_message(&key, &ap, &bp, &env[..cut]).is_err());
        }
        let mut longer = env.clone();
        longer.push(0);
        assert!(open_message(&key, &ap, &bp, &longer).is_err());
    }
}

#[test]
fn envelope_lengths_come_in_buckets() {
    let (a, ap) = keypair(1);
    let (_, bp) = keypair(2);
    let key = a.pair_key(&bp).unwrap();
    let header = MessageHeader { client_msg_id: [1; 16], sent_at_ms: 0 };
    let len = |n: usize| seal_message(&key, &ap, &bp, &header, &Payload::Text("x".repeat(n))).unwrap().len();
    assert_eq!(len(0), MIN_ENVELOPE_LEN);
    assert_eq!(len(250), MIN_ENVELOPE_LEN);
    assert_eq!(len(251), ENVELOPE_HEADER_LEN + 512 + TAG_LEN);
    assert_eq!(len(MAX_TEXT_BYTES), MAX_ENVELOPE_LEN);
    assert!(matches!(
        seal_message(&key, &ap, &bp, &header, &Payload::Text("x".repeat(MAX_TEXT_BYTES + 1))),
        Err(Error::TooLarge { .. })
    ));
}

#[test]
fn payload_decoding_refuses_garbage() {
    assert!(Payload::decode(&[]).is_err());
    assert_eq!(
        Payload::decode(&[0x09]).unwrap_err(),
        Error::UnsupportedVersion { what: "payload type", version: 9 }
    );
    let mut text = Payload::Text("hi".into()).encode().unwrap();
    text.push(0);
    assert!(Payload::decode(&text).is_err(), "trailing byte");
    assert!(Payload::decode(&[0x01, 0xff, 0xff, 0xff, 0xff, b'a']).is_err(), "length beyond data");
    assert!(Payload::decode(&[0x01, 0, 0, 0, 2, 0xc3, 0x28]).is_err(), "invalid UTF-8");
    let file = Payload::File(file_ref()).encode().unwrap();
    for cut in 0..file.len() {
        assert!(Payload::decode(&file[..cut]).is_err(), "cut at {cut}");
    }
    let mut bad_id = file_ref();
    bad_id.blob_id = "has space".into();
    assert!(Payload::File(bad_id).encode().is_err());
    assert!(unpad(&[0u8; 256]).is_err());
    assert!(unpad(&[1u8, 0, 0]).is_err());
    assert_eq!(unpad(&pad(b"abc").unwrap()).unwrap(), b"abc");
}

#[test]
fn an_authentic_payload_of_an_unknown_type_says_so() {
    // A newer client's payload (tag 0x05, say a reaction) decrypts but is reported as
    // unsupported, not as tampering.
    let (a, ap) = keypair(1);
    let (_, bp) = keypair(2);
    let key = a.pair_key(&bp).unwrap();
    let header = MessageHeader { client_msg_id: [1; 16], sent_at_ms: 5 };
    let padded = pad(&[0x05, 1, 2, 3]).unwrap();
    let aad = message_aad(&ap, &bp, &header);
    let nonce = [3u8; 24];
    let ct = crate::kdf::xseal(key.expose_bytes(), &nonce, &aad, &padded).unwrap();
    let mut env =
        seal_message_with_nonce(&key, &ap, &bp, &header, &Payload::Text(String::new()), &nonce).unwrap();
    env.truncate(ENVELOPE_HEADER_LEN);
    env.extend_from_slice(&ct);
    assert_eq!(
        open_message(&key, &ap, &bp, &env).unwrap_err(),
        Error::UnsupportedVersion { what: "payload type", version: 5 }
    );
}

fn contents() -> BackupContents {
    let mut c = BackupContents::new(IdentitySecret::from_bytes([5; 32]));
    c.pins.insert(
        "bob".into(),
        Pin { public_key: PublicKey::from([8; 32]), signing_key: None, verified: true, other_flags: 0 },
    );
    c.pins.insert(
        "carol".into(),
        Pin { public_key: PublicKey::from([9; 32]), signing_key: None, verified: false, other_flags: 0x40 },
    );
    c.settings = Some(r#"{"theme":"dark"}"#.into());
    c.unknown.push((0x77, vec![1, 2, 3]));
    c
}

#[test]
fn backup_round_trip_keeps_everything_including_unknown_records() {
    let keys = PasswordKeys::from_master(&[1; 32]);
    let sealed = seal_backup(&keys.backup_key, "alice", &contents()).unwrap();
    let back = unseal_backup(&keys.backup_key, "alice", &sealed).unwrap();
    assert_eq!(back.identity.public_key(), contents().identity.public_key());
    assert_eq!(back.pins, contents().pins);
    assert_eq!(back.settings, contents().settings);
    assert_eq!(back.unknown, vec![(0x77, vec![1, 2, 3])]);
    assert_eq!(&back.encode().unwrap()[..], &contents().encode().unwrap()[..]);
}

#[test]
fn backup_refuses_wrong_password_other_user_and_any_altered_byte() {
    let keys = PasswordKeys::from_master(&[1; 32]);
    let other = PasswordKeys::from_master(&[2; 32]);
    let sealed = seal_backup(&keys.backup_key, "alice", &contents()).unwrap();
    assert_eq!(unseal_backup(&other.backup_key, "alice", &sealed).unwrap_err(), Error::Decryption);
    assert_eq!(unseal_backup(&keys.backup_key, "mallory", &sealed).unwrap_err(), Error::Decryption);
    for i in 1..sealed.len() {
        let mut bad = sealed.clone();
        bad[i] ^= 0x20;
        assert_eq!(
            unseal_backup(&keys.backup_key, "alice", &bad).unwrap_err(),
            Error::Decryption,
            "byte {i}"
        );
    }
    let mut bad = sealed.clone();
    bad[0] = 9;
    assert!(matches!(unseal_backup(&keys.backup_key, "alice", &bad), Err(Error::UnsupportedVersion { .. })));
    for cut in [0, 1, 24, 40, sealed.len() - 1] {
        assert!(unseal_backup(&keys.backup_key, "alice", &sealed[..cut]).is_err());
    }
}

#[test]
fn backup_contents_decoding_refuses_garbage() {
    assert!(BackupContents::decode(&[]).is_err());
    assert!(matches!(BackupContents::decode(&[2]), Err(Error::UnsupportedVersion { .. })));
    assert!(BackupContents::decode(&[1]).is_err(), "no identity");
    let good = contents().encode().unwrap();
    for cut in 1..good.len() {
        // Some prefixes end at a record boundary after the identity: those decode, with fewer
        // records. None may panic, and none may claim more than was there.
        if let Ok(c) = BackupContents::decode(&good[..cut]) {
            assert!(c.pins.len() <= 2);
        }
    }
    let mut two_ids = vec![1u8];
    for _ in 0..2 {
        two_ids.extend_from_slice(&[1, 0, 0, 0, 32]);
        two_ids.extend_from_slice(&[3; 32]);
    }
    assert!(BackupContents::decode(&two_ids).is_err());
}

#[test]
fn attachment_round_trips_at_every_boundary() {
    let key = FileKey::from_bytes([4; 32]);
    for len in
        [0, 1, 15, 16, 17, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE, 3 * CHUNK_SIZE + 7]
    {
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let (blob, hash) = encrypt_attachment(&key, &data).unwrap();
        assert_eq!(blob.len() as u64, encrypted_size(len as u64), "len {len}");
        assert_eq!(decrypt_attachment(&key, &blob, Some(&hash)).unwrap(), data, "len {len}");
        // Fed in odd pieces, the streams agree with the one-shot functions.
        let mut enc = StreamEncryptor::new(&key);
        let mut out = Vec::new();
        for piece in data.chunks(7919) {
            enc.push(piece, &mut out).unwrap();
        }
        // Nonce-deterministic, so the streamed blob equals the one-shot blob.
        assert_eq!(enc.finish(&mut out).unwrap(), hash);
        assert_eq!(out, blob);
        let mut dec = StreamDecryptor::new(&key);
        let mut plain = Vec::new();
        for piece in blob.chunks(4099) {
            dec.push(piece, &mut plain).unwrap();
        }
        assert_eq!(dec.finish(Some(&hash), &mut plain).unwrap(), hash);
        assert_eq!(plain, data);
    }
}

#[test]
fn attachment_detects_truncation_reordering_duplication_and_tampering() {
    let key = FileKey::from_bytes([4; 32]);
    let data: Vec<u8> = (0..3 * CHUNK_SIZE + 100).map(|i| (i * 7) as u8).collect();
    let (blob, hash) = encrypt_attachment(&key, &data).unwrap();
    let c = ENCRYPTED_CHUNK_SIZE;
    let chunk = |i: usize| &blob[i * c..((i + 1) * c).min(blob.len())];
    let fails = |b: &[u8]| decrypt_attachment(&key, b, None).unwrap_err() == Error::Decryption;

    assert!(fails(&blob[..3 * c]), "truncated at a chunk boundary");
    assert!(fails(&blob[..c]), "truncated to one chunk");
    assert!(fails(&blob[..blob.len() - 1]), "truncated inside the last chunk");
    assert!(fails(&[]), "empty blob");
    assert!(fails(&[chunk(1), chunk(0), chunk(2), chunk(3)].concat()), "reordered");
    assert!(fails(&[chunk(0), chunk(0), chunk(1), chunk(2), chunk(3)].concat()), "duplicated");
    assert!(fails(&[&blob[..], chunk(3)].concat()), "appended");
    for i in [0, 100, c - 1, c, 2 * c + 5, blob.len() - 1] {
        let mut bad = blob.clone();
        bad[i] ^= 1;
        assert!(fails(&bad), "flipped byte {i}");
    }
    assert!(fails(&encrypt_attachment(&key, &[]).unwrap().0[..15]), "empty file cut");
    assert!(decrypt_attachment(&FileKey::from_bytes([5; 32]), &blob, None).is_err(), "wrong key");
    assert_eq!(decrypt_attachment(&key, &blob, Some(&[0; 32])).unwrap_err(), Error::Decryption, "hash");
    assert_eq!(decrypt_attachment(&key, &blob, Some(&hash)).unwrap(), data);
    // A full empty last chunk after a full chunk is not something the encryptor makes.
    let mut enc = StreamEncryptor::with_chunk_size(&key, 4);
    let mut fake = Vec::new();
    enc.push(&[1, 2, 3, 4], &mut fake).unwrap();
    enc.push(&[5], &mut fake).unwrap();
    enc.finish(&mut fake).unwrap();
    let mut dec = StreamDecryptor::with_chunk_size(&key, 4);
    let mut out = Vec::new();
    dec.push(&fake, &mut out).unwrap();
    assert_eq!(dec.finish(None, &mut out).unwrap().len(), 32);
    assert_eq!(out, vec![1, 2, 3, 4, 5]);
}

#[test]
fn a_failed_stream_refuses_more_input() {
    let key = FileKey::from_bytes([4; 32]);
    let (mut blob, _) = encrypt_attachment(&key, &vec![0u8; 2 * CHUNK_SIZE]).unwrap();
    blob[3] ^= 1;
    let mut dec = StreamDecryptor::new(&key);
    let mut out = Vec::new();
    assert_eq!(dec.push(&blob, &mut out).unwrap_err(), Error::Decryption);
    assert!(out.is_empty(), "no unauthenticated plaintext is released");
    assert_eq!(dec.push(&[0], &mut out).unwrap_err(), Error::StreamFinished);
}

#[test]
fn safety_numbers_are_symmetric_and_change_with_keys_or_names() {
    let (_, ap) = keypair(1);
    let (_, bp) = keypair(2);
    let (_, cp) = keypair(3);
    let ab = SafetyNumber::compute("alice", &ap, "bob", &bp).unwrap();
    assert_eq!(ab, SafetyNumber::compute("bob", &bp, "alice", &ap).unwrap());
    assert_eq!(ab.digits().len(), 60);
    assert!(ab.digits().bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(ab.groups().len(), 12);
    assert_eq!(ab.to_string().len(), 60 + 11);
    assert_ne!(ab, SafetyNumber::compute("alice", &ap, "bob", &cp).unwrap());
    assert_ne!(ab, SafetyNumber::compute("alice", &cp, "bob", &bp).unwrap());
    assert_ne!(ab, SafetyNumber::compute("alicf", &ap, "bob", &bp).unwrap());
    assert!(SafetyNumber::compute("", &ap, "bob", &bp).is_err());
}

#[test]
fn password_keys_are_distinct_and_deterministic() {
    let k1 = PasswordKeys::from_master(&[1; 32]);
    let k2 = PasswordKeys::from_master(&[1; 32]);
    assert_eq!(k1.auth_key.as_bytes(), k2.auth_key.as_bytes());
    assert_ne!(k1.auth_key.as_bytes(), k1.backup_key.expose_bytes());
}

/// No secret type prints its bytes, whatever formatting is asked for.
#[test]
fn debug_output_never_contains_secrets() {
    let secret_bytes = [0xabu8; 32];
    let hex_secret = hex::encode(secret_bytes);
    let keys = PasswordKeys::from_master(&secret_bytes);
    let auth_hex = hex::encode(keys.auth_key.as_bytes());
    let backup_hex = hex::encode(keys.backup_key.expose_bytes());
    let id = IdentitySecret::from_bytes(secret_bytes);
    let shared = id.diffie_hellman(&keypair(2).1).unwrap();
    let shared_hex = hex::encode(shared.as_bytes());
    let mut contents = BackupContents::new(id.clone());
    contents.settings = Some("secret-setting-value".into());
    let printed = [
        format!("{id:?} {id:#?}"),
        format!("{keys:?} {:?} {:?}", keys.auth_key, keys.backup_key),
        format!("{:?}", PairKey::from_bytes(secret_bytes)),
        format!("{:?}", FileKey::from_bytes(secret_bytes)),
        format!("{:?}", file_ref()),
        format!("{shared:?}"),
        format!("{contents:?}"),
        format!("{:?}", StreamEncryptor::new(&FileKey::from_bytes(secret_bytes))),
        format!("{:?}", StreamDecryptor::new(&FileKey::from_bytes(secret_bytes))),
    ]
    .join("\n");
    for needle in [&hex_secret, &auth_hex, &backup_hex, &shared_hex, "171", "0xab", "secret-setting-value"] {
        assert!(!printed.contains(needle), "{needle} leaked in:\n{printed}");
    }
    // The FileRef's key is redacted too (its bytes are 9s).
    assert!(!printed.contains("9, 9, 9"));
    assert!(printed.contains("IdentitySecret(..)"));
}

#[test]
fn merging_a_newer_copy_keeps_every_pin_and_prefers_ours() {
    let mut ours = BackupContents::new(IdentitySecret::from_bytes([5; 32]));
    ours.pins.insert(
        "bob".into(),
        Pin { public_key: PublicKey::from([1; 32]), signing_key: None, verified: true, other_flags: 0 },
    );
    let mut theirs = contents();
    theirs.pins.insert(
        "dave".into(),
        Pin { public_key: PublicKey::from([4; 32]), signing_key: None, verified: false, other_flags: 0 },
    );
    ours.merge_from(theirs);
    let names: Vec<&String> = ours.pins.keys().collect();
    assert_eq!(names, ["bob", "carol", "dave"]);
    assert!(
        ours.pins["bob"].verified && ours.pins["bob"].public_key == PublicKey::from([1; 32]),
        "ours wins"
    );
    assert_eq!(ours.settings.as_deref(), Some(r#"{"theme":"dark"}"#), "their settings when we have none");
    assert_eq!(ours.unknown, vec![(0x77, vec![1, 2, 3])]);
}

/// Two clients of one user each made a signing key (and an archive key) before either stored
/// its backup: the one that lost the race takes the stored copy's keys, which are the ones that
/// may already be in use; a copy without them keeps its own.
#[test]
fn merging_takes_the_stored_copys_version_2_keys() {
    let stored_signing = crate::SigningSecret::from_seed([7; 32]);
    let stored_archive = crate::ArchiveKey::generate().unwrap();
    let mut stored = contents();
    stored.signing = Some(stored_signing.clone());
    stored.archive_key = Some(stored_archive.clone());
    let mut ours = contents();
    ours.signing = Some(crate::SigningSecret::from_seed([8; 32]));
    ours.archive_key = Some(crate::ArchiveKey::generate().unwrap());
    ours.merge_from(stored);
    assert_eq!(ours.signing.as_ref().map(|s| s.public_key()), Some(stored_signing.public_key()));
    assert_eq!(ours.archive_key.as_ref(), Some(&stored_archive));

    let mut without = contents();
    let mut mine = contents();
    mine.signing = Some(crate::SigningSecret::from_seed([9; 32]));
    without.signing = None;
    mine.merge_from(without);
    assert_eq!(
        mine.signing.as_ref().map(|s| s.public_key()),
        Some(crate::SigningSecret::from_seed([9; 32]).public_key())
    );
}

/// Turning the history archive off is a record of its own, empty and at most once, that
/// survives a round trip; in a merge it is this copy's choice that stays.
#[test]
fn the_archive_off_record_round_trips_and_is_the_users_latest_choice() {
    let mut off = contents();
    off.archive_off = true;
    let encoded = off.encode().unwrap();
    assert!(BackupContents::decode(&encoded).unwrap().archive_off);
    assert!(!BackupContents::decode(&contents().encode().unwrap()).unwrap().archive_off);
    let mut twice = encoded.to_vec();
    twice.extend([0x07, 0, 0, 0, 0]);
    assert_eq!(
        BackupContents::decode(&twice).unwrap_err(),
        Error::Malformed("backup turns the archive off twice")
    );
    let mut valued = contents().encode().unwrap().to_vec();
    valued.extend([0x07, 0, 0, 0, 1, 1]);
    assert_eq!(BackupContents::decode(&valued).unwrap_err(), Error::Malformed("backup archive-off record"));

    let mut ours = contents();
    ours.archive_off = true;
    ours.merge_from(contents());
    assert!(ours.archive_off, "ours stays off");
    let mut ours = contents();
    let mut theirs = contents();
    theirs.archive_off = true;
    ours.merge_from(theirs);
    assert!(!ours.archive_off, "ours stays on");
}

#[test]
fn a_file_decryptor_holds_the_blob_to_the_message() {
    let data = vec![3u8; 2 * 65_536 + 10];
    let mut file = file_ref();
    let (blob, hash) = encrypt_attachment(&file.file_key, &data).unwrap();
    file.ciphertext_sha256 = hash;
    file.size = data.len() as u64;
    let open = |f: &FileRef| {
        let mut dec = FileDecryptor::new(f);
        let mut out = Vec::new();
        for piece in blob.chunks(1000) {
            dec.push(piece, &mut out)?;
        }
        dec.finish(&mut out).map(|()| out)
    };
    assert_eq!(open(&file).unwrap(), data);
    for (what, f) in [
        ("size too small", FileRef { size: file.size - 1, ..file.clone() }),
        ("size too large", FileRef { size: file.size + 1, ..file.clone() }),
        ("another hash", FileRef { ciphertext_sha256: [0; 32], ..file.clone() }),
        ("another key", FileRef { file_key: FileKey::from_bytes([10; 32]), ..file.clone() }),
    ] {
        assert_eq!(open(&f).err(), Some(Error::Decryption), "{what}");
    }
}

#[test]
fn backup_generation_is_authenticated() {
    let keys = PasswordKeys::from_master(&[1; 32]);
    let mut c = contents();
    c.generation = 42;
    let sealed = seal_backup(&keys.backup_key, "alice", &c).unwrap();
    assert_eq!(sealed_generation(&sealed), Some(42));
    assert_eq!(unseal_backup(&keys.backup_key, "alice", &sealed).unwrap().generation, 42);
    // A relay relabelling an old backup as newer (or a new one as older) is caught.
    for claimed in [41u64, 43, u64::MAX] {
        let mut relabelled = sealed.clone();
        relabelled[1..9].copy_from_slice(&claimed.to_be_bytes());
        assert_eq!(sealed_generation(&relabelled), Some(claimed));
        assert_eq!(unseal_backup(&keys.backup_key, "alice", &relabelled).unwrap_err(), Error::Decryption);
    }
    // Merging keeps the newer generation.
    let mut older = contents();
    older.generation = 7;
    older.merge_from(c);
    assert_eq!(older.generation, 42);
}

/// Found by `cargo fuzz run payload`: the decoder read blob ids longer than the format's 64
/// bytes, which `encode` refuses, so a peer could send a reference no honest client makes.
/// Every payload that decodes now encodes back to the same bytes.
#[test]
fn payload_decoding_holds_the_format_limits() {
    let file = |id_len: u8| {
        let mut b = vec![0x02, id_len];
        b.extend(std::iter::repeat_n(b'f', id_len as usize));
        b.extend([7u8; 32 + 32]);
        b.extend(5u64.to_be_bytes());
        b.extend(1u16.to_be_bytes());
        b.push(b'n');
        b.push(0);
        b
    };
    let ok = Payload::decode(&file(64)).unwrap();
    assert_eq!(ok.encode().unwrap(), file(64));
    for too_long in [65u8, 102, 255] {
        assert_eq!(
            Payload::decode(&file(too_long)).unwrap_err(),
            Error::Malformed("payload blob id"),
            "{too_long}"
        );
    }
    let mut text = vec![0x01];
    text.extend(((MAX_TEXT_BYTES + 1) as u32).to_be_bytes());
    text.extend(std::iter::repeat_n(b'a', MAX_TEXT_BYTES + 1));
    assert_eq!(Payload::decode(&text).unwrap_err(), Error::Malformed("payload text"));
}

/// A group name is 1 to 128 bytes of UTF-8, not blank and without control characters, in both
/// directions: what `encode` refuses, `decode` refuses too.
#[test]
fn group_names_hold_their_limits_both_ways() {
    let named = |name: &[u8]| {
        let mut b = vec![0x04, name.len() as u8];
        b.extend_from_slice(name);
        b
    };
    let longest = "é".repeat(MAX_GROUP_NAME / 2);
    assert_eq!(Payload::GroupName(longest.clone()).encode().unwrap(), named(longest.as_bytes()));
    assert_eq!(Payload::decode(&named(longest.as_bytes())).unwrap(), Payload::GroupName(longest.clone()));
    let bad: [&[u8]; 6] = [b"", b"   ", b"tab\there", b"line\n", b"\xc3\x28", &[b'a'; MAX_GROUP_NAME + 1]];
    for name in bad {
        assert_eq!(
            Payload::decode(&named(name)).unwrap_err(),
            Error::Malformed("payload group name"),
            "{name:?}"
        );
        if let Ok(text) = std::str::from_utf8(name) {
            assert!(Payload::GroupName(text.into()).encode().is_err(), "{text:?}");
        }
    }
    assert!(Payload::decode(&named(b"ok")[..3]).is_err(), "cut short");
    let mut trailing = named(b"ok");
    trailing.push(0);
    assert!(Payload::decode(&trailing).is_err(), "trailing byte");
}

/// Version 2 records survive a round trip, and a pin a version 1 client added beside a
/// version 2 pin is resolved without losing the user's decisions.
#[test]
fn backup_version_2_records_round_trip_and_mixed_pins_resolve() {
    let mut c = BackupContents::new(IdentitySecret::from_bytes([3; 32]));
    let signing = SigningSecret::from_seed([4; 32]);
    let bob_signing = SigningSecret::from_seed([5; 32]).public_key();
    c.signing = Some(SigningSecret::from_seed(signing.seed()));
    c.archive_key = Some(ArchiveKey::from_bytes([6; 32]));
    c.pins.insert(
        "bob".into(),
        Pin {
            public_key: PublicKey::from([8; 32]),
            signing_key: Some(bob_signing),
            verified: true,
            other_flags: 0x40,
        },
    );
    c.pins.insert(
        "carol".into(),
        Pin { public_key: PublicKey::from([9; 32]), signing_key: None, verified: false, other_flags: 0 },
    );
    let bytes = c.encode().unwrap();
    let back = BackupContents::decode(&bytes).unwrap();
    assert_eq!(back.signing.as_ref().map(|s| s.public_key()), Some(signing.public_key()));
    assert_eq!(back.archive_key, c.archive_key);
    assert_eq!(back.pins, c.pins);
    assert_eq!(back.encode().unwrap(), bytes);

    // A version 1 client kept bob's 0x06 record as unknown and wrote a 0x02 pin for him too.
    let record = |tag: u8, value: &[u8]| [&[tag][..], &(value.len() as u32).to_be_bytes(), value].concat();
    let v2_pin = [&[3u8][..], b"bob", &[8; 32], bob_signing.as_bytes(), &[0x00]].concat();
    let base = [&[1u8][..], &record(1, &[3; 32])].concat();
    // Same X25519 key: the version 2 pin wins (it has the signing key), verified from either.
    let same =
        [&base[..], &record(2, &[&[3u8][..], b"bob", &[8; 32], &[0x01]].concat()), &record(6, &v2_pin)]
            .concat();
    let pin = BackupContents::decode(&same).unwrap().pins["bob"];
    assert_eq!((pin.signing_key, pin.verified), (Some(bob_signing), true));
    // Another X25519 key: the user accepted a key change there; that pin wins.
    let changed =
        [&base[..], &record(2, &[&[3u8][..], b"bob", &[7; 32], &[0x00]].concat()), &record(6, &v2_pin)]
            .concat();
    let pin = BackupContents::decode(&changed).unwrap().pins["bob"];
    assert_eq!((pin.public_key, pin.signing_key), (PublicKey::from([7; 32]), None));
    // Two signing keys, two archive keys, a bad length, a second 0x06 pin: refused.
    for bad in [
        [&base[..], &record(4, &[1; 32]), &record(4, &[2; 32])].concat(),
        [&base[..], &record(5, &[1; 32]), &record(5, &[2; 32])].concat(),
        [&base[..], &record(4, &[1; 31])].concat(),
        [&base[..], &record(6, &v2_pin), &record(6, &v2_pin)].concat(),
    ] {
        assert!(BackupContents::decode(&bad).is_err());
    }
}

/// The upgrade introduction is exactly 49 bytes, and its key must be a valid Ed25519 point.
#[test]
fn an_upgrade_introduction_holds_one_valid_key_and_a_group_id() {
    let key = SigningSecret::from_seed([9; 32]).public_key();
    let payload = Payload::Upgrade { signing_key: key, group_id: [0xab; 16] };
    let bytes = payload.encode().unwrap();
    let mut expected = vec![0x03];
    expected.extend_from_slice(key.as_bytes());
    expected.extend_from_slice(&[0xab; 16]);
    assert_eq!(bytes, expected);
    assert_eq!(Payload::decode(&bytes).unwrap(), payload);
    assert!(Payload::decode(&bytes[..48]).is_err(), "cut short");
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(Payload::decode(&trailing).is_err(), "trailing byte");
    // Not a point on the curve (y = 2 has no x): refused.
    let mut bad = bytes;
    bad[1..33].copy_from_slice(&{
        let mut y = [0u8; 32];
        y[0] = 2;
        y
    });
    assert_eq!(Payload::decode(&bad).unwrap_err(), Error::Malformed("payload signing key"));
}
