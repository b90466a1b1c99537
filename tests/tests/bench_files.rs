//! Attachment throughput and relay memory: a 50 MiB file up (encrypting while it streams) and
//! down (decrypting while it streams) through a real relay on 127.0.0.1, while a thread samples
//! the relay's resident memory. Ignored in the test suite (timing is not a test); run with
//! `cargo xtask bench-files`, which uses release builds. SEALROOM_BENCH_FILE_MIB changes the size.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sealroom_tests::TestServer;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Samples the relay's RSS every 5 ms until stopped; returns the peak.
fn sampler(pid: u32) -> (Arc<AtomicBool>, std::thread::JoinHandle<u64>) {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let peak = Arc::new(AtomicU64::new(0));
    let handle = std::thread::spawn(move || {
        while !flag.load(Ordering::Relaxed) {
            peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(5));
        }
        peak.load(Ordering::Relaxed)
    });
    (stop, handle)
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: run with `cargo xtask bench-files`"]
async fn fifty_mib_up_and_down() {
    let mib: usize = std::env::var("SEALROOM_BENCH_FILE_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(50);
    let server = TestServer::start();
    let pid = server.pid().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut alice = server.register("alice").await;
    let mut bob = server.register("bob").await;
    // Warm up the relay's paths with a small file, then measure its memory at rest.
    let warm = dir.path().join("warm.bin");
    std::fs::write(&warm, vec![7u8; 300_000]).unwrap();
    let id = alice.send_file("bob", &warm, false).await.unwrap();
    bob.get_file(id, &dir.path().join("warm-out"), false).await.unwrap();
    let rest = rss_kib(pid);

    let path = dir.path().join("big.bin");
    let mut data = vec![0u8; mib << 20];
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    std::fs::write(&path, &data).unwrap();
    let bytes = data.len() as f64;

    let (stop, peak_up) = sampler(pid);
    let t = Instant::now();
    let id = alice.send_file("bob", &path, false).await.unwrap();
    let up = t.elapsed();
    stop.store(true, Ordering::Relaxed);
    let peak_up = peak_up.join().unwrap();

    let out = dir.path().join("out.bin");
    let (stop, peak_down) = sampler(pid);
    let t = Instant::now();
    bob.get_file(id, &out, false).await.unwrap();
    let down = t.elapsed();
    stop.store(true, Ordering::Relaxed);
    let peak_down = peak_down.join().unwrap();
    assert!(std::fs::read(&out).unwrap() == data, "round trip");

    let mbps = |d: Duration| bytes / d.as_secs_f64() / 1e6;
    println!("file: {mib} MiB ({} bytes)", data.len());
    println!(
        "upload (encrypt + stream + fsync + send): {:>7.1} ms  {:>6.1} MB/s",
        up.as_secs_f64() * 1e3,
        mbps(up)
    );
    println!(
        "download (stream + decrypt + verify + write): {:>7.1} ms  {:>6.1} MB/s",
        down.as_secs_f64() * 1e3,
        mbps(down)
    );
    println!("end to end: {:.1} MB/s", bytes / (up + down).as_secs_f64() / 1e6);
    println!(
        "relay RSS: {:.1} MiB at rest, peak {:.1} MiB during upload, {:.1} MiB during download",
        rest as f64 / 1024.0,
        peak_up as f64 / 1024.0,
        peak_down as f64 / 1024.0
    );
}
