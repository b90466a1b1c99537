//! `cargo xtask …`: Sealroom's own build, run and test orchestration.
//!
//! Each command installs what it needs on a fresh machine (the wasm32 target, wasm-bindgen-cli,
//! Chromium + chromedriver from Debian's packages) and skips what is already there, so the
//! README's two commands work from a clean clone.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

mod bench_nodes;
mod bench_relay;
mod fuzz;
mod setup;

type Result<T = ()> = std::result::Result<T, String>;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  run          build the server (and web client) and start it on the embedded SQLite default;
               extra arguments go to `sealroom serve` (e.g. cargo xtask run -- --bind 0.0.0.0:8080)
  test         install what the tests need, then run every test: native, browser, end-to-end
  dist         build the web client for deployment into web/dist (release, precompressed) and
               print its sizes
  setup        only install the toolchain (wasm32 target, wasm-bindgen-cli, chromium, chromedriver)
  bench        criterion benchmarks of the crypto core (native)
  bench-mls    criterion benchmarks of group conversations on OpenMLS (native): groups of
               10/100/1,000, one add and one remove at 1,000, a message, an external join
  bench-wasm   the crypto benchmarks timed in headless Chromium
  bench-mls-wasm  the bench-mls operations timed in headless Chromium
  bench-web    the web client with a 10,000-message conversation in headless Chromium
  bench-files  a 50 MiB attachment up and down through a release relay, with its memory
  bench-relay  Sealroom beside the minimal reference relay (sealroom-bench, release, pinned
               to one core each): throughput and open-loop latency, nothing lost or doubled
  bench-nodes  one relay on SQLite, one on PostgreSQL, two nodes on PostgreSQL + NATS, with
               the same load generator and settings (release, pinned): throughput, latency,
               idle connections and memory per connection, nothing lost or doubled
  soak         minutes of mixed load on a release relay (SEALROOM_SOAK_SECS, default 180):
               nothing lost, memory and file descriptors flat
  vectors      regenerate crates/crypto/tests/vectors/v1.json from the code
  fuzz         run the cargo-fuzz targets in fuzz/ (default: each for 600 s); options:
               TARGET… (only those), --seconds N, --seeds (rewrite the seed corpora)
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(),
        Some("run") => run(&args[1..]),
        Some("setup") => setup::ensure_all(),
        Some("dist") => setup::build_web(true),
        Some("bench") => bench(),
        Some("bench-mls") => {
            cmd("cargo", &["bench", "-p", "sealroom-session", "--features", "mls", "--bench", "mls"])
        }
        Some("bench-wasm") => bench_in_chromium("crypto", "sealroom-crypto", "bench-wasm", "wasm_bench"),
        Some("bench-mls-wasm") => {
            bench_in_chromium("MLS", "sealroom-session", "mls,bench-wasm", "wasm_mls_bench")
        }
        Some("bench-web") => bench_web(),
        Some("bench-files") => bench_files(),
        Some("soak") => soak(),
        Some("bench-relay") => bench_relay::command(),
        Some("bench-nodes") => bench_nodes::command(),
        Some("vectors") => vectors(),
        Some("fuzz") => fuzz::command(&args[1..]),
        Some("-h" | "--help" | "help") | None => {
            print!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(format!("unknown command `{other}`\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (xtask lives one level below it).
pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

pub(crate) fn step(msg: &str) {
    eprintln!("\x1b[1;34m==>\x1b[0m {msg}");
}

/// Runs a command in the workspace root, inheriting output.
pub(crate) fn cmd(program: &str, args: &[&str]) -> Result {
    let status = Command::new(program)
        .args(args)
        .current_dir(root())
        .status()
        .map_err(|e| format!("could not start `{program}`: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{program} {}` failed ({status})", args.join(" ")))
    }
}

/// Running totals of the test runners' "test result:" lines.
#[derive(Default)]
struct Tally {
    passed: u64,
    failed: u64,
    ignored: u64,
}

impl Tally {
    /// Runs a cargo test command, echoing its output live while counting its results.
    fn cargo(&mut self, label: &str, args: &[&str]) -> Result {
        self.cargo_env(label, args, &[])
    }

    /// [`Tally::cargo`] with extra environment variables.
    fn cargo_env(&mut self, label: &str, args: &[&str], env: &[(&str, &str)]) -> Result {
        step(label);
        let started = Instant::now();
        let mut child = Command::new("cargo")
            .args(args)
            .envs(env.iter().copied())
            .current_dir(root())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("could not start cargo: {e}"))?;
        if let Some(out) = child.stdout.take() {
            for line in BufReader::new(out).lines().map_while(std::result::Result::ok) {
                println!("{line}");
                self.count(&line);
            }
        }
        let status = child.wait().map_err(|e| e.to_string())?;
        eprintln!("    ({label}: {:.0?})", started.elapsed());
        if status.success() {
            Ok(())
        } else {
            Err(format!("{label} failed"))
        }
    }

    fn count(&mut self, line: &str) {
        let Some(rest) = line.trim().strip_prefix("test result: ") else { return };
        for part in rest.split([';', '.']) {
            let mut words = part.split_whitespace();
            if let (Some(n), Some(what)) = (words.next(), words.next()) {
                if let Ok(n) = n.parse::<u64>() {
                    match what {
                        "passed" => self.passed += n,
                        "failed" => self.failed += n,
                        "ignored" => self.ignored += n,
                        _ => {}
                    }
                }
            }
        }
    }
}

/// Seconds of new inputs per fuzz target in `cargo xtask test` (after its whole corpus).
const FUZZ_SMOKE_SECONDS: u64 = 5;

fn test() -> Result {
    let started = Instant::now();
    setup::ensure_all()?;
    let python = setup::ensure_python_venv()?;
    let mut tally = Tally::default();
    let result = (|| {
        setup::build_web(false)?;
        step("building the binaries the end-to-end tests run (sealroom, sealroom-cli)");
        cmd("cargo", &["build", "--quiet", "--workspace", "--bins", "--locked"])?;
        tally
            .cargo("native tests (whole workspace)", &["test", "--workspace", "--all-targets", "--locked"])?;
        tally.cargo("doc tests", &["test", "--workspace", "--doc", "--locked"])?;
        tally.cargo_env(
            "the end-to-end relay suite again, on PostgreSQL (a throwaway cluster on a free port)",
            // (`nodes::` runs on PostgreSQL and NATS in both passes: once is enough.)
            &["test", "-p", "sealroom-tests", "--test", "relay", "--locked", "--", "--skip", "nodes::"],
            &[("SEALROOM_TEST_DATABASE", "postgres")],
        )?;
        tally.cargo(
            "crypto in headless Chromium (wasm-bindgen-test)",
            &[
                "test",
                "-p",
                "sealroom-crypto",
                "--target",
                "wasm32-unknown-unknown",
                "--test",
                "wasm",
                "--locked",
            ],
        )?;
        tally.cargo(
            "web client in headless Chromium (wasm-bindgen-test: helpers and the mounted app)",
            &[
                "test",
                "-p",
                "sealroom-web",
                "--target",
                "wasm32-unknown-unknown",
                "--test",
                "web",
                "--locked",
            ],
        )?;
        tally.passed += fuzz::smoke(FUZZ_SMOKE_SECONDS)?;
        step("crypto vectors re-derived independently (argon2-cffi, libsodium, OpenSSL)");
        cmd(&python, &["docs/verify_vectors.py"])?;
        tally.passed += 1;
        Ok(())
    })();
    eprintln!("    (all tests: {:.0?})", started.elapsed());
    println!("summary: {} passed, {} failed, {} skipped", tally.passed, tally.failed, tally.ignored);
    result
}

fn run(extra: &[String]) -> Result {
    let extra: Vec<&str> = extra.iter().map(String::as_str).skip_while(|a| *a == "--").collect();
    setup::build_web(true)?;
    step("building the relay (release) and starting it; Ctrl-C stops it");
    let mut args =
        vec!["run", "--release", "--locked", "-p", "sealroom-server", "--bin", "sealroom", "--", "serve"];
    args.extend(extra);
    cmd("cargo", &args)
}

fn bench() -> Result {
    setup::ensure_all()?;
    cmd("cargo", &["bench", "-p", "sealroom-crypto", "--bench", "crypto"])
}

/// A benchmark test of `package` (built with `features`) timed in headless Chromium, release
/// build; it prints its timings.
fn bench_in_chromium(what: &str, package: &str, features: &str, test: &str) -> Result {
    setup::ensure_all()?;
    step(&format!("{what} benchmarks in headless Chromium (release build)"));
    cmd(
        "cargo",
        &[
            "test",
            "--release",
            "-p",
            package,
            "--target",
            "wasm32-unknown-unknown",
            "--features",
            features,
            "--test",
            test,
            "--",
            "--nocapture",
        ],
    )
}

fn bench_web() -> Result {
    setup::ensure_all()?;
    setup::build_web(true)?;
    cmd("cargo", &["build", "--quiet", "--workspace", "--bins", "--locked"])?;
    cmd("cargo", &["test", "-p", "sealroom-tests", "--test", "bench_web", "--", "--ignored", "--nocapture"])
}

fn soak() -> Result {
    cmd(
        "cargo",
        &["test", "--release", "-p", "sealroom-tests", "--test", "soak", "--", "--ignored", "--nocapture"],
    )
}

fn bench_files() -> Result {
    cmd(
        "cargo",
        &[
            "test",
            "--release",
            "-p",
            "sealroom-tests",
            "--test",
            "bench_files",
            "--",
            "--ignored",
            "--nocapture",
        ],
    )
}

fn vectors() -> Result {
    step("regenerating crates/crypto/tests/vectors/v1.json");
    let status = Command::new("cargo")
        .args(["test", "-p", "sealroom-crypto", "--lib", "vector_file_is_what_the_code_produces"])
        .env("SEALROOM_WRITE_VECTORS", "1")
        .current_dir(root())
        .status()
        .map_err(|e| e.to_string())?;
    if status.success() {
        Ok(())
    } else {
        Err("vector generation failed".into())
    }
}
