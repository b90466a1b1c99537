//! Store and services on a real SQLite file, with no web framework: the v1 → v2 migration,
//! opening direct conversations, the one-query conversation list, and services driven through
//! a plain [`Relay`].

use crate::db::DbConn;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel_migrations::MigrationHarness;
use sealroom_protocol::{
    BlobId, ClientMsgId, ConversationFlags, ConversationId, ConversationKind, Envelope, ErrorCode,
    HistoryQuery, MessageId, UserId, Username,
};

use crate::auth::AuthUser;
use crate::config::Cli;
use crate::db::SQLITE_MIGRATIONS;
use crate::error::ServerError;
use crate::store::{self, NewUser, Refused, Store};
use crate::{service, Relay};

fn url(dir: &tempfile::TempDir) -> String {
    dir.path().join("sealroom.db").to_string_lossy().into_owned()
}

/// The two databases every store test runs on.
#[derive(Debug, Clone, Copy)]
enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh, empty database: a file in a temp dir, or a new database in the test process's
/// PostgreSQL cluster ([`sealroom_testkit::postgres`]).
struct Fresh {
    url: String,
    dir: tempfile::TempDir,
}

fn fresh(backend: Backend) -> Fresh {
    let dir = tempfile::tempdir().unwrap();
    let url = match backend {
        Backend::Sqlite => url(&dir),
        Backend::Postgres => sealroom_testkit::postgres().database(),
    };
    Fresh { url, dir }
}

fn add_user(conn: &mut DbConn, name: &str) -> UserId {
    store::insert_user(
        conn,
        &NewUser {
            username: name,
            auth_hash: "$argon2id$test",
            kdf_salt: &[1; 16],
            kdf_m_kib: 65_536,
            kdf_t: 3,
            kdf_p: 1,
            identity_key: &[name.as_bytes()[0]; 32],
            key_backup: &[9, 9, 9],
            created_at: 1,
        },
    )
    .expect("user")
    .id
}

fn send(conn: &mut DbConn, from: UserId, c: ConversationId, n: u8, blobs: &[String]) -> MessageId {
    let m = store::NewMessage {
        sender: from,
        conversation: c,
        client_msg_id: &[n; 16],
        envelope: &[n; 40],
        blob_ids: blobs,
        now: 1_000 + i64::from(n),
    };
    store::store_message(conn, &m, i64::MAX).expect("stored").expect("accepted").row.id
}

