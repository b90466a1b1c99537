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
    // Sealroom only: the reference keeps no keys to read a history with.
    ("history, 10,000 messages", &["history", "--messages", "10000"]),
    ("idle, 1,000 connections", &["idle", "--connections", "1000", "--hold", "5"]),
    ("idle, 10,000 connections", &["idle", "--connections", "10000", "--hold", "10"]),
    // 50,000 would be the target, but on our machines no process may open more than 20,000
    // files (the hard limit, without the privilege to raise it): as many as fit beside the
    // relay's own files.
    ("idle, 19,000 connections", &["idle", "--connections", "19000", "--hold", "10"]),
];

/// How many times each relay is measured (alternating).
const ROUNDS: usize = 2;

/// A `sealroom-bench` JSON line.
pub(crate) type Line = serde_json::Value;

/// A number of a JSON line (NaN when absent, as for the percentiles of an empty run).
pub(crate) fn num(line: &Line, field: &str) -> f64 {
    line[field].as_f64().unwrap_or(f64::NAN)
}

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
pub(crate) struct TempDir(pub(crate) std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(crate) fn pinned(core: usize, program: &std::path::Path) -> Command {
    if std::thread::available_parallelism().map_or(1, |n| n.get()) >= 2
        && crate::setup::output("taskset", &["--version"]).is_some()
    {
        let mut c = Command::new("taskset");
        c.arg("-c").arg(core.to_string()).arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// Starts the release relay pinned to core 0 with the benchmark's settings, on `dir` and with
/// `extra` arguments; returns it and the URL it says it listens on.
pub(crate) fn spawn_relay(dir: &std::path::Path, extra: &[&str]) -> Result<(Child, String)> {
    let mut c = pinned(0, &root().join("target/release/sealroom"));
    c.args([
        "serve",
        "--bind",
        "127.0.0.1:0",
        "--log",
        "warn",
        "--auth-rate-per-ip",
        "1000000",
        // The idle runs hold up to 1,000 connections per user.
        "--max-connections-per-user",
        "1000",
        "--data-dir",
    ])
    .arg(dir)
    .args(extra);
    listening(c)
}

/// Spawns `command` (a relay) and reads the URL from its "listening on" line.
fn listening(mut command: Command) -> Result<(Child, String)> {
    let mut child = command.stdout(Stdio::piped()).spawn().map_err(|e| format!("starting a relay: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    for line in BufReader::new(stdout).lines().map_while(std::result::Result::ok) {
        if let Some(addr) = line.split("listening on ").nth(1) {
            return Ok((child, addr.trim().to_owned()));
        }
    }
    let _ = child.kill();
    Err("the relay did not say where it listens".into())
}

fn start(reference: bool, round: usize) -> Result<Relay> {
    let dir =
        std::env::temp_dir().join(format!("sealroom-bench-relay-{}-{round}-{reference}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let ((child, url), db) = if reference {
        let db = dir.join("reference.db");
        let mut c = pinned(0, &root().join("target/release/sealroom-bench"));
        c.args(["reference", "--bind", "127.0.0.1:0", "--db"]).arg(&db);
        (listening(c)?, db)
    } else {
        (spawn_relay(&dir, &[])?, dir.join("sealroom.db"))
    };
    Ok(Relay { child, url, db: db.display().to_string(), _dir: TempDir(dir) })
}

fn run_bench(relay: &Relay, reference: bool, args: &[&str]) -> Result<Line> {
    let mut c = pinned(1, &root().join("target/release/sealroom-bench"));
    c.args(args).args([
        "--url",
        &relay.url,
        "--db",
        &relay.db,
        "--server-pid",
        &relay.child.id().to_string(),
    ]);
    if reference {
        c.arg("--reference");
    }
    let out = c.stderr(Stdio::inherit()).output().map_err(|e| format!("sealroom-bench: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    print!("{text}");
    if !out.status.success() {
        return Err(format!("sealroom-bench {args:?} failed against {}", relay.url));
    }
    serde_json::from_str(text.lines().last().unwrap_or_default())
        .map_err(|e| format!("sealroom-bench's JSON line: {e}"))
}

pub(crate) fn command() -> Result {
    cmd("cargo", &["build", "--release", "--locked", "-p", "sealroom-server", "-p", "sealroom-bench"])?;
    // results[run][relay] = one line per round
    let mut results: Vec<[Vec<Line>; 2]> = RUNS.iter().map(|_| [Vec::new(), Vec::new()]).collect();
    for round in 0..ROUNDS {
        for reference in [false, true] {
            step(&format!(
                "round {} of {ROUNDS}: {}",
                round + 1,
                if reference { "reference" } else { "Sealroom" }
            ));
            let mut relay = start(reference, round)?;
            std::thread::sleep(Duration::from_millis(300));
            for (i, (_, args)) in RUNS.iter().enumerate() {
                if args[0] == "history" && reference {
                    continue;
                }
                // Memory per connection is measured on a relay that held nothing before.
                if args[0] == "idle" {
                    drop(relay);
                    relay = start(reference, round)?;
                    std::thread::sleep(Duration::from_millis(300));
                }
                results[i][usize::from(reference)].push(run_bench(&relay, reference, args)?);
            }
        }
    }
    println!("\n| measure | Sealroom | reference | ratio |\n|---|---|---|---|");
    for ((label, _), [ours, theirs]) in RUNS.iter().zip(&results) {
        let range = |lines: &[Line], field: &str, digits: usize| {
            let lo = lines.iter().map(|l| num(l, field)).fold(f64::INFINITY, f64::min);
            let hi = lines.iter().map(|l| num(l, field)).fold(f64::NEG_INFINITY, f64::max);
            format!("{lo:.digits$}–{hi:.digits$}")
        };
        let mean = |lines: &[Line], field: &str| {
            lines.iter().map(|l| num(l, field)).sum::<f64>() / lines.len().max(1) as f64
        };
        if label.starts_with("history") {
            let (fetch, decrypt) = (range(ours, "fetch_seconds", 2), range(ours, "decrypt_seconds", 2));
            let rate = range(ours, "messages_per_s", 0);
            println!("| {label}: fetch / decrypt s, messages/s | {fetch} / {decrypt} s, {rate} | — | |");
            let lost: f64 = ours.iter().map(|l| num(l, "lost")).sum();
            if lost != 0.0 {
                return Err(format!("{label}: {lost} messages did not come back"));
            }
            continue;
        }
        if label.starts_with("idle") {
            println!(
                "| {label}: held / RSS per connection KiB / idle CPU | {} / {} / {} | {} / {} / {} | {:.2}× |",
                range(ours, "held", 0),
                range(ours, "rss_per_conn_kib", 1),
                range(ours, "server_idle_cpu_share", 3),
                range(theirs, "held", 0),
                range(theirs, "rss_per_conn_kib", 1),
                range(theirs, "server_idle_cpu_share", 3),
                mean(ours, "rss_per_conn_kib") / mean(theirs, "rss_per_conn_kib").max(1e-9)
            );
            continue;
        }
        println!(
            "| {label}: delivered/s | {} | {} | {:.2}× |",
            range(ours, "delivered_per_s", 0),
            range(theirs, "delivered_per_s", 0),
            mean(ours, "delivered_per_s") / mean(theirs, "delivered_per_s").max(1e-9)
        );
        println!(
            "| {label}: p50 / p99 / max ms | {} / {} / {} | {} / {} / {} | |",
            range(ours, "p50_ms", 2),
            range(ours, "p99_ms", 2),
            range(ours, "max_ms", 1),
            range(theirs, "p50_ms", 2),
            range(theirs, "p99_ms", 2),
            range(theirs, "max_ms", 1),
        );
        println!(
            "| {label}: CPU share of relay / load generator | {} / {} | {} / {} | |",
            range(ours, "server_cpu_share", 2),
            range(ours, "generator_cpu_share", 2),
            range(theirs, "server_cpu_share", 2),
            range(theirs, "generator_cpu_share", 2),
        );
        let lost: f64 = ours.iter().chain(theirs).map(|l| num(l, "lost") + num(l, "duplicates")).sum();
        if lost != 0.0 {
            return Err(format!("{label}: {lost} messages lost or doubled (or the counts are missing)"));
        }
    }
    Ok(())
}
