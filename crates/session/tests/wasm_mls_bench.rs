//! The MLS benchmarks of `benches/mls.rs`, timed in headless Chromium with
//! `performance.now()`: `cargo xtask bench-mls-wasm` (a release build; results in
//! docs/BENCHMARKS.md). Prints timings; asserts only correctness.
#![cfg(target_arch = "wasm32")]
#![allow(clippy::unwrap_used)] // a benchmark fails loudly on a broken setup

#[path = "../benches/support/mls.rs"]
mod support;

use sealroom_crypto::{Payload, SigningSecret};
use sealroom_session::mls::{Changes, Invitee, MlsDevice, Processed};
use support::{group_of, members, NOW};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn now() -> f64 {
    web_sys::window().and_then(|w| w.performance()).map(|p| p.now()).unwrap_or_else(js_sys::Date::now)
}

/// The mean of `runs` runs of `f`, each on a fresh input from `setup` (not timed), after one
/// warm-up.
fn time<I, T>(label: &str, runs: usize, mut setup: impl FnMut() -> I, mut f: impl FnMut(I) -> T) -> f64 {
    std::hint::black_box(f(setup()));
    let mut total = 0.0;
    for _ in 0..runs {
        let input = setup();
        let start = now();
        std::hint::black_box(f(input));
        total += now() - start;
    }
    let per = total / runs as f64;
    console_log!("BENCH {label}: {per:.3} ms");
    per
}

#[wasm_bindgen_test]
fn bench_mls_in_browser() {
    for (n, runs) in [(10usize, 10), (100, 5), (1000, 2)] {
        let m = members(n);
        time(&format!("create a group of {n}"), runs, || (), |()| group_of(&m));
    }

    // Add one member to, and remove one from, a group of 1,000.
    let mut m = members(1000);
    let extra_identity = SigningSecret::generate().unwrap();
    m.pins.insert("extra".into(), extra_identity.public_key());
    let mut extra = MlsDevice::new(&extra_identity, "extra", NOW).unwrap();
    let extra_kp = extra.key_packages(1).unwrap();
    let (base, group, _) = group_of(&m);
    let sealed = base.seal(&m.creator.1).unwrap();
    let id = base.device_id();
    let pins = |u: &str| m.pins.get(u).cloned();
    let open = || MlsDevice::open(&m.creator.1, &m.creator.0, &id, &sealed).unwrap();
    time("add one member at 1,000", 3, open, |mut d| {
        let add = vec![Invitee { user: "extra".into(), key_packages: extra_kp.clone() }];
        d.commit(&group, &Changes { add, ..Changes::default() }, 1001, &pins).unwrap()
    });
    time("remove one member at 1,000", 3, open, |mut d| {
        let changes = Changes { remove_users: vec!["u500".into()], ..Changes::default() };
        d.commit(&group, &changes, 1001, &pins).unwrap()
    });

    // One message, encrypted by one member and decrypted by another (a group of two).
    let m2 = members(2);
    let pins2 = |u: &str| m2.pins.get(u).cloned();
    let (mut sender, group2, commit) = group_of(&m2);
    let mut receiver = m2.devices.into_iter().next().unwrap();
    receiver.join(&commit.welcome.unwrap(), &pins2).unwrap();
    let text = Payload::Text("x".repeat(200));
    let mut position = 1u64;
    time(
        "encrypt and decrypt one 200-byte message",
        500,
        || (),
        |()| {
            let message = sender.encrypt(&group2, NOW, &text).unwrap();
            position += 1;
            let read = receiver.process(&group2, position, false, &message, &pins2).unwrap();
            assert!(matches!(read, Processed::Message { .. }));
        },
    );
    // (After the pair: messages nobody decrypts would put the receiver's ratchet out of reach.)
    time("encrypt one 200-byte message", 500, || (), |()| sender.encrypt(&group2, NOW, &text).unwrap());

    // A new device of a member joins a group of 100 by external commit.
    let m100 = members(100);
    let info = group_of(&m100).2.group_info;
    let pins100 = |u: &str| m100.pins.get(u).cloned();
    time(
        "external join at 100 members",
        5,
        || MlsDevice::new(&m100.creator.1, &m100.creator.0, NOW).unwrap(),
        |mut d| d.join_external(&info, &pins100).unwrap(),
    );
}
