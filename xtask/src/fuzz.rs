//! `cargo xtask fuzz`: the cargo-fuzz targets in `fuzz/` (docs/SECURITY.md, "Fuzzing").
//!
//! cargo-fuzz needs rustc's nightly-only sanitizer flags. These machines carry one toolchain
//! (stable) and fetch no other, so the fuzz build alone runs with `RUSTC_BOOTSTRAP=1`, which
//! lets stable rustc accept them. Nothing else is built that way.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use crate::setup::{cargo_bin, output};
use crate::{root, step, Result};

/// Every target, in the order they run.
pub const TARGETS: &[&str] =
    &["client_frame", "rest_body", "server_frame", "envelope", "payload", "key_backup", "attachment"];

/// The cargo-fuzz release pinned here (its own lock file is used).
const CARGO_FUZZ: &str = "0.13.2";

fn fuzz_dir() -> PathBuf {
    root().join("fuzz")
}

pub fn ensure_cargo_fuzz() -> Result {
    let have = output(&cargo_bin("cargo-fuzz").to_string_lossy(), &["--version"]).unwrap_or_default();
    if have.trim() == format!("cargo-fuzz {CARGO_FUZZ}") {
        return Ok(());
    }
    step(&format!("installing cargo-fuzz {CARGO_FUZZ} (about a minute)"));
    crate::cmd("cargo", &["install", "cargo-fuzz", "--version", CARGO_FUZZ, "--locked"])
}

/// `cargo fuzz <args>` in fuzz/, on the stable toolchain with nightly flags allowed.
fn cargo_fuzz(args: &[&str]) -> Result {
    let status = Command::new("cargo")
        .arg("fuzz")
        .args(args)
        .current_dir(fuzz_dir())
        .env("RUSTC_BOOTSTRAP", "1")
        .status()
        .map_err(|e| format!("could not start cargo fuzz: {e}"))?;
    status.success().then_some(()).ok_or_else(|| format!("`cargo fuzz {}` failed ({status})", args.join(" ")))
}

/// Runs `target` for `seconds` over its committed corpus; what it finds goes to a scratch
/// corpus (never into the repository), a crash to `fuzz/artifacts/<target>/`.
pub fn run(target: &str, seconds: u64, extra: &[&str]) -> Result {
    let scratch = std::env::temp_dir().join(format!("sealroom-fuzz-{}-{target}", std::process::id()));
    std::fs::create_dir_all(&scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
    let corpus = format!("corpus/{target}");
    let time = format!("-max_total_time={seconds}");
    let mut args =
        vec!["run", target, scratch.to_str().unwrap_or_default(), corpus.as_str(), "--", time.as_str()];
    args.extend_from_slice(&["-timeout=10", "-print_final_stats=1"]);
    args.extend_from_slice(extra);
    let started = Instant::now();
    let result = cargo_fuzz(&args);
    let _ = std::fs::remove_dir_all(&scratch);
    eprintln!("    (fuzz {target}: {:.0?})", started.elapsed());
    result
}

/// The bounded run in `cargo xtask test`: every committed input of every target (the
/// regression check), then a few seconds of new inputs each.
pub fn smoke(seconds: u64) -> Result<u64> {
    ensure_cargo_fuzz()?;
    step("fuzz targets: building (cargo-fuzz, libFuzzer + AddressSanitizer)");
    cargo_fuzz(&["build"])?;
    for target in TARGETS {
        step(&format!("fuzz {target}: its corpus, then {seconds} s of new inputs"));
        run(target, seconds, &[])?;
    }
    Ok(TARGETS.len() as u64)
}

/// `cargo xtask fuzz [TARGET…] [--seconds N] [--seeds]`.
pub fn command(args: &[String]) -> Result {
    let mut seconds = 600;
    let mut targets = Vec::new();
    let mut seeds = false;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--seconds" => {
                seconds = it
                    .next()
                    .and_then(|s| s.parse().ok())
                    .ok_or("--seconds needs a whole number of seconds")?;
            }
            "--seeds" => seeds = true,
            t if TARGETS.contains(&t) => targets.push(t.to_owned()),
            other => {
                return Err(format!(
                    "unknown fuzz target or option `{other}` (targets: {})",
                    TARGETS.join(", ")
                ))
            }
        }
    }
    ensure_cargo_fuzz()?;
    if seeds {
        step("writing the seed corpora (fuzz/corpus/*/seed-*)");
        let status = Command::new("cargo")
            .args(["run", "--quiet", "--bin", "seeds"])
            .current_dir(fuzz_dir())
            .env("RUSTC_BOOTSTRAP", "1")
            .status()
            .map_err(|e| e.to_string())?;
        if !status.success() {
            return Err("writing the seeds failed".into());
        }
        if targets.is_empty() {
            return Ok(());
        }
    }
    if targets.is_empty() {
        targets = TARGETS.iter().map(|t| (*t).to_owned()).collect();
    }
    for target in &targets {
        step(&format!("fuzz {target} for {seconds} s"));
        run(target, seconds, &[])?;
    }
    Ok(())
}
