//! `cargo xtask bench-nodes`: the same load generator and settings against one relay on
//! SQLite, one relay on PostgreSQL, and two relay nodes on PostgreSQL + NATS (senders on one
//! node, receivers on the other, so every message crosses), alternating, in one session.
//! Relays are pinned to core 0 and the generator to core 1 (`taskset`, with two cores);
//! PostgreSQL and NATS (started here, on free ports, by sealroom-testkit) are not pinned.
//! Prints every run's JSON line and the table for docs/BENCHMARKS.md.

use std::process::{Child, Stdio};
use std::time::Duration;

use crate::bench_relay::{num, pinned, Line, TempDir};
use crate::{cmd, root, step, Result};

/// The runs, in order, against each setup: (label, bench arguments).
const RUNS: &[(&str, &[&str])] = &[
    (
        "throughput, 50 pairs, window 16",
        &["throughput", "--pairs", "50", "--messages-per-sender", "400", "--window", "16"],
    ),
    ("latency at 200 msg/s", &["latency", "--pairs", "50", "--rate", "200", "--duration", "10"]),
    ("latency at 1,000 msg/s", &["latency", "--pairs", "50", "--rate", "1000", "--duration", "10"]),
    ("idle, 1,000 connections on one node", &["idle", "--connections", "1000", "--hold", "5"]),
    ("idle, 10,000 connections on one node", &["idle", "--connections", "10000", "--hold", "10"]),
];

/// The setups, in the order measured in each round.
const SETUPS: [&str; 3] = ["1 node, SQLite", "1 node, PostgreSQL", "2 nodes, PostgreSQL + NATS"];

/// How many times each setup is measured (alternating).
const ROUNDS: usize = 2;

