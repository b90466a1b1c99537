//! Scale-out (issue 15): two and three relay nodes on one PostgreSQL database and one NATS
//! server, each started by the test (crates/testkit), sharing a data dir. People connected to
//! different nodes chat live; a node killed with SIGKILL or NATS stopped mid-load costs
//! latency, never an acknowledged message, and no connection hears a message twice.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sealroom_client::{ClientError, Session};
use sealroom_crypto::Payload;
use sealroom_protocol::{ClientFrame, ErrorCode, MessageId, ServerFrame};
use sealroom_tests::{expect_frame, metric, send_until_stopped, Cluster, FailoverProxy, TestServer};

fn text(p: &Payload) -> &str {
    match p {
        Payload::Text(t) => t,
        other => panic!("expected text, got {other:?}"),
    }
}

async fn health(node: &TestServer) -> (u16, serde_json::Value) {
    let r = reqwest::get(format!("{}/healthz", node.url)).await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn people_on_two_nodes_chat_live_with_receipts_typing_presence_clear_and_logout_everywhere() {
    let cluster = Cluster::start(2);
    let (a, b) = (&cluster.nodes[0], &cluster.nodes[1]);
    for node in [a, b] {
        let (status, body) = health(node).await;
        assert_eq!(status, 200);
        assert_eq!(
            (body["status"].as_str(), body["database"].as_str(), body["nats"].as_str()),
            (Some("ok"), Some("ok"), Some("ok"))
        );
    }
    let mut alice = a.register("alice").await;
    let mut bob = b.register("bob").await;
    let mut alice_ws = alice.connect().await.unwrap();
    let mut bob_ws = bob.connect().await.unwrap();

    // alice (node A) → bob (node B), live.
    let id1 = alice.send_text("bob", "hello from node A", false).await.unwrap();
    let ServerFrame::Message { message } =
        expect_frame(&mut bob_ws, "alice's message on node B", |f| matches!(f, ServerFrame::Message { .. }))
            .await
    else {
        unreachable!()
    };
    assert_eq!((message.id, message.from.as_str()), (id1, "alice"));
    assert_eq!(text(&bob.decrypt(&message).await.unwrap().payload), "hello from node A");
    let conversation = message.conversation;

    // bob → alice, live, and receipts back across.
    let id2 = bob.send_text("alice", "hello from node B", false).await.unwrap();
    assert!(id2 > id1);
    let ServerFrame::Message { message } = expect_frame(
        &mut alice_ws,
        "bob's reply on node A",
        |f| matches!(f, ServerFrame::Message { message } if message.id == id2),
    )
    .await
    else {
        unreachable!()
    };
    assert_eq!(text(&alice.decrypt(&message).await.unwrap().payload), "hello from node B");
    bob_ws.send(&ClientFrame::Delivered { conversation, up_to: id1 }).await.unwrap();
    expect_frame(
        &mut alice_ws,
        "delivered, from node B",
        |f| matches!(f, ServerFrame::Delivered { up_to, .. } if *up_to == id1),
    )
    .await;
    alice.mark_read("bob", id2).await.unwrap();
    expect_frame(
        &mut bob_ws,
        "read, from node A",
        |f| matches!(f, ServerFrame::Read { up_to, .. } if *up_to == id2),
    )
    .await;

    // Typing both ways.
    alice_ws.send(&ClientFrame::Typing { conversation }).await.unwrap();
    expect_frame(
        &mut bob_ws,
        "alice typing",
        |f| matches!(f, ServerFrame::Typing { from, .. } if from.as_str() == "alice"),
    )
    .await;
    bob_ws.send(&ClientFrame::Typing { conversation }).await.unwrap();
    expect_frame(
        &mut alice_ws,
        "bob typing",
        |f| matches!(f, ServerFrame::Typing { from, .. } if from.as_str() == "bob"),
    )
    .await;

    // Presence: bob is online through node B as node A sees it; a second connection of bob's
    // on node A and its closing change nothing; his last one closing makes him offline.
    assert!(alice.conversations().await.unwrap()[0].peer_online, "node A knows bob is on node B");
    let bob_on_a = a.client().login("bob", "password-of-bob").await.unwrap();
    let bob_a_ws = bob_on_a.connect().await.unwrap();
    bob_a_ws.close().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(alice.conversations().await.unwrap()[0].peer_online, "still on node B");
    bob_ws.close().await;
    expect_frame(
        &mut alice_ws,
        "bob offline",
        |f| matches!(f, ServerFrame::Presence { user, online: false, .. } if user.as_str() == "bob"),
    )
    .await;
    let mut bob_ws = bob.connect().await.unwrap();
    expect_frame(
        &mut alice_ws,
        "bob online again",
        |f| matches!(f, ServerFrame::Presence { user, online: true, .. } if user.as_str() == "bob"),
    )
    .await;

    // Clear for both, from node B, reaches node A.
    bob.clear("alice", true).await.unwrap();
    expect_frame(
        &mut alice_ws,
        "chat cleared by bob",
        |f| matches!(f, ServerFrame::ChatCleared { for_both: true, up_to, .. } if *up_to == id2),
    )
    .await;
    assert!(alice.history("bob", 10).await.unwrap().is_empty());

    // Logout everywhere on node B ends bob's connection on node A at once, and his token is
    // refused by every node.
    let bob_on_a = a.client().login("bob", "password-of-bob").await.unwrap();
    let mut bob_a_ws = bob_on_a.connect().await.unwrap();
    let token = bob_on_a.token().to_owned();
    bob.logout_everywhere().await.unwrap();
    expect_frame(&mut bob_a_ws, "session revoked on node A", |f| {
        matches!(f, ServerFrame::SessionRevoked { .. })
    })
    .await;
    expect_frame(&mut bob_ws, "session revoked on node B", |f| {
        matches!(f, ServerFrame::SessionRevoked { .. })
    })
    .await;
    for node in [a, b] {
        let r = reqwest::Client::new()
            .get(format!("{}/api/conversations", node.url))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 401, "{}", node.url);
    }
}

