//! Messages flow both ways, live and through history, survive restarts and offline periods,
//! are stored once, and never in the clear.

use std::time::Duration;

use sealroom_crypto::Payload;
use sealroom_protocol::{ClientFrame, HistoryQuery, MessageId, ServerFrame};
use sealroom_tests::{expect_frame, expect_no_frame, metric, Database, TestServer};

fn text(p: &Payload) -> &str {
    match p {
        Payload::Text(t) => t,
        other => panic!("not text: {other:?}"),
    }
}

#[tokio::test]
async fn two_users_exchange_messages_both_ways_live_and_through_history() {
    let server = TestServer::start();
    let mut alice = server.register("alice").await;
    let mut bob = server.register("bob").await;
    let mut bob_ws = bob.connect().await.unwrap();
    let mut alice_ws = alice.connect().await.unwrap();

    let id1 = alice.send_text("bob", "hello bob — grüße 👋", false).await.unwrap();
    let live =
        expect_frame(&mut bob_ws, "alice's message", |f| matches!(f, ServerFrame::Message { .. })).await;
    let ServerFrame::Message { message } = live else { unreachable!() };
    assert_eq!((message.id, message.from.as_str(), message.to.as_str()), (id1, "alice", "bob"));
    assert_eq!(text(&bob.decrypt(&message).await.unwrap().payload), "hello bob — grüße 👋");
    // Alice's other connection sees her own message too (multi-device).
    expect_frame(
        &mut alice_ws,
        "own message echo",
        |f| matches!(f, ServerFrame::Message { message } if message.id == id1),
    )
    .await;

    // Delivery receipt from bob reaches alice.
    let conversation = message.conversation;
    assert_eq!(bob.existing_conversation("alice").await.unwrap(), conversation);
    bob_ws.send(&ClientFrame::Delivered { conversation, up_to: id1 }).await.unwrap();
    expect_frame(
        &mut alice_ws,
        "delivered",
        |f| matches!(f, ServerFrame::Delivered { up_to, .. } if *up_to == id1),
    )
    .await;

    let id2 = bob.send_text("alice", "hi alice", false).await.unwrap();
    assert!(id2 > id1, "ids increase");
    let ServerFrame::Message { message } = expect_frame(
        &mut alice_ws,
        "bob's reply",
        |f| matches!(f, ServerFrame::Message { message } if message.id == id2),
    )
    .await
    else {
        unreachable!()
    };
    assert_eq!(text(&alice.decrypt(&message).await.unwrap().payload), "hi alice");

    for (session, peer) in [(&mut alice, "bob"), (&mut bob, "alice")] {
        let h = session.history(peer, 50).await.unwrap();
        let texts: Vec<&str> = h.iter().map(|m| text(&m.payload)).collect();
        assert_eq!(texts, ["hello bob — grüße 👋", "hi alice"]);
        assert_eq!(h[0].from.as_str(), "alice");
    }

    // Conversation list: previews and unread counts, then read receipts.
    let convs = bob.conversations().await.unwrap();
    assert_eq!(convs.len(), 1);
    assert_eq!(convs[0].peer.as_str(), "alice");
    assert_eq!(convs[0].unread, 1);
    assert_eq!(convs[0].last_message.as_ref().unwrap().id, id2);
    assert!(convs[0].peer_online);
    bob.mark_read("alice", id2).await.unwrap();
    expect_frame(
        &mut alice_ws,
        "read receipt",
        |f| matches!(f, ServerFrame::Read { up_to, .. } if *up_to == id2),
    )
    .await;
    assert_eq!(bob.conversations().await.unwrap()[0].unread, 0);
    let a = &alice.conversations().await.unwrap()[0];
    assert_eq!((a.unread, a.peer_read_up_to), (1, id2), "alice has not read bob's reply yet");

    // Typing reaches the peer and is never stored.
    alice_ws.send(&ClientFrame::Typing { conversation }).await.unwrap();
    expect_frame(
        &mut bob_ws,
        "typing",
        |f| matches!(f, ServerFrame::Typing { conversation: c, from } if from.as_str() == "alice" && *c == conversation),
    )
    .await;

    // Presence: bob leaves, alice is told with a last-seen time.
    bob_ws.close().await;
    expect_frame(&mut alice_ws, "bob offline", |f| {
        matches!(f, ServerFrame::Presence { user, online: false, last_seen: Some(_) } if user.as_str() == "bob")
    })
    .await;
    let a = &alice.conversations().await.unwrap()[0];
    assert!(!a.peer_online && a.peer_last_seen.is_some());
}

