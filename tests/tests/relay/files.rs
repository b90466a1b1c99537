//! Encrypted attachments through a real relay: streaming round trips from 0 bytes to 50 MiB,
//! ciphertext-only storage, tamper and truncation detection, access control, limits, quota,
//! garbage collection, and the CLI's `send-file` / `get-file`.

use std::collections::HashSet;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::Method;
use sealroom_client::{ClientError, Session};
use sealroom_crypto::{FileRef, Payload};
use sealroom_protocol::{
    blob_size_for, BlobId, ClientFrame, ErrorCode, HistoryQuery, MessageId, ServerFrame,
};
use sealroom_tests::{expect_frame, raw, TestServer};

/// Deterministic, incompressible-looking bytes (xorshift64*).
fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

async fn file_of(session: &mut Session, id: MessageId) -> FileRef {
    match session.message(id).await.unwrap().payload {
        Payload::File(f) => f,
        other => panic!("not a file: {other:?}"),
    }
}

fn blob_files(server: &TestServer) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(server.data_dir().join("blobs"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn part_files(server: &TestServer) -> usize {
    std::fs::read_dir(server.data_dir().join("blobs").join("tmp")).unwrap().count()
}

#[tokio::test]
async fn files_of_every_size_round_trip_and_the_relay_stores_only_ciphertext() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut alice = server.register("alice").await;
    let mut bob = server.register("bob").await;

    let chunk = 65_536;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty.bin", vec![]),
        ("one.txt", b"x".to_vec()),
        ("chunk.bin", pseudo_random(chunk, 1)),
        ("chunk-plus-one.bin", pseudo_random(chunk + 1, 2)),
        ("many chunks — ü.dat", pseudo_random(5 * chunk + 12_345, 3)),
        ("big.bin", pseudo_random(50 << 20, 4)),
    ];
    for (name, bytes) in &cases {
        let path = write(dir.path(), name, bytes);
        let id = alice.send_file("bob", &path, false).await.unwrap();
        let file = file_of(&mut bob, id).await;
        assert_eq!((file.name.as_str(), file.size), (*name, bytes.len() as u64));
        // The relay holds exactly the STREAM ciphertext: one tag per chunk.
        let stored = std::fs::metadata(server.data_dir().join("blobs").join(&file.blob_id)).unwrap().len();
        assert_eq!(stored, blob_size_for(bytes.len() as u64), "{name}");

        let out = dir.path().join(format!("got-{name}"));
        let got = bob.get_file(id, &out, false).await.unwrap();
        assert_eq!(got.ciphertext_sha256, file.ciphertext_sha256);
        assert!(std::fs::read(&out).unwrap() == *bytes, "{name} round trip");
        // The sender can fetch their own file too.
        let mine = dir.path().join(format!("mine-{name}"));
        alice.get_file(id, &mine, false).await.unwrap();
        assert!(std::fs::read(&mine).unwrap() == *bytes, "{name} for the sender");
    }
    assert_eq!(part_files(&server), 0, "no part files left");

    // Low-entropy plaintext (repeated text): no 32-byte run of it appears in the stored blob.
    let text = "Quarterly numbers, draft 3 — do not forward. ".repeat(8_000);
    let path = write(dir.path(), "notes.txt", text.as_bytes());
    let id = alice.send_file("bob", &path, false).await.unwrap();
    let file = file_of(&mut bob, id).await;
    assert_eq!(file.mime, "text/plain");
    let runs: HashSet<&[u8]> = text.as_bytes().windows(32).collect();
    let blob = std::fs::read(server.data_dir().join("blobs").join(&file.blob_id)).unwrap();
    assert!(blob.windows(32).all(|w| !runs.contains(w)), "the blob shares a 32-byte run with the file");
    // Nor does the name, anywhere the relay writes.
    for (p, bytes) in server.all_stored_bytes() {
        assert!(!bytes.windows(9).any(|w| w == b"notes.txt"), "file name in {}", p.display());
    }
}

