//! `cargo xtask bench-relay`: Sealroom beside the minimal reference relay on this machine, in
//! one session, alternating, each relay pinned to core 0 and the load generator to core 1
//! (`taskset`, when there are two cores). Prints every run's JSON line and the table for
//! docs/BENCHMARKS.md.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{cmd, root, step, Result};

/// The runs, in the order made against each relay: (label, bench arguments).
const RUNS: &[(&str, &[&str])] = &[
    (
        "throughput, 50 pairs, window 16",
        &["throughput", "--pairs", "50", "--messages-per-sender", "400", "--window", "16"],
    ),
    ("latency at 200 msg/s", &["latency", "--pairs", "50", "--rate", "200", "--duration", "10"]),
    ("latency at 1,000 msg/s", &["latency", "--pairs", "50", "--rate", "1000", "--duration", "10"]),
];

/// How many times each relay is measured (alternating).
const ROUNDS: usize = 2;

struct Relay {
    child: Child,
    url: String,
    db: String,
    _dir: TempDir,
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A directory removed on drop.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn pinned(core: usize, program: &std::path::Path) -> Command {
    if std::thread::available_parallelism().map_or(1, |n| n.get()) >= 2 && which("taskset") {
        let mut c = Command::new("taskset");
        c.arg("-c").arg(core.to_string()).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn which(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn start(reference: bool, round: usize) -> Result<Relay> {
    let dir =
        std::env::temp_dir().join(format!("sealroom-bench-relay-{}-{round}-{reference}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let release = root().join("target/release");
    let (mut command, db) = if reference {
        let db = dir.join("reference.db");
        let mut c = pinned(0, &release.join("sealroom-bench"));
        c.args(["reference", "--bind", "127.0.0.1:0", "--db"]).arg(&db);
        (c, db)
    } else {
        let mut c = pinned(0, &release.join("sealroom"));
        c.args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--log",
            "warn",
            "--auth-rate-per-ip",
            "1000000",
            "--data-dir",
        ])
        .arg(&dir);
        (c, dir.join("sealroom.db"))
    };
    let mut child = command.stdout(Stdio::piped()).spawn().map_err(|e| format!("starting a relay: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut url = None;
    for line in BufReader::new(stdout).lines().map_while(std::result::Result::ok) {
        if let Some(addr) = line.split("listening on ").nth(1) {
            url = Some(addr.trim().to_owned());
            break;
        }
    }
    let url = url.ok_or("the relay did not say where it listens")?;
    Ok(Relay { child, url, db: db.display().to_string(), _dir: TempDir(dir) })
}

fn run_bench(relay: &Relay, reference: bool, args: &[&str]) -> Result<serde_line::Line> {
    let mut c = pinned(1, &root().join("target/release/sealroom-bench"));
    c.args(args).args(["--url", &relay.url, "--db", &relay.db]);
    if reference {
        c.arg("--reference");
    }
    let out = c.stderr(Stdio::inherit()).output().map_err(|e| format!("sealroom-bench: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    print!("{text}");
    if !out.status.success() {
        return Err(format!("sealroom-bench {args:?} failed against {}", relay.url));
    }
    serde_line::Line::parse(text.lines().last().unwrap_or_default())
}

pub(crate) fn command() -> Result {
    cmd("cargo", &["build", "--release", "--locked", "-p", "sealroom-server", "-p", "sealroom-bench"])?;
    // results[run][relay] = one line per round
    let mut results: Vec<[Vec<serde_line::Line>; 2]> =
        RUNS.iter().map(|_| [Vec::new(), Vec::new()]).collect();
    for round in 0..ROUNDS {
        for reference in [false, true] {
            step(&format!(
                "round {} of {ROUNDS}: {}",
                round + 1,
                if reference { "reference" } else { "Sealroom" }
            ));
            let relay = start(reference, round)?;
            std::thread::sleep(Duration::from_millis(300));
            for (i, (_, args)) in RUNS.iter().enumerate() {
                results[i][usize::from(reference)].push(run_bench(&relay, reference, args)?);
            }
        }
    }
    println!("\n| measure | Sealroom | reference | ratio |\n|---|---|---|---|");
    for ((label, _), [ours, theirs]) in RUNS.iter().zip(&results) {
        let range = |lines: &[serde_line::Line], f: fn(&serde_line::Line) -> f64, digits: usize| {
            let lo = lines.iter().map(f).fold(f64::INFINITY, f64::min);
            let hi = lines.iter().map(f).fold(f64::NEG_INFINITY, f64::max);
            format!("{lo:.digits$}–{hi:.digits$}")
        };
        let mean = |lines: &[serde_line::Line], f: fn(&serde_line::Line) -> f64| {
            lines.iter().map(f).sum::<f64>() / lines.len().max(1) as f64
        };
        println!(
            "| {label}: delivered/s | {} | {} | {:.2}× |",
            range(ours, |l| l.delivered_per_s, 0),
            range(theirs, |l| l.delivered_per_s, 0),
            mean(ours, |l| l.delivered_per_s) / mean(theirs, |l| l.delivered_per_s).max(1e-9)
        );
        println!(
            "| {label}: p50 / p99 / max ms | {} / {} / {} | {} / {} / {} | |",
            range(ours, |l| l.p50_ms, 2),
            range(ours, |l| l.p99_ms, 2),
            range(ours, |l| l.max_ms, 1),
            range(theirs, |l| l.p50_ms, 2),
            range(theirs, |l| l.p99_ms, 2),
            range(theirs, |l| l.max_ms, 1),
        );
        let lost: u64 = ours.iter().chain(theirs).map(|l| l.lost + l.duplicates).sum();
        if lost > 0 {
            return Err(format!("{label}: {lost} messages lost or doubled"));
        }
    }
    Ok(())
}

/// The few fields of a `sealroom-bench` JSON line the table needs, read without a JSON crate
/// in xtask (numbers after `"name":`).
mod serde_line {
    pub(crate) struct Line {
        pub delivered_per_s: f64,
        pub p50_ms: f64,
        pub p99_ms: f64,
        pub max_ms: f64,
        pub lost: u64,
        pub duplicates: u64,
    }

    fn number(line: &str, name: &str) -> Result<f64, String> {
        let key = format!("\"{name}\":");
        let rest = line.split(&key).nth(1).ok_or_else(|| format!("no {name} in {line}"))?;
        let end = rest.find([',', '}']).unwrap_or(rest.len());
        rest[..end].trim().parse().map_err(|e| format!("{name} in {line}: {e}"))
    }

    impl Line {
        pub(crate) fn parse(line: &str) -> Result<Line, String> {
            Ok(Line {
                delivered_per_s: number(line, "delivered_per_s")?,
                p50_ms: number(line, "p50_ms")?,
                p99_ms: number(line, "p99_ms")?,
                max_ms: number(line, "max_ms")?,
                lost: number(line, "lost")? as u64,
                duplicates: number(line, "duplicates")? as u64,
            })
        }
    }
}
