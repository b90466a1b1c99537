//! Unit tests: known answers for the primitives, tamper twins, and the v1 vector file.

mod kat;
#[cfg(not(target_arch = "wasm32"))]
mod props;
mod roundtrip;
mod vectors;
