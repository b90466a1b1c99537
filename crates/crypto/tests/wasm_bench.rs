//! The crypto benchmarks timed in headless Chromium with `performance.now()`.
//! `cargo xtask bench-wasm` (a release build). Prints timings; asserts only correctness —
//! targets are judged in docs/BENCHMARKS.md, never in a test.
#![cfg(target_arch = "wasm32")]
#![allow(clippy::unwrap_used)] // test code: a failure should panic with its location

use sealroom_crypto::*;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn now() -> f64 {
    web_sys::window().and_then(|w| w.performance()).map(|p| p.now()).unwrap_or_else(js_sys::Date::now)
}

fn time<T>(label: &str, runs: usize, mut f: impl FnMut() -> T) -> f64 {
    let _ = f(); // warm-up
    let start = now();
    for _ in 0..runs {
        std::hint::black_box(f());
    }
    let per = (now() - start) / runs as f64;
    console_log!("BENCH {label}: {per:.3} ms");
    per
}

#[wasm_bindgen_test]
fn bench_crypto_in_browser() {
    time("argon2id production (64 MiB, t=3, p=1)", 3, || {
        PasswordKeys::derive("correct horse battery staple", &[7; 16], KdfParams::PRODUCTION).unwrap()
    });
    let a = IdentitySecret::generate().unwrap();
    let b = IdentitySecret::generate().unwrap();
    let (ap, bp) = (a.public_key(), b.public_key());
    time("pair key derivation", 200, || a.pair_key(&bp).unwrap());
    let key = a.pair_key(&bp).unwrap();
    let text = Payload::Text("x".repeat(200));
    let header = MessageHeader { client_msg_id: [3; 16], sent_at_ms: 1 };
    let env = seal_message(&key, &ap, &bp, &header, &text).unwrap();
    time("encrypt 200-byte message", 2000, || seal_message(&key, &ap, &bp, &header, &text).unwrap());
    time("decrypt 200-byte message", 2000, || open_message(&key, &ap, &bp, &env).unwrap());
    let kb = b.pair_key(&ap).unwrap();
    let history: Vec<Vec<u8>> = (0..10_000u64)
        .map(|i| {
            let h = MessageHeader { client_msg_id: [(i % 256) as u8; 16], sent_at_ms: i };
            seal_message(&key, &ap, &bp, &h, &Payload::Text(format!("message number {i} with some words")))
                .unwrap()
        })
        .collect();
    time("decrypt 10,000 messages (cached pair key)", 5, || {
        history.iter().map(|e| open_message(&kb, &ap, &bp, e).unwrap().header.sent_at_ms).sum::<u64>()
    });
    let fk = FileKey::generate().unwrap();
    let data = vec![0x5au8; 16 << 20];
    let ms = time("attachment encrypt 16 MiB", 3, || encrypt_attachment(&fk, &data).unwrap());
    console_log!("BENCH attachment encrypt: {:.1} MB/s", 16.0 * 1.048576 / (ms / 1000.0));
    let (blob, hash) = encrypt_attachment(&fk, &data).unwrap();
    let ms = time("attachment decrypt 16 MiB", 3, || decrypt_attachment(&fk, &blob, Some(&hash)).unwrap());
    console_log!("BENCH attachment decrypt: {:.1} MB/s", 16.0 * 1.048576 / (ms / 1000.0));
    time("safety number", 20, || SafetyNumber::compute("alice", &ap, "bob", &bp).unwrap());
}