#[tokio::test]
async fn a_tampered_or_truncated_blob_is_refused_and_nothing_is_written() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut alice = server.register("alice").await;
    let mut bob = server.register("bob").await;
    let bytes = pseudo_random(3 * 65_536 + 100, 9);
    let id = alice.send_file("bob", &write(dir.path(), "f.bin", &bytes), false).await.unwrap();
    let file = file_of(&mut bob, id).await;
    let blob_path = server.data_dir().join("blobs").join(&file.blob_id);
    let original = std::fs::read(&blob_path).unwrap();
    let out = dir.path().join("out.bin");

    let mut flipped = original.clone();
    flipped[100_000] ^= 1;
    let enc = 65_552;
    let attacks: Vec<(&str, Vec<u8>)> = vec![
        ("one flipped bit", flipped),
        ("cut at a chunk boundary", original[..2 * enc].to_vec()),
        ("cut inside a chunk", original[..2 * enc + 500].to_vec()),
        ("cut inside a tag", original[..original.len() - 3].to_vec()),
        ("a chunk appended", [original.as_slice(), &original[..enc]].concat()),
        ("chunks swapped", [&original[enc..2 * enc], &original[..enc], &original[2 * enc..]].concat()),
        ("another file", pseudo_random(original.len(), 10)),
    ];
    for (what, bad) in attacks {
        std::fs::write(&blob_path, &bad).unwrap();
        let err = bob.get_file(id, &out, false).await.unwrap_err();
        assert!(matches!(err, ClientError::FileCorrupted), "{what}: {err}");
        assert!(err.to_string().contains("corrupted or was tampered with"), "{err}");
        assert!(!out.exists(), "{what}: nothing written");
        let leftovers: Vec<_> =
            std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(leftovers.len(), 1, "{what}: no part file: {leftovers:?}");
    }
    std::fs::write(&blob_path, &original).unwrap();
    bob.get_file(id, &out, false).await.unwrap();
    assert!(std::fs::read(&out).unwrap() == bytes);
    // An existing file is not replaced without --force (the library's `overwrite`).
    let err = bob.get_file(id, &out, false).await.unwrap_err();
    assert!(err.to_string().contains("exists"), "{err}");
    bob.get_file(id, &out, true).await.unwrap();
}

#[tokio::test]
async fn only_the_conversations_members_can_download_and_clearing_frees_the_blob() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut alice = server.register("alice").await;
    let mut bob = server.register("bob").await;
    let mut carol = server.register("carol").await;
    let id =
        alice.send_file("bob", &write(dir.path(), "a.png", &pseudo_random(70_000, 5)), false).await.unwrap();
    let file = file_of(&mut bob, id).await;
    assert_eq!(file.mime, "image/png");
    let url = format!("{}/api/blobs/{}", server.url, file.blob_id);
    let get = |token: Option<String>| {
        let url = url.clone();
        async move { raw(Method::GET, &url, token.as_deref(), None).await }
    };
    assert_eq!(get(Some(bob.token().into())).await.0, 200);
    // Carol: the blob and the message are as absent as an unknown id.
    let (status, body, _) = get(Some(carol.token().into())).await;
    assert_eq!((status.as_u16(), body["error"].as_str()), (404, Some("not_found")));
    let (status, _, _) =
        raw(Method::GET, &format!("{}/api/messages/{id}", server.url), Some(carol.token()), None).await;
    assert_eq!(status, 404);
    for bad in ["AAAAAAAAAAAAAAAAAAAAAA", "..%2F..%2Fsealroom.db", "not-an-id"] {
        let (status, _, _) =
            raw(Method::GET, &format!("{}/api/blobs/{bad}", server.url), Some(bob.token()), None).await;
        assert_eq!(status, 404, "{bad}");
    }
    assert_eq!(get(None).await.0, 401);
    assert!(
        matches!(carol.get_file(id, &dir.path().join("c"), false).await, Err(ClientError::Api(e)) if e.error == ErrorCode::NotFound)
    );

    // Carol cannot attach alice's blob to her own message to get at it.
    let (cmid, env) =
        carol.encrypt_to(&"bob".parse().unwrap(), &Payload::Text("x".into()), false).await.unwrap();
    let mut ws = carol.connect().await.unwrap();
    ws.send(&ClientFrame::Send {
        conversation: carol.conversation_with(&"bob".parse().unwrap()).await.unwrap(),
        client_msg_id: cmid,
        envelope: env,
        blobs: vec![BlobId::parse(&file.blob_id).unwrap()],
    })
    .await
    .unwrap();
    let f = expect_frame(&mut ws, "error", |f| matches!(f, ServerFrame::Error { .. })).await;
    assert!(
        matches!(f, ServerFrame::Error { code: ErrorCode::UnknownBlob, client_msg_id: Some(c), .. } if c == cmid),
        "{f:?}"
    );
    assert!(bob.history_raw("carol", &HistoryQuery::default()).await.is_err(), "nothing stored");

    // An uploaded blob no message references is nobody's to download, not even the peer's.
    let upload = alice.upload_file(&write(dir.path(), "unsent.bin", b"unsent")).await.unwrap();
    let (status, _, _) =
        raw(Method::GET, &format!("{}/api/blobs/{}", server.url, upload.blob_id), Some(bob.token()), None)
            .await;
    assert_eq!(status, 404);
    // Its uploader can withdraw it; nobody else can, and a sent one cannot be withdrawn.
    assert!(carol.delete_upload(&upload.blob_id).await.is_err());
    assert!(alice.delete_upload(&BlobId::parse(&file.blob_id).unwrap()).await.is_err());
    alice.delete_upload(&upload.blob_id).await.unwrap();
    assert!(!blob_files(&server).contains(&upload.blob_id.to_string()));

    // Bob clears for himself: he loses access, alice keeps it, the file stays.
    bob.clear("alice", false).await.unwrap();
    assert_eq!(get(Some(bob.token().into())).await.0, 404);
    assert_eq!(get(Some(alice.token().into())).await.0, 200);
    assert!(blob_files(&server).contains(&file.blob_id));
    // Alice clears too: no message references it any more, so the blob is deleted.
    alice.clear("bob", false).await.unwrap();
    assert_eq!(get(Some(alice.token().into())).await.0, 404);
    assert_eq!(blob_files(&server), Vec::<String>::new());
    let info = alice.storage().await.unwrap();
    assert_eq!(info.used, 0, "the quota is given back");
}