#[tokio::test]
async fn three_nodes_relay_every_pair_and_a_token_from_one_node_works_on_the_others() {
    let cluster = Cluster::start(3);
    let names = ["alice", "bob", "carol"];
    let mut people = Vec::new();
    for (node, name) in cluster.nodes.iter().zip(names) {
        let session = node.register(name).await;
        let ws = session.connect().await.unwrap();
        people.push((session, ws));
    }
    // A session made on node A reads through nodes B and C (one JWT secret, one database).
    let token = people[0].0.token().to_owned();
    for node in &cluster.nodes[1..] {
        let r = reqwest::Client::new()
            .get(format!("{}/api/conversations", node.url))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{}", node.url);
    }
    // Each writes to the next: every message crosses nodes, live.
    for i in 0..3 {
        let (to, from) = (names[(i + 1) % 3], names[i]);
        let words = format!("{from} to {to}");
        let id = people[i].0.send_text(to, &words, false).await.unwrap();
        let j = (i + 1) % 3;
        let ServerFrame::Message { message } = expect_frame(
            &mut people[j].1,
            &words,
            |f| matches!(f, ServerFrame::Message { message } if message.id == id),
        )
        .await
        else {
            unreachable!()
        };
        assert_eq!(text(&people[j].0.decrypt(&message).await.unwrap().payload), words);
    }
}

#[tokio::test]
async fn single_session_mode_holds_across_nodes() {
    let cluster = Cluster::start_with(2, &["--single-session"]);
    let (a, b) = (&cluster.nodes[0], &cluster.nodes[1]);
    let first = a.register("alice").await;
    let mut ws = first.connect().await.unwrap();
    // Signing in through node B ends the session held through node A.
    let _second = b.client().login("alice", "password-of-alice").await.unwrap();
    expect_frame(&mut ws, "revoked by a sign-in on node B", |f| {
        matches!(f, ServerFrame::SessionRevoked { .. })
    })
    .await;
    assert!(first.conversations().await.is_err(), "the old session is gone on node A too");
}

