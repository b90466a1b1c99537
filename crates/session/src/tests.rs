//! The client core without a server: a small in-memory relay that keeps accounts and versioned
//! key backups the way the real one does, behind the same typed endpoints. Keys, Argon2id,
//! sealing and opening are all real.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::Mutex;

use futures_executor::block_on;
use sealroom_crypto::{IdentitySecret, MessageHeader, Payload, PublicKey};
use sealroom_protocol::endpoint::{self, Endpoint};
use sealroom_protocol::{
    ApiError, ClientFrame, ClientMsgId, ConversationId, ErrorCode, IdentityKey, KdfParams, KeyBackupVersion,
    Me, MessageId, MessageOut, PreloginResponse, Salt, ServerFrame, SessionResponse, UserId, UserInfo,
    Username,
};
use serde_json::{from_value, to_value, Value};

use crate::{flows, Error, Outbox, OutboxEvent, PeerKey, Vault, VaultCell};

#[derive(Debug)]
enum TestError {
    Api(ApiError),
    Core(Error),
}

impl From<Error> for TestError {
    fn from(e: Error) -> Self {
        TestError::Core(e)
    }
}

struct Account {
    me: Me,
    auth_key: [u8; 32],
    salt: [u8; 16],
}

/// Accounts by name, and who the calls are made as.
#[derive(Default)]
struct MemRelay {
    accounts: RefCell<BTreeMap<String, Account>>,
    signed_in: RefCell<Option<String>>,
    /// What this "device" remembers: the newest backup generation per account.
    seen: RefCell<BTreeMap<String, u64>>,
}

impl MemRelay {
    fn as_user(&self, name: &str) -> &Self {
        *self.signed_in.borrow_mut() = Some(name.to_owned());
        self
    }

    fn me(&self) -> Result<Me, ApiError> {
        let name = self.signed_in.borrow().clone().ok_or_else(|| api(ErrorCode::Unauthorized))?;
        Ok(self.accounts.borrow()[&name].me.clone())
    }

    fn answer(&self, pattern: &str, path: &str, body: Value) -> Result<Value, ApiError> {
        let bad = |_| api(ErrorCode::InvalidJson);
        match pattern {
            endpoint::Register::PATH => {
                let req: sealroom_protocol::RegisterRequest = from_value(body).map_err(bad)?;
                let n = self.accounts.borrow().len() as i64 + 1;
                let me = Me {
                    id: UserId(n),
                    username: req.username.clone(),
                    identity_key: req.identity_key,
                    key_backup: req.key_backup,
                    key_backup_version: 1,
                    created_at: 0,
                    admin: false,
                };
                self.accounts.borrow_mut().insert(
                    req.username.to_string(),
                    Account { me: me.clone(), auth_key: req.auth_key.0, salt: req.salt.0 },
                );
                *self.signed_in.borrow_mut() = Some(req.username.to_string());
                Ok(json(&session(me)))
            }
            endpoint::Prelogin::PATH => {
                let req: sealroom_protocol::PreloginRequest = from_value(body).map_err(bad)?;
                let salt =
                    self.accounts.borrow().get(req.username.as_str()).map(|a| a.salt).unwrap_or([9; 16]);
                let p = sealroom_crypto::KdfParams::PRODUCTION;
                Ok(json(&PreloginResponse {
                    salt: Salt(salt),
                    kdf: KdfParams { m_kib: p.m_kib, t: p.t, p: p.p },
                }))
            }
            endpoint::Login::PATH => {
                let req: sealroom_protocol::LoginRequest = from_value(body).map_err(bad)?;
                let accounts = self.accounts.borrow();
                match accounts.get(req.username.as_str()) {
                    Some(a) if a.auth_key == req.auth_key.0 => {
                        *self.signed_in.borrow_mut() = Some(req.username.to_string());
                        Ok(json(&session(a.me.clone())))
                    }
                    _ => Err(api(ErrorCode::InvalidCredentials)),
                }
            }
            endpoint::ChangePassword::PATH => {
                let req: sealroom_protocol::ChangePasswordRequest = from_value(body).map_err(bad)?;
                let name = self.me()?.username.to_string();
                let mut accounts = self.accounts.borrow_mut();
                let a = accounts.get_mut(&name).ok_or_else(|| api(ErrorCode::Unauthorized))?;
                if a.auth_key != req.auth_key.0 {
                    return Err(api(ErrorCode::InvalidCredentials));
                }
                a.auth_key = req.new_auth_key.0;
                a.salt = req.new_salt.0;
                a.me.key_backup = req.new_key_backup;
                a.me.key_backup_version += 1;
                Ok(json(&a.me))
            }
            endpoint::GetMe::PATH => Ok(json(&self.me()?)),
            endpoint::PutKeyBackup::PATH => {
                let req: sealroom_protocol::UpdateKeyBackupRequest = from_value(body).map_err(bad)?;
                let name = self.me()?.username.to_string();
                let mut accounts = self.accounts.borrow_mut();
                let me = &mut accounts.get_mut(&name).ok_or_else(|| api(ErrorCode::Unauthorized))?.me;
                if me.key_backup_version != req.expected_version {
                    return Err(api(ErrorCode::StaleBackupVersion));
                }
                me.key_backup = req.key_backup;
                me.key_backup_version += 1;
                Ok(json(&KeyBackupVersion { key_backup_version: me.key_backup_version }))
            }
            endpoint::GetUser::PATH => {
                let name = path.rsplit('/').next().unwrap_or_default();
                let accounts = self.accounts.borrow();
                let a = accounts.get(name).ok_or_else(|| api(ErrorCode::NotFound))?;
                Ok(json(&UserInfo {
                    username: a.me.username.clone(),
                    identity_key: a.me.identity_key,
                    signing_key: None,
                    deleted: false,
                }))
            }
            _ => Err(api(ErrorCode::NotFound)),
        }
    }