/// A relay node.
struct Node {
    child: Child,
    url: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One setup, running: its nodes, the database location, and what it needs kept alive.
struct Running {
    nodes: Vec<Node>,
    db: String,
    _dir: TempDir,
    _nats: Option<sealroom_testkit::Nats>,
}

fn start_node(dir: &std::path::Path, database: Option<&str>, nats: Option<&str>) -> Result<Node> {
    let mut extra = Vec::new();
    if let Some(url) = database {
        extra.extend(["--database-url", url]);
    }
    if let Some(url) = nats {
        extra.extend(["--nats-url", url]);
    }
    let (child, url) = crate::bench_relay::spawn_relay(dir, &extra)?;
    // Killed on drop, also if it never becomes healthy.
    let node = Node { child, url };
    // A node among several takes connections once it has reached NATS.
    let addr = node.url.trim_start_matches("http://").to_owned();
    for _ in 0..200 {
        use std::io::{Read, Write};
        let healthy = std::net::TcpStream::connect(&addr).ok().is_some_and(|mut s| {
            let _ = s.write_all(b"GET /healthz HTTP/1.0\r\n\r\n");
            let mut reply = String::new();
            let _ = s.read_to_string(&mut reply);
            reply.starts_with("HTTP/1.1 200") || reply.starts_with("HTTP/1.0 200")
        });
        if healthy {
            return Ok(node);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("{} never became healthy", node.url))
}

fn start(setup: usize, round: usize) -> Result<Running> {
    let dir =
        std::env::temp_dir().join(format!("sealroom-bench-nodes-{}-{round}-{setup}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let dir = TempDir(dir);
    match setup {
        0 => {
            let node = start_node(&dir.0, None, None)?;
            Ok(Running {
                nodes: vec![node],
                db: dir.0.join("sealroom.db").display().to_string(),
                _dir: dir,
                _nats: None,
            })
        }
        1 => {
            let db = sealroom_testkit::postgres().database();
            let node = start_node(&dir.0, Some(&db), None)?;
            Ok(Running { nodes: vec![node], db, _dir: dir, _nats: None })
        }
        _ => {
            let db = sealroom_testkit::postgres().database();
            let nats = sealroom_testkit::Nats::new();
            let a = start_node(&dir.0, Some(&db), Some(&nats.url()))?;
            let b = start_node(&dir.0, Some(&db), Some(&nats.url()))?;
            Ok(Running { nodes: vec![a, b], db, _dir: dir, _nats: Some(nats) })
        }
    }
}

fn run_bench(setup: &Running, args: &[&str]) -> Result<Line> {
    let first = &setup.nodes[0];
    let mut c = pinned(1, &root().join("target/release/sealroom-bench"));
    c.args(args).args([
        "--url",
        &first.url,
        "--db",
        &setup.db,
        "--server-pid",
        &first.child.id().to_string(),
    ]);
    // Idle connections are measured per node: on the first only.
    if let (Some(second), false) = (setup.nodes.get(1), args[0] == "idle") {
        c.args(["--receivers-url", &second.url, "--receivers-pid", &second.child.id().to_string()]);
    }
    let out = c.stderr(Stdio::inherit()).output().map_err(|e| format!("sealroom-bench: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    print!("{text}");
    if !out.status.success() {
        return Err(format!("sealroom-bench {args:?} failed against {}", first.url));
    }
    serde_json::from_str(text.lines().last().unwrap_or_default())
        .map_err(|e| format!("sealroom-bench's JSON line: {e}"))
}

pub(crate) fn command() -> Result {
    crate::setup::ensure_services()?;
    cmd("cargo", &["build", "--release", "--locked", "-p", "sealroom-server", "-p", "sealroom-bench"])?;
    // results[run][setup] = one line per round
    let mut results: Vec<[Vec<Line>; 3]> = RUNS.iter().map(|_| Default::default()).collect();
    for round in 0..ROUNDS {
        for (s, name) in SETUPS.iter().enumerate() {
            step(&format!("round {} of {ROUNDS}: {name}", round + 1));
            let mut running = start(s, round)?;
            for (i, (_, args)) in RUNS.iter().enumerate() {
                // Memory per connection is measured on nodes that held nothing before.
                if args[0] == "idle" {
                    drop(running);
                    running = start(s, round)?;
                }
                results[i][s].push(run_bench(&running, args)?);
            }
        }
    }
    println!("\n| measure | {} | {} | {} |\n|---|---|---|---|", SETUPS[0], SETUPS[1], SETUPS[2]);
    let range = |lines: &[Line], field: &str, digits: usize| {
        let lo = lines.iter().map(|l| num(l, field)).fold(f64::INFINITY, f64::min);
        let hi = lines.iter().map(|l| num(l, field)).fold(f64::NEG_INFINITY, f64::max);
        format!("{lo:.digits$}–{hi:.digits$}")
    };
    for ((label, _), by_setup) in RUNS.iter().zip(&results) {
        let row = |what: &str, cell: &dyn Fn(&[Line]) -> String| {
            let cells: Vec<String> = by_setup.iter().map(|lines| cell(lines)).collect();
            println!("| {label}: {what} | {} |", cells.join(" | "));
        };
        if label.starts_with("idle") {
            row("held / RSS per connection KiB / idle CPU", &|l| {
                format!(
                    "{} / {} / {}",
                    range(l, "held", 0),
                    range(l, "rss_per_conn_kib", 1),
                    range(l, "server_idle_cpu_share", 3)
                )
            });
            continue;
        }
        row("delivered/s", &|l| range(l, "delivered_per_s", 0));
        row("p50 / p99 / max ms", &|l| {
            format!("{} / {} / {}", range(l, "p50_ms", 2), range(l, "p99_ms", 2), range(l, "max_ms", 1))
        });
        row("CPU share of relay(s) / load generator", &|l| {
            format!("{} / {}", range(l, "server_cpu_share", 2), range(l, "generator_cpu_share", 2))
        });
        let lost: f64 = by_setup.iter().flatten().map(|l| num(l, "lost") + num(l, "duplicates")).sum();
        if lost != 0.0 {
            return Err(format!("{label}: {lost} messages lost or doubled (or the counts are missing)"));
        }
    }
    Ok(())
}
