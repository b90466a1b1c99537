//! Crash safety: the relay is killed with SIGKILL at random moments while clients pipeline
//! sends, stream uploads and rewrite a key backup. After every restart the clients resume by
//! themselves (the client core's outbox resends what was not acknowledged), and in the end
//! every acknowledged message, blob and backup write is there exactly once, nothing is half
//! stored, and no file is left without its row.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sealroom_client::{ClientError, Session, Upload};
use sealroom_crypto::Payload;
use sealroom_protocol::{MessageId, Username};
use sealroom_tests::{send_until_stopped, Database, Rng, TestServer};

/// How many times the relay is killed.
const KILLS: usize = 5;
/// Users whose keys the backup writer marks verified, one backup write each.
const PEERS: usize = 6;

fn password(name: &str) -> String {
    format!("password-of-{name}")
}

async fn login(url: &str, name: &str) -> Session {
    sealroom_client::Client::new(url).unwrap().login(name, &password(name)).await.unwrap()
}

/// Alice's second device: streams files of 100–400 KiB; an upload the relay answered is
/// recorded with its bytes, one cut by a crash is retried as a new upload.
async fn upload_until_stopped(alice: Session, dir: PathBuf, stop: Arc<AtomicBool>) -> Vec<(Upload, Vec<u8>)> {
    let mut done = Vec::new();
    let mut attempt = 0u32;
    while !stop.load(Ordering::SeqCst) {
        attempt += 1;
        let bytes: Vec<u8> = (0..(100 * 1024 + (attempt as usize * 37_123) % (300 * 1024)))
            .map(|i| (i as u32).wrapping_mul(2_654_435_761).wrapping_add(attempt) as u8)
            .collect();
        let path = dir.join(format!("file-{attempt}.bin"));
        std::fs::write(&path, &bytes).unwrap();
        match alice.upload_file(&path).await {
            Ok(up) => done.push((up, bytes)),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
        // A steady trickle, so that uploads are under way at every kill without piling up.
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    done
}

/// Alice's third device: marks each peer's key verified, one key-backup write each (with the
/// expected version, so a write the relay lost would be refused, not silently replace). A
/// write cut by a crash is retried; the ones that returned Ok are recorded.
async fn verify_peers(mut alice: Session, peers: Vec<String>, stop: Arc<AtomicBool>) -> Vec<String> {
    let mut verified = Vec::new();
    for peer in peers {
        loop {
            match alice.mark_verified(&peer).await {
                Ok(()) => {
                    verified.push(peer);
                    break;
                }
                Err(ClientError::Http(_) | ClientError::WebSocket(_) | ClientError::Timeout) => {
                    tokio::time::sleep(Duration::from_millis(30)).await;
                }
                Err(e) if stop.load(Ordering::SeqCst) => {
                    panic!("backup write failed after the last restart: {e}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(30)).await,
            }
        }
        // Spread over the kills (they come 0.3 to 1.5 s apart).
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    verified
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_at_random_moments_loses_nothing_acknowledged() {
    let server = TestServer::start();
    let url = server.url.clone();
    let peers: Vec<String> = (0..PEERS).map(|i| format!("peer{i}")).collect();
    let mut alice = server.register("alice").await;
    let mut bob_session = server.register("bob").await;
    for p in &peers {
        server.register(p).await;
    }
    let bob = Username::parse("bob").unwrap();
    let conversation = alice.conversation_with(&bob).await.unwrap();
    alice.peer_key(&bob, false).await.unwrap();
    let uploader = login(&url, "alice").await;
    let verifier = login(&url, "alice").await;
    let files = tempfile::tempdir().unwrap();

    // Kill at random moments while all three write (from a thread of its own: the clients'
    // futures are not Send and share this task); restart on the same address so that the
    // clients find it again by themselves.
    let stop = Arc::new(AtomicBool::new(false));
    let killer = {
        let stop = stop.clone();
        let mut server = server;
        std::thread::spawn(move || {
            let mut rng = Rng::seeded(Rng::seed_from_env("SEALROOM_CRASH_SEED"));
            for _ in 0..KILLS {
                std::thread::sleep(Duration::from_millis(300 + rng.below(900)));
                server.kill();
                std::thread::sleep(Duration::from_millis(rng.below(300)));
                server.start_again_same_port();
            }
            std::thread::sleep(Duration::from_millis(500));
            stop.store(true, Ordering::SeqCst);
            server
        })
    };
    let ((sent, acked, reconnects), uploads, verified) =
        tokio::time::timeout(Duration::from_secs(180), async {
            tokio::join!(
                send_until_stopped(alice, bob.clone(), conversation, stop.clone(), None),
                upload_until_stopped(uploader, files.path().to_owned(), stop.clone()),
                verify_peers(verifier, peers.clone(), stop.clone()),
            )
        })
        .await
        .expect("the clients finish after the last restart");
    let server = killer.join().unwrap();
    eprintln!(
        "sent {} messages ({} reconnects), {} uploads, {} backup writes",
        sent.len(),
        reconnects,
        uploads.len(),
        verified.len()
    );
    assert!(reconnects > KILLS, "the sender reconnected only {reconnects} times: the kills missed it");
    assert!(sent.len() > 50 && !uploads.is_empty(), "too little work happened around the kills");
    assert_eq!(verified, peers, "every backup write finishes, retried by the client");

    // Messages: every one the sender queued is stored exactly once, under the id its ack named,
    // and reads as what was sealed.
    assert_eq!(acked.len(), sent.len(), "the outbox drained, so every message was acknowledged");
    let history = bob_session.history("alice", 100_000).await.unwrap();
    let mut stored: BTreeMap<String, Vec<MessageId>> = BTreeMap::new();
    for m in &history {
        stored.entry(m.text()).or_default().push(m.id);
    }
    assert_eq!(history.len(), sent.len(), "stored messages: one row per message sent, no more");
    for (client_msg_id, text) in &sent {
        let ids = stored.get(text).unwrap_or_else(|| panic!("{text} was acknowledged but is gone"));
        assert_eq!(ids, &vec![acked[client_msg_id]], "{text}: stored once, under the acknowledged id");
    }

    // Blobs: every acknowledged upload is whole and reaches Bob bit for bit; no part files are
    // left, and every blob file has its row and every row its file.
    let blob_dir = server.data_dir().join("blobs");
    assert_eq!(std::fs::read_dir(blob_dir.join("tmp")).unwrap().count(), 0, "part files left behind");
    let mut on_disk: Vec<String> = std::fs::read_dir(&blob_dir)
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let mut rows = server.sql_rows("SELECT id FROM blobs ORDER BY id");
    rows.sort();
    assert_eq!(on_disk, rows, "blob files and blob rows differ");
    let mut sender = login(&url, "alice").await;
    let mut conn = sender.connect().await.unwrap();
    for (up, bytes) in &uploads {
        assert!(rows.contains(&up.blob_id.to_string()), "acknowledged upload {} is gone", up.blob_id);
        let (client_msg_id, envelope) =
            sender.encrypt_to(&bob, &Payload::File(up.file.clone()), false).await.unwrap();
        let id = conn
            .send_with_blobs_and_wait(conversation, client_msg_id, envelope, vec![up.blob_id.clone()])
            .await
            .unwrap();
        let out = files.path().join(format!("received-{}", up.blob_id));
        bob_session.get_file(id, &out, false).await.unwrap();
        assert!(std::fs::read(&out).unwrap() == *bytes, "upload {} changed", up.blob_id);
    }
    conn.close().await;

    // The key backup: a fresh sign-in unseals it, and every acknowledged write is in it.
    let fresh = login(&url, "alice").await;
    for p in &peers {
        assert!(fresh.pins().get(p).is_some_and(|pin| pin.verified), "the write verifying {p} was lost");
    }

    // And the database is sound (SQLite's own check; PostgreSQL was never killed here).
    if server.database() == Database::Sqlite {
        assert_eq!(server.sql_rows("PRAGMA integrity_check"), vec!["ok".to_owned()]);
    }
}