    /// What a malicious relay (or a changed database) would do: publish another key for `name`.
    fn publish_key(&self, name: &str, key: PublicKey) {
        if let Some(a) = self.accounts.borrow_mut().get_mut(name) {
            a.me.identity_key = IdentityKey(*key.as_bytes());
        }
    }
}

/// A body as JSON, whatever its type.
fn json<T: serde::Serialize>(body: &T) -> Value {
    to_value(body).unwrap_or(Value::Null)
}

fn api(code: ErrorCode) -> ApiError {
    ApiError::new(code, code.as_str())
}

fn session(user: Me) -> SessionResponse {
    SessionResponse { token: "t".into(), session_id: "s".into(), expires_at: 0, user }
}

impl crate::Transport for MemRelay {
    type Error = TestError;

    async fn call<E: Endpoint>(&self, path: &str, body: Option<&E::Body>) -> Result<E::Response, TestError> {
        let body = body.map(json).unwrap_or(Value::Null);
        let out = self.answer(E::PATH, path, body).map_err(TestError::Api)?;
        from_value(out).map_err(|_| TestError::Api(api(ErrorCode::Internal)))
    }

    fn api_error(e: &TestError) -> Option<&ApiError> {
        match e {
            TestError::Api(a) => Some(a),
            TestError::Core(_) => None,
        }
    }

    fn seen_generation(&self, username: &str) -> Option<u64> {
        self.seen.borrow().get(username).copied()
    }

    fn saw_generation(&self, username: &str, generation: u64) {
        let mut seen = self.seen.borrow_mut();
        let g = seen.entry(username.to_owned()).or_default();
        *g = (*g).max(generation);
    }
}

fn name(n: &str) -> Username {
    Username::parse(n).expect("valid name")
}

fn register(relay: &MemRelay, n: &str) -> Mutex<Vault> {
    let (_, vault) =
        block_on(flows::register(relay, &name(n), &format!("password of {n}"), None)).expect("register");
    Mutex::new(vault)
}

/// The version of `n`'s backup as the relay stores it.
fn stored(relay: &MemRelay, n: &str) -> i64 {
    relay.accounts.borrow()[n].me.key_backup_version
}