#[tokio::test]
async fn an_offline_recipient_gets_everything_on_reconnect() {
    let server = TestServer::start();
    let mut alice = server.register("alice").await;
    let mut bob = server.register("bob").await;
    let mut sent = Vec::new();
    let mut ws = alice.connect().await.unwrap();
    let conversation = alice.conversation_with(&"bob".parse().unwrap()).await.unwrap();
    for i in 0..520 {
        let (cmid, env) = alice
            .encrypt_to(&"bob".parse().unwrap(), &Payload::Text(format!("offline {i}")), false)
            .await
            .unwrap();
        sent.push(ws.send_and_wait(conversation, cmid, env).await.unwrap());
    }
    // Bob was never connected. He syncs from 0 in batches of at most 500.
    let mut bob_ws = bob.connect().await.unwrap();
    let mut got = Vec::new();
    let mut since = MessageId(0);
    let mut batches = 0;
    loop {
        bob_ws.send(&ClientFrame::Sync { since }).await.unwrap();
        batches += 1;
        let more = loop {
            match bob_ws.next_within(Duration::from_secs(10)).await.unwrap() {
                ServerFrame::Message { message } => got.push(message),
                ServerFrame::Synced { up_to, more } => {
                    since = up_to;
                    break more;
                }
                _ => {}
            }
        };
        if !more {
            break;
        }
    }
    assert_eq!(batches, 2, "520 messages come in two batches");
    let ids: Vec<MessageId> = got.iter().map(|m| m.id).collect();
    assert_eq!(ids, sent, "everything, in order, once");
    let last = bob.decrypt(got.last().unwrap()).await.unwrap();
    assert_eq!(text(&last.payload), "offline 519");
    // A sync from the newest id returns nothing new.
    bob_ws.send(&ClientFrame::Sync { since }).await.unwrap();
    let f = bob_ws.next_within(Duration::from_secs(10)).await.unwrap();
    assert_eq!(f, ServerFrame::Synced { up_to: since, more: false });
}

#[tokio::test]
async fn history_survives_a_restart_and_nothing_stored_is_plaintext() {
    let mut server = TestServer::start();
    let mut alice = server.register("alice").await;
    let mut bob = server.register("bob").await;
    let secrets =
        ["marker-alpha-4f1c plaintext one", "marker-beta-9e2d zweite Nachricht ✓", "marker-gamma-77aa"];
    alice.send_text("bob", secrets[0], false).await.unwrap();
    bob.send_text("alice", secrets[1], false).await.unwrap();
    alice.send_text("bob", secrets[2], false).await.unwrap();
    let before = alice.history_raw("bob", &HistoryQuery::default()).await.unwrap();

    server.restart();
    let mut alice = server.client().login("alice", "password-of-alice").await.unwrap();
    let after = alice.history_raw("bob", &HistoryQuery::default()).await.unwrap();
    assert_eq!(after.messages, before.messages, "every stored envelope is intact, byte for byte");
    let h = alice.history("bob", 10).await.unwrap();
    assert_eq!(h.iter().map(|m| text(&m.payload)).collect::<Vec<_>>(), secrets);

    server.stop();
    let files = server.all_stored_bytes();
    let database = match server.database() {
        Database::Sqlite => "sealroom.db",
        Database::Postgres => "pg_dump",
    };
    assert!(files.iter().any(|(p, _)| p.ends_with(database)), "the database is among what is searched");
    let password_markers = ["password-of-alice", "password-of-bob"];
    for (path, bytes) in &files {
        for needle in secrets.iter().chain(password_markers.iter()) {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{} contains {needle:?}",
                path.display()
            );
        }
    }
}

