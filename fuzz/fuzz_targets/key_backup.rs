//! The sealed key backup the relay hands a client at sign-in, and the contents inside it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealroom_crypto::{seal_backup_with_nonce, sealed_generation, unseal_backup, BackupContents};
use sealroom_fuzz::{backup_key, BACKUP_OWNER};

fuzz_target!(|data: &[u8]| {
    // What the client reads before unsealing (to refuse a rollback early).
    let generation = sealed_generation(data);

    // The contents decoder: what decodes survives an encode/decode cycle unchanged.
    if let Ok(contents) = BackupContents::decode(data) {
        let encoded = contents.encode().expect("what decoded encodes");
        let again = BackupContents::decode(&encoded).expect("an encoding decodes");
        assert_eq!(*again.encode().expect("encodes"), *encoded);
    }

    // Unsealing: only the seeds (sealed under the fixed key) open, their generation is the
    // authenticated one, and they seal back to the same bytes; another user cannot open them.
    if let Ok(contents) = unseal_backup(&backup_key(), BACKUP_OWNER, data) {
        if data.first() == Some(&sealroom_crypto::BACKUP_VERSION) {
            assert_eq!(generation, Some(contents.generation));
            let nonce: [u8; 24] = data[9..33].try_into().expect("length checked");
            let again =
                seal_backup_with_nonce(&backup_key(), BACKUP_OWNER, &contents, &nonce).expect("seals");
            assert_eq!(again, data);
        }
        assert!(unseal_backup(&backup_key(), "mallory", data).is_err());
    }
});
