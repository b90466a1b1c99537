//! Sessions: many at once by default, one in single-session mode, revocation on password
//! change and "log out everywhere", rate limits, and key-backup versioning.

use std::time::Duration;

use reqwest::Method;
use sealroom_protocol::ServerFrame;
use sealroom_tests::{expect_frame, raw, TestServer};

#[tokio::test]
async fn by_default_many_sessions_work_at_once_and_all_receive_messages() {
    let server = TestServer::start();
    let mut alice = server.register("alice").await;
    let bob1 = server.register("bob").await;
    let bob2 = server.client().login("bob", "password-of-bob").await.unwrap();
    let mut w1 = bob1.connect().await.unwrap();
    let mut w2 = bob2.connect().await.unwrap();
    let id = alice.send_text("bob", "to both tabs", false).await.unwrap();
    for w in [&mut w1, &mut w2] {
        expect_frame(w, "message", |f| matches!(f, ServerFrame::Message { message } if message.id == id))
            .await;
    }
}

#[tokio::test]
async fn single_session_mode_disconnects_the_older_session() {
    let server = TestServer::start_with(&["--single-session"]);
    let _ = server.register("bob").await;
    let first = server.client().login("bob", "password-of-bob").await.unwrap();
    let mut ws = first.connect().await.unwrap();
    let second = server.client().login("bob", "password-of-bob").await.unwrap();
    let f =
        expect_frame(&mut ws, "session_revoked", |f| matches!(f, ServerFrame::SessionRevoked { .. })).await;
    let ServerFrame::SessionRevoked { reason } = f else { unreachable!() };
    assert!(reason.contains("single-session"), "{reason}");
    assert!(ws.next_within(Duration::from_secs(5)).await.is_err());
    let (s1, _, _) = raw(Method::GET, &format!("{}/api/me", server.url), Some(first.token()), None).await;
    let (s2, _, _) = raw(Method::GET, &format!("{}/api/me", server.url), Some(second.token()), None).await;
    assert_eq!((s1.as_u16(), s2.as_u16()), (401, 200));
}

#[tokio::test]
async fn password_change_keeps_this_session_revokes_others_and_keeps_keys() {
    let server = TestServer::start();
    let mut alice = server.register("alice").await;
    let mut bob = server.register("bob").await;
    bob.send_text("alice", "before the change", false).await.unwrap();
    let other = server.client().login("alice", "password-of-alice").await.unwrap();
    let mut other_ws = other.connect().await.unwrap();
    alice.change_password("password-of-alice", "a new long secret").await.unwrap();
    expect_frame(&mut other_ws, "revoked", |f| matches!(f, ServerFrame::SessionRevoked { .. })).await;
    let (status, _, _) = raw(Method::GET, &format!("{}/api/me", server.url), Some(alice.token()), None).await;
    assert_eq!(status, 200, "the changing session stays");
    let old = server.client().login("alice", "password-of-alice").await.unwrap_err();
    assert!(old.to_string().contains("invalid_credentials"), "{old}");
    let mut again = server.client().login("alice", "a new long secret").await.unwrap();
    assert_eq!(again.identity_key(), alice.identity_key(), "same identity after re-sealing");
    let h = again.history("bob", 10).await.unwrap();
    assert_eq!(h.len(), 1, "old history still decrypts");
    // Wrong current password: refused, nothing changes.
    let err = again.change_password("wrong", "another secret").await.unwrap_err();
    assert!(err.to_string().contains("invalid_credentials"), "{err}");
    server.client().login("alice", "a new long secret").await.unwrap();
}