#[test]
fn login_unlocks_the_same_identity_and_refuses_a_wrong_password() {
    let relay = MemRelay::default();
    let alice = register(&relay, "alice");
    let key = alice.with(|v| v.identity_key()).expect("vault");
    let (_, again) = block_on(flows::login(&relay, &name("alice"), "password of alice")).expect("login");
    assert_eq!(again.identity_key(), key);
    let wrong = block_on(flows::login(&relay, &name("alice"), "not the password"));
    assert!(matches!(wrong, Err(TestError::Api(ref e)) if e.error == ErrorCode::InvalidCredentials));
}

#[test]
fn sign_in_stops_when_the_relay_publishes_another_identity_key() {
    let relay = MemRelay::default();
    let alice = register(&relay, "alice");
    let backup_key = alice.with(|v| *v.backup_key().expose_bytes()).expect("vault");
    let other = IdentitySecret::generate().expect("key").public_key();
    relay.publish_key("alice", other);
    let result = block_on(flows::login(&relay, &name("alice"), "password of alice"));
    assert!(matches!(result, Err(TestError::Core(Error::IdentityMismatch))), "{result:?}");
    // The same check guards a remembered device.
    let key = sealroom_crypto::BackupKey::from_bytes(backup_key);
    let resumed = block_on(flows::resume(relay.as_user("alice"), "alice", key));
    assert!(matches!(resumed, Err(TestError::Core(Error::IdentityMismatch))), "{resumed:?}");
}

#[test]
fn weak_passwords_are_refused_before_any_key_is_made() {
    let relay = MemRelay::default();
    let result = block_on(flows::register(&relay, &name("alice"), "short", None));
    assert!(matches!(result, Err(TestError::Core(Error::WeakPassword(_)))));
    assert!(relay.accounts.borrow().is_empty());
}

#[test]
fn first_use_pins_and_saves_a_changed_key_blocks_sealing_until_accepted() {
    let relay = MemRelay::default();
    let bob = register(&relay, "bob");
    let alice = register(&relay, "alice");
    let bob_name = name("bob");
    let v0 = stored(&relay, "alice");
    let first = block_on(flows::peer_key(relay.as_user("alice"), &alice, &bob_name)).expect("key");
    assert!(matches!(first, PeerKey::FirstUse(_)));
    assert_eq!(stored(&relay, "alice"), v0 + 1, "a first pin is saved in the backup");
    let again = block_on(flows::peer_key(&relay, &alice, &bob_name)).expect("key");
    assert!(matches!(again, PeerKey::Pinned(_)));
    assert_eq!(stored(&relay, "alice"), v0 + 1, "nothing to save");

    let header = MessageHeader::new(1).expect("header");
    let text = Payload::Text("hi".into());
    block_on(flows::seal(&relay, &alice, &bob_name, &header, &text)).expect("seals to the pin");

    // The directory now hands out another key for bob.
    let mallory = IdentitySecret::generate().expect("key").public_key();
    relay.publish_key("bob", mallory);
    let changed = block_on(flows::peer_key(&relay, &alice, &bob_name)).expect("key");
    let PeerKey::Changed(change) = changed else { panic!("expected a key change, got {changed:?}") };
    assert_ne!(change.old_safety_number.as_deref(), Some(change.new_safety_number.as_str()));
    assert_eq!(change.new_key, mallory);
    let refused = block_on(flows::seal(&relay, &alice, &bob_name, &header, &text));
    assert!(matches!(refused, Err(TestError::Core(Error::KeyChanged(_)))), "{refused:?}");
    assert!(!alice.with(|v| v.mark_verified(&bob_name)).expect("vault"), "cannot verify a changed key");

    // The directory goes back to the pinned key: the change is no longer pending.
    relay.publish_key("bob", bob.with(|v| v.identity_key()).expect("vault"));
    block_on(flows::peer_key(&relay, &alice, &bob_name)).expect("key");
    assert!(alice.with(|v| v.key_change(&bob_name).is_none()).expect("vault"));

    // Changed again, then accepted: sealing works, to the new key.
    relay.publish_key("bob", mallory);
    block_on(flows::peer_key(&relay, &alice, &bob_name)).expect("key");
    block_on(flows::accept_new_key(&relay, &alice, &bob_name)).expect("accept");
    let pin = alice.with(|v| v.pins()["bob"]).expect("vault");
    assert_eq!(pin.public_key, mallory);
    assert!(!pin.verified);
    block_on(flows::seal(&relay, &alice, &bob_name, &header, &text)).expect("seals after accepting");
}

