//! The plaintext inside an envelope: the padding and the typed payload. Reached only through
//! an authentic envelope, so only from a peer, but a peer may be hostile.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealroom_crypto::{pad, unpad, Payload};

fuzz_target!(|data: &[u8]| {
    // The encoding is canonical: whatever decodes encodes back to the same bytes.
    if let Ok(payload) = Payload::decode(data) {
        assert_eq!(payload.encode().expect("what decoded encodes"), data);
    }
    // Unpadding takes everything before the last 0x80 that only zeros follow.
    if let Ok(inner) = unpad(data) {
        assert_eq!(data[inner.len()], 0x80);
        assert!(data[inner.len() + 1..].iter().all(|&b| b == 0));
    }
    // Padding is undone exactly, for every payload that fits.
    if let Ok(padded) = pad(data) {
        assert_eq!(unpad(&padded).expect("padding undoes"), data);
        assert!(padded.len().is_power_of_two() && padded.len() >= 256);
    }
});
