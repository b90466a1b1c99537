//! Issue 12's findings about password work, each reproduced against a real relay: a burst of
//! logins without an account, parallel guesses past a limit, locking the owner out, unlimited
//! password changes, and forwarding headers from anyone.

use sealroom_tests::TestServer;

const WRONG_KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

/// A login with a wrong key, from `from` (an `X-Forwarded-For` address) when given.
async fn wrong_login(url: &str, name: &str, from: Option<&str>) -> (u16, Option<String>, Option<String>) {
    let mut req = reqwest::Client::new()
        .post(format!("{url}/api/login"))
        .header("content-type", "application/json")
        .body(format!(r#"{{"username":"{name}","auth_key":"{WRONG_KEY}"}}"#));
    if let Some(ip) = from {
        req = req.header("x-forwarded-for", ip);
    }
    let resp = req.send().await.expect("answered");
    let status = resp.status().as_u16();
    let retry = resp.headers().get("retry-after").map(|v| v.to_str().unwrap_or_default().to_owned());
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    (status, body["error"].as_str().map(str::to_owned), retry)
}

/// The relay's peak resident memory, from /proc.
fn peak_rss_mib(server: &TestServer) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid().unwrap())).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kib / 1024
}

/// Found: 150 parallel logins from one IP were all answered 401, none 429, and the relay grew
/// from 19 MiB to 2.5 GiB. Now at most `--max-password-hashes` Argon2id run at once, a few
/// more wait, the rest get 429 with Retry-After, and memory stays flat. The requests come
/// "from" 150 addresses through a trusted proxy, so only the hash gate can hold them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_logins_without_an_account_is_bounded_by_the_hash_gate() {
    let server = TestServer::start_with(&["--trusted-proxy", "127.0.0.1", "--max-password-hashes", "2"]);
    let url = server.url.clone();
    let before = peak_rss_mib(&server);
    let answers =
        futures_util::future::join_all((0..150).map(|i| {
            let url = url.clone();
            async move {
                wrong_login(&url, &format!("nobody{i}"), Some(&format!("198.51.100.{}", i % 250 + 1))).await
            }
        }))
        .await;
    let unauthorized = answers.iter().filter(|a| a.0 == 401).count();
    let busy: Vec<_> = answers.iter().filter(|a| a.0 == 429).collect();
    assert_eq!(unauthorized + busy.len(), 150, "every request answered 401 or 429: {answers:?}");
    assert!(!busy.is_empty(), "the excess is refused");
    assert!(unauthorized >= 2, "the gate's own share is served");
    for (_, code, retry) in &busy {
        assert_eq!(code.as_deref(), Some("rate_limited"));
        assert!(retry.as_deref().and_then(|r| r.parse::<u64>().ok()).is_some_and(|r| r >= 1), "Retry-After");
    }
    let peak = peak_rss_mib(&server);
    assert!(peak < before + 100, "peak RSS {peak} MiB (was {before} MiB before the burst)");
    // The refusals are counted for operators.
    let refused = sealroom_tests::metric(&url, "sealroom_password_hashes_refused_total").await;
    assert_eq!(refused, Some(busy.len() as f64));
}

/// Found: 40 parallel wrong guesses at one account all ran against a limit of 10. The place
/// is now taken before the password is checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_guesses_at_one_account_never_pass_the_limit() {
    let server = TestServer::start_with(&["--auth-rate-per-user", "10"]);
    server.register("alice").await;
    let url = server.url.clone();
    let answers = futures_util::future::join_all((0..40).map(|_| wrong_login(&url, "alice", None))).await;
    let checked = answers.iter().filter(|a| a.0 == 401).count();
    let refused = answers.iter().filter(|a| a.0 == 429).count();
    assert_eq!(checked + refused, 40, "{answers:?}");
    assert!(checked <= 10, "{checked} guesses were checked against a limit of 10");
}