#[test]
fn a_stale_backup_write_merges_the_other_devices_pins() {
    let relay = MemRelay::default();
    register(&relay, "bob");
    register(&relay, "carol");
    register(&relay, "alice");
    let (_, laptop) = block_on(flows::login(&relay, &name("alice"), "password of alice")).expect("login");
    let (_, phone) = block_on(flows::login(&relay, &name("alice"), "password of alice")).expect("login");
    let (laptop, phone) = (Mutex::new(laptop), Mutex::new(phone));
    block_on(flows::peer_key(relay.as_user("alice"), &laptop, &name("bob"))).expect("pin bob");
    // The phone still holds the old version: its write is refused, merged and retried.
    block_on(flows::peer_key(&relay, &phone, &name("carol"))).expect("pin carol");
    block_on(flows::mark_verified(&relay, &laptop, &name("bob"))).expect("verify");
    let (_, fresh) = block_on(flows::login(&relay, &name("alice"), "password of alice")).expect("login");
    let pins: Vec<_> = fresh.pins().keys().cloned().collect();
    assert_eq!(pins, ["bob", "carol"]);
    assert!(fresh.is_verified("bob"));
    assert!(!fresh.is_verified("carol"));
}

#[test]
fn password_change_reseals_the_backup_under_the_new_password() {
    let relay = MemRelay::default();
    register(&relay, "bob");
    let alice = register(&relay, "alice");
    block_on(flows::peer_key(relay.as_user("alice"), &alice, &name("bob"))).expect("pin");
    let weak = block_on(flows::change_password(&relay, &alice, "password of alice", "tiny"));
    assert!(matches!(weak, Err(TestError::Core(Error::WeakPassword(_)))));
    let me = block_on(flows::change_password(&relay, &alice, "password of alice", "a much better one"))
        .expect("change");
    assert_eq!(alice.with(|v| v.backup_version()), Some(me.key_backup_version));
    let old = block_on(flows::login(&relay, &name("alice"), "password of alice"));
    assert!(matches!(old, Err(TestError::Api(ref e)) if e.error == ErrorCode::InvalidCredentials));
    let (_, fresh) = block_on(flows::login(&relay, &name("alice"), "a much better one")).expect("login");
    assert_eq!(fresh.identity_key(), alice.with(|v| v.identity_key()).expect("vault"));
    assert!(fresh.pins().contains_key("bob"), "the pins survive the re-seal");
    // The old backup key no longer opens what is stored.
    let old_keys = sealroom_crypto::PasswordKeys::derive(
        "password of alice",
        &[9; 16],
        sealroom_crypto::KdfParams::PRODUCTION,
    )
    .expect("derive");
    assert!(matches!(
        Vault::unlock(&relay.me().expect("me"), old_keys.backup_key, None),
        Err(Error::BackupUnreadable)
    ));
}

fn message(
    id: i64,
    from: &str,
    to: &str,
    cid: ClientMsgId,
    envelope: sealroom_protocol::Envelope,
) -> MessageOut {
    MessageOut {
        id: MessageId(id),
        conversation: conversation_of(from, to),
        from: name(from),
        to: name(to),
        client_msg_id: cid,
        envelope,
        ts: 5,
    }
}

/// A stable id per pair of users, as the relay would give one direct conversation.
fn conversation_of(a: &str, b: &str) -> ConversationId {
    let (lo, hi) = if a < b { (a, b) } else { (b, a) };
    ConversationId(i64::from(lo.as_bytes()[0]) * 1000 + i64::from(hi.as_bytes()[0]))
}