#[test]
fn a_v1_database_with_messages_and_attachments_migrates_in_place() {
    let dir = tempfile::tempdir().unwrap();
    // A v1 relay's database: only the migrations v1 shipped with, and rows it wrote.
    {
        let mut conn = DbConn::establish(&url(&dir)).unwrap();
        conn.run_next_migration(SQLITE_MIGRATIONS).unwrap();
        conn.run_next_migration(SQLITE_MIGRATIONS).unwrap();
        conn.batch_execute(
            "INSERT INTO users (id, username, auth_hash, kdf_salt, kdf_m_kib, kdf_t, kdf_p, identity_key,
                                key_backup, created_at, last_seen)
                 VALUES (1, 'alice', 'h', zeroblob(16), 65536, 3, 1, zeroblob(32), x'0102', 1, NULL),
                        (2, 'bob', 'h', zeroblob(16), 65536, 3, 1, zeroblob(32), x'0304', 1, 77),
                        (3, 'carol', 'h', zeroblob(16), 65536, 3, 1, zeroblob(32), x'0506', 1, NULL);
             INSERT INTO conversations (id, user_lo, user_hi, created_at, last_activity) VALUES (1, 1, 2, 10, 30);
             INSERT INTO conversations (id, user_lo, user_hi, created_at, last_activity) VALUES (5, 1, 3, 11, 0);
             DELETE FROM conversations WHERE id = 5;
             INSERT INTO members (conversation_id, user_id, peer_id, cleared_up_to, read_up_to, delivered_up_to,
                                  pinned, hidden)
                 VALUES (1, 1, 2, 0, 2, 2, 1, 0), (1, 2, 1, 0, 1, 1, 0, 0);
             INSERT INTO messages (id, conversation_id, sender_id, recipient_id, client_msg_id, envelope, created_at)
                 VALUES (1, 1, 1, 2, x'01010101010101010101010101010101', x'AABBCC', 20),
                        (2, 1, 2, 1, x'02020202020202020202020202020202', x'DDEEFF', 30);
             INSERT INTO blobs (id, owner_id, size, created_at, attached)
                 VALUES ('q1w2e3r4t5y6u7i8o9p0-_', 1, 40, 15, 1);
             INSERT INTO message_blobs (message_id, blob_id) VALUES (1, 'q1w2e3r4t5y6u7i8o9p0-_');",
        )
        .unwrap();
    }
    // The v2 relay opens it: the remaining migrations run, nothing is lost.
    let store = Store::open(&url(&dir)).unwrap();
    let conn = &mut store.conn().unwrap();
    let (alice, bob, c) = (UserId(1), UserId(2), ConversationId(1));

    let rows = store::conversation_rows(conn, alice, None).unwrap();
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!((row.id, row.kind().unwrap(), row.peer_name.as_str()), (c, ConversationKind::Direct, "bob"));
    assert_eq!((row.pinned, row.hidden, row.read_up_to, row.unread), (true, false, MessageId(2), 0));
    assert_eq!((row.peer_read_up_to, row.peer_last_seen, row.last_activity), (MessageId(1), Some(77), 30));
    assert_eq!(row.last_message().unwrap().envelope, vec![0xDD, 0xEE, 0xFF]);
    let bobs = &store::conversation_rows(conn, bob, None).unwrap()[0];
    assert_eq!((bobs.peer_name.as_str(), bobs.unread, bobs.pinned), ("alice", 0, false), "bob read up to 1");

    let m = store::member(conn, bob, c).unwrap().expect("bob is still a member");
    let history = store::history(conn, &m, None, None, 50).unwrap();
    let stored: Vec<_> =
        history.iter().map(|r| (r.id.0, r.sender_id, r.recipient_id, r.envelope.clone())).collect();
    assert_eq!(stored, [(1, alice, bob, vec![0xAA, 0xBB, 0xCC]), (2, bob, alice, vec![0xDD, 0xEE, 0xFF])]);
    assert_eq!(store::downloadable_blob(conn, bob, "q1w2e3r4t5y6u7i8o9p0-_").unwrap(), Some(40));
    assert_eq!(store::peers_of(conn, alice).unwrap(), [bob]);
    // What each had stored counts under the message quota from the start.
    assert_eq!(
        (store::message_bytes(conn, alice).unwrap(), store::message_bytes(conn, bob).unwrap()),
        (3, 3)
    );
    // And the conversation goes on under its old id.
    let next = send(conn, alice, c, 3, &[]);
    assert_eq!(next, MessageId(3));
    assert_eq!(store::open_direct(conn, bob, alice, 5).unwrap(), c);
    // Rebuilt for groups (version 2), the table keeps its id sequence: a deleted conversation's
    // id is never given to another.
    assert_eq!(store::open_direct(conn, alice, UserId(3), 6).unwrap(), ConversationId(6));
}

fn a_direct_conversation_opened_is_the_peers_only_from_its_first_message(backend: Backend) {
    let db = fresh(backend);
    let store = Store::open(&db.url).unwrap();
    let conn = &mut store.conn().unwrap();
    let (alice, bob) = (add_user(conn, "alice"), add_user(conn, "bob"));

    let c = store::open_direct(conn, alice, bob, 100).unwrap();
    assert_eq!(store::open_direct(conn, alice, bob, 101).unwrap(), c, "found, not created twice");
    let row = |conn: &mut DbConn, u| store::conversation_rows(conn, u, Some(c)).unwrap().remove(0);
    assert!(!row(conn, alice).hidden);
    assert!(
        store::conversation_rows(conn, bob, None).unwrap().is_empty(),
        "bob does not see a conversation nobody wrote in"
    );
    assert!(store::member(conn, bob, c).unwrap().is_some_and(|m| m.hidden));
    assert_eq!(row(conn, alice).last_activity, 0);
    assert!(store::peers_of(conn, bob).unwrap().is_empty(), "opening shares no presence");
    assert!(!store::written_to(conn, c).unwrap());

    send(conn, alice, c, 1, &[]);
    assert!(!row(conn, bob).hidden, "the first message shows it");
    assert_eq!(row(conn, bob).unread, 1);
    assert!(store::peers_of(conn, bob).unwrap().is_empty(), "one side writing shares no presence");
    assert_eq!(store::open_direct(conn, bob, alice, 102).unwrap(), c, "the same from either side");
    send(conn, bob, c, 2, &[]);
    assert_eq!(store::peers_of(conn, bob).unwrap(), [alice], "both wrote");
    assert_eq!(store::peers_of(conn, alice).unwrap(), [bob]);
    let bobs = store::member(conn, bob, c).unwrap().expect("member");
    store::set_flags(conn, &bobs, None, Some(true)).unwrap();
    assert!(store::peers_of(conn, alice).unwrap().is_empty(), "closed by one side: nothing shared");
}