#[tokio::test]
async fn a_file_uploaded_through_one_node_downloads_through_another() {
    let cluster = Cluster::start(2);
    let dir = tempfile::tempdir().unwrap();
    let mut alice = cluster.nodes[0].register("alice").await;
    let mut bob = cluster.nodes[1].register("bob").await;
    let bytes: Vec<u8> = (0..300_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let path = dir.path().join("report.bin");
    std::fs::write(&path, &bytes).unwrap();
    let id = alice.send_file("bob", &path, false).await.unwrap();
    let out = dir.path().join("got.bin");
    bob.get_file(id, &out, false).await.unwrap();
    assert!(std::fs::read(&out).unwrap() == bytes, "the file comes back whole through node B");
}

/// A second device that listens as a client does: it keeps its sync position (the client
/// core's `Outbox`: the newest id it has, lowered by a `catch_up` frame), and on every
/// (re)connect catches up from there, on a connection of its own, so that the live one hears
/// only what the relay pushes. Returns what each live connection heard, and what the
/// catch-ups brought.
async fn listen_until_stopped(
    session: Session,
    stop: Arc<AtomicBool>,
) -> (Vec<Vec<MessageId>>, HashSet<MessageId>, Vec<String>) {
    let mut position = sealroom_session::Outbox::default();
    // What happened, for the failure message.
    let mut trace = Vec::new();
    let mut connections = Vec::new();
    let mut caught = HashSet::new();
    // A connection the relay dropped is followed by a reconnect and a catch-up, even once
    // stopping (as a client would: the relay may have dropped it to make it catch up).
    let mut dropped = false;
    while !stop.load(Ordering::SeqCst) || std::mem::take(&mut dropped) {
        dropped = false;
        let Ok(mut conn) = session.connect().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        // Registered first, then the catch-up: nothing falls between the two.
        let Ok(mut sync) = session.connect().await else { continue };
        // As a client does on every connect: the sync starts; pushes count once it is done.
        position.on_hello(|_| false);
        let mut since = position.cursor();
        trace.push(format!("connection {}: sync from {since:?}", connections.len()));
        let mut sync_failed = false;
        'sync: loop {
            if sync.send(&ClientFrame::Sync { since }).await.is_err() {
                break;
            }
            loop {
                match sync.next_within(Duration::from_secs(10)).await {
                    Ok(ServerFrame::Message { message }) => {
                        caught.insert(message.id);
                    }
                    Ok(frame @ ServerFrame::Synced { up_to, more }) => {
                        position.on_frame(&frame);
                        if more {
                            since = up_to;
                            continue 'sync;
                        }
                        break 'sync;
                    }
                    Ok(frame) => trace.push(format!("  (sync connection: {frame:?})")),
                    Err(e) => {
                        trace.push(format!("  sync ended early: {e}"));
                        // As a client whose connection dropped mid-sync: start again.
                        sync_failed = true;
                        break 'sync;
                    }
                }
            }
        }
        trace.push(format!("  synced to {:?}; {} caught so far", position.cursor(), caught.len()));
        sync.close().await;
        if sync_failed {
            conn.close().await;
            dropped = true;
            continue;
        }
        let mut heard = Vec::new();
        while !stop.load(Ordering::SeqCst) {
            match conn.next_within(Duration::from_millis(200)).await {
                Ok(frame) => {
                    match &frame {
                        ServerFrame::Message { message } => heard.push(message.id),
                        ServerFrame::CatchUp { since } => trace.push(format!("  catch up from {since:?}")),
                        _ => {}
                    }
                    position.on_frame(&frame);
                }
                Err(ClientError::Timeout) => {}
                Err(e) => {
                    trace.push(format!(
                        "  heard {} (up to {:?}); ended: {e}",
                        heard.len(),
                        heard.iter().max()
                    ));
                    dropped = true;
                    break;
                }
            }
        }
        connections.push(heard);
    }
    (connections, caught, trace)
}