#[test]
fn open_shows_only_messages_to_or_from_this_user_that_open_under_the_pin() {
    let relay = MemRelay::default();
    let bob = register(&relay, "bob");
    let carol = register(&relay, "carol");
    let alice = register(&relay, "alice");
    let header = MessageHeader::new(77).expect("header");
    let (cid, env) = block_on(flows::seal(
        relay.as_user("alice"),
        &alice,
        &name("bob"),
        &header,
        &Payload::Text("for bob".into()),
    ))
    .expect("seal");

    // Bob opens it (pinning alice on first use); alice opens her own copy.
    let m = message(1, "alice", "bob", cid, env.clone());
    let at_bob = block_on(flows::open(relay.as_user("bob"), &bob, &m)).expect("open");
    assert_eq!(at_bob.payload, Payload::Text("for bob".into()));
    assert_eq!((at_bob.peer.as_str(), at_bob.mine, at_bob.sent_at_ms), ("alice", false, 77));
    let at_alice = block_on(flows::open(relay.as_user("alice"), &alice, &m)).expect("open");
    assert!(at_alice.mine);

    // Handed to carol, labelled as alice → bob: refused and counted, never shown.
    let refused = block_on(flows::open(relay.as_user("carol"), &carol, &m));
    assert!(matches!(refused, Err(TestError::Core(Error::NotForMe))), "{refused:?}");
    assert_eq!(carol.with(|v| v.misaddressed()), Some(1));
    // Seen again (in the list, a history page, a sync): still one message.
    assert!(block_on(flows::open(&relay, &carol, &m)).is_err());
    assert_eq!(carol.with(|v| v.misaddressed()), Some(1));

    // Relabelled as alice → carol: it does not open under carol's pair key.
    let relabelled = message(2, "alice", "carol", cid, env.clone());
    let r = block_on(flows::open(&relay, &carol, &relabelled));
    assert!(matches!(r, Err(TestError::Core(Error::Undecryptable))), "{r:?}");

    // Reflected (bob → alice) and a client_msg_id the envelope does not carry: refused.
    let reflected = message(3, "bob", "alice", cid, env.clone());
    assert!(matches!(
        block_on(flows::open(relay.as_user("alice"), &alice, &reflected)),
        Err(TestError::Core(Error::Undecryptable))
    ));
    let other_id = message(4, "alice", "bob", ClientMsgId([1; 16]), env);
    assert!(matches!(
        block_on(flows::open(relay.as_user("bob"), &bob, &other_id)),
        Err(TestError::Core(Error::Undecryptable))
    ));
}

fn send_frame(to: &str, id: u8) -> ClientFrame {
    ClientFrame::Send {
        conversation: conversation_of("alice", to),
        client_msg_id: ClientMsgId([id; 16]),
        envelope: sealroom_protocol::Envelope::new(vec![1; 80]).expect("envelope"),
        blobs: vec![],
    }
}