fn the_conversation_list_is_one_query_that_respects_clears_and_markers(backend: Backend) {
    let db = fresh(backend);
    let store = Store::open(&db.url).unwrap();
    let conn = &mut store.conn().unwrap();
    let (alice, bob, carol) = (add_user(conn, "alice"), add_user(conn, "bob"), add_user(conn, "carol"));
    let ab = store::open_direct(conn, alice, bob, 1).unwrap();
    let ac = store::open_direct(conn, alice, carol, 1).unwrap();
    send(conn, alice, ab, 1, &[]);
    let b2 = send(conn, bob, ab, 2, &[]);
    send(conn, bob, ab, 3, &[]);
    send(conn, carol, ac, 4, &[]);
    let m = store::member(conn, alice, ab).unwrap().unwrap();
    store::raise_marker(conn, &m, b2, true).unwrap();

    let rows = store::conversation_rows(conn, alice, None).unwrap();
    let by_peer = |name: &str| rows.iter().find(|r| r.peer_name == name).unwrap();
    assert_eq!(
        (by_peer("bob").unread, by_peer("bob").last_message().unwrap().client_msg_id),
        (1, vec![3; 16])
    );
    assert_eq!(by_peer("carol").unread, 1);

    // Alice clears carol's conversation for herself: no preview, no unread; carol keeps hers.
    let m = store::member(conn, alice, ac).unwrap().unwrap();
    store::clear(conn, &m, false, None).unwrap();
    let mine = store::conversation_rows(conn, alice, Some(ac)).unwrap().remove(0);
    assert!(mine.last_message().is_none());
    assert_eq!(mine.unread, 0);
    let carols = store::conversation_rows(conn, carol, None).unwrap().remove(0);
    assert!(carols.last_message().is_some());
}

fn a_message_is_refused_whole_when_a_blob_is_not_the_senders(backend: Backend) {
    let db = fresh(backend);
    let store = Store::open(&db.url).unwrap();
    let conn = &mut store.conn().unwrap();
    let (alice, bob) = (add_user(conn, "alice"), add_user(conn, "bob"));
    let c = store::open_direct(conn, alice, bob, 1).unwrap();
    assert!(store::insert_blob(conn, "q1w2e3r4t5y6u7i8o9p0-_", bob, 10, 1_000, 1).unwrap());
    let blob_ids = ["q1w2e3r4t5y6u7i8o9p0-_".to_owned()];
    let m = store::NewMessage {
        sender: alice,
        conversation: c,
        client_msg_id: &[1; 16],
        envelope: &[1; 40],
        blob_ids: &blob_ids,
        now: 5,
    };
    let refused = store::store_message(conn, &m, i64::MAX).unwrap().unwrap_err();
    assert_eq!(refused, Refused::Blob("q1w2e3r4t5y6u7i8o9p0-_".into()));
    let m = store::member(conn, alice, c).unwrap().unwrap();
    assert!(store::history(conn, &m, None, None, 10).unwrap().is_empty(), "nothing stored");
    assert!(!store::written_to(conn, c).unwrap());
}

fn user(id: UserId, name: &str) -> AuthUser {
    AuthUser {
        id,
        username: Username::parse(name).unwrap(),
        session_id: format!("s-{name}"),
        expires_at: i64::MAX,
    }
}