/// Every connection heard each message at most once.
fn assert_each_heard_once(who: &str, connections: &[Vec<MessageId>]) {
    for (n, heard) in connections.iter().enumerate() {
        let unique: HashSet<_> = heard.iter().collect();
        assert_eq!(unique.len(), heard.len(), "{who}'s connection {n} heard a message twice: {heard:?}");
    }
}

/// Every acknowledged message is in the recipient's history exactly once, under its ack's id.
async fn assert_stored_once(
    reader: &mut Session,
    peer: &str,
    sent: &[(sealroom_protocol::ClientMsgId, String)],
    acked: &std::collections::HashMap<sealroom_protocol::ClientMsgId, MessageId>,
) {
    assert_eq!(acked.len(), sent.len(), "the outbox drained: every message was acknowledged");
    let history = reader.history(peer, 100_000).await.unwrap();
    let mut stored: BTreeMap<String, Vec<MessageId>> = BTreeMap::new();
    // (Each wrote "hello" first, to open the conversation both ways.)
    for m in history.iter().filter(|m| m.from.as_str() == peer && m.text() != "hello") {
        stored.entry(m.text()).or_default().push(m.id);
    }
    for (client_msg_id, words) in sent {
        let ids = stored.get(words).unwrap_or_else(|| panic!("{words} was acknowledged but is gone"));
        assert_eq!(ids, &vec![acked[client_msg_id]], "{words}: stored once, under the acknowledged id");
    }
    assert_eq!(stored.values().map(Vec::len).sum::<usize>(), sent.len(), "nothing more was stored");
}