#[tokio::test]
async fn a_resent_client_msg_id_is_stored_once_and_acked_with_the_same_id() {
    let server = TestServer::start();
    let mut alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let mut bob_ws = bob.connect().await.unwrap();
    let (cmid, env) =
        alice.encrypt_to(&"bob".parse().unwrap(), &Payload::Text("once".into()), false).await.unwrap();
    let mut ws = alice.connect().await.unwrap();
    let conversation = alice.conversation_with(&"bob".parse().unwrap()).await.unwrap();
    let first = ws.send_and_wait(conversation, cmid, env.clone()).await.unwrap();
    // The same id again (a retry after a lost ack) — even on another connection.
    let mut ws2 = alice.connect().await.unwrap();
    let second = ws2.send_and_wait(conversation, cmid, env).await.unwrap();
    assert_eq!(first, second);
    let h = alice.history_raw("bob", &HistoryQuery::default()).await.unwrap();
    assert_eq!(h.messages.len(), 1);
    expect_frame(&mut bob_ws, "the message", |f| matches!(f, ServerFrame::Message { .. })).await;
    expect_no_frame(&mut bob_ws, Duration::from_millis(500), |f| matches!(f, ServerFrame::Message { .. }))
        .await;
}

#[tokio::test]
async fn clear_for_both_tells_the_peer_live_and_clear_for_me_does_not_touch_the_peer() {
    let server = TestServer::start();
    let mut alice = server.register("alice").await;
    let mut bob = server.register("bob").await;
    let mut bob_ws = bob.connect().await.unwrap();
    alice.send_text("bob", "one", false).await.unwrap();
    bob.send_text("alice", "two", false).await.unwrap();

    alice.clear("bob", false).await.unwrap();
    assert!(alice.history("bob", 10).await.unwrap().is_empty());
    assert_eq!(bob.history("alice", 10).await.unwrap().len(), 2, "bob still has both");
    expect_no_frame(&mut bob_ws, Duration::from_millis(300), |f| {
        matches!(f, ServerFrame::ChatCleared { .. })
    })
    .await;

    let id3 = alice.send_text("bob", "three", false).await.unwrap();
    assert_eq!(alice.history("bob", 10).await.unwrap().len(), 1);
    bob.clear("alice", true).await.unwrap();
    assert!(bob.history("alice", 10).await.unwrap().is_empty());
    assert!(alice.history("bob", 10).await.unwrap().is_empty());
    // Bob's own live connection is told too (his other tabs).
    expect_frame(
        &mut bob_ws,
        "chat_cleared",
        |f| matches!(f, ServerFrame::ChatCleared { for_both: true, up_to, .. } if *up_to == id3),
    )
    .await;
    // The conversation goes on afterwards.
    alice.send_text("bob", "after clearing", false).await.unwrap();
    assert_eq!(bob.history("alice", 10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn pin_and_hide_order_the_conversation_list_and_a_new_message_reopens() {
    let server = TestServer::start();
    let mut alice = server.register("alice").await;
    let mut bob = server.register("bob").await;
    let mut carol = server.register("carol").await;
    bob.send_text("alice", "from bob", false).await.unwrap();
    carol.send_text("alice", "from carol", false).await.unwrap();
    let names = |c: &[sealroom_protocol::ConversationSummary]| {
        c.iter().map(|c| c.peer.to_string()).collect::<Vec<_>>()
    };
    assert_eq!(names(&alice.conversations().await.unwrap()), ["carol", "bob"], "newest first");
    let flags =
        |p: Option<bool>, h: Option<bool>| sealroom_protocol::ConversationFlags { pinned: p, hidden: h };
    let (status, _, _) = sealroom_tests::raw(
        reqwest::Method::PUT,
        &format!(
            "{}/api/conversations/{}/flags",
            server.url,
            alice.existing_conversation("bob").await.unwrap()
        ),
        Some(alice.token()),
        Some(("application/json", &serde_json::to_string(&flags(Some(true), None)).unwrap())),
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(names(&alice.conversations().await.unwrap()), ["bob", "carol"], "pinned first");
    let _ = sealroom_tests::raw(
        reqwest::Method::PUT,
        &format!(
            "{}/api/conversations/{}/flags",
            server.url,
            alice.existing_conversation("carol").await.unwrap()
        ),
        Some(alice.token()),
        Some(("application/json", &serde_json::to_string(&flags(None, Some(true))).unwrap())),
    )
    .await;
    let list = alice.conversations().await.unwrap();
    assert!(list.iter().find(|c| c.peer.as_str() == "carol").unwrap().hidden);
    carol.send_text("alice", "again", false).await.unwrap();
    let list = alice.conversations().await.unwrap();
    assert!(!list.iter().find(|c| c.peer.as_str() == "carol").unwrap().hidden, "a new message reopens");
    let _ = alice.history("carol", 5).await.unwrap();
}

/// A connection's sends wait for the disk in the group commit, not in the connection: while
/// the database's write lock is held elsewhere, a client that pipelines twenty sends still
/// receives what others relay to it; once the lock is released the twenty are acknowledged in
/// the order sent, stored in that order, and share commits. (Before the group commit, the
/// connection awaited each store write before reading anything else, so a busy sender fell
/// behind as a recipient and was dropped.)
#[tokio::test]
async fn a_connection_keeps_relaying_while_its_sends_wait_for_the_disk() {
    let server = TestServer::start();
    let mut alice = server.register("alice").await;
    let mut bob = server.register("bob").await;
    alice.send_text("bob", "first", false).await.unwrap();
    let bob_name = bob.username().clone();
    let conversation = alice.conversation_with(&bob_name).await.unwrap();
    let mut alice_ws = alice.connect().await.unwrap();
    let mut bob_ws = bob.connect().await.unwrap();
    let url = server.url.clone();
    let metrics = || async {
        let counter = |name| metric(&url, name);
        let commits = counter("sealroom_store_commits_total").await.expect("counter present") as u64;
        (commits, counter("sealroom_store_writes_total").await.expect("counter present") as u64)
    };
    let (commits_before, writes_before) = metrics().await;

    let lock = server.hold_write_lock();
    let mut sent = Vec::new();
    for i in 0..20 {
        let (client_msg_id, envelope) =
            alice.encrypt_to(&bob_name, &Payload::Text(format!("pipelined {i}")), false).await.unwrap();
        alice_ws
            .send(&ClientFrame::Send { conversation, client_msg_id, envelope, blobs: vec![] })
            .await
            .unwrap();
        sent.push(client_msg_id);
    }
    bob_ws.send(&ClientFrame::Typing { conversation }).await.unwrap();
    expect_frame(&mut alice_ws, "bob typing, while alice's sends wait for the lock", |f| {
        assert!(
            !matches!(f, ServerFrame::Ack { .. } | ServerFrame::Error { .. }),
            "answered under the lock: {f:?}"
        );
        matches!(f, ServerFrame::Typing { .. })
    })
    .await;
    lock.release();

    let mut acked = Vec::new();
    while acked.len() < sent.len() {
        match expect_frame(&mut alice_ws, "acks", |f| {
            matches!(f, ServerFrame::Ack { .. } | ServerFrame::Error { .. })
        })
        .await
        {
            ServerFrame::Ack { client_msg_id, id, .. } => acked.push((client_msg_id, id)),
            other => panic!("a send failed: {other:?}"),
        }
    }
    assert_eq!(acked.iter().map(|(c, _)| *c).collect::<Vec<_>>(), sent, "acks in the order sent");
    assert!(acked.windows(2).all(|w| w[0].1 < w[1].1), "stored in the order sent: {acked:?}");
    for (i, (_, id)) in acked.iter().enumerate() {
        let ServerFrame::Message { message } =
            expect_frame(&mut bob_ws, "relayed", |f| matches!(f, ServerFrame::Message { .. })).await
        else {
            unreachable!()
        };
        assert_eq!(message.id, *id);
        assert_eq!(text(&bob.decrypt(&message).await.unwrap().payload), format!("pipelined {i}"));
    }
    let (commits, writes) = metrics().await;
    // (Writes other than the twenty — the first send's connection going offline — may land
    // in the same window.)
    assert!(writes - writes_before >= 20);
    assert!(
        commits - commits_before <= 4,
        "twenty queued writes shared commits: {} commits",
        commits - commits_before
    );
}

/// A client that pipelines 2,300 sends (more than the frame budget's burst of 2,000) without
/// waiting for a single ack is never refused: every send is acknowledged, in the order sent,
/// and stored in that order. (A refusal over the budget once made clients resend out of order;
/// the 10-minute soak found it.)
#[tokio::test]
async fn sends_pipelined_past_the_frame_budget_are_all_acked_and_stored_in_order() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;

    const SENDS: usize = 2_300;
    let server = TestServer::start();
    let mut alice = server.register("alice").await;
    let bob = server.register("bob").await;
    alice.send_text("bob", "first", false).await.unwrap();
    let bob_name = bob.username().clone();
    let conversation = alice.conversation_with(&bob_name).await.unwrap();
    let mut frames = Vec::with_capacity(SENDS);
    let mut sent = Vec::with_capacity(SENDS);
    for i in 0..SENDS {
        let (client_msg_id, envelope) =
            alice.encrypt_to(&bob_name, &Payload::Text(format!("burst {i}")), false).await.unwrap();
        let frame = ClientFrame::Send { conversation, client_msg_id, envelope, blobs: vec![] };
        frames.push(serde_json::to_string(&frame).unwrap());
        sent.push(client_msg_id);
    }
    let mut req = format!("{}/ws", server.url.replacen("http", "ws", 1)).into_client_request().unwrap();
    req.headers_mut().insert("Authorization", format!("Bearer {}", alice.token()).parse().unwrap());
    let (ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let (mut sink, mut stream) = ws.split();
    // Everything at once, while the answers are read on their own task.
    let writer = tokio::spawn(async move {
        for text in frames {
            sink.send(Message::Text(text.into())).await.unwrap();
        }
        sink
    });
    let mut acked = Vec::with_capacity(SENDS);
    while acked.len() < SENDS {
        let next = tokio::time::timeout(Duration::from_secs(60), stream.next()).await;
        let Ok(Some(Ok(Message::Text(text)))) = next else {
            if matches!(next, Ok(Some(Ok(_)))) {
                continue;
            }
            panic!("the connection ended after {} acks: {next:?}", acked.len());
        };
        match serde_json::from_str::<ServerFrame>(&text).unwrap() {
            ServerFrame::Ack { client_msg_id, id, .. } => acked.push((client_msg_id, id)),
            ServerFrame::Error { code, message, .. } => {
                panic!("refused after {} acks: {code:?} {message}", acked.len())
            }
            _ => {}
        }
    }
    let _sink = writer.await.unwrap();
    assert_eq!(acked.iter().map(|(c, _)| *c).collect::<Vec<_>>(), sent, "acks in the order sent");
    assert!(acked.windows(2).all(|w| w[0].1 < w[1].1), "stored in the order sent");
    // The rows themselves, in id order: the burst after the first message, as sent.
    let stored = server.sql_rows(&format!(
        "SELECT {} FROM messages WHERE sender_id = (SELECT id FROM users WHERE username = 'alice') ORDER BY id",
        server.hex_sql("client_msg_id")
    ));
    let hex = |c: &sealroom_protocol::ClientMsgId| c.0.iter().map(|b| format!("{b:02X}")).collect::<String>();
    assert_eq!(stored[1..], sent.iter().map(hex).collect::<Vec<_>>()[..]);
}
