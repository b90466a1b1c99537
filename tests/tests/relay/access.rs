//! Nobody reads, clears or writes into a conversation they are not part of, nobody sends as
//! someone else, and a logged-out token is dead everywhere at once.

use std::time::Duration;

use reqwest::Method;
use sealroom_crypto::Payload;
use sealroom_protocol::{ClientFrame, ErrorCode, HistoryQuery, MessageId, ServerFrame};
use sealroom_tests::{expect_frame, raw, TestServer};

#[tokio::test]
async fn a_third_user_cannot_read_clear_or_send_into_a_pair_conversation() {
    let server = TestServer::start();
    let mut alice = server.register("alice").await;
    let mut bob = server.register("bob").await;
    let mut carol = server.register("carol").await;
    alice.send_text("bob", "for bob only", false).await.unwrap();
    let before = bob.history_raw("alice", &HistoryQuery::default()).await.unwrap();

    // Carol is not in alice and bob's conversation: every conversation endpoint is 404, by id
    // or by (the v1 way of) naming a peer.
    let ab = alice.existing_conversation("bob").await.unwrap();
    for path in [format!("{ab}/messages"), "bob/messages".into(), "alice/messages".into()] {
        let (status, body, _) =
            raw(Method::GET, &format!("{}/api/conversations/{path}", server.url), Some(carol.token()), None)
                .await;
        assert_eq!((status.as_u16(), body["error"].as_str()), (404, Some("not_found")), "{path}");
    }
    for peer in [ab.to_string(), "bob".into()] {
        let (status, _, _) = raw(
            Method::POST,
            &format!("{}/api/conversations/{peer}/clear", server.url),
            Some(carol.token()),
            Some(("application/json", r#"{"for_both":true}"#)),
        )
        .await;
        assert_eq!(status, 404);
        let (status, _, _) = raw(
            Method::POST,
            &format!("{}/api/conversations/{peer}/read", server.url),
            Some(carol.token()),
            Some(("application/json", r#"{"up_to":999}"#)),
        )
        .await;
        assert_eq!(status, 404);
    }
    // Carol's sync sees nothing of theirs.
    let mut ws = carol.connect().await.unwrap();
    ws.send(&ClientFrame::Sync { since: MessageId(0) }).await.unwrap();
    let f = ws.next_within(Duration::from_secs(5)).await.unwrap();
    assert_eq!(f, ServerFrame::Synced { up_to: MessageId(0), more: false });

    // Carol cannot name a sender: a `from` field is refused and nothing is stored.
    let (cmid, env) =
        carol.encrypt_to(&"bob".parse().unwrap(), &Payload::Text("spoof".into()), false).await.unwrap();
    let carol_bob = carol.conversation_with(&"bob".parse().unwrap()).await.unwrap();
    let spoof = serde_json::json!({"type": "send", "from": "alice", "conversation": carol_bob, "client_msg_id": cmid, "envelope": env});
    ws.send_raw(spoof.to_string()).await.unwrap();
    let f = expect_frame(&mut ws, "error", |f| matches!(f, ServerFrame::Error { .. })).await;
    assert!(matches!(f, ServerFrame::Error { code: ErrorCode::InvalidField, .. }), "{f:?}");
    // Sending to bob works, but lands in carol↔bob, stamped as carol.
    let id = ws.send_and_wait(carol_bob, cmid, env).await.unwrap();
    let bob_view = bob.history_raw("carol", &HistoryQuery::default()).await.unwrap();
    assert_eq!(bob_view.messages.len(), 1);
    assert_eq!((bob_view.messages[0].id, bob_view.messages[0].from.as_str()), (id, "carol"));
    assert_eq!(
        bob.history_raw("alice", &HistoryQuery::default()).await.unwrap(),
        before,
        "alice↔bob untouched"
    );

    // Bob's client decrypts alice's message with alice's key only; carol's message opens as carol's.
    let h = bob.history("carol", 10).await.unwrap();
    assert_eq!(h[0].payload, Payload::Text("spoof".into()));
    let h = bob.history("alice", 10).await.unwrap();
    assert_eq!(h[0].payload, Payload::Text("for bob only".into()));
    // Even if a malicious relay relabelled alice's envelope as carol's, bob's client refuses it.
    let mut relabelled = before.messages[0].clone();
    relabelled.from = "carol".parse().unwrap();
    assert!(bob.decrypt(&relabelled).await.is_err());
    let _ = alice;
}

#[tokio::test]
async fn a_logged_out_token_stops_working_at_once_on_rest_and_websocket() {
    let server = TestServer::start();
    let alice = server.register("alice").await;
    let token = alice.token().to_owned();
    let mut ws = alice.connect().await.unwrap();
    let (status, _, _) = raw(Method::GET, &format!("{}/api/me", server.url), Some(&token), None).await;
    assert_eq!(status, 200);
    alice.logout().await.unwrap();

    // The open socket is told, then closed.
    let f =
        expect_frame(&mut ws, "session_revoked", |f| matches!(f, ServerFrame::SessionRevoked { .. })).await;
    assert!(matches!(f, ServerFrame::SessionRevoked { .. }));
    assert!(ws.next_within(Duration::from_secs(5)).await.is_err(), "closed after session_revoked");

    let (status, body, _) = raw(Method::GET, &format!("{}/api/me", server.url), Some(&token), None).await;
    assert_eq!((status.as_u16(), body["error"].as_str()), (401, Some("session_revoked")));
    let err = sealroom_client::Connection::open_url(&server.ws_url(), Some(&token)).await.unwrap_err();
    assert!(err.to_string().contains("session_revoked"), "{err}");
    // A forged or garbled token is refused too, and no token at all.
    let (status, body, _) =
        raw(Method::GET, &format!("{}/api/me", server.url), Some("abc.def.ghi"), None).await;
    assert_eq!((status.as_u16(), body["error"].as_str()), (401, Some("unauthorized")));
    assert!(sealroom_client::Connection::open_url(&server.ws_url(), None).await.is_err());
}

#[tokio::test]
async fn browsers_use_the_cookie_and_other_origins_are_refused() {
    let server = TestServer::start();
    let alice = server.register("alice").await;
    let cookie = format!("sealroom_session={}", alice.token());
    let get = |origin: Option<&'static str>| {
        let mut req =
            reqwest::Client::new().get(format!("{}/api/me", server.url)).header("cookie", cookie.clone());
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        req.send()
    };
    assert_eq!(get(None).await.unwrap().status(), 200);
    let own: &'static str = Box::leak(server.url.clone().into_boxed_str());
    assert_eq!(get(Some(own)).await.unwrap().status(), 200);
    let evil = get(Some("http://evil.example")).await.unwrap();
    assert_eq!(evil.status(), 403);
    assert_eq!(evil.json::<serde_json::Value>().await.unwrap()["error"], "bad_origin");
}

#[tokio::test]
async fn the_directory_finds_strangers_only_by_exact_name_and_contacts_by_prefix() {
    let server = TestServer::start();
    let mut alice = server.register("alice").await;
    let _albert = server.register("albert").await;
    let _bob = server.register("bob").await;
    let carol = server.register("carol").await;
    let names = |users: Vec<sealroom_protocol::UserInfo>| {
        users.into_iter().map(|u| u.username.to_string()).collect::<Vec<_>>()
    };

    // Nobody can list the directory a letter at a time.
    assert!(carol.users("a").await.unwrap().is_empty(), "no prefix search among strangers");
    assert!(carol.users("al").await.unwrap().is_empty());
    assert_eq!(names(carol.users("alice").await.unwrap()), ["alice"], "a stranger by exact name");
    assert_eq!(names(carol.users("ALICE").await.unwrap()), ["alice"], "names are case-insensitive");
    assert!(carol.users("carol").await.unwrap().is_empty(), "not oneself");

    // People one talks to are found by prefix.
    alice.send_text("albert", "hi", false).await.unwrap();
    assert_eq!(names(alice.users("al").await.unwrap()), ["albert"]);
    assert_eq!(names(alice.users("b").await.unwrap()), Vec::<String>::new(), "bob is a stranger to alice");
    let albert = server.client().login("albert", "password-of-albert").await.unwrap();
    assert_eq!(names(albert.users("a").await.unwrap()), ["alice"], "both ways");
}

#[tokio::test]
async fn a_blocked_user_is_withheld_from_the_blocker_and_is_not_told() {
    let server = TestServer::start();
    let mut alice = server.register("alice").await;
    let mut bob = server.register("bob").await;
    bob.send_text("alice", "before the block", false).await.unwrap();
    alice.block("bob").await.unwrap();
    alice.block("bob").await.unwrap(); // again: no change
    assert_eq!(alice.blocked().await.unwrap().iter().map(|u| u.to_string()).collect::<Vec<_>>(), ["bob"]);
    let mut alice_ws = alice.connect().await.unwrap();
    let mut bob_ws = bob.connect().await.unwrap();
    while alice_ws.next_within(Duration::from_millis(300)).await.is_ok() {}

    // Bob's message is acknowledged as usual and is in his history; alice gets nothing —
    // not live, not in her history, her list, her sync, nor its typing notice.
    let withheld = bob.send_text("alice", "while blocked", false).await.unwrap();
    let conversation = bob.existing_conversation("alice").await.unwrap();
    bob_ws.send(&ClientFrame::Typing { conversation }).await.unwrap();
    assert!(alice_ws.next_within(Duration::from_millis(700)).await.is_err(), "nothing reaches alice");
    let bobs: Vec<String> =
        bob.history("alice", 10).await.unwrap().iter().map(|m| text(&m.payload)).collect();
    assert_eq!(bobs, ["before the block", "while blocked"], "bob sees his message as sent");
    let page = alice.history_raw("bob", &HistoryQuery::default()).await.unwrap();
    assert_eq!(page.messages.len(), 1, "alice sees only what came before the block");
    assert!(page.messages.iter().all(|m| m.id != withheld));
    let list = alice.conversations().await.unwrap();
    assert_eq!((list[0].unread, list[0].last_message.as_ref().map(|m| m.id)), (1, Some(page.messages[0].id)));
    alice_ws.send(&ClientFrame::Sync { since: MessageId(0) }).await.unwrap();
    let mut synced = Vec::new();
    loop {
        match alice_ws.next_within(Duration::from_secs(5)).await.unwrap() {
            ServerFrame::Message { message } => synced.push(message.id),
            ServerFrame::Synced { .. } => break,
            _ => {}
        }
    }
    assert!(!synced.contains(&withheld), "sync withholds it too");
    let (status, _, _) =
        raw(Method::GET, &format!("{}/api/messages/{withheld}", server.url), Some(alice.token()), None).await;
    assert_eq!(status, 404);

    // Unblocking lets new messages through; the withheld one stays withheld.
    alice.unblock("bob").await.unwrap();
    bob.send_text("alice", "after the unblock", false).await.unwrap();
    let texts: Vec<String> =
        alice.history("bob", 10).await.unwrap().iter().map(|m| text(&m.payload)).collect();
    assert_eq!(texts, ["before the block", "after the unblock"]);

    // Blocking oneself, or nobody, is refused plainly.
    let err = alice.block("alice").await.unwrap_err();
    assert!(
        matches!(&err, sealroom_client::ClientError::Api(e) if e.error == ErrorCode::InvalidField),
        "{err}"
    );
    let err = alice.block("nobody").await.unwrap_err();
    assert!(matches!(&err, sealroom_client::ClientError::Api(e) if e.error == ErrorCode::NotFound), "{err}");
}

fn text(p: &Payload) -> String {
    match p {
        Payload::Text(t) => t.clone(),
        other => format!("{other:?}"),
    }
}