async fn services_run_on_a_plain_relay_and_ask_the_policy(backend: Backend) {
    let db = fresh(backend);
    let cli = <Cli as clap::Parser>::parse_from([
        "sealroom",
        "--data-dir",
        db.dir.path().to_str().unwrap(),
        "--database-url",
        &db.url,
    ]);
    let relay = actix_web::web::Data::new(Relay::open(cli.serve).unwrap());
    let mut conn = relay.store.conn().unwrap();
    let (a, b, c) = (add_user(&mut conn, "alice"), add_user(&mut conn, "bob"), add_user(&mut conn, "carol"));
    drop(conn);
    let (alice, bob, carol) = (user(a, "alice"), user(b, "bob"), user(c, "carol"));

    let opened = service::open_direct(&relay, &alice, bob.username.clone()).await.unwrap();
    assert_eq!(opened.members, [alice.username.clone(), bob.username.clone()]);
    assert!(service::conversations(&relay, &bob).await.unwrap().iter().all(|s| s.hidden));
    let envelope = Envelope::new(vec![5; 60]).unwrap();
    let sent = service::send(
        relay.clone(),
        alice.clone(),
        opened.id,
        ClientMsgId([1; 16]),
        envelope.clone(),
        vec![],
        None,
    )
    .await
    .unwrap();
    assert_eq!((sent.conversation, sent.from.as_str(), sent.to.as_str()), (opened.id, "alice", "bob"));
    let page = service::history(&relay, &bob, opened.id, HistoryQuery::default()).await.unwrap();
    assert_eq!(page.messages, std::slice::from_ref(&sent));

    // Carol is not a member: every conversation service answers not_found, and stores nothing.
    let not_found =
        |r: Result<_, ServerError>| matches!(r, Err(ServerError::Api(e)) if e.error == ErrorCode::NotFound);
    assert!(not_found(
        service::history(&relay, &carol, opened.id, HistoryQuery::default()).await.map(|_| ())
    ));
    assert!(not_found(
        service::send(
            relay.clone(),
            carol.clone(),
            opened.id,
            ClientMsgId([2; 16]),
            envelope.clone(),
            vec![],
            None
        )
        .await
        .map(|_| ())
    ));
    assert!(not_found(service::mark(&relay, &carol, opened.id, sent.id, true).await));
    assert!(not_found(service::clear(&relay, &carol, opened.id, true, None).await.map(|_| ())));
    assert!(not_found(
        service::set_flags(&relay, &carol, opened.id, ConversationFlags { pinned: Some(true), hidden: None })
            .await
    ));
    assert!(not_found(service::typing(&relay, &carol, opened.id).await));
    assert!(not_found(service::message(&relay, &carol, sent.id).await.map(|_| ())));
    let blob = BlobId::parse("q1w2e3r4t5y6u7i8o9p0-_").unwrap();
    let unknown_blob = service::send(
        relay.clone(),
        alice.clone(),
        opened.id,
        ClientMsgId([3; 16]),
        envelope,
        vec![blob],
        None,
    )
    .await;
    assert!(matches!(unknown_blob, Err(ServerError::Api(e)) if e.error == ErrorCode::UnknownBlob));
    let page = service::history(&relay, &alice, opened.id, HistoryQuery::default()).await.unwrap();
    assert_eq!(page.messages.len(), 1, "only the one message alice sent");
    // Opening a conversation with oneself or a stranger is refused by the policy.
    let me_again = service::open_direct(&relay, &alice, alice.username.clone()).await;
    assert!(matches!(me_again, Err(ServerError::Api(e)) if e.error == ErrorCode::InvalidField));
    let nobody = service::open_direct(&relay, &alice, Username::parse("nobody").unwrap()).await;
    assert!(matches!(nobody, Err(ServerError::Api(e)) if e.error == ErrorCode::UnknownRecipient));
}

fn sessions_that_can_never_authenticate_again_are_pruned(backend: Backend) {
    let db = fresh(backend);
    let store = Store::open(&db.url).unwrap();
    let mut conn = store.conn().unwrap();
    let alice = add_user(&mut conn, "alice");
    let row = |id: &str, expires_at: i64, revoked_at: Option<i64>| store::SessionRow {
        id: id.into(),
        user_id: alice,
        created_at: 0,
        expires_at,
        revoked_at,
    };
    for s in [
        row("expired-long-ago", 1_000, None),
        row("revoked-long-ago", 9_000_000, Some(1_000)),
        row("live", 9_000_000, None),
        row("revoked-just-now", 9_000_000, Some(5_000)),
    ] {
        store::insert_session(&mut conn, &s).unwrap();
    }
    assert_eq!(store::prune_sessions(&mut conn, 2_000).unwrap(), 2);
    for (id, kept) in
        [("expired-long-ago", false), ("revoked-long-ago", false), ("live", true), ("revoked-just-now", true)]
    {
        assert_eq!(store::session(&mut conn, id).unwrap().is_some(), kept, "{id}");
    }
}

