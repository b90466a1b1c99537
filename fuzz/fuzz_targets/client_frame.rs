//! Every WebSocket text frame a client (or anyone with a session) sends the relay.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealroom_protocol::parse_client_frame;

fuzz_target!(|data: &[u8]| {
    // A WebSocket text frame is UTF-8 by the protocol; the relay's WebSocket layer (wsconn) refuses anything else.
    let Ok(text) = std::str::from_utf8(data) else { return };
    match parse_client_frame(text) {
        Ok(frame) => {
            let written = serde_json::to_string(&frame).expect("a frame serializes");
            let back = parse_client_frame(&written).expect("a frame reads back what it wrote");
            assert_eq!(back, frame);
        }
        Err(e) => {
            let status = e.error.http_status();
            assert!((400..500).contains(&status), "bad frame classified as {status}");
        }
    }
});