/// Two senders, one on each node, each behind a proxy that prefers its node and fails over to
/// the other; listeners on each side. `disrupt` runs mid-load.
async fn under_load(cluster: &Cluster, disrupt: impl FnOnce() + Send + 'static) -> Vec<(String, usize)> {
    let (a, b) = (&cluster.nodes[0], &cluster.nodes[1]);
    let via_a = FailoverProxy::start(&[&a.url, &b.url]);
    let via_b = FailoverProxy::start(&[&b.url, &a.url]);
    let mut alice = via_a.client().register("alice", "password-of-alice").await.unwrap();
    let mut bob = via_b.client().register("bob", "password-of-bob").await.unwrap();
    alice.send_text("bob", "hello", false).await.unwrap();
    bob.send_text("alice", "hello", false).await.unwrap();
    let to_bob = alice.conversation_with(bob.username()).await.unwrap();
    let to_alice = bob.conversation_with(alice.username()).await.unwrap();
    let alice_ears = via_a.client().login("alice", "password-of-alice").await.unwrap();
    let bob_ears = via_b.client().login("bob", "password-of-bob").await.unwrap();
    let (alice_name, bob_name) = (alice.username().clone(), bob.username().clone());

    let stop = Arc::new(AtomicBool::new(false));
    let stopper = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1500));
            disrupt();
            // Long enough for the nodes to notice a dead one (nats::NODE_TIMEOUT) and settle.
            std::thread::sleep(Duration::from_secs(7));
            stop.store(true, Ordering::SeqCst);
        })
    };
    // The listeners stop a second after the senders have drained, so that they can hear all
    // that was sent.
    let listening = Arc::new(AtomicBool::new(false));
    let (sender_a, sender_b) = (alice, bob);
    let senders = async {
        let done = tokio::join!(
            send_until_stopped(sender_a, bob_name.clone(), to_bob, stop.clone(), Some(7)),
            send_until_stopped(sender_b, alice_name.clone(), to_alice, stop.clone(), Some(7)),
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        listening.store(true, Ordering::SeqCst);
        done
    };
    let (((a_sent, a_acked, a_connects), (b_sent, b_acked, b_connects)), alice_heard, bob_heard) =
        tokio::time::timeout(Duration::from_secs(180), async {
            tokio::join!(
                senders,
                listen_until_stopped(alice_ears, listening.clone()),
                listen_until_stopped(bob_ears, listening.clone()),
            )
        })
        .await
        .expect("the clients finish after the disruption");
    stopper.join().unwrap();
    eprintln!(
        "alice sent {} ({a_connects} connections), bob sent {} ({b_connects} connections)",
        a_sent.len(),
        b_sent.len()
    );
    assert!(a_sent.len() > 20 && b_sent.len() > 20, "too little load around the disruption");
    // SEALROOM_DUMP_LOGS=1: what the nodes said about NATS and catching up.
    if std::env::var_os("SEALROOM_DUMP_LOGS").is_some() {
        for node in &cluster.nodes {
            let log = std::fs::read_to_string(node.log_path()).unwrap_or_default();
            for line in log.lines().filter(|l| l.contains("NATS") || l.contains("catch up")) {
                eprintln!("{}: {line}", node.url);
            }
        }
    }
    assert_each_heard_once("alice", &alice_heard.0);
    assert_each_heard_once("bob", &bob_heard.0);
    // Nothing was lost to either listener: every message of the conversation (both sides')
    // reached it, pushed live or brought by the catch-up after a reconnect (from where the
    // relay's `catch_up` said to start, when it may have missed passing some on). And live
    // delivery came back by itself: the last connections heard the other side.
    let all: std::collections::BTreeSet<MessageId> =
        a_acked.values().chain(b_acked.values()).copied().collect();
    for (who, (heard, caught, trace)) in [("alice", &alice_heard), ("bob", &bob_heard)] {
        let had: HashSet<MessageId> = heard.iter().flatten().chain(caught.iter()).copied().collect();
        let missed: Vec<_> = all.iter().filter(|id| !had.contains(id)).collect();
        let from_alice: HashSet<MessageId> = a_acked.values().copied().collect();
        assert!(
            missed.is_empty(),
            "{who} never had {} of the {} messages (first: {:?}, from alice: {}); catch-ups brought {}; \
             the last connection heard up to {:?}; what the listener went through:\n{}",
            missed.len(),
            all.len(),
            &missed[..missed.len().min(10)],
            missed.iter().filter(|m| from_alice.contains(m)).count(),
            caught.len(),
            heard.last().and_then(|l| l.iter().max()),
            trace.join("\n")
        );
        assert!(heard.last().is_some_and(|l| l.len() > 20), "{who}'s last connection heard too little");
    }
    let mut bob = via_b.client().login("bob", "password-of-bob").await.unwrap();
    let mut alice = via_a.client().login("alice", "password-of-alice").await.unwrap();
    assert_stored_once(&mut bob, "alice", &a_sent, &a_acked).await;
    assert_stored_once(&mut alice, "bob", &b_sent, &b_acked).await;
    vec![("alice".into(), a_connects), ("bob".into(), b_connects)]
}

#[tokio::test]
async fn a_node_killed_mid_load_loses_no_acknowledged_message_and_its_clients_move_to_the_other() {
    let mut cluster = Cluster::start(2);
    let victim = cluster.nodes[0].pid().unwrap();
    let connects = under_load(&cluster, move || {
        let _ = std::process::Command::new("kill").args(["-KILL", &victim.to_string()]).status();
    })
    .await;
    assert!(connects[0].1 >= 2, "alice's sender reconnected (to node B): {connects:?}");
    cluster.nodes[0].kill(); // Reaped.
                             // Afterwards node B serves everyone, live.
    let b = &cluster.nodes[1];
    let mut alice = b.client().login("alice", "password-of-alice").await.unwrap();
    let bob = b.client().login("bob", "password-of-bob").await.unwrap();
    let mut bob_ws = bob.connect().await.unwrap();
    let id = alice.send_text("bob", "after the crash", false).await.unwrap();
    expect_frame(
        &mut bob_ws,
        "a message after the crash",
        |f| matches!(f, ServerFrame::Message { message } if message.id == id),
    )
    .await;
}

