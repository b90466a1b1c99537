//! The MLS benchmarks of `benches/mls.rs`, timed in headless Chromium with
//! `performance.now()`: `cargo xtask bench-mls-wasm` (a release build; results in
//! docs/BENCHMARKS.md). Prints timings; asserts only correctness.
#![cfg(target_arch = "wasm32")]
#![allow(clippy::unwrap_used)] // a benchmark fails loudly on a broken setup

#[path = "../benches/support/mls.rs"]
mod support;

use support::{at_thousand, group_of, joining, members, pair};
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
    let big = at_thousand();
    time("add one member at 1,000", 3, || big.open(), |mut d| big.add_one(&mut d));
    time("remove one member at 1,000", 3, || big.open(), |mut d| big.remove_one(&mut d));

    // One message, encrypted by one member and decrypted by another (a group of two).
    let mut two = pair();
    time("encrypt and decrypt one 200-byte message", 500, || (), |()| two.round_trip());
    time("encrypt one 200-byte message", 500, || (), |()| two.encrypt());

    // A new device of a member joins a group of 100 by external commit.
    let j = joining(100);
    time("external join at 100 members", 5, || j.device(), |d| j.join(d));
}
