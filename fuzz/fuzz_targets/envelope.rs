//! Every message envelope a client opens: from the relay's history and its live frames, so
//! from anyone who can make the relay store bytes. The relay's own check of an envelope is
//! its length (the `send` frame's decoder, in `client_frame`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealroom_crypto::{open_message, seal_message_with_nonce, Error, MessageHeader, ENVELOPE_HEADER_LEN};
use sealroom_fuzz::pair;

fuzz_target!(|data: &[u8]| {
    let (alice, bob, key) = pair();
    let (alice, bob) = (*alice, *bob);
    let header = MessageHeader::parse(data);
    match open_message(key, &alice, &bob, data) {
        Ok(opened) => {
            // Only an envelope Alice sealed opens (the seeds), and it is exactly what sealing
            // its contents again gives: nothing about it is malleable.
            assert_eq!(Some(opened.header), header.ok());
            let nonce: [u8; 24] = data[25..ENVELOPE_HEADER_LEN].try_into().expect("header checked");
            let again = seal_message_with_nonce(key, &alice, &bob, &opened.header, &opened.payload, &nonce)
                .expect("what opened seals");
            assert_eq!(again, data);
            // The direction is authenticated: the same bytes do not open as Bob's to Alice.
            assert!(open_message(key, &bob, &alice, data).is_err());
        }
        Err(Error::Decryption | Error::InvalidLength { .. } | Error::UnsupportedVersion { .. }) => {}
        Err(other) => panic!("unexpected error kind: {other:?}"),
    }
});
