//! Every WebSocket frame a relay (possibly a hostile one) sends a client.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealroom_fuzz::json_body;
use sealroom_protocol::ServerFrame;

fuzz_target!(|data: &[u8]| json_body::<ServerFrame>(data));
