//! Property tests: round trips for arbitrary inputs, and no panic on arbitrary bytes.

use proptest::prelude::*;

use crate::*;

fn key(seed: u8) -> (IdentitySecret, PublicKey) {
    let s = IdentitySecret::from_bytes([seed; 32]);
    let p = s.public_key();
    (s, p)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_text_round_trips(text in "\\PC{0,600}", id in any::<[u8; 16]>(), at in any::<u64>()) {
        let (a, ap) = key(1);
        let (b, bp) = key(2);
        let header = MessageHeader { client_msg_id: id, sent_at_ms: at };
        let env = seal_message(&a.pair_key(&bp).unwrap(), &ap, &bp, &header, &Payload::Text(text.clone())).unwrap();
        let opened = open_message(&b.pair_key(&ap).unwrap(), &ap, &bp, &env).unwrap();
        prop_assert_eq!(opened.payload, Payload::Text(text));
        prop_assert_eq!(opened.header, header);
    }

    #[test]
    fn any_file_round_trips(data in proptest::collection::vec(any::<u8>(), 0..200_000), k in any::<[u8; 32]>()) {
        let key = FileKey::from_bytes(k);
        let (blob, hash) = encrypt_attachment(&key, &data).unwrap();
        prop_assert_eq!(decrypt_attachment(&key, &blob, Some(&hash)).unwrap(), data);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let (a, ap) = key(1);
        let (_, bp) = key(2);
        let pk = a.pair_key(&bp).unwrap();
        let _ = open_message(&pk, &ap, &bp, &bytes);
        let _ = MessageHeader::parse(&bytes);
        let _ = Payload::decode(&bytes);
        let _ = unpad(&bytes);
        let _ = BackupContents::decode(&bytes);
        let _ = unseal_backup(&BackupKey::from_bytes([1; 32]), "alice", &bytes);
        let _ = decrypt_attachment(&FileKey::from_bytes([1; 32]), &bytes, None);
        let _ = PublicKey::from_slice(&bytes);
        let _ = PublicKey::from_base64(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn any_backup_round_trips(
        pins in proptest::collection::btree_map("[a-z0-9_]{1,32}", (any::<[u8; 32]>(), any::<bool>()), 0..20),
        settings in proptest::option::of("\\PC{0,200}"),
    ) {
        let mut c = BackupContents::new(IdentitySecret::from_bytes([3; 32]));
        for (name, (pk, verified)) in &pins {
            c.pins.insert(name.clone(), Pin { public_key: PublicKey::from(*pk), signing_key: None, verified: *verified, other_flags: 0 });
        }
        c.settings = settings.clone();
        let k = BackupKey::from_bytes([2; 32]);
        let back = unseal_backup(&k, "alice", &seal_backup(&k, "alice", &c).unwrap()).unwrap();
        prop_assert_eq!(back.pins, c.pins);
        prop_assert_eq!(back.settings, settings);
    }
}