#[test]
fn the_outbox_resends_what_was_not_acknowledged_and_holds_changed_peers() {
    let mut outbox = Outbox::default();
    outbox.push(name("bob"), send_frame("bob", 1));
    outbox.push(name("carol"), send_frame("carol", 2));
    outbox.push(name("bob"), send_frame("bob", 3));

    // A reconnect: sync from the cursor, then every queued message, oldest first.
    let frames = outbox.on_hello(|_| false);
    assert_eq!(frames[0], ClientFrame::Sync { since: MessageId(0) });
    assert_eq!(&frames[1..], &[send_frame("bob", 1), send_frame("carol", 2), send_frame("bob", 3)]);
    // Carol's key changed: hers is held back, still queued.
    let frames = outbox.on_hello(|p| p.as_str() == "carol");
    assert_eq!(&frames[1..], &[send_frame("bob", 1), send_frame("bob", 3)]);

    // The sync completes; after it, an ack removes the message and moves the cursor; a resend
    // after that would not include it.
    outbox.on_frame(&ServerFrame::Synced { up_to: MessageId(0), more: false });
    let ack = ServerFrame::Ack { client_msg_id: ClientMsgId([1; 16]), id: MessageId(10), ts: 9 };
    assert!(matches!(outbox.on_frame(&ack), OutboxEvent::Acked { id: MessageId(10), .. }));
    assert_eq!(outbox.cursor(), MessageId(10));
    // Slow down: stays queued.
    let slow = ServerFrame::Error {
        code: ErrorCode::RateLimited,
        message: "slow down".into(),
        client_msg_id: Some(ClientMsgId([3; 16])),
    };
    assert_eq!(outbox.on_frame(&slow), OutboxEvent::RateLimited { client_msg_id: ClientMsgId([3; 16]) });
    assert!(outbox.frame(ClientMsgId([3; 16])).is_some());
    // Refused for good: leaves the queue.
    let refused = ServerFrame::Error {
        code: ErrorCode::UnknownBlob,
        message: "no".into(),
        client_msg_id: Some(ClientMsgId([2; 16])),
    };
    assert!(matches!(outbox.on_frame(&refused), OutboxEvent::Failed { code: ErrorCode::UnknownBlob, .. }));
    let frames = outbox.on_hello(|_| false);
    assert_eq!(frames, vec![ClientFrame::Sync { since: MessageId(10) }, send_frame("bob", 3)]);

    // Sync batches move the cursor and ask for more; the cursor never goes back.
    let more = ServerFrame::Synced { up_to: MessageId(40), more: true };
    assert_eq!(outbox.on_frame(&more), OutboxEvent::SyncMore(ClientFrame::Sync { since: MessageId(40) }));
    assert_eq!(
        outbox.on_frame(&ServerFrame::Synced { up_to: MessageId(12), more: false }),
        OutboxEvent::Nothing
    );
    assert_eq!(outbox.cursor(), MessageId(40));
    // Except when the relay says it may have missed telling us of some: then it goes back,
    // never forward.
    assert_eq!(outbox.on_frame(&ServerFrame::CatchUp { since: MessageId(25) }), OutboxEvent::Nothing);
    assert_eq!(outbox.cursor(), MessageId(25));
    outbox.on_frame(&ServerFrame::CatchUp { since: MessageId(30) });
    assert_eq!(outbox.cursor(), MessageId(25));
    assert_eq!(outbox.on_hello(|_| true)[0], ClientFrame::Sync { since: MessageId(25) });
    outbox.advance(MessageId(40));
    assert!(outbox.withdraw(ClientMsgId([3; 16])));
    assert!(outbox.queued().is_empty());
}

#[test]
fn the_directory_learns_direct_conversations_from_the_list_and_from_opened_messages_only() {
    let relay = MemRelay::default();
    let bob = register(&relay, "bob");
    let alice = register(&relay, "alice");
    let payload = Payload::Text("hi".into());
    let header = MessageHeader::new(1).expect("header");
    let (cid, env) = block_on(flows::seal(relay.as_user("alice"), &alice, &name("bob"), &header, &payload))
        .expect("sealed");
    let m = message(9, "alice", "bob", cid, env.clone());
    assert_eq!(bob.lock().unwrap().directory().id(&name("alice")), None);
    block_on(flows::open(relay.as_user("bob"), &bob, &m)).expect("opens");
    let d = bob.lock().unwrap();
    assert_eq!(d.directory().id(&name("alice")), Some(m.conversation));
    assert_eq!(d.directory().peer(m.conversation), Some(&name("alice")));
    drop(d);
    // A message that does not open teaches nothing: the relay cannot plant a mapping.
    let forged = MessageOut { conversation: ConversationId(1), ..message(10, "alice", "bob", cid, env) };
    let mut tampered = forged.clone();
    tampered.envelope = sealroom_protocol::Envelope::new(vec![0; 90]).expect("envelope");
    assert!(block_on(flows::open(relay.as_user("bob"), &bob, &tampered)).is_err());
    assert_eq!(bob.lock().unwrap().directory().id(&name("alice")), Some(m.conversation));

    // The list is learnt, and a conversation re-learnt under a new id moves.
    let mut dir = crate::Directory::default();
    let mut summary = summary_with("carol", 5);
    dir.learn(&summary);
    assert_eq!(dir.id(&name("carol")), Some(ConversationId(5)));
    summary.id = ConversationId(6);
    dir.learn(&summary);
    assert_eq!(
        (dir.id(&name("carol")), dir.peer(ConversationId(6))),
        (Some(ConversationId(6)), Some(&name("carol")))
    );
}