#[tokio::test]
async fn logout_everywhere_ends_every_session() {
    let server = TestServer::start();
    let a1 = server.register("alice").await;
    let a2 = server.client().login("alice", "password-of-alice").await.unwrap();
    let t1 = a1.token().to_owned();
    a2.logout_everywhere().await.unwrap();
    let (status, _, _) = raw(Method::GET, &format!("{}/api/me", server.url), Some(&t1), None).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn login_is_rate_limited_per_username_with_retry_after() {
    let server = TestServer::start_with(&["--auth-rate-per-user", "3"]);
    server.register("alice").await;
    server.register("bob").await;
    let url = format!("{}/api/login", server.url);
    let body = r#"{"username":"alice","auth_key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}"#;
    for _ in 0..3 {
        let (status, b, _) = raw(Method::POST, &url, None, Some(("application/json", body))).await;
        assert_eq!((status.as_u16(), b["error"].as_str()), (401, Some("invalid_credentials")));
    }
    let (status, b, headers) = raw(Method::POST, &url, None, Some(("application/json", body))).await;
    assert_eq!((status.as_u16(), b["error"].as_str()), (429, Some("rate_limited")));
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));
    // Even the right password waits; another user is unaffected.
    assert!(server.client().login("alice", "password-of-alice").await.is_err());
    server.client().login("bob", "password-of-bob").await.unwrap();
}

#[tokio::test]
async fn a_stale_key_backup_write_is_refused_and_the_client_merges() {
    let server = TestServer::start();
    let mut a1 = server.register("alice").await;
    let _ = server.register("bob").await;
    let _ = server.register("carol").await;
    let mut a2 = server.client().login("alice", "password-of-alice").await.unwrap();
    // Both sessions read version 1. a1 pins bob (version 2); a2 pins carol from version 1:
    // the raw write is refused; the client fetches, merges and retries.
    a1.safety_number("bob").await.unwrap();
    let stale = serde_json::json!({"key_backup": "AQID", "expected_version": 1});
    let (status, body, _) = raw(
        Method::PUT,
        &format!("{}/api/me/key-backup", server.url),
        Some(a2.token()),
        Some(("application/json", &stale.to_string())),
    )
    .await;
    assert_eq!((status.as_u16(), body["error"].as_str()), (409, Some("stale_backup_version")));
    a2.safety_number("carol").await.unwrap();
    let fresh = server.client().login("alice", "password-of-alice").await.unwrap();
    let pins: Vec<&String> = fresh.pins().keys().collect();
    assert_eq!(pins, ["bob", "carol"], "neither tab overwrote the other's pin");
}

#[tokio::test]
async fn an_expired_session_is_refused_and_its_socket_closed() {
    let server = TestServer::start_with(&["--token-ttl", "2s"]);
    let alice = server.register("alice").await;
    let mut ws = alice.connect().await.unwrap();
    // The relay checks expiry on its heartbeat tick (every 15 s) and on every request.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, body, _) =
        raw(Method::GET, &format!("{}/api/me", server.url), Some(alice.token()), None).await;
    assert_eq!(status, 401);
    assert!(matches!(body["error"].as_str(), Some("token_expired" | "session_revoked")), "{body}");
    let f = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match ws.next().await {
                Ok(ServerFrame::SessionRevoked { reason }) => return Some(reason),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    })
    .await
    .expect("closed within a heartbeat");
    assert!(f.is_some_and(|r| r.contains("expired")));
}

#[tokio::test]
async fn sigterm_drains_connections_and_the_relay_comes_back_with_everything() {
    let mut server = TestServer::start();
    let mut alice = server.register("alice").await;
    let _bob = server.register("bob").await;
    let id = alice.send_text("bob", "before shutdown", false).await.unwrap();
    let mut ws = alice.connect().await.unwrap();
    server.stop(); // SIGTERM, waits for exit
    let closed = ws.next_within(Duration::from_secs(5)).await;
    match closed {
        Ok(ServerFrame::Error { message, .. }) => assert!(message.contains("shutting down"), "{message}"),
        Err(e) => assert!(e.to_string().contains("closed") || e.to_string().contains("1001"), "{e}"),
        Ok(other) => panic!("unexpected {other:?}"),
    }
    let log = std::fs::read_to_string(server.log_path()).unwrap();
    assert!(log.contains("draining connections") && log.contains("stopped"), "{log}");
    server.restart();
    let mut alice = server.client().login("alice", "password-of-alice").await.unwrap();
    assert_eq!(alice.history("bob", 5).await.unwrap()[0].id, id);
}
