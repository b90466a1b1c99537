//! Soak: minutes of mixed load on one relay — pipelined sends with typing, history paging,
//! reconnect storms, attachment uploads and downloads, and logins with wrong passwords — while
//! a thread samples the relay's memory and open file descriptors. In the end nothing sent is
//! lost or doubled, nothing failed that should not, and memory and descriptors are flat.
//! Ignored in the test suite; `cargo xtask soak` runs it on release builds
//! (SEALROOM_SOAK_SECS sets the length, default 180).
#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sealroom_client::{Client, ClientError};
use sealroom_protocol::{ErrorCode, HistoryQuery, Username};
use sealroom_tests::{metric, send_until_stopped, TestServer};

const SENDERS: usize = 6;

fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn fds(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count() as u64).unwrap_or(0)
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    at: f64,
    rss_kib: u64,
    fds: u64,
}

fn median(v: &[u64]) -> u64 {
    let mut v = v.to_vec();
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "soak: run with `cargo xtask soak`"]
async fn minutes_of_mixed_load_leave_memory_and_descriptors_flat() {
    let secs: u64 = std::env::var("SEALROOM_SOAK_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(180);
    let server = TestServer::start();
    let pid = server.pid().unwrap();
    let url = server.url.clone();
    let names: Vec<String> = (0..SENDERS).map(|i| format!("user{i}")).collect();
    let mut sessions = Vec::new();
    for n in &names {
        sessions.push(server.register(n).await);
    }
    // A ring: user i writes to user i+1.
    let mut conversations = Vec::new();
    for (i, s) in sessions.iter_mut().enumerate() {
        let peer = Username::parse(&names[(i + 1) % SENDERS]).unwrap();
        conversations.push(s.conversation_with(&peer).await.unwrap());
        s.peer_key(&peer, false).await.unwrap();
    }
    let mut reader = Client::new(&url).unwrap().login("user1", "password-of-user1").await.unwrap();
    let uploader = Client::new(&url).unwrap().login("user2", "password-of-user2").await.unwrap();
    let mut downloader = Client::new(&url).unwrap().login("user3", "password-of-user3").await.unwrap();
    let storm = Client::new(&url).unwrap().login("user4", "password-of-user4").await.unwrap();

    let samples = Arc::new(Mutex::new(Vec::<Sample>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let sampler = {
        let (samples, stop) = (samples.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let s = Sample {
                    at: started.elapsed().as_secs_f64(),
                    rss_kib: status_kib(pid, "VmRSS:"),
                    fds: fds(pid),
                };
                samples.lock().unwrap().push(s);
                std::thread::sleep(Duration::from_secs(1));
            }
        })
    };
    let stopper = {
        let stop = stop.clone();
        async move {
            tokio::time::sleep(Duration::from_secs(secs)).await;
            stop.store(true, Ordering::SeqCst);
        }
    };

    // Pipelined sends around the ring, each sender typing every 10 messages; each on a thread
    // of its own, so that the rest of the load never keeps a sender from reading (the relay
    // drops a socket that falls 512 frames behind, and it would resume, but that is not flat).
    let sender_threads: Vec<_> = sessions
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let peer = Username::parse(&names[(i + 1) % SENDERS]).unwrap();
            let (conversation, stop) = (conversations[i], stop.clone());
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                rt.block_on(send_until_stopped(s, peer, conversation, stop, Some(10)))
            })
        })
        .collect();
    let senders = async {
        while !stop.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };

    // History: user1 pages back through what user0 sent, over and over.
    let pages = AtomicU64::new(0);
    let history = async {
        while !stop.load(Ordering::SeqCst) {
            let mut before = None;
            loop {
                let q = HistoryQuery { before, after: None, limit: Some(100) };
                let page = match reader.history_raw("user0", &q).await {
                    Ok(page) => page,
                    // Until user0's first message, user1 does not see the conversation.
                    Err(ClientError::Api(e)) if e.error == ErrorCode::NotFound => break,
                    Err(e) => panic!("history: {e}"),
                };
                pages.fetch_add(1, Ordering::Relaxed);
                before = page.messages.first().map(|m| m.id);
                if !page.has_more || stop.load(Ordering::SeqCst) {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let _ = &mut reader;
    };

    // Reconnect storms: 20 sockets opened and dropped at once, every 5 s.
    let storms = AtomicU64::new(0);
    let reconnects = async {
        while !stop.load(Ordering::SeqCst) {
            let conns = futures_util::future::join_all((0..20).map(|_| storm.connect())).await;
            for c in conns {
                c.unwrap().close().await;
            }
            storms.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    };

    // Attachments: user2 sends a 256 KiB file to user3 every second; user3 fetches it.
    let files = tempfile::tempdir().unwrap();
    let transfers = AtomicU64::new(0);
    let attachments = async {
        let mut sender = uploader;
        let mut i = 0u32;
        while !stop.load(Ordering::SeqCst) {
            i += 1;
            let bytes: Vec<u8> = (0..256 * 1024).map(|j: u32| (j.wrapping_mul(31) ^ i) as u8).collect();
            let path = files.path().join(format!("f{i}"));
            std::fs::write(&path, &bytes).unwrap();
            let id = sender.send_file("user3", &path, false).await.unwrap();
            let out = files.path().join(format!("got{i}"));
            downloader.get_file(id, &out, false).await.unwrap();
            assert!(std::fs::read(&out).unwrap() == bytes, "file {i} changed");
            std::fs::remove_file(&path).unwrap();
            std::fs::remove_file(&out).unwrap();
            transfers.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    };

    // Guessing: wrong passwords for user5, five a second; only 401 or 429 may come back.
    let guesses = Mutex::new(BTreeMap::<String, u64>::new());
    let guessing = async {
        let client = Client::new(&url).unwrap();
        while !stop.load(Ordering::SeqCst) {
            let code = match client.login("user5", "not the password").await {
                Err(ClientError::Api(e)) => e.error,
                other => panic!("a wrong password got {other:?}"),
            };
            assert!(matches!(code, ErrorCode::InvalidCredentials | ErrorCode::RateLimited), "{code:?}");
            *guesses.lock().unwrap().entry(code.as_str().to_owned()).or_default() += 1;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };

    let ((), (), (), (), (), ()) = tokio::join!(senders, history, reconnects, attachments, guessing, stopper);
    let sent: Vec<_> = sender_threads.into_iter().map(|t| t.join().unwrap()).collect();
    // Let the relay settle, then take the last samples.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after =
        Sample { at: started.elapsed().as_secs_f64(), rss_kib: status_kib(pid, "VmRSS:"), fds: fds(pid) };
    stop.store(true, Ordering::SeqCst);
    sampler.join().unwrap();

    // Nothing lost or doubled: each conversation holds exactly what its sender had acknowledged.
    let mut total = 0;
    let mut reconnects_total = 0;
    let mut checker = Client::new(&url).unwrap().login("user0", "password-of-user0").await.unwrap();
    for (i, (sent, acked, connects)) in sent.iter().enumerate() {
        assert_eq!(acked.len(), sent.len(), "user{i}: every message acknowledged");
        // The relay drops a socket that falls 512 frames behind; a sender here is also a busy
        // recipient, and reads all the while (its sends wait in the group commit, not in its
        // connection's loop), so it is never dropped.
        reconnects_total += connects - 1;
        total += sent.len();
        if i == 0 {
            let history = checker.history("user1", u32::MAX).await.unwrap();
            let texts: Vec<String> = history.iter().map(|m| m.text()).collect();
            let want: Vec<String> = sent.iter().map(|(_, t)| t.clone()).collect();
            assert_eq!(texts, want, "user0's messages, each once, in order");
        }
    }

    let samples = samples.lock().unwrap().clone();
    let warm: Vec<&Sample> = samples.iter().filter(|s| s.at >= 10.0).collect();
    let third = (warm.len() / 3).max(1);
    let first: Vec<u64> = warm[..third].iter().map(|s| s.rss_kib).collect();
    let last: Vec<u64> = warm[warm.len() - third..].iter().map(|s| s.rss_kib).collect();
    let peak = samples.iter().map(|s| s.rss_kib).max().unwrap_or(0);
    let fd_peak = samples.iter().map(|s| s.fds).max().unwrap_or(0);
    let fd_start = samples.first().map(|s| s.fds).unwrap_or(0);
    let hwm = status_kib(pid, "VmHWM:");
    println!("senders resumed after the relay dropped them as too slow: {reconnects_total} times");
    let commits = metric(&url, "sealroom_store_commits_total").await.unwrap_or(0.0);
    let writes = metric(&url, "sealroom_store_writes_total").await.unwrap_or(0.0);
    println!(
        "group commit: {writes} writes in {commits} commits ({:.1} per commit)",
        writes / commits.max(1.0)
    );
    assert_eq!(reconnects_total, 0, "no sender was dropped as too slow");
    println!(
        "soak {secs} s: {total} messages ({:.0}/s), {} history pages, {} reconnect storms of 20, {} file round trips, \
         wrong-password answers {:?}",
        total as f64 / secs as f64,
        pages.load(Ordering::Relaxed),
        storms.load(Ordering::Relaxed),
        transfers.load(Ordering::Relaxed),
        guesses.lock().unwrap()
    );
    println!(
        "relay RSS: median {:.1} MiB in the first third, {:.1} MiB in the last, peak {:.1} MiB (VmHWM {:.1}), {:.1} MiB after; \
         fds: {fd_start} at start, peak {fd_peak}, {} after",
        median(&first) as f64 / 1024.0,
        median(&last) as f64 / 1024.0,
        peak as f64 / 1024.0,
        hwm as f64 / 1024.0,
        after.rss_kib as f64 / 1024.0,
        after.fds
    );
    // Flat: the last third's memory within 20% (plus 8 MiB) of the first third's; descriptors
    // back to where they were once the load stops (the storms' sockets closed).
    assert!(
        median(&last) <= median(&first) * 6 / 5 + 8 * 1024,
        "memory grew: {} KiB → {} KiB",
        median(&first),
        median(&last)
    );
    assert!(after.fds <= fd_start + 8, "descriptors leaked: {fd_start} at start, {} after", after.fds);
    let log = std::fs::read_to_string(server.log_path()).unwrap();
    assert!(!log.contains("panicked") && !log.contains("ERROR"), "the relay logged errors");
}