/// Found: after 10 wrong logins the victim's correct login got 429. Guessing from one address
/// is stopped for that address; from many, wrong guesses get 429 while the owner's right
/// password still signs in.
#[tokio::test]
async fn guessing_does_not_lock_the_owner_out() {
    let server = TestServer::start_with(&["--trusted-proxy", "127.0.0.1", "--auth-rate-per-user", "3"]);
    server.register("alice").await;
    let url = server.url.clone();
    for _ in 0..3 {
        assert_eq!(wrong_login(&url, "alice", Some("203.0.113.1")).await.0, 401);
    }
    let (status, code, retry) = wrong_login(&url, "alice", Some("203.0.113.1")).await;
    assert_eq!((status, code.as_deref()), (429, Some("rate_limited")), "this address is stopped");
    assert!(retry.is_some());
    // The owner, elsewhere (the proxy's own address), signs in.
    server.client().login("alice", "password-of-alice").await.expect("the owner is not locked out");

    // Guesses from many addresses use up the account's budget (10 × 3 per minute): then a
    // wrong password gets 429 from anywhere, and the right one still signs in.
    for i in 2..=11 {
        for _ in 0..3 {
            wrong_login(&url, "alice", Some(&format!("203.0.113.{i}"))).await;
        }
    }
    let (status, _, _) = wrong_login(&url, "alice", Some("203.0.113.200")).await;
    assert_eq!(status, 429, "over the account's budget, a wrong guess is refused");
    server.client().login("alice", "password-of-alice").await.expect("the right password still signs in");
}

/// Found: password changes had no per-IP cap and successes were unlimited (each runs Argon2id
/// twice). Now every change, successful or not, counts against the account.
#[tokio::test]
async fn password_changes_are_capped_successes_included() {
    let server = TestServer::start_with(&["--auth-rate-per-user", "2"]);
    let mut alice = server.register("alice").await;
    alice.change_password("password-of-alice", "a second long secret").await.unwrap();
    alice.change_password("a second long secret", "a third long secret").await.unwrap();
    let err = alice.change_password("a third long secret", "a fourth long secret").await.unwrap_err();
    assert!(err.to_string().contains("rate_limited") || err.to_string().contains("too many"), "{err}");
    // Nothing changed: the third password is still the one.
    server.client().login("alice", "a third long secret").await.unwrap();
}

/// Found: behind a reverse proxy every client shared one bucket, and forwarded headers were
/// believed from anyone. Now they count only from `--trusted-proxy`.
#[tokio::test]
async fn forwarding_headers_count_only_from_trusted_proxies() {
    // Not trusted: a client naming a new address each time still fills its own bucket.
    let server = TestServer::start_with(&["--auth-rate-per-ip", "3"]);
    let url = server.url.clone();
    let alice = server.register("alice").await;
    for i in 0..2 {
        assert_eq!(wrong_login(&url, &format!("xx{i}"), Some(&format!("192.0.2.{i}"))).await.0, 401);
    }
    assert_eq!(wrong_login(&url, "xx9", Some("192.0.2.99")).await.0, 429, "X-Forwarded-For ignored");
    // And a forwarded host does not pass the Origin check.
    let cookie = format!("sealroom_session={}", alice.token());
    let me = |origin: &'static str, forwarded: Option<(&'static str, &'static str)>| {
        let (url, cookie) = (url.clone(), cookie.clone());
        async move {
            let mut req = reqwest::Client::new()
                .get(format!("{url}/api/me"))
                .header("cookie", cookie)
                .header("origin", origin);
            if let Some((k, v)) = forwarded {
                req = req.header(k, v);
            }
            req.send().await.unwrap().status().as_u16()
        }
    };
    assert_eq!(me("http://evil.example", Some(("x-forwarded-host", "evil.example"))).await, 403);
    assert_eq!(me("http://evil.example", Some(("forwarded", "host=evil.example"))).await, 403);

    // Trusted: each client address has its own bucket, and the proxy's host is believed.
    let server = TestServer::start_with(&["--auth-rate-per-ip", "3", "--trusted-proxy", "127.0.0.0/8"]);
    let url = server.url.clone();
    let alice = server.register("alice").await;
    for i in 0..6 {
        assert_eq!(wrong_login(&url, &format!("xx{i}"), Some(&format!("192.0.2.{i}"))).await.0, 401);
    }
    let cookie = format!("sealroom_session={}", alice.token());
    let status = reqwest::Client::new()
        .get(format!("{url}/api/me"))
        .header("cookie", cookie)
        .header("origin", "https://chat.example")
        .header("forwarded", "for=192.0.2.50;host=chat.example;proto=https")
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    assert_eq!(status, 200);
}