fn summary_with(peer: &str, id: i64) -> sealroom_protocol::ConversationSummary {
    sealroom_protocol::ConversationSummary {
        id: ConversationId(id),
        kind: sealroom_protocol::ConversationKind::Direct,
        members: vec![name("alice"), name(peer)],
        peer: name(peer),
        peer_identity_key: sealroom_protocol::IdentityKey([1; 32]),
        last_message: None,
        unread: 0,
        peer_online: false,
        peer_last_seen: None,
        peer_delivered_up_to: MessageId(0),
        peer_read_up_to: MessageId(0),
        read_up_to: MessageId(0),
        log_read_up_to: 0,
        peer_log_delivered_up_to: 0,
        peer_log_read_up_to: 0,
        pinned: false,
        hidden: false,
        last_activity: 0,
        peer_deleted: false,
    }
}

/// Issue 12: a malicious relay serves an older copy of alice's backup (before she pinned bob)
/// and then hands out mallory's key for bob. A device that saw the newer backup refuses the
/// old one; a fresh device, which cannot know, treats "no pin for someone alice has written
/// to" as a key change and refuses to seal until she compares and accepts.
#[test]
fn a_rolled_back_backup_is_refused_and_a_lost_pin_is_a_key_change() {
    let relay = MemRelay::default();
    register(&relay, "bob");
    let alice = register(&relay, "alice");
    let old_backup = relay.as_user("alice").me().expect("me").key_backup;
    assert_eq!(alice.with(|v| v.generation()), Some(1));
    block_on(flows::peer_key(&relay, &alice, &name("bob"))).expect("pin bob");
    assert_eq!(alice.with(|v| v.generation()), Some(2), "each write is the next generation");
    assert_eq!(relay.seen.borrow().get("alice").copied(), Some(2), "the device remembers what it wrote");
    let header = MessageHeader::new(1).expect("header");
    let text = Payload::Text("hi".into());
    let (cid, envelope) = block_on(flows::seal(&relay, &alice, &name("bob"), &header, &text)).expect("seal");

    // The relay rolls the backup back and publishes another key for bob.
    relay.accounts.borrow_mut().get_mut("alice").expect("alice").me.key_backup = old_backup;
    let mallory = IdentitySecret::generate().expect("key").public_key();
    relay.publish_key("bob", mallory);

    // This device has seen generation 2: signing in stops.
    let again = block_on(flows::login(&relay, &name("alice"), "password of alice"));
    assert!(
        matches!(again, Err(TestError::Core(Error::BackupRolledBack { seen: 2, got: 1 }))),
        "{:?}",
        again.map(|_| ())
    );

    // A fresh device opens it, but alice has written to bob: no pin is a lost pin.
    let fresh_device = MemRelay::default();
    *fresh_device.accounts.borrow_mut() = std::mem::take(&mut *relay.accounts.borrow_mut());
    let (_, fresh) =
        block_on(flows::login(&fresh_device, &name("alice"), "password of alice")).expect("login");
    let fresh = Mutex::new(fresh);
    let mine = MessageOut {
        id: MessageId(1),
        conversation: conversation_of("alice", "bob"),
        from: name("alice"),
        to: name("bob"),
        client_msg_id: cid,
        envelope,
        ts: 5,
    };
    fresh.with(|v| v.directory_mut().learn_message(&name("alice"), &mine)).expect("vault");
    let checked = block_on(flows::peer_key(&fresh_device, &fresh, &name("bob"))).expect("key");
    let PeerKey::Changed(change) = checked else { panic!("expected a key change, got {checked:?}") };
    assert_eq!((change.pinned, change.new_key, change.old_safety_number), (None, mallory, None));
    let refused = block_on(flows::seal(&fresh_device, &fresh, &name("bob"), &header, &text));
    assert!(matches!(refused, Err(TestError::Core(Error::KeyChanged(_)))), "{refused:?}");
    // Someone alice never wrote to is still pinned on first use.
    register(&fresh_device, "carol");
    let carol =
        block_on(flows::peer_key(fresh_device.as_user("alice"), &fresh, &name("carol"))).expect("key");
    assert!(matches!(carol, PeerKey::FirstUse(_)));
}