/// Sends a raw HTTP/1.1 upload (`body` written after the head) and returns (status, JSON body).
fn raw_upload(server: &TestServer, token: &str, head_extra: &str, body: &[u8]) -> (u16, serde_json::Value) {
    let addr = server.url.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "POST /api/blobs HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n{head_extra}\r\n"
    )
    .unwrap();
    let _ = s.write_all(body);
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let text = String::from_utf8_lossy(&resp).into_owned();
    let status = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let json = text.split("\r\n\r\n").nth(1).and_then(|b| serde_json::from_str(b).ok()).unwrap_or_default();
    (status, json)
}

fn chunked(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for piece in body.chunks(16_384) {
        out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        out.extend_from_slice(piece);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

#[tokio::test]
async fn uploads_over_the_limit_or_quota_get_clear_errors_and_leave_nothing_behind() {
    let server = TestServer::start_with(&["--max-upload", "1M", "--user-quota", "3M"]);
    let dir = tempfile::tempdir().unwrap();
    let mut alice = server.register("alice").await;
    let _bob = server.register("bob").await;
    let info = alice.storage().await.unwrap();
    assert_eq!((info.max_file_size, info.quota, info.used), (1 << 20, 3 << 20, 0));
    assert_eq!(info.max_blob_size, blob_size_for(1 << 20));

    // The client refuses before sending a byte, with the relay's code.
    let big = write(dir.path(), "big.bin", &pseudo_random((1 << 20) + 1, 6));
    let err = alice.send_file("bob", &big, false).await.unwrap_err();
    assert!(matches!(&err, ClientError::Api(e) if e.error == ErrorCode::PayloadTooLarge), "{err}");
    assert!(err.to_string().contains("too large"), "{err}");

    // The relay refuses a declared length over the limit before reading the body…
    let token = alice.token().to_owned();
    let over = blob_size_for(1 << 20) + 1;
    let (status, body) = raw_upload(&server, &token, &format!("Content-Length: {over}\r\n"), &[]);
    assert_eq!((status, body["error"].as_str()), (413, Some("payload_too_large")), "{body}");
    // …and a chunked body (no length) as soon as it passes the limit.
    let body_bytes = chunked(&pseudo_random(over as usize, 7));
    let (status, body) = raw_upload(&server, &token, "Transfer-Encoding: chunked\r\n", &body_bytes);
    assert_eq!((status, body["error"].as_str()), (413, Some("payload_too_large")), "{body}");
    // An empty upload is refused too.
    let (status, body) = raw_upload(&server, &token, "Content-Length: 0\r\n", &[]);
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_length")), "{body}");
    // A connection cut mid-upload leaves no part file.
    let addr = server.url.trim_start_matches("http://").to_owned();
    {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        write!(s, "POST /api/blobs HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Length: 500000\r\n\r\n").unwrap();
        s.write_all(&pseudo_random(200_000, 8)).unwrap();
        std::thread::sleep(Duration::from_millis(300));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while part_files(&server) > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(part_files(&server), 0, "the cut-off upload's part file is gone");
    assert_eq!(blob_files(&server), Vec::<String>::new(), "nothing stored");
    assert_eq!(alice.storage().await.unwrap().used, 0);

    // Quota: two files of 1 MiB fit in 3 MiB, a third does not.
    let one_mib = write(dir.path(), "m.bin", &pseudo_random(1 << 20, 11));
    let first = alice.upload_file(&one_mib).await.unwrap();
    alice.send_file("bob", &one_mib, false).await.unwrap();
    let err = alice.upload_file(&one_mib).await.unwrap_err();
    assert!(matches!(&err, ClientError::Api(e) if e.error == ErrorCode::QuotaExceeded), "{err}");
    assert!(err.to_string().contains("quota"), "{err}");
    // The relay enforces it on its own, for a client that does not check.
    let (status, body) =
        raw_upload(&server, &token, &format!("Content-Length: {}\r\n", 1 << 20), &pseudo_random(1 << 20, 12));
    assert_eq!((status, body["error"].as_str()), (413, Some("quota_exceeded")), "{body}");
    assert_eq!(blob_files(&server).len(), 2);
    // Withdrawing the unsent upload makes room again.
    alice.delete_upload(&first.blob_id).await.unwrap();
    alice.send_file("bob", &one_mib, false).await.unwrap();
    assert_eq!(alice.storage().await.unwrap().used, 2 * blob_size_for(1 << 20));
    assert_eq!(part_files(&server), 0);
}

#[tokio::test]
async fn unsent_uploads_expire_and_stray_files_are_swept_at_start() {
    let mut server = TestServer::start_with(&["--unattached-ttl", "1s"]);
    let dir = tempfile::tempdir().unwrap();
    let alice = server.register("alice").await;
    let _bob = server.register("bob").await;
    let unsent = alice.upload_file(&write(dir.path(), "u.bin", b"never sent")).await.unwrap();
    assert_eq!(blob_files(&server), vec![unsent.blob_id.to_string()]);
    let mut alice_sends = server.client().login("alice", "password-of-alice").await.unwrap();
    let sent = alice_sends.send_file("bob", &write(dir.path(), "s.bin", b"sent"), false).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    server.stop();
    // A crash could leave a part file, or a blob file without a row.
    std::fs::write(server.data_dir().join("blobs").join("tmp").join("x.part"), b"half").unwrap();
    std::fs::write(server.data_dir().join("blobs").join("BBBBBBBBBBBBBBBBBBBBBB"), b"stray").unwrap();
    server.start_again_same_port();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while blob_files(&server).len() != 1 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut bob = server.client().login("bob", "password-of-bob").await.unwrap();
    let file = file_of(&mut bob, sent).await;
    assert_eq!(blob_files(&server), vec![file.blob_id.clone()], "only the sent file is left");
    assert_eq!(part_files(&server), 0);
    bob.get_file(sent, &dir.path().join("s-out"), false).await.unwrap();
}

#[test]
fn the_cli_sends_and_fetches_files() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let ok = |out: std::process::Output| {
        assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    ok(server.cli("alice", "pass-phrase-a", &["register"]));
    ok(server.cli("bob", "pass-phrase-b", &["register"]));
    let bytes = pseudo_random(300_000, 13);
    let src = write(dir.path(), "photo.jpg", &bytes);
    // Both speak MLS: the file goes in their conversation's group, named by its position.
    let id = ok(server.cli("alice", "pass-phrase-a", &["send-file", "bob", src.to_str().unwrap()]));
    let id = id.trim();
    assert!(id.starts_with('#') && id.contains('/'), "prints #CONVERSATION/POSITION: {id}");
    let history = ok(server.cli("bob", "pass-phrase-b", &["history", "alice"]));
    assert!(history.contains("[file photo.jpg (300000 bytes, image/jpeg)]"), "{history}");
    let out = dir.path().join("received.jpg");
    let line = ok(server.cli("bob", "pass-phrase-b", &["get-file", id, out.to_str().unwrap()]));
    assert_eq!(line.trim_end(), "photo.jpg\t300000\timage/jpeg");
    assert!(std::fs::read(&out).unwrap() == bytes);

    let fail = |out: std::process::Output, needle: &str| {
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "expected {needle:?} in {err}");
    };
    fail(server.cli("bob", "pass-phrase-b", &["get-file", id, out.to_str().unwrap()]), "exists (use --force");
    ok(server.cli("bob", "pass-phrase-b", &["get-file", "--force", id, out.to_str().unwrap()]));
    let text_id = ok(server.cli("alice", "pass-phrase-a", &["send", "bob", "just text"]));
    fail(server.cli("bob", "pass-phrase-b", &["get-file", text_id.trim(), "x"]), "is not a file");
    fail(server.cli("bob", "pass-phrase-b", &["get-file", "999999", "x"]), "not_found");
    fail(
        server.cli("alice", "pass-phrase-a", &["send-file", "bob", "/nonexistent/file"]),
        "cannot read /nonexistent/file",
    );
    ok(server.cli("carol", "pass-phrase-c", &["register"]));
    fail(server.cli("carol", "pass-phrase-c", &["get-file", id, "y"]), "no message");

    // dave has never had an MLS device: to him the file goes as a version 1 message.
    tokio::runtime::Runtime::new().unwrap().block_on(server.register("dave"));
    let v1 = ok(server.cli("alice", "pass-phrase-a", &["send-file", "dave", src.to_str().unwrap()]));
    let v1 = v1.trim();
    assert!(v1.parse::<u64>().is_ok(), "prints the message id: {v1}");
    let for_dave = dir.path().join("for-dave.jpg");
    let line = ok(server.cli("dave", "password-of-dave", &["get-file", v1, for_dave.to_str().unwrap()]));
    assert_eq!(line.trim_end(), "photo.jpg\t300000\timage/jpeg");
    assert!(std::fs::read(&for_dave).unwrap() == bytes);
    fail(server.cli("carol", "pass-phrase-c", &["get-file", v1, "y"]), "not_found");
}

#[tokio::test]
async fn malformed_attachment_requests_get_clear_errors_and_store_nothing() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut alice = server.register("alice").await;
    let bob = server.register("bob").await;

    // No session: no upload, and nothing lands on disk.
    let (status, body, _) = raw(
        Method::POST,
        &format!("{}/api/blobs", server.url),
        None,
        Some(("application/octet-stream", "x")),
    )
    .await;
    assert_eq!((status.as_u16(), body["error"].as_str()), (401, Some("unauthorized")));
    assert_eq!(blob_files(&server), Vec::<String>::new());

    // Message ids that are not numbers, or not anyone's, are simply not found.
    for bad in ["abc", "-1", "99999999999999999999", "1.5"] {
        let (status, body, _) =
            raw(Method::GET, &format!("{}/api/messages/{bad}", server.url), Some(bob.token()), None).await;
        assert_eq!((status.as_u16(), body["error"].as_str()), (404, Some("not_found")), "{bad}");
    }
    // Withdrawing a malformed or unknown id is a 404 as well.
    for bad in ["nope", "AAAAAAAAAAAAAAAAAAAAAA"] {
        let (status, _, _) =
            raw(Method::DELETE, &format!("{}/api/blobs/{bad}", server.url), Some(alice.token()), None).await;
        assert_eq!(status, 404, "{bad}");
    }

    // More than eight blobs in one `send` is refused, and nothing is stored or linked.
    let mut ids = Vec::new();
    for i in 0..9 {
        ids.push(
            alice.upload_file(&write(dir.path(), &format!("f{i}"), &[i as u8; 10])).await.unwrap().blob_id,
        );
    }
    let (cmid, env) =
        alice.encrypt_to(&"bob".parse().unwrap(), &Payload::Text("nine".into()), false).await.unwrap();
    let mut ws = alice.connect().await.unwrap();
    let conversation = alice.conversation_with(&"bob".parse().unwrap()).await.unwrap();
    ws.send(&ClientFrame::Send {
        conversation,
        client_msg_id: cmid,
        envelope: env.clone(),
        blobs: ids.clone(),
    })
    .await
    .unwrap();
    let f = expect_frame(&mut ws, "error", |f| matches!(f, ServerFrame::Error { .. })).await;
    assert!(
        matches!(&f, ServerFrame::Error { code: ErrorCode::InvalidField, message, client_msg_id: Some(c) }
        if *c == cmid && message.contains("at most 8")),
        "{f:?}"
    );
    assert!(bob.history_raw("alice", &HistoryQuery::default()).await.is_err(), "nothing stored");
    // A repeated id is linked once; the same message then goes through with eight.
    let mut eight = ids[..8].to_vec();
    eight[7] = eight[0].clone();
    let id = ws.send_with_blobs_and_wait(conversation, cmid, env, eight).await.unwrap();
    assert!(id.0 > 0);
    // The unsent ninth is still the uploader's to withdraw; the sent ones are not.
    alice.delete_upload(&ids[8]).await.unwrap();
    assert!(alice.delete_upload(&ids[0]).await.is_err());
}