/// Found: 3,000 invalid frames got 3,000 replies and no close. Malformed frames now count
/// against the budget like any other, and a flood closes the connection (1008).
#[tokio::test]
async fn a_flood_of_malformed_frames_closes_the_connection() {
    let server = TestServer::start();
    let alice = server.register("alice").await;
    let mut ws = alice.connect().await.unwrap();
    let sender = async {
        for _ in 0..3000 {
            if ws.send_raw("{nope".into()).await.is_err() {
                break;
            }
        }
    };
    sender.await;
    let mut replies = 0;
    let err = loop {
        match ws.next_within(std::time::Duration::from_secs(10)).await {
            Ok(_) => replies += 1,
            Err(e) => break e,
        }
    };
    assert!(err.to_string().contains("1008"), "closed as a flood: {err}");
    assert!(replies <= 1500, "{replies} replies to 3000 bad frames");
}

/// Found: one user opened 400 sockets. Past `--max-connections-per-user` a connection gets a
/// `rate_limited` error and is closed; the others are unaffected.
#[tokio::test]
async fn one_user_cannot_hold_more_connections_than_the_cap() {
    let server = TestServer::start_with(&["--max-connections-per-user", "4"]);
    let alice = server.register("alice").await;
    let mut kept = Vec::new();
    for _ in 0..4 {
        kept.push(alice.connect().await.unwrap());
    }
    for _ in 0..3 {
        // The relay's first frame is the refusal, then it closes (1008).
        assert_refused(&alice, "at most 4").await;
    }
    // The four still work; closing one frees a place.
    a_freed_place_is_taken_again(kept.pop().unwrap(), &alice).await;
}

/// A connection past a limit is refused with `rate_limited` and a message saying which.
async fn assert_refused(who: &sealroom_client::Session, says: &str) {
    match who.connect().await {
        Err(sealroom_client::ClientError::Api(e)) => {
            assert_eq!(e.error, sealroom_protocol::ErrorCode::RateLimited);
            assert!(e.message.contains(says), "{}", e.message);
        }
        other => panic!("expected a rate_limited refusal, got {other:?}"),
    }
}

/// Once `freed` is closed, `who` connects again and the new connection works.
async fn a_freed_place_is_taken_again(freed: sealroom_client::Connection, who: &sealroom_client::Session) {
    freed.close().await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let mut again = who.connect().await.unwrap();
    again
        .send(&sealroom_protocol::ClientFrame::Sync { since: sealroom_protocol::MessageId(0) })
        .await
        .unwrap();
    sealroom_tests::expect_frame(&mut again, "synced", |f| {
        matches!(f, sealroom_protocol::ServerFrame::Synced { .. })
    })
    .await;
}

/// Found: a WebSocket whose handshake was in flight during a logout stayed open and
/// authorized. Now every socket of the revoked session ends, whatever the timing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sockets_opened_during_a_logout_do_not_outlive_it() {
    let server = TestServer::start();
    let alice = server.register("alice").await;
    let token = alice.token().to_owned();
    let url = server.ws_url();
    let opens: Vec<_> = (0..20)
        .map(|_| {
            let (url, token) = (url.clone(), token.clone());
            tokio::spawn(async move { sealroom_client::Connection::open_url(&url, Some(&token)).await })
        })
        .collect();
    let logout = {
        let (base, token) = (server.url.clone(), token.clone());
        tokio::spawn(async move {
            reqwest::Client::new().post(format!("{base}/api/logout")).bearer_auth(token).send().await.unwrap()
        })
    };
    assert!(logout.await.unwrap().status().is_success());
    let mut survivors = 0;
    for open in opens {
        let Ok(Ok(mut ws)) = open.await else { continue };
        // Each opened socket must be told and closed promptly; none may stay usable.
        let ended = loop {
            match ws.next_within(std::time::Duration::from_secs(5)).await {
                Ok(sealroom_protocol::ServerFrame::SessionRevoked { .. }) => continue,
                Ok(_) => continue,
                Err(e) => break !matches!(e, sealroom_client::ClientError::Timeout),
            }
        };
        if !ended {
            survivors += 1;
        }
    }
    assert_eq!(survivors, 0, "sockets still open after the logout");
}