/// Issue 12: clear-for-both had no `up_to`, so it could delete a message the clearer never
/// saw. It clears up to what the clearer names, and markers only move up.
fn clearing_for_both_stops_at_what_the_clearer_saw(backend: Backend) {
    let db = fresh(backend);
    let store = Store::open(&db.url).unwrap();
    let conn = &mut store.conn().unwrap();
    let (alice, bob) = (add_user(conn, "alice"), add_user(conn, "bob"));
    let c = store::open_direct(conn, alice, bob, 1).unwrap();
    let seen = send(conn, bob, c, 1, &[]);
    send(conn, alice, c, 2, &[]);
    let late = send(conn, bob, c, 3, &[]);
    let m = store::member(conn, alice, c).unwrap().unwrap();
    let (up_to, _) = store::clear(conn, &m, true, Some(MessageId(2))).unwrap();
    assert_eq!(up_to, MessageId(2));
    let ids = |conn: &mut DbConn, who| {
        let m = store::member(conn, who, c).unwrap().unwrap();
        store::history(conn, &m, None, None, 50).unwrap().iter().map(|r| r.id).collect::<Vec<_>>()
    };
    assert_eq!(ids(conn, alice), [late], "what arrived after stays for the clearer too");
    assert_eq!(ids(conn, bob), [late], "and for the other side");
    assert!(seen < MessageId(3));
    // A lower up_to later does not bring anything back; a larger one stops at the newest.
    let m = store::member(conn, alice, c).unwrap().unwrap();
    assert_eq!(store::clear(conn, &m, false, Some(MessageId(1))).unwrap().0, MessageId(1));
    assert_eq!(ids(conn, alice), [late]);
    let m = store::member(conn, alice, c).unwrap().unwrap();
    assert_eq!(store::clear(conn, &m, false, Some(MessageId(99))).unwrap().0, late);
    assert!(ids(conn, alice).is_empty());
    assert_eq!(ids(conn, bob), [late]);
}

/// Issue 12: one socket stored 520 maximum-size envelopes in 6.6 s, with no limit. Stored
/// bytes count against the sender's quota, in the same transaction as the insert, and clearing
/// for both gives them back.
fn the_message_quota_counts_what_a_sender_stores_and_clearing_frees_it(backend: Backend) {
    let db = fresh(backend);
    let store = Store::open(&db.url).unwrap();
    let conn = &mut store.conn().unwrap();
    let (alice, bob) = (add_user(conn, "alice"), add_user(conn, "bob"));
    let c = store::open_direct(conn, alice, bob, 1).unwrap();
    let put = |conn: &mut DbConn, n: u8| {
        let m = store::NewMessage {
            sender: alice,
            conversation: c,
            client_msg_id: &[n; 16],
            envelope: &[n; 400],
            blob_ids: &[],
            now: 10,
        };
        store::store_message(conn, &m, 1000).unwrap()
    };
    assert!(put(conn, 1).is_ok());
    assert!(put(conn, 2).is_ok());
    assert!(matches!(put(conn, 3), Err(Refused::Quota)), "a third 400-byte envelope is past 1000");
    assert!(put(conn, 1).is_ok(), "a resend is not charged again");
    assert_eq!(store::message_bytes(conn, alice).unwrap(), 800);
    let m = store::member(conn, alice, c).unwrap().unwrap();
    store::clear(conn, &m, true, None).unwrap();
    assert_eq!(store::message_bytes(conn, alice).unwrap(), 0, "deleted messages free their bytes");
    assert!(put(conn, 4).is_ok());
}