#[tokio::test]
async fn nats_stopped_mid_load_loses_nothing_and_live_delivery_resumes_by_itself() {
    let mut cluster = Cluster::start(2);
    // Stop NATS for three seconds while both keep sending; check health and refusals while it
    // is down.
    let nats = std::mem::replace(&mut cluster.nats, sealroom_testkit::Nats::new());
    let nats = Arc::new(std::sync::Mutex::new(nats));
    let outage = {
        let nats = nats.clone();
        move || {
            nats.lock().unwrap().stop();
            std::thread::sleep(Duration::from_secs(3));
            nats.lock().unwrap().start();
        }
    };
    let (a, b) = (cluster.nodes[0].url.clone(), cluster.nodes[1].url.clone());
    let watcher = tokio::spawn(async move {
        // While it is down, node A says so and turns new connections away with `unavailable`.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r = reqwest::get(format!("{a}/healthz")).await.unwrap();
            if r.status().as_u16() == 503 {
                let body: serde_json::Value = r.json().await.unwrap();
                assert_eq!(
                    (body["nats"].as_str(), body["database"].as_str()),
                    (Some("unreachable"), Some("ok"))
                );
                break;
            }
            assert!(Instant::now() < deadline, "node A never reported the NATS outage");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut carol =
            sealroom_client::Client::new(&b).unwrap().register("carol", "password-of-carol").await;
        while let Err(ClientError::Http(_) | ClientError::Timeout) = carol {
            carol = sealroom_client::Client::new(&b).unwrap().register("carol", "password-of-carol").await;
        }
        let carol = carol.unwrap();
        match carol.connect().await {
            Err(ClientError::Api(e)) => assert_eq!(e.error, ErrorCode::Unavailable, "{e:?}"),
            Err(e) if Instant::now() > deadline => panic!("{e}"),
            other => eprintln!("(NATS came back before the refusal was seen: {:?})", other.map(|_| ())),
        }
    });
    under_load(&cluster, outage).await;
    watcher.await.unwrap();
    // Healthy again by itself, and live delivery works without anyone restarting anything.
    for node in &cluster.nodes {
        let deadline = Instant::now() + Duration::from_secs(15);
        while health(node).await.0 != 200 {
            assert!(Instant::now() < deadline, "{} did not recover", node.url);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    for node in &cluster.nodes {
        assert_eq!(metric(&node.url, "sealroom_nats_connected").await, Some(1.0));
        let resyncs = metric(&node.url, "sealroom_nats_resyncs_total").await.unwrap();
        assert!(resyncs >= 1.0, "{}: its connections caught up after the outage ({resyncs})", node.url);
    }
    let mut alice = cluster.nodes[0].client().login("alice", "password-of-alice").await.unwrap();
    let bob = cluster.nodes[1].client().login("bob", "password-of-bob").await.unwrap();
    let mut bob_ws = bob.connect().await.unwrap();
    let id = alice.send_text("bob", "after the outage", false).await.unwrap();
    expect_frame(
        &mut bob_ws,
        "a message after the outage",
        |f| matches!(f, ServerFrame::Message { message } if message.id == id),
    )
    .await;
    drop(nats);
}

#[tokio::test]
async fn a_relay_that_loses_postgresql_says_so_refuses_work_clearly_and_recovers_by_itself() {
    let pg = sealroom_testkit::Postgres::dedicated();
    let server = TestServer::start_on(&pg.database(), &[]);
    let mut alice = server.register("alice").await;
    let mut bob = server.register("bob").await;
    alice.send_text("bob", "before the outage", false).await.unwrap();

    pg.stop();
    let (status, body) = health(&server).await;
    assert_eq!(
        (status, body["database"].as_str(), body["status"].as_str()),
        (503, Some("unreachable"), Some("unavailable"))
    );
    match alice.conversations().await {
        Err(ClientError::Api(e)) => assert_eq!(e.error, ErrorCode::Unavailable, "{e:?}"),
        other => panic!("a request while the database is down: {:?}", other.map(|c| c.len())),
    }

    pg.start();
    let deadline = Instant::now() + Duration::from_secs(30);
    while health(&server).await.0 != 200 {
        assert!(Instant::now() < deadline, "the relay did not recover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Writes work again (the writer's connection is made anew), and nothing stored was lost.
    let mut sent = None;
    while sent.is_none() {
        match alice.send_text("bob", "after the outage", false).await {
            Ok(id) => sent = Some(id),
            Err(e) => {
                assert!(Instant::now() < deadline, "sending never worked again: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    let texts: Vec<String> = bob.history("alice", 10).await.unwrap().iter().map(|m| m.text()).collect();
    assert_eq!(texts, ["before the outage", "after the outage"]);
}

/// A node refuses to start on what it cannot run on, and says why (never a password): NATS
/// without a shared PostgreSQL database, a NATS URL that names no NATS server, a database it
/// cannot reach. And several NATS servers, comma-separated, are one option: a node given a
/// dead one and a live one fans out through the live one.
#[tokio::test]
async fn a_node_refuses_to_start_on_what_it_cannot_run_on() {
    let dir = tempfile::tempdir().unwrap();
    let database = sealroom_testkit::postgres().database();
    let refusals: [(&[&str], &[&str]); 4] = [
        (&["--nats-url", "nats://127.0.0.1:4222"], &["--nats-url", "--database-url postgres://"]),
        (&["--database-url", &database, "--nats-url", "http://nats.example:4222"], &["--nats-url", "scheme"]),
        (&["--database-url", &database, "--nats-url", " , "], &["--nats-url names no NATS server"]),
        (
            &["--database-url", "postgres://relay:hunter2@127.0.0.1:1/sealroom"],
            &["cannot open the database", "postgres://relay:***@127.0.0.1:1/sealroom"],
        ),
    ];
    for (args, says) in refusals {
        let out = std::process::Command::new(sealroom_tests::bin("sealroom"))
            .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .args(args)
            .env_remove("RUST_BACKTRACE")
            .output()
            .unwrap();
        assert!(!out.status.success(), "started with {args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(says.iter().all(|s| err.contains(s)), "{args:?}: {err}");
        assert!(!err.contains("hunter2"), "the password was printed: {err}");
    }
    // A dead NATS server first, a live one second: the node comes up through the second.
    let nats = sealroom_testkit::Nats::new();
    let servers = format!("nats://127.0.0.1:1, {}", nats.url());
    let node = TestServer::start_on(&database, &["--nats-url", &servers]);
    node.wait_healthy();
    let (status, body) = health(&node).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["nats"], "ok", "{body}");
}

/// A node that dies takes its users' connections with it, and no connection closing tells
/// anyone: the nodes left announce them offline to their peers once they notice (a node silent
/// for 4 s), as the last connection closing would have, with a last-seen time. (Noticing also
/// makes every connection catch up, so peers mostly learn it from their conversation list on
/// the reconnect that follows; before this, that list said "online" with no last seen.)
#[tokio::test]
async fn the_users_of_a_node_that_dies_are_announced_offline_to_their_peers() {
    let cluster = Cluster::start(2);
    let (a, b) = (&cluster.nodes[0], &cluster.nodes[1]);
    let mut alice = a.register("alice").await;
    let mut bob = b.register("bob").await;
    let _alice_ws = alice.connect().await.unwrap();
    let _bob_ws = bob.connect().await.unwrap();
    // Both have written: they share presence.
    alice.send_text("bob", "hello", false).await.unwrap();
    bob.send_text("alice", "hello", false).await.unwrap();
    let list = bob.conversations().await.unwrap();
    assert!(list[0].peer_online && list[0].peer_last_seen.is_none(), "alice is online on node A: {list:?}");
    let victim = a.pid().unwrap();
    std::process::Command::new("kill").args(["-KILL", &victim.to_string()]).status().unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let list = bob.conversations().await.unwrap();
        if !list[0].peer_online && list[0].peer_last_seen.is_some_and(|t| t > 0) {
            break;
        }
        assert!(Instant::now() < deadline, "alice was never announced offline: {list:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