/// Found: 20 `sync` frames of 30 bytes made 836 MiB of output. A sync page now holds about
/// 1 MiB of envelopes at most (and `more` says there is another).
#[tokio::test]
async fn a_sync_page_is_bounded_in_bytes() {
    use sealroom_protocol::{ClientFrame, MessageId, ServerFrame};
    let server = TestServer::start();
    let mut alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let peer: sealroom_protocol::Username = "bob".parse().unwrap();
    let conv = alice.conversation_with(&peer).await.unwrap();
    let mut ws = alice.connect().await.unwrap();
    let big = sealroom_crypto::Payload::Text("x".repeat(60_000));
    for _ in 0..24 {
        let (cmid, env) = alice.encrypt_to(&peer, &big, false).await.unwrap();
        ws.send_and_wait(conv, cmid, env).await.unwrap();
    }
    let mut bob_ws = bob.connect().await.unwrap();
    bob_ws.send(&ClientFrame::Sync { since: MessageId(0) }).await.unwrap();
    let (mut count, mut bytes) = (0, 0);
    loop {
        match bob_ws.next_within(std::time::Duration::from_secs(10)).await.unwrap() {
            ServerFrame::Message { message } => {
                count += 1;
                bytes += message.envelope.as_bytes().len();
            }
            ServerFrame::Synced { more, .. } => {
                assert!(more, "24 large messages do not fit one page");
                break;
            }
            _ => {}
        }
    }
    assert!((1..24).contains(&count), "{count} messages in the first page");
    assert!(bytes <= (1 << 20) + 65_601, "{bytes} bytes in the first page");
}

/// Found: `/metrics` answered anyone. It needs `--metrics-token`; without one, only this
/// machine (behind a trusted proxy, the real client's address counts, not the proxy's).
#[tokio::test]
async fn metrics_need_the_token_or_this_machine() {
    let server =
        TestServer::start_with(&["--metrics-token", "s3cret-metrics", "--trusted-proxy", "127.0.0.1"]);
    assert_eq!(metrics_status(&server, None, None).await, 401);
    assert_eq!(metrics_status(&server, Some("Bearer wrong"), None).await, 401);
    assert_eq!(metrics_status(&server, Some("Bearer s3cret-metrics"), None).await, 200);
    // No token configured: this machine only; a client behind the trusted proxy is not it.
    let server = TestServer::start_with(&["--trusted-proxy", "127.0.0.1"]);
    assert_eq!(metrics_status(&server, None, None).await, 200);
    assert_eq!(metrics_status(&server, None, Some("203.0.113.7")).await, 401);
}

/// `GET /metrics` with an Authorization header and from an X-Forwarded-For address, if given.
async fn metrics_status(server: &TestServer, auth: Option<&str>, from: Option<&str>) -> u16 {
    let mut req = reqwest::Client::new().get(format!("{}/metrics", server.url));
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    if let Some(ip) = from {
        req = req.header("x-forwarded-for", ip);
    }
    req.send().await.unwrap().status().as_u16()
}