/// The statements written out for the group commit (`store::hot`) do what diesel's DSL did:
/// receipts move only the markers they name, a message sets the conversation's activity and
/// reopens it for whoever closed it (but a withheld one only for its sender), and savepoints
/// nest, keep and undo.
fn the_hot_statements_move_markers_activity_and_closed_conversations_as_before(backend: Backend) {
    let db = fresh(backend);
    let store = Store::open(&db.url).unwrap();
    let conn = &mut store.conn().unwrap();
    let (alice, bob) = (add_user(conn, "alice"), add_user(conn, "bob"));
    let c = store::open_direct(conn, alice, bob, 1).unwrap();
    let m1 = send(conn, alice, c, 1, &[]);
    let m2 = send(conn, alice, c, 2, &[]);
    let member = |conn: &mut DbConn, u| store::member(conn, u, c).unwrap().unwrap();
    let activity =
        |conn: &mut DbConn| store::conversation_rows(conn, alice, Some(c)).unwrap()[0].last_activity;
    assert_eq!(activity(conn), 1_002, "the newest message's time");

    // Delivered only: the read marker stays; then read: both move; never down.
    let row = member(conn, bob);
    store::raise_marker(conn, &row, m2, false).unwrap();
    let b = member(conn, bob);
    assert_eq!((b.delivered_up_to, b.read_up_to), (m2, MessageId(0)));
    store::raise_marker(conn, &b, m1, true).unwrap();
    let b = member(conn, bob);
    assert_eq!((b.delivered_up_to, b.read_up_to), (m2, m1));
    assert_eq!(member(conn, alice).read_up_to, MessageId(0), "only the member's own row");

    // Both close it; a message reopens it for both.
    for u in [alice, bob] {
        let row = member(conn, u);
        store::set_flags(conn, &row, None, Some(true)).unwrap();
    }
    send(conn, bob, c, 3, &[]);
    assert!(!member(conn, alice).hidden && !member(conn, bob).hidden);
    // Both close it again, and bob blocks alice: her message reopens it for her alone.
    for u in [alice, bob] {
        let row = member(conn, u);
        store::set_flags(conn, &row, None, Some(true)).unwrap();
    }
    store::block(conn, bob, alice, 5).unwrap();
    send(conn, alice, c, 4, &[]);
    assert!(!member(conn, alice).hidden, "the sender sees what she sent");
    assert!(member(conn, bob).hidden, "the blocker is not reopened by a withheld message");
    assert_eq!(activity(conn), 1_004);

    // Savepoints: an inner one undone, the outer kept; both inside one transaction.
    let before = store::member(conn, alice, c).unwrap().unwrap().pinned;
    crate::db::write_transaction::<_, diesel::result::Error, _>(conn, |conn| {
        store::savepoint::<_, diesel::result::Error, _>(conn, |conn| {
            let row = member(conn, alice);
            store::set_flags(conn, &row, Some(!before), None).unwrap();
            let undone = store::savepoint::<(), diesel::result::Error, _>(conn, |conn| {
                let row = member(conn, bob);
                store::set_flags(conn, &row, Some(true), None).unwrap();
                Err(diesel::result::Error::RollbackTransaction)
            });
            assert!(undone.is_err());
            Ok(())
        })
    })
    .unwrap();
    assert_eq!(member(conn, alice).pinned, !before, "the outer savepoint kept");
    assert!(!member(conn, bob).pinned, "the inner savepoint undone");
}

