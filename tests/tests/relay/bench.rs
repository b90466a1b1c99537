//! The load generator counts what it measures: against a real relay and against the reference
//! relay, every message it sends is acknowledged, delivered once and stored once, and it says
//! so in its JSON line (the benchmark table in docs/BENCHMARKS.md rests on these counts).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use sealroom_tests::{bin, TestServer};

/// Runs `sealroom-bench MODE --url URL --db DB EXTRA…` and returns its JSON line.
fn bench(mode: &str, url: &str, db: &str, extra: &str) -> serde_json::Value {
    let args: Vec<&str> =
        [mode, "--url", url, "--db", db].into_iter().chain(extra.split_whitespace()).collect();
    let out = Command::new(bin("sealroom-bench")).args(&args).output().expect("sealroom-bench runs");
    assert!(
        out.status.success(),
        "sealroom-bench {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last().expect("a JSON line")).expect("JSON")
}

fn assert_counted(line: &serde_json::Value, messages: u64) {
    for field in ["sent", "acked", "delivered", "stored"] {
        assert_eq!(line[field].as_u64(), Some(messages), "{field} in {line}");
    }
    for field in ["lost", "duplicates", "errors"] {
        assert_eq!(line[field].as_u64(), Some(0), "{field} in {line}");
    }
    assert!(line["delivered_per_s"].as_f64().is_some_and(|r| r > 0.0), "{line}");
    assert!(
        line["p99_ms"].as_f64().is_some_and(|p| p >= line["p50_ms"].as_f64().unwrap_or(f64::MAX)),
        "{line}"
    );
}

#[test]
fn the_load_generator_counts_every_message_on_sealroom_and_on_the_reference() {
    let server = TestServer::start_with(&["--auth-rate-per-ip", "1000"]);
    let db = server.database_location();
    let line = bench("throughput", &server.url, &db, "--pairs 3 --messages-per-sender 40 --window 8");
    assert_counted(&line, 120);
    assert_eq!(line["target"], "sealroom");
    // The stored count is the relay's own: the same rows a client reads back.
    assert_eq!(server.sql_rows("SELECT COUNT(*) FROM messages"), ["120"]);
    let line = bench("latency", &server.url, &db, "--pairs 2 --rate 100 --duration 1");
    assert_counted(&line, 100);
    // History: what was stored comes back whole and opens with the recipient's keys.
    let line = bench("history", &server.url, &db, "--messages 60");
    assert_eq!(
        (line["fetched"].as_u64(), line["decrypted"].as_u64(), line["lost"].as_u64()),
        (Some(60), Some(60), Some(0))
    );
    // Idle: every connection opened is held, and the relay's memory is read from /proc (it
    // grew: 60 more sockets cannot cost nothing).
    let pid = server.pid().expect("the relay runs").to_string();
    let line = bench(
        "idle",
        &server.url,
        &db,
        &format!("--connections 60 --hold 1 --per-user 30 --server-pid {pid}"),
    );
    assert_eq!(
        (line["opened"].as_u64(), line["held"].as_u64(), line["errors"].as_u64()),
        (Some(60), Some(60), Some(0))
    );
    assert!(line["rss_after_kib"].as_u64() > line["rss_before_kib"].as_u64(), "{line}");
    assert!(line["rss_per_conn_kib"].as_f64().is_some_and(|k| k > 0.0), "{line}");

    let dir = tempfile::tempdir().unwrap();
    let ref_db = dir.path().join("reference.db").display().to_string();
    let mut reference = Command::new(bin("sealroom-bench"))
        .args(["reference", "--bind", "127.0.0.1:0", "--db", &ref_db])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(reference.stdout.take().unwrap()).read_line(&mut first).unwrap();
    let url =
        first.split("listening on ").nth(1).expect("the reference says where it listens").trim().to_owned();
    let line = bench("throughput", &url, &ref_db, "--reference --pairs 3 --messages-per-sender 40");
    assert_counted(&line, 120);
    assert_eq!(line["target"], "reference");
    let _ = reference.kill();
    let _ = reference.wait();

    // Loopback only: any other target is refused before anything is sent.
    let out = Command::new(bin("sealroom-bench"))
        .args(["throughput", "--url", "http://192.0.2.1:8080", "--pairs", "1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback only"), "{out:?}");
}