#[test]
fn a_clock_disagreement_is_flagged_past_ten_minutes_either_way() {
    let t = 1_700_000_000_000u64;
    let relay = t as i64;
    assert!(!crate::clock_disagrees(t, relay));
    assert!(!crate::clock_disagrees(t, relay + crate::CLOCK_SKEW_MS));
    assert!(crate::clock_disagrees(t, relay + crate::CLOCK_SKEW_MS + 1), "held back or back-dated");
    assert!(crate::clock_disagrees(t, relay - crate::CLOCK_SKEW_MS - 1), "dated in the future");
    assert!(crate::clock_disagrees(u64::MAX, 0));
}

/// The introduction of a move to MLS is not an unread message in either client's list: only
/// while it is the newest version 1 message, the peer's, and unread does it come off the
/// relay's count.
#[test]
fn the_list_does_not_count_an_unread_introduction() {
    let env = sealroom_protocol::Envelope::new(vec![1]).unwrap();
    let last = message(7, "bob", "alice", ClientMsgId([7; 16]), env);
    let summary = sealroom_protocol::ConversationSummary {
        last_message: Some(last),
        unread: 3,
        read_up_to: MessageId(6),
        ..summary_with("bob", 1)
    };
    assert_eq!(crate::unread_shown(&summary, true), 2, "the introduction is unread: it comes off");
    assert_eq!(crate::unread_shown(&summary, false), 3, "an ordinary message counts");
    let read = sealroom_protocol::ConversationSummary { read_up_to: MessageId(7), ..summary.clone() };
    assert_eq!(crate::unread_shown(&read, true), 3, "read already: the relay did not count it");
    let none = sealroom_protocol::ConversationSummary { unread: 0, ..summary };
    assert_eq!(crate::unread_shown(&none, true), 0);
}

/// What arrives while a sync is under way counts only once the sync is complete: a connection
/// lost mid-sync must not leave the cursor past messages that neither the sync nor the live
/// pushes brought (found by the NATS-outage test: a sync cut short, then live pushes far
/// ahead, then a reconnect that synced from past 500 messages never received).
#[test]
fn the_cursor_never_passes_what_an_unfinished_sync_has_not_brought() {
    let message = |id| ServerFrame::Message {
        message: sealroom_protocol::MessageOut {
            id: MessageId(id),
            conversation: conversation_of("alice", "bob"),
            from: name("bob"),
            to: name("alice"),
            client_msg_id: ClientMsgId([0; 16]),
            envelope: sealroom_protocol::Envelope::new(vec![1; 80]).expect("envelope"),
            ts: 1,
        },
    };
    let mut outbox = Outbox::default();
    assert_eq!(outbox.on_hello(|_| false), vec![ClientFrame::Sync { since: MessageId(0) }]);
    // A first batch, then pushes far ahead, then the connection is lost.
    outbox.on_frame(&ServerFrame::Synced { up_to: MessageId(500), more: true });
    outbox.on_frame(&message(2262));
    let ack = ServerFrame::Ack { client_msg_id: ClientMsgId([1; 16]), id: MessageId(2300), ts: 9 };
    outbox.on_frame(&ack);
    assert_eq!(outbox.cursor(), MessageId(500), "only what the sync brought");
    // The reconnect syncs from there; once its last batch is in, the pushes count.
    assert_eq!(outbox.on_hello(|_| false), vec![ClientFrame::Sync { since: MessageId(500) }]);
    outbox.on_frame(&message(2400));
    outbox.on_frame(&ServerFrame::Synced { up_to: MessageId(2350), more: false });
    assert_eq!(outbox.cursor(), MessageId(2400));
    // Between syncs, pushes move it at once.
    outbox.on_frame(&message(2401));
    assert_eq!(outbox.cursor(), MessageId(2401));
    // A catch-up: back, and nothing counts until the next sync is complete.
    outbox.on_frame(&ServerFrame::CatchUp { since: MessageId(1000) });
    outbox.on_frame(&message(2402));
    assert_eq!(outbox.cursor(), MessageId(1000));
    assert_eq!(outbox.on_hello(|_| false), vec![ClientFrame::Sync { since: MessageId(1000) }]);
}