fn mls_storage_orders_one_commit_per_epoch_and_hands_out_each_key_package_once(backend: Backend) {
    use store::mls::{self, Appended, CommitEffects, NewEntry, Registered};
    let db = fresh(backend);
    let store = Store::open(&db.url).unwrap();
    let conn = &mut store.conn().unwrap();
    let (alice, bob, carol) = (add_user(conn, "alice"), add_user(conn, "bob"), add_user(conn, "carol"));

    // The signing key is published once; another one later is refused.
    assert!(mls::publish_signing_key(conn, alice, &[1; 32]).unwrap());
    assert!(mls::publish_signing_key(conn, alice, &[1; 32]).unwrap());
    assert!(!mls::publish_signing_key(conn, alice, &[2; 32]).unwrap());
    assert_eq!(mls::signing_key(conn, alice).unwrap(), Some(vec![1; 32]));

    // Devices: an id is one user's; a revoked one stays listed but is gone for everything else.
    let (a1, b1, b2) = (vec![0xa1; 16], vec![0xb1; 16], vec![0xb2; 16]);
    assert_eq!(mls::register_device(conn, alice, &a1, b"cert a1", 10).unwrap(), Registered::Ok);
    assert_eq!(mls::register_device(conn, bob, &a1, b"cert a1", 10).unwrap(), Registered::Conflict);
    assert_eq!(mls::register_device(conn, alice, &a1, b"another", 10).unwrap(), Registered::Conflict);
    assert_eq!(mls::register_device(conn, bob, &b1, b"cert b1", 11).unwrap(), Registered::Ok);
    assert_eq!(mls::register_device(conn, bob, &b2, b"cert b2", 12).unwrap(), Registered::Ok);

    // Key packages: one-use ones are handed out once each, then the last-resort one, kept.
    assert!(
        mls::add_key_packages(conn, &b1, &[b"kp1".to_vec(), b"kp2".to_vec()], Some(b"last b1"), 2).unwrap()
    );
    assert!(!mls::add_key_packages(conn, &b1, &[b"kp3".to_vec()], None, 2).unwrap(), "over the limit");
    assert!(mls::add_key_packages(conn, &b2, &[], Some(b"last b2"), 2).unwrap());
    let claimed =
        |conn: &mut DbConn| -> Vec<(Vec<u8>, Vec<u8>)> { mls::claim_key_packages(conn, bob).unwrap() };
    assert_eq!(claimed(conn), [(b1.clone(), b"kp1".to_vec()), (b2.clone(), b"last b2".to_vec())]);
    assert_eq!(claimed(conn), [(b1.clone(), b"kp2".to_vec()), (b2.clone(), b"last b2".to_vec())]);
    assert_eq!(claimed(conn), [(b1.clone(), b"last b1".to_vec()), (b2.clone(), b"last b2".to_vec())]);
    assert!(mls::revoke_device(conn, bob, &b2, 20).unwrap());
    assert!(!mls::revoke_device(conn, bob, &b2, 21).unwrap(), "already revoked");
    assert!(!mls::revoke_device(conn, alice, &b1, 21).unwrap(), "not alice's");
    assert_eq!(claimed(conn), [(b1.clone(), b"last b1".to_vec())]);
    assert_eq!(mls::devices_of(conn, bob).unwrap().len(), 2);
    assert!(mls::active_device(conn, bob, &b2).unwrap().is_none());

    // A group: alice alone at epoch 0.
    let g = mls::create_group(conn, alice, &[7; 16], b"info 0", 30).unwrap().unwrap();
    assert_eq!(mls::create_group(conn, bob, &[7; 16], b"x", 30).unwrap(), None, "group ids are unique");
    assert_eq!(mls::group_members(conn, g).unwrap(), [(alice, true)]);
    let entry = |sender, device: &'static [u8], epoch, content_type, id: u8| NewEntry {
        conversation: g,
        sender,
        sender_device: device,
        epoch,
        content_type,
        client_msg_id: Box::leak(Box::new([id; 16])),
        data: Box::leak(Box::new([id; 8])),
        blobs: &[],
        now: 40 + i64::from(id),
    };
    let a1s: &'static [u8] = &[0xa1; 16];
    let b1s: &'static [u8] = &[0xb1; 16];
    let welcome_to = [b1.clone()];
    let add_bob = CommitEffects {
        group_info: b"info 1",
        welcome: Some((b"welcome", &welcome_to)),
        added: &[bob],
        removed: &[],
        admins: None,
    };
    let first = mls::append(conn, &entry(alice, a1s, 0, mls::CONTENT_COMMIT, 1), Some(&add_bob)).unwrap();
    let Appended::At(commit_seq) = first else { panic!("{first:?}") };
    // The same commit again (a resend): the same position and time, nothing twice.
    assert_eq!(
        mls::append(conn, &entry(alice, a1s, 0, mls::CONTENT_COMMIT, 1), Some(&add_bob)).unwrap(),
        Appended::Again { seq: commit_seq, ts: 41 }
    );
    // A second commit for epoch 0 loses; so does a message of epoch 0.
    let update = CommitEffects { group_info: b"info x", ..CommitEffects::default() };
    assert_eq!(
        mls::append(conn, &entry(bob, b1s, 0, mls::CONTENT_COMMIT, 2), Some(&update)).unwrap(),
        Appended::StaleEpoch { current: 1 }
    );
    assert_eq!(
        mls::append(conn, &entry(alice, a1s, 0, mls::CONTENT_APPLICATION, 3), None).unwrap(),
        Appended::StaleEpoch { current: 1 }
    );
    let group = mls::group(conn, g).unwrap().unwrap();
    assert_eq!((group.epoch, group.group_info.as_slice()), (1, &b"info 1"[..]));
    assert_eq!(mls::group_members(conn, g).unwrap(), [(alice, true), (bob, false)]);
    let w = mls::welcomes_for(conn, &b1).unwrap();
    assert_eq!((w.len(), w[0].log_seq, w[0].data.as_slice()), (1, commit_seq, &b"welcome"[..]));
    assert_eq!(mls::welcomes_taken(conn, &b1, w[0].id).unwrap(), 1);
    assert!(mls::welcomes_for(conn, &b1).unwrap().is_empty());

    let Appended::At(msg) =
        mls::append(conn, &entry(bob, b1s, 1, mls::CONTENT_APPLICATION, 4), None).unwrap()
    else {
        panic!()
    };
    assert!(msg > commit_seq);
    // Each member reads the log of their groups; carol, no member, reads nothing.
    let seqs = |conn: &mut DbConn, u, since| -> Vec<i64> {
        mls::log_since(conn, u, since, 100).unwrap().iter().map(|e| e.seq).collect()
    };
    assert_eq!(seqs(conn, bob, 0), [commit_seq, msg]);
    assert_eq!(seqs(conn, alice, commit_seq), [msg]);
    assert!(seqs(conn, carol, 0).is_empty());
    let e = &mls::log_since(conn, alice, commit_seq, 1).unwrap()[0];
    assert_eq!(
        (e.sender_id, e.sender_device.as_slice(), e.epoch, e.data.as_slice()),
        (bob, b1s, 1, &[4u8; 8][..])
    );

    // Removing bob, with a new list of admins without alice: he reads the group up to the
    // commit that removes him and no further, and she is no admin any more (who may be one is
    // the policy's question, not storage's).
    let remove = CommitEffects {
        group_info: b"info 2",
        removed: &[bob],
        admins: Some(&[carol]),
        ..CommitEffects::default()
    };
    let Appended::At(removal) =
        mls::append(conn, &entry(alice, a1s, 1, mls::CONTENT_COMMIT, 5), Some(&remove)).unwrap()
    else {
        panic!()
    };
    assert_eq!(seqs(conn, bob, msg), [removal]);
    assert_eq!(mls::group_members(conn, g).unwrap(), [(alice, false)]);
    assert!(mls::may_archive(conn, bob, g, msg).unwrap() && mls::may_archive(conn, bob, g, removal).unwrap());
    let Appended::At(after) =
        mls::append(conn, &entry(alice, a1s, 2, mls::CONTENT_APPLICATION, 6), None).unwrap()
    else {
        panic!()
    };
    assert_eq!(seqs(conn, bob, removal), Vec::<i64>::new(), "nothing after his removal");
    assert!(!mls::may_archive(conn, bob, g, after).unwrap());
    assert!(
        mls::may_archive(conn, alice, g, after).unwrap() && !mls::may_archive(conn, carol, g, msg).unwrap()
    );
}