/// Found: `expected_version` near i64::MAX overflowed into a 500. Now a clear 400.
#[tokio::test]
async fn a_key_backup_version_that_cannot_be_followed_is_refused() {
    let server = TestServer::start();
    let alice = server.register("alice").await;
    for version in [i64::MAX, -5] {
        let resp = reqwest::Client::new()
            .put(format!("{}/api/me/key-backup", server.url))
            .bearer_auth(alice.token())
            .json(&serde_json::json!({"key_backup": "AQID", "expected_version": version}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 400, "version {version}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "invalid_field");
    }
    // Nothing was stored: the backup still opens.
    server.client().login("alice", "password-of-alice").await.unwrap();
}

/// Found: a `client_msg_id` reused towards another recipient was acked with the first
/// message's id and not stored. Now a true resend is still deduplicated, and a different
/// message under the same id is refused.
#[tokio::test]
async fn a_reused_client_msg_id_is_refused_unless_it_is_a_resend() {
    use sealroom_protocol::{ClientFrame, ErrorCode, ServerFrame};
    let server = TestServer::start();
    let mut alice = server.register("alice").await;
    server.register("bob").await;
    server.register("carol").await;
    let (bob, carol) = ("bob".parse().unwrap(), "carol".parse().unwrap());
    let to_bob = alice.conversation_with(&bob).await.unwrap();
    let to_carol = alice.conversation_with(&carol).await.unwrap();
    let mut ws = alice.connect().await.unwrap();
    let (cmid, env) =
        alice.encrypt_to(&bob, &sealroom_crypto::Payload::Text("hi".into()), false).await.unwrap();
    let first = ws.send_and_wait(to_bob, cmid, env.clone()).await.unwrap();
    assert_eq!(ws.send_and_wait(to_bob, cmid, env.clone()).await.unwrap(), first, "a resend is acked alike");
    for (conversation, envelope) in
        [(to_carol, env.clone()), (to_bob, sealroom_protocol::Envelope::new(vec![7; 400]).unwrap())]
    {
        ws.send(&ClientFrame::Send { conversation, client_msg_id: cmid, envelope, blobs: vec![] })
            .await
            .unwrap();
        let refused =
            sealroom_tests::expect_frame(&mut ws, "an error", |f| matches!(f, ServerFrame::Error { .. }))
                .await;
        let ServerFrame::Error { code, client_msg_id, .. } = refused else { unreachable!() };
        assert_eq!((code, client_msg_id), (ErrorCode::InvalidField, Some(cmid)));
    }
}

/// Found: presence and last-seen reached anyone who once sent a message. Now only people who
/// have both written in a conversation see each other's, told at once when it becomes mutual.
#[tokio::test]
async fn presence_is_shared_only_once_both_have_written() {
    use sealroom_protocol::ServerFrame;
    let server = TestServer::start();
    let mut stranger = server.register("stranger").await;
    let mut bob = server.register("bob").await;
    let _stranger_online = stranger.connect().await.unwrap();
    stranger.send_text("bob", "hello, you don't know me", false).await.unwrap();
    let mut bob_ws = bob.connect().await.unwrap();
    let list = bob.conversations().await.unwrap();
    assert_eq!(list.len(), 1);
    assert!(!list[0].peer_online && list[0].peer_last_seen.is_none(), "one-sided: {:?}", list[0]);
    // Bob answers: now each is told the other's presence.
    bob.send_text("stranger", "hi", false).await.unwrap();
    sealroom_tests::expect_frame(
        &mut bob_ws,
        "the stranger's presence",
        |f| matches!(f, ServerFrame::Presence { user, online: true, .. } if user.as_str() == "stranger"),
    )
    .await;
    assert!(bob.conversations().await.unwrap()[0].peer_online);
}

/// A streaming upload body: `chunks` of `size` bytes, then it stalls (the sender stays open)
/// until `release` fires.
fn stalling_body(chunks: usize, size: usize, release: tokio::sync::oneshot::Receiver<()>) -> reqwest::Body {
    let data = futures_util::stream::iter((0..chunks).map(move |_| Ok::<_, std::io::Error>(vec![7u8; size])));
    let stall = futures_util::stream::once(async move {
        let _ = release.await;
        Ok::<_, std::io::Error>(Vec::new())
    });
    reqwest::Body::wrap_stream(futures_util::StreamExt::chain(data, stall))
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |d| d.flatten().filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum())
}

/// Found: the upload quota was checked only at commit (8 parallel uploads put 4.7x the quota on
/// disk) and stalled uploads never timed out. Uploads in flight now count against the quota as
/// they stream, and one that sends nothing for `--upload-idle-timeout` is dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_uploads_stay_within_the_quota_and_stalled_ones_end() {
    let server = TestServer::start_with(&["--user-quota", "4M", "--upload-idle-timeout", "3"]);
    let alice = server.register("alice").await;
    let tmp = server.data_dir().join("blobs").join("tmp");
    let mut releases = Vec::new();
    let mut uploads = Vec::new();
    for _ in 0..8 {
        let (tx, rx) = tokio::sync::oneshot::channel();
        releases.push(tx);
        // 3 MiB each, in 256 KiB pieces, then the sender goes quiet.
        let req = reqwest::Client::new()
            .post(format!("{}/api/blobs", server.url))
            .bearer_auth(alice.token())
            .body(stalling_body(12, 256 << 10, rx));
        uploads.push(tokio::spawn(req.send()));
    }
    // While they stream and stall, the part files stay within the quota (plus one write buffer).
    let mut most = 0;
    for _ in 0..20 {
        most = most.max(dir_bytes(&tmp));
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(most <= (5 << 20), "{most} bytes of part files against a 4 MiB quota");
    // Any that stalled are dropped after the idle timeout (3 s); then the senders are let go so
    // the refused ones finish too. Nothing is left behind.
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    drop(releases);
    let mut codes = Vec::new();
    for u in uploads {
        let resp = u.await.unwrap().unwrap();
        let status = resp.status().as_u16();
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        codes.push((
            status,
            body["error"].as_str().unwrap_or_default().to_owned(),
            body["message"].to_string(),
        ));
    }
    assert!(codes.iter().all(|(s, _, _)| *s >= 400), "{codes:?}");
    assert!(codes.iter().any(|(_, e, _)| e == "quota_exceeded"), "{codes:?}");
    assert_eq!(dir_bytes(&tmp), 0, "no part file left");
    // Whether one of the eight was still streaming when they went quiet depends on how they
    // interleaved; one upload alone that goes quiet is dropped for certain, with a sentence.
    let (_release, rx) = tokio::sync::oneshot::channel::<()>();
    let resp = reqwest::Client::new()
        .post(format!("{}/api/blobs", server.url))
        .bearer_auth(alice.token())
        .body(stalling_body(2, 256 << 10, rx))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert!(body["message"].as_str().is_some_and(|m| m.contains("stalled")), "{body}");
    assert_eq!(dir_bytes(&tmp), 0, "no part file left");
}

/// Found: one socket stored 520 maximum-size envelopes in 6.6 s. Past `--message-quota` a send
/// gets `quota_exceeded` with its client_msg_id, and nothing is stored.
#[tokio::test]
async fn a_sender_past_the_message_quota_is_refused() {
    use sealroom_protocol::{ClientFrame, ErrorCode, ServerFrame};
    let server = TestServer::start_with(&["--message-quota", "200K"]);
    let mut alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let peer: sealroom_protocol::Username = "bob".parse().unwrap();
    let conv = alice.conversation_with(&peer).await.unwrap();
    let mut ws = alice.connect().await.unwrap();
    let big = sealroom_crypto::Payload::Text("y".repeat(60_000));
    let mut stored = 0;
    let refused = loop {
        let (cmid, env) = alice.encrypt_to(&peer, &big, false).await.unwrap();
        ws.send(&ClientFrame::Send { conversation: conv, client_msg_id: cmid, envelope: env, blobs: vec![] })
            .await
            .unwrap();
        match sealroom_tests::expect_frame(&mut ws, "ack or error", |f| {
            matches!(f, ServerFrame::Ack { .. } | ServerFrame::Error { .. })
        })
        .await
        {
            ServerFrame::Ack { .. } => stored += 1,
            ServerFrame::Error { code, client_msg_id, message } => {
                break (code, client_msg_id == Some(cmid), message)
            }
            _ => unreachable!(),
        }
        assert!(stored < 10, "no quota");
    };
    assert_eq!(stored, 3, "three ~64 KiB envelopes fit in 200 KiB");
    assert_eq!((refused.0, refused.1), (ErrorCode::QuotaExceeded, true), "{}", refused.2);
    assert_eq!(bob.history_raw("alice", &Default::default()).await.unwrap().messages.len(), 3);
}

/// TLS built in: `--tls-cert`/`--tls-key` serve HTTPS with HSTS, and the session cookie is
/// `Secure`. The certificate is a throwaway one made here with openssl.
#[tokio::test]
async fn the_relay_serves_tls_with_hsts_and_secure_cookies() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
        ])
        .args(["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-addext"])
        .arg("basicConstraints=critical,CA:FALSE")
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let server =
        TestServer::start_with(&["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()]);
    assert!(server.url.starts_with("https://"), "{}", server.url);
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(&cert).unwrap()).unwrap())
        .build()
        .unwrap();
    let health = client.get(format!("{}/healthz", server.url)).send().await.unwrap();
    assert_eq!(health.status().as_u16(), 200);
    assert_eq!(health.headers()["strict-transport-security"], "max-age=31536000");
    // Plain HTTP on the same port gets nowhere.
    let plain = server.url.replacen("https://", "http://", 1);
    assert!(reqwest::get(format!("{plain}/healthz")).await.map_or(true, |r| !r.status().is_success()));
    // A registration over TLS sets a Secure cookie.
    let body = serde_json::json!({"username": "alice", "auth_key": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        "salt": "AAAAAAAAAAAAAAAAAAAAAA==", "kdf": {"m_kib": 65536, "t": 3, "p": 1},
        "identity_key": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "key_backup": "AQID"});
    let resp = client.post(format!("{}/api/register", server.url)).json(&body).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("Secure") && cookie.contains("HttpOnly"), "{cookie}");
    let token = resp.json::<serde_json::Value>().await.unwrap()["token"].as_str().unwrap().to_owned();
    // The WebSocket over TLS (wss://): hello, a frame answered, and a clean close.
    {
        use futures_util::{SinkExt, StreamExt};
        use rustls::pki_types::{pem::PemObject, CertificateDer};
        use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message};
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from_pem_file(&cert).unwrap()).unwrap();
        let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let mut req = format!("{}/ws", server.url.replacen("https", "wss", 1)).into_client_request().unwrap();
        req.headers_mut().insert("Authorization", format!("Bearer {token}").parse().unwrap());
        let connector = tokio_tungstenite::Connector::Rustls(std::sync::Arc::new(tls));
        let (mut ws, _) =
            tokio_tungstenite::connect_async_tls_with_config(req, None, true, Some(connector)).await.unwrap();
        let mut texts = Vec::new();
        ws.send(Message::Text(r#"{"type":"sync","since":0}"#.into())).await.unwrap();
        while texts.len() < 2 {
            match tokio::time::timeout(std::time::Duration::from_secs(10), ws.next()).await.unwrap() {
                Some(Ok(Message::Text(t))) => {
                    texts.push(serde_json::from_str::<serde_json::Value>(&t).unwrap())
                }
                Some(Ok(Message::Ping(_))) => {}
                other => panic!("over TLS: {other:?}"),
            }
        }
        assert_eq!((texts[0]["type"].as_str(), texts[1]["type"].as_str()), (Some("hello"), Some("synced")));
        ws.close(None).await.unwrap();
        let end = tokio::time::timeout(std::time::Duration::from_secs(10), ws.next()).await.unwrap();
        assert!(matches!(end, Some(Ok(Message::Close(_))) | None), "{end:?}");
    }
    // A bad key file is refused at start with a sentence.
    std::fs::write(dir.path().join("bad.pem"), "not a key").unwrap();
    let out = std::process::Command::new(sealroom_tests::bin("sealroom"))
        .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(dir.path().join("bad.pem"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("TLS key"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The limits no other test reaches: an envelope one byte over its maximum, a message naming
/// more attachments than allowed, a key backup over 1 MiB, and a socket that stops answering
/// pings — each refused with its code, and the connection (or account) still works after.
#[tokio::test]
async fn the_remaining_size_limits_and_the_idle_timeout_hold() {
    use sealroom_protocol::{ClientFrame, ClientMsgId, Envelope, ErrorCode, ServerFrame};
    use std::time::Duration;
    let server = TestServer::start_with(&["--ws-idle-timeout", "2"]);
    let mut alice = server.register("alice").await;
    let _bob = server.register("bob").await;
    let bob = sealroom_protocol::Username::parse("bob").unwrap();
    let conversation = alice.conversation_with(&bob).await.unwrap();
    let mut conn = alice.connect().await.unwrap();

    // The envelope limit is enforced by the frame's decoder; the socket stays open.
    let max = sealroom_protocol::MAX_ENVELOPE_BYTES;
    let frame = serde_json::json!({"type": "send", "conversation": conversation, "client_msg_id": ClientMsgId([1; 16]),
        "envelope": sealroom_protocol::encode_b64(&vec![1u8; max + 1])});
    conn.send_raw(frame.to_string()).await.unwrap();
    let refused =
        sealroom_tests::expect_frame(&mut conn, "refusal", |f| matches!(f, ServerFrame::Error { .. })).await;
    assert!(matches!(&refused, ServerFrame::Error { code: ErrorCode::InvalidLength, .. }), "{refused:?}");
    // Nine attachments where eight is the most.
    let blobs = (0..=sealroom_protocol::MAX_BLOBS_PER_MESSAGE)
        .map(|i| sealroom_protocol::BlobId::parse(&format!("{i:0>22}")).unwrap())
        .collect();
    let id = ClientMsgId([2; 16]);
    let send = ClientFrame::Send {
        conversation,
        client_msg_id: id,
        envelope: Envelope::new(vec![1; 300]).unwrap(),
        blobs,
    };
    conn.send(&send).await.unwrap();
    let refused =
        sealroom_tests::expect_frame(&mut conn, "refusal", |f| matches!(f, ServerFrame::Error { .. })).await;
    assert!(
        matches!(&refused, ServerFrame::Error { code: ErrorCode::InvalidField, client_msg_id: Some(c), .. } if *c == id),
        "{refused:?}"
    );
    assert!(alice.history("bob", 10).await.unwrap().is_empty(), "nothing was stored");

    // A key backup over 1 MiB.
    let big = sealroom_protocol::encode_b64(&vec![7u8; sealroom_protocol::MAX_KEY_BACKUP_BYTES + 1]);
    let (status, body, _) = sealroom_tests::raw(
        reqwest::Method::PUT,
        &format!("{}/api/me/key-backup", server.url),
        Some(alice.token()),
        Some(("application/json", &format!(r#"{{"key_backup":"{big}","expected_version":1}}"#))),
    )
    .await;
    assert_eq!((status.as_u16(), body["error"].as_str()), (400, Some("invalid_length")), "{body}");

    // A socket that reads nothing (so answers no ping) is closed at the next heartbeat after
    // the idle timeout; one that keeps reading stays.
    let mut quiet = alice.connect().await.unwrap();
    tokio::time::sleep(Duration::from_secs(17)).await;
    let mut closed = false;
    for _ in 0..5 {
        match quiet.next_within(Duration::from_secs(2)).await {
            Ok(_) => continue,
            // Silence is not a close.
            Err(sealroom_client::ClientError::Timeout) => break,
            Err(_) => {
                closed = true;
                break;
            }
        }
    }
    assert!(closed, "an idle socket was not closed");
    let fresh = alice.send_text("bob", "still fine", false).await.unwrap();
    assert!(fresh.0 > 0);
}

/// Past `--max-connections` (all users together) a connection gets a `rate_limited` error and
/// is closed with 1013 (try again later); the held ones are unaffected and a freed place is
/// taken again. A limit the open-file limit cannot fit stops the relay at start, saying so.
#[tokio::test]
async fn the_relay_holds_no_more_connections_than_it_is_set_to() {
    let server = TestServer::start_with(&["--max-connections", "3"]);
    let (alice, bob) = (server.register("alice").await, server.register("bob").await);
    let mut kept =
        vec![alice.connect().await.unwrap(), bob.connect().await.unwrap(), bob.connect().await.unwrap()];
    for who in [&alice, &bob] {
        assert_refused(who, "at most 3 connections").await;
    }
    a_freed_place_is_taken_again(kept.remove(0), &alice).await;
    drop(kept);

    // Far more than any open-file limit can reach (Linux's nr_open is at most 2^30), and none.
    let dir = tempfile::tempdir().unwrap();
    let refusals: [(&str, &[&str]); 2] = [
        ("4000000000", &["--max-connections 4000000000 needs", "LimitNOFILE"]),
        ("0", &["must be at least 1"]),
    ];
    for (max, says) in refusals {
        let out = std::process::Command::new(sealroom_tests::bin("sealroom"))
            .args(["serve", "--bind", "127.0.0.1:0", "--max-connections", max, "--data-dir"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(!out.status.success(), "started with --max-connections {max}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(says.iter().all(|s| err.contains(s)), "{err}");
    }
}