/// Each test above, once on each database.
macro_rules! on_both {
    ($backend:ident: $($name:ident),*; async: $($async_name:ident),*) => {
        $(
            #[test]
            fn $name() {
                super::$name(super::Backend::$backend)
            }
        )*
        $(
            #[tokio::test]
            async fn $async_name() {
                super::$async_name(super::Backend::$backend).await
            }
        )*
    };
}

mod sqlite {
    on_both!(Sqlite: a_direct_conversation_opened_is_the_peers_only_from_its_first_message, the_conversation_list_is_one_query_that_respects_clears_and_markers, a_message_is_refused_whole_when_a_blob_is_not_the_senders, sessions_that_can_never_authenticate_again_are_pruned, clearing_for_both_stops_at_what_the_clearer_saw, the_message_quota_counts_what_a_sender_stores_and_clearing_frees_it, the_hot_statements_move_markers_activity_and_closed_conversations_as_before, mls_storage_orders_one_commit_per_epoch_and_hands_out_each_key_package_once; async: services_run_on_a_plain_relay_and_ask_the_policy);
}

mod postgres {
    on_both!(Postgres: a_direct_conversation_opened_is_the_peers_only_from_its_first_message, the_conversation_list_is_one_query_that_respects_clears_and_markers, a_message_is_refused_whole_when_a_blob_is_not_the_senders, sessions_that_can_never_authenticate_again_are_pruned, clearing_for_both_stops_at_what_the_clearer_saw, the_message_quota_counts_what_a_sender_stores_and_clearing_frees_it, the_hot_statements_move_markers_activity_and_closed_conversations_as_before, mls_storage_orders_one_commit_per_epoch_and_hands_out_each_key_package_once; async: services_run_on_a_plain_relay_and_ask_the_policy);
}
