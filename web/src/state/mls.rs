//! This browser's MLS device in the app: which tab owns it, what the other tabs ask it, and
//! what group events mean for the chats.
//!
//! Every tab signed in as a user listens on the channel `sealroom-mls-USER` and waits for the
//! Web Lock of the same name ([`crate::tabs`]). The tab holding the lock is the owner: it opens
//! the device from IndexedDB, sets it up with the relay, reads the groups' logs when its socket
//! says there is news, and posts what it read to the other tabs. The others ask it to send
//! (`ask`), each message under an entry id the asking tab chose: when the owner goes away
//! without answering, the next owner is asked again and the relay stores the message once.
//! Device flows run one at a time in the owner (a catch-up and a send never interleave).
//!
//! The owner also moves a direct conversation to MLS when both users can (`Op::Route`, the
//! client core's `groups::route`), sending the introduction from its own outbox.
//!
//! The owner also makes and changes groups (`Op::Create`, `Op::Change`) and says what its
//! device calls them (`Op::Names`).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;

use futures::channel::oneshot;
use leptos::prelude::*;
use leptos::task::spawn_local;
use sealroom_crypto::Payload;
use sealroom_protocol::endpoint::{Devices, Endpoint, GetGroup, GetMe, RemoveDevice};
use sealroom_protocol::{BlobId, ClientMsgId, ConversationId, DeviceId, DeviceInfo, ErrorCode, Username};
use sealroom_session::groups::{self, DirectRoute, DirectStep, EventKind, GroupEvent};
use sealroom_session::mls::Changes;
use sealroom_session::VaultCell;
use serde::{Deserialize, Serialize};

use super::conversations::next_event;
use super::keys::{Failure, Fetch, WebVault};
use super::model::*;
use super::App;
use crate::browser::{is_visible, now};
use crate::device::BrowserDevice;
use crate::tabs::{Channel, Lock};

/// What a tab asks the owner of the device.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Op {
    /// Send `payload` (encoded, base64) in the MLS group of `conversation`, under `entry`; for a
    /// direct conversation, `peer` names the other user (the device joins the group first when
    /// it is not in it yet).
    Send {
        conversation: ConversationId,
        peer: Option<String>,
        entry: ClientMsgId,
        payload: String,
        /// The user's uploads the message carries (the group's members may download them).
        #[serde(default)]
        blobs: Vec<BlobId>,
        sent_ms: u64,
    },
    /// How a message to `peer` goes: the device moves the conversation to MLS first when both
    /// users can (the introduction goes from the owner's tab, as version 1).
    Route { peer: String },
    /// The names of these groups, as the device knows them (else from the archive).
    Names { conversations: Vec<ConversationId> },
    /// Creates a group called `name` with `members` (this user its admin).
    Create { name: String, members: Vec<String> },
    /// Changes a group.
    Change { conversation: ConversationId, change: GroupChange },
}

/// A change to a group, asked of the device's owner.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub(crate) enum GroupChange {
    /// Adds users with all their devices (admins).
    Add { users: Vec<String> },
    /// Removes users with all their devices (admins).
    Remove { users: Vec<String> },
    /// This user leaves.
    Leave,
    /// Names the group again (any member).
    Rename { name: String },
    /// Makes these users its admins (admins).
    Admins { users: Vec<String> },
}

/// The owner's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "done", rename_all = "snake_case")]
enum Done {
    /// A send is in the log at `seq`.
    Sent { seq: u64, ts: i64 },
    /// A message to the peer goes in this conversation's MLS group (`None`: as version 1).
    Routed { conversation: Option<ConversationId> },
    /// Groups' names, where known.
    Names { names: Vec<(ConversationId, String)> },
    /// A group was made.
    Created { conversation: ConversationId },
    /// A change was committed (or the group left).
    Changed,
}

/// Why a send did not go.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct NotSent {
    /// For people.
    pub(crate) why: String,
    /// The device keeps the message and sends it (once) with its next sync: no answer came.
    pub(crate) kept: bool,
}

/// A group event as the tabs pass it on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TabEvent {
    conversation: ConversationId,
    seq: u64,
    ts: i64,
    what: TabEventKind,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum TabEventKind {
    /// A message (the payload encoded, base64); this device's own carries the entry id a tab
    /// showed it under while it was sending.
    Message {
        sender: String,
        sent_ms: u64,
        payload: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        entry: Option<ClientMsgId>,
    },
    /// Something the user is told about (a refused entry, a send not confirmed, a removal).
    Notice { text: String },
    /// Membership or keys changed, or this device joined: what the timeline says of it.
    Changed { line: Option<String> },
    /// This user is no longer a member.
    Gone { text: String },
}

/// The most entries a tab reads again from the archive when the owner says it stored news.
const REREAD_PAGE: u32 = 50;

/// What the tabs post to each other.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
enum TabMsg {
    /// A tab that starts asks who owns the device.
    Who,
    /// The owner: sent when a tab becomes it, and in answer to `who`.
    Owner { tab: String },
    /// `from` asks the owner.
    Ask { from: String, id: u64, op: Op },
    /// The owner answers `to`'s ask `id`.
    Answer { to: String, id: u64, result: Result<Done, NotSent> },
    /// What the owner read, in log order.
    Events { events: Vec<TabEvent> },
    /// The user turned the history archive on or off (in the key backup).
    Archive { on: bool },
    /// The owner read the logs and stored what it read in the archive: a tab whose open chat
    /// was loaded from the archive meanwhile (a reload, a handover) reads its newest entries
    /// again, if that chat got news.
    Archived {
        /// The conversations that got news, with how many events each; `None` (a new owner's
        /// first read, which may show what the last owner read): every tab rereads its open chat.
        #[serde(default)]
        news: Option<Vec<(ConversationId, u32)>>,
    },
}

/// The device, in the tab that owns it.
struct Owned {
    _lock: Option<Lock>,
    device: Result<BrowserDevice, String>,
    /// One device flow at a time.
    serial: futures::lock::Mutex<()>,
    syncing: Cell<bool>,
    sync_again: Cell<bool>,
    /// No sync has completed since this tab took the device.
    first_sync: Cell<bool>,
}

struct Asked {
    op: Op,
    reply: oneshot::Sender<Result<Done, NotSent>>,
}

/// A send of this tab not answered yet: asked again after a reconnect.
#[derive(Clone)]
struct Unanswered {
    op: Op,
    key: String,
}

struct Tabs {
    user: String,
    tab: String,
    channel: Channel,
    owned: Option<Rc<Owned>>,
    asks: BTreeMap<u64, Asked>,
    next_ask: u64,
    unanswered: Vec<Unanswered>,
    /// Whether a conversation is in MLS, as last learnt: from the relay, or from a group event
    /// or an introduction arriving (a move is never undone, so `true` stays).
    moved: BTreeMap<ConversationId, bool>,
}

thread_local! {
    static TABS: RefCell<Option<Tabs>> = const { RefCell::new(None) };
}

fn with_tabs<R>(f: impl FnOnce(&mut Tabs) -> R) -> Option<R> {
    TABS.with(|t| t.borrow_mut().as_mut().map(f))
}

fn post(msg: &TabMsg) {
    if let Ok(text) = serde_json::to_string(msg) {
        with_tabs(|t| t.channel.post(&text));
    }
}

fn random_tab() -> String {
    let mut b = [0u8; 8];
    let _ = getrandom::getrandom(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn b64_payload(p: &Payload) -> Option<String> {
    p.encode().ok().map(|b| sealroom_protocol::encode_b64(&b))
}

fn payload_of(b64: &str) -> Option<Payload> {
    let bytes = sealroom_protocol::decode_b64(b64, "payload", sealroom_protocol::MAX_MLS_BYTES).ok()?;
    Payload::decode(&bytes).ok()
}

impl App {
    /// Joins this user's tabs in this browser profile and waits to own the device (at once
    /// when no other tab does). Called at sign-in.
    pub(crate) fn start_device(self, user: String) {
        let tab = random_tab();
        let app = self;
        let channel =
            match Channel::open(&format!("sealroom-mls-{user}"), move |text| app.on_tab_message(&text)) {
                Ok(c) => c,
                Err(_) => {
                    return self.ui.notice.set(Some(
                        "This browser cannot run forward-secret conversations (no BroadcastChannel).".into(),
                    ))
                }
            };
        TABS.with(|t| {
            *t.borrow_mut() = Some(Tabs {
                user: user.clone(),
                tab: tab.clone(),
                channel,
                owned: None,
                asks: BTreeMap::new(),
                next_ask: 0,
                unanswered: Vec::new(),
                moved: Default::default(),
            })
        });
        post(&TabMsg::Who);
        spawn_local(async move {
            let lock = Lock::acquire(&format!("sealroom-mls-{user}")).await;
            // Still this sign-in? (The lock is released again when it is not.)
            if with_tabs(|t| t.tab == tab) != Some(true) {
                return;
            }
            let (lock, device) = match lock {
                Ok(lock) => (Some(lock), app.open_device(&user).await),
                Err(e) => (
                    None,
                    Err(format!("this browser cannot share its device between tabs ({})", js_text(&e))),
                ),
            };
            if let Err(why) = &device {
                web_sys::console::warn_1(
                    &format!("forward-secret conversations are off in this tab: {why}").into(),
                );
            }
            let owned = Rc::new(Owned {
                _lock: lock,
                device,
                serial: futures::lock::Mutex::new(()),
                syncing: Cell::new(false),
                first_sync: Cell::new(true),
                sync_again: Cell::new(false),
            });
            let Some(asks) = with_tabs(|t| {
                t.owned = Some(owned);
                std::mem::take(&mut t.asks)
            }) else {
                return;
            };
            post(&TabMsg::Owner { tab });
            for (_, asked) in asks {
                spawn_local(async move {
                    let _ = asked.reply.send(app.run(asked.op).await);
                });
            }
            app.sync_groups();
        });
    }

    /// This browser's device of `user`, set up with the relay: made (with the user's signing
    /// key) on the first sign-in here, else opened from IndexedDB. A device the user removed
    /// elsewhere is replaced by a new one.
    async fn open_device(self, user: &str) -> Result<BrowserDevice, String> {
        let t = Fetch(self);
        let made =
            WebVault.with(|v| v.ensure_signing_key()).ok_or("signed out")?.map_err(|e| e.to_string())?;
        if made {
            sealroom_session::flows::save_backup(&t, &WebVault).await.map_err(|e| e.human())?;
        }
        let identity = WebVault.with(|v| v.signing_key().cloned()).flatten().ok_or("no signing key")?;
        for _ in 0..2 {
            let device = BrowserDevice::load(&identity, user, now() as u64).await.map_err(|e| js_text(&e))?;
            match groups::start_device(&t, &WebVault, &device).await {
                Ok(()) => return Ok(device),
                Err(Failure::Core(sealroom_session::Error::DeviceRemoved)) => {
                    BrowserDevice::forget(user).await.map_err(|e| js_text(&e))?;
                }
                Err(e) => return Err(e.human()),
            }
        }
        Err("this browser's device was removed again while it was being replaced".into())
    }

    fn on_tab_message(self, text: &str) {
        let Ok(msg) = serde_json::from_str::<TabMsg>(text) else { return };
        match msg {
            TabMsg::Who => {
                if let Some(Some(tab)) = with_tabs(|t| t.owned.as_ref().map(|_| t.tab.clone())) {
                    post(&TabMsg::Owner { tab });
                }
            }
            TabMsg::Owner { tab } => {
                // A new owner (the last one may have gone without answering): ask it again.
                let asks: Vec<(u64, Op)> = with_tabs(|t| {
                    if t.tab == tab {
                        return Vec::new();
                    }
                    t.asks.iter().map(|(id, a)| (*id, a.op.clone())).collect()
                })
                .unwrap_or_default();
                let from = with_tabs(|t| t.tab.clone()).unwrap_or_default();
                for (id, op) in asks {
                    post(&TabMsg::Ask { from: from.clone(), id, op });
                }
            }
            TabMsg::Ask { from, id, op } => {
                if with_tabs(|t| t.owned.is_some()) == Some(true) {
                    spawn_local(async move {
                        let result = self.run(op).await;
                        post(&TabMsg::Answer { to: from, id, result });
                    });
                }
            }
            TabMsg::Answer { to, id, result } => {
                if let Some(Some(asked)) = with_tabs(|t| if t.tab == to { t.asks.remove(&id) } else { None })
                {
                    let _ = asked.reply.send(result);
                }
            }
            TabMsg::Events { events } => self.on_group_events(&events),
            TabMsg::Archive { on } => spawn_local(self.archive_changed(on)),
            TabMsg::Archived { news } => {
                let open = self.open_conversation();
                let size = match news {
                    None => Some(REREAD_PAGE),
                    // A few more than arrived: the tab may have missed them all.
                    Some(news) => {
                        news.iter().find(|(c, _)| Some(*c) == open).map(|(_, n)| (n + 10).min(REREAD_PAGE))
                    }
                };
                if let Some(size) = size {
                    spawn_local(self.reread_archive(size));
                }
            }
        }
    }

    /// Asks the owner (this tab, or another) and waits for its answer.
    async fn ask(self, op: Op) -> Result<Done, NotSent> {
        let gone = || NotSent { why: "signed out".into(), kept: false };
        if with_tabs(|t| t.owned.is_some()).ok_or_else(gone)? {
            return self.run(op).await;
        }
        let (tx, rx) = oneshot::channel();
        let (from, id) = with_tabs(|t| {
            t.next_ask += 1;
            t.asks.insert(t.next_ask, Asked { op: op.clone(), reply: tx });
            (t.tab.clone(), t.next_ask)
        })
        .ok_or_else(gone)?;
        post(&TabMsg::Ask { from, id, op });
        rx.await.map_err(|_| gone())?
    }

    /// Runs an ask on the device (this tab owns it).
    async fn run(self, op: Op) -> Result<Done, NotSent> {
        let refused = |why: String| NotSent { why, kept: false };
        let owned = with_tabs(|t| t.owned.clone()).flatten().ok_or_else(|| refused("signed out".into()))?;
        let dev = owned.device.as_ref().map_err(|why| refused(why.clone()))?;
        let failed = |e: Failure| NotSent { kept: sealroom_session::unanswered::<Fetch>(&e), why: e.human() };
        // A message that must wait (for the device's other flows, or behind messages it kept
        // earlier) is kept by the device at once: if this tab goes away meanwhile, the next
        // owner's device sends it. Without a wait, `send_entry` keeps it itself, saved before
        // the relay is asked: no extra write on the common path.
        let free = owned.serial.try_lock();
        let waits = free.is_none() || groups::DeviceCell::with(dev, |d| !d.outbox().is_empty());
        if let (true, Op::Send { conversation, entry, payload, blobs, sent_ms, .. }) = (waits, &op) {
            if let Some(p) = payload_of(payload) {
                groups::keep_entry::<Fetch, _>(dev, *conversation, entry.0, &p, blobs, *sent_ms)
                    .await
                    .map_err(failed)?;
            }
        }
        let _one = match free {
            Some(free) => free,
            None => owned.serial.lock().await,
        };
        let t = Fetch(self);
        let (conversation, peer, entry, payload, blobs, sent_ms) = match op {
            Op::Send { conversation, peer, entry, payload, blobs, sent_ms } => {
                (conversation, peer, entry, payload, blobs, sent_ms)
            }
            Op::Route { peer } => {
                let peer = Username::parse(&peer).map_err(|_| refused("not a username".into()))?;
                for _ in 0..groups::ROUTE_TRIES {
                    match groups::route(&t, &WebVault, dev, &peer).await.map_err(failed)? {
                        // Sent from here, as every version 1 message of this tab: queued until
                        // the relay has it (the peer pins the key it introduces).
                        DirectStep::Introduce(introduction) => {
                            self.send_v1(peer.to_string(), introduction).await;
                        }
                        DirectStep::Go(DirectRoute::Mls(c)) => {
                            self.learn_moved(c);
                            return Ok(Done::Routed { conversation: Some(c) });
                        }
                        DirectStep::Go(_) => return Ok(Done::Routed { conversation: None }),
                    }
                }
                return Err(refused(format!("the conversation with {peer} kept changing; try again")));
            }
            Op::Names { conversations } => {
                let mut names = Vec::new();
                for c in conversations {
                    if let Ok(Some(name)) = groups::group_name(&t, &WebVault, dev, c).await {
                        names.push((c, name));
                    }
                }
                return Ok(Done::Names { names });
            }
            Op::Create { name, members } => {
                let members = usernames(&members).map_err(refused)?;
                sealroom_crypto::check_group_name(&name)
                    .map_err(|e| refused(format!("not a group name: {e}")))?;
                let now_ms = now() as u64;
                let c = groups::create_group(&t, &WebVault, dev, &members, now_ms).await.map_err(failed)?;
                self.learn_moved(c);
                // Named by a message in the group: only its members read it.
                groups::send(&t, &WebVault, dev, c, &Payload::GroupName(name), now_ms)
                    .await
                    .map_err(failed)?;
                drop(_one);
                self.sync_groups();
                return Ok(Done::Created { conversation: c });
            }
            Op::Change { conversation: c, change } => {
                let now_ms = now() as u64;
                let commit = |changes: Changes| groups::change(&t, &WebVault, dev, c, changes);
                match change {
                    GroupChange::Add { users } => {
                        let users = usernames(&users).map_err(refused)?;
                        groups::add_members(&t, &WebVault, dev, c, &users, now_ms).await.map(|_| ())
                    }
                    GroupChange::Remove { users } => {
                        commit(Changes { remove_users: users, ..Changes::default() }).await.map(|_| ())
                    }
                    GroupChange::Admins { users } => {
                        commit(Changes { admins: Some(users), ..Changes::default() }).await.map(|_| ())
                    }
                    GroupChange::Rename { name } => {
                        sealroom_crypto::check_group_name(&name)
                            .map_err(|e| refused(format!("not a group name: {e}")))?;
                        groups::send(&t, &WebVault, dev, c, &Payload::GroupName(name), now_ms)
                            .await
                            .map(|_| ())
                    }
                    GroupChange::Leave => groups::leave(&t, dev, c).await,
                }
                .map_err(failed)?;
                drop(_one);
                self.sync_groups();
                return Ok(Done::Changed);
            }
        };
        let payload = payload_of(&payload).ok_or_else(|| refused("a message that does not read".into()))?;
        if let Some(peer) = peer {
            let peer = Username::parse(&peer).map_err(|_| refused("not a username".into()))?;
            match groups::direct(&t, &WebVault, dev, &peer).await.map_err(failed)? {
                DirectRoute::Mls(c) if c == conversation => {}
                _ => {
                    let _ = groups::drop_entry::<Fetch, _>(dev, entry.0).await;
                    return Err(refused(format!("the conversation with {peer} is not in MLS")));
                }
            }
        }
        let sent = groups::send_entry(&t, &WebVault, dev, conversation, entry.0, &payload, &blobs, sent_ms)
            .await
            .map_err(failed)?;
        // Every tab shows it (the asking one already does, and keeps one copy).
        let me = with_tabs(|t| t.user.clone()).unwrap_or_default();
        if let Some(payload) = b64_payload(&payload) {
            let event = TabEvent {
                conversation,
                seq: sent.seq,
                ts: sent.ts,
                what: TabEventKind::Message { sender: me, sent_ms, payload, entry: Some(entry) },
            };
            self.publish(vec![event]);
        }
        // "Sent" first; the archive upload and a due update after, as the device's next flow.
        let later = owned.clone();
        spawn_local(async move {
            let _one = later.serial.lock().await;
            if let Ok(dev) = &later.device {
                groups::after_send(&Fetch(self), &WebVault, dev, &[(conversation, sent.ts)]).await;
            }
        });
        Ok(Done::Sent { seq: sent.seq, ts: sent.ts })
    }

    /// Reads what is new in this user's groups, in the tab that owns the device; calls made
    /// while it runs make it read once more.
    pub(crate) fn sync_groups(self) {
        let Some(Some(owned)) = with_tabs(|t| t.owned.clone()) else { return };
        if owned.device.is_err() {
            return;
        }
        if owned.syncing.replace(true) {
            owned.sync_again.set(true);
            return;
        }
        spawn_local(async move {
            loop {
                owned.sync_again.set(false);
                let read = {
                    let _one = owned.serial.lock().await;
                    match &owned.device {
                        Ok(dev) => maintain(self, dev).await,
                        Err(_) => Ok(Vec::new()),
                    }
                };
                match read {
                    Ok(events) => {
                        // What this tab read is delivered (the other tabs only show it).
                        let me = self.account.me.get_untracked().unwrap_or_default();
                        for frame in groups::delivered_receipts(&events, &me) {
                            super::keys::with_keys(|k| k.socket.as_ref().map(|s| s.send(&frame)));
                        }
                        let still = |c: ConversationId, user: &str| {
                            owned.device.as_ref().is_ok_and(|dev| {
                                use sealroom_session::groups::DeviceCell;
                                dev.with(|d| {
                                    d.group_of(c.0.unsigned_abs())
                                        .and_then(|g| d.members(&g).ok())
                                        .is_some_and(|ms| ms.iter().any(|m| m.user == user))
                                })
                            })
                        };
                        let first = owned.first_sync.replace(false);
                        self.publish(events.iter().filter_map(|e| tab_event(e, &me, &still)).collect());
                        if first {
                            post(&TabMsg::Archived { news: None });
                            // What the last owner read but did not get to show is in the
                            // archive now (its queue was saved with its cursor): this tab too.
                            spawn_local(self.reread_archive(REREAD_PAGE));
                        } else if !events.is_empty() {
                            let mut news: Vec<(ConversationId, u32)> = Vec::new();
                            for e in &events {
                                match news.iter_mut().find(|(c, _)| *c == e.conversation) {
                                    Some((_, n)) => *n = n.saturating_add(1),
                                    None => news.push((e.conversation, 1)),
                                }
                            }
                            post(&TabMsg::Archived { news: Some(news) });
                        }
                    }
                    Err(e) => {
                        web_sys::console::warn_1(&format!("reading the groups failed: {}", e.human()).into())
                    }
                }
                if !owned.sync_again.get() {
                    break;
                }
            }
            owned.syncing.set(false);
        });
    }

    /// Shows events here and posts them to the other tabs.
    fn publish(self, events: Vec<TabEvent>) {
        if events.is_empty() {
            return;
        }
        self.on_group_events(&events);
        post(&TabMsg::Events { events });
    }

    /// A send of this tab that was not answered is asked again (after a reconnect).
    pub(crate) fn resend_unanswered(self) {
        let pending = with_tabs(|t| std::mem::take(&mut t.unanswered)).unwrap_or_default();
        for u in pending {
            spawn_local(self.deliver(u));
        }
    }

    /// Whether `conversation` is in MLS: asked of the relay once, then known (a move reaches
    /// every tab as an introduction and as the owner's events: [`App::recheck_moved`],
    /// [`App::learn_moved`]).
    pub(crate) async fn moved(self, conversation: ConversationId) -> Result<bool, Failure> {
        if let Some(Some(known)) = with_tabs(|t| t.moved.get(&conversation).copied()) {
            return Ok(known);
        }
        let moved = match super::keys::call::<GetGroup>(&GetGroup::path(&[&conversation]), None).await {
            Ok(_) => true,
            Err(e) if e.error == ErrorCode::NotFound => false,
            Err(e) => return Err(Failure::Api(e)),
        };
        with_tabs(|t| *t.moved.entry(conversation).or_insert(moved) |= moved);
        Ok(moved)
    }

    /// `conversation` is in MLS (one of its group events arrived).
    pub(crate) fn learn_moved(&self, conversation: ConversationId) {
        with_tabs(|t| t.moved.insert(conversation, true));
    }

    /// A message reading like `conversation`'s introduction arrived: the relay is asked again
    /// (the text alone proves nothing: a peer could write it).
    pub(crate) fn recheck_moved(&self, conversation: ConversationId) {
        with_tabs(|t| {
            if t.moved.get(&conversation) == Some(&false) {
                t.moved.remove(&conversation);
            }
        });
    }

    /// The MLS conversation a message to `peer` goes in: `None` for version 1 (no conversation
    /// yet, one not moved, or the relay cannot be reached to say: queued as version 1, as
    /// before). Every way to send asks this.
    pub(crate) async fn mls_route(self, peer: &str) -> Result<Option<ConversationId>, Failure> {
        if let Some(conversation) = self.conversation_of(peer) {
            match self.moved(conversation).await {
                Ok(true) => return Ok(Some(conversation)),
                Ok(false) => {}
                Err(e) if sealroom_session::unanswered::<Fetch>(&e) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        // Not in MLS yet: the device moves it when both users can. When it cannot say (no
        // answer, a key that changed, no device in this browser), the message goes as version
        // 1, whose own checks speak to the user.
        match self.ask(Op::Route { peer: peer.to_owned() }).await {
            Ok(Done::Routed { conversation }) => Ok(conversation),
            Ok(_) | Err(_) => Ok(None),
        }
    }

    /// Sends `payload` to `peer` in their conversation's MLS group: shown at once, then
    /// asked of the device's owner.
    pub(crate) async fn send_mls(self, room: Room, conversation: ConversationId, payload: Payload) {
        let mut entry = [0u8; 16];
        if getrandom::getrandom(&mut entry).is_err() {
            return;
        }
        let sent_ms = now() as u64;
        let msg = mls_msg(ClientMsgId(entry).to_b64(), None, true, Ok(&payload), sent_ms, None);
        let text = msg.text.clone();
        self.timeline.msgs.update(|m| m.push(Msg { state: Delivery::Sending, ..msg }));
        self.touch_conv(&room, format!("You: {text}"), sent_ms as f64, false, next_event());
        self.send_shown(&room, conversation, entry, &payload, Vec::new(), sent_ms).await;
    }

    /// Asks the device's owner to send a message already shown (under the key of `entry`) in
    /// `room`'s MLS conversation; its state follows the answer.
    pub(crate) async fn send_shown(
        self,
        room: &Room,
        conversation: ConversationId,
        entry: [u8; 16],
        payload: &Payload,
        blobs: Vec<BlobId>,
        sent_ms: u64,
    ) {
        let key = ClientMsgId(entry).to_b64();
        let Some(encoded) = b64_payload(payload) else { return };
        let op = Op::Send {
            conversation,
            peer: room.peer().map(str::to_owned),
            entry: ClientMsgId(entry),
            payload: encoded,
            blobs,
            sent_ms,
        };
        self.deliver(Unanswered { op, key }).await;
    }

    async fn deliver(self, u: Unanswered) {
        let key = u.key.clone();
        match self.ask(u.op.clone()).await {
            Ok(Done::Sent { seq, .. }) => {
                self.timeline.msgs.update(|ms| {
                    if ms.iter().any(|m| m.seq == Some(seq) && m.key != key) {
                        // The owner's event came first, as another copy: one copy.
                        ms.retain(|m| m.key != key);
                    } else if let Some(m) = ms.iter_mut().find(|m| m.key == key) {
                        m.seq = Some(seq);
                        if matches!(m.state, Delivery::Sending | Delivery::Failed(_)) {
                            m.state = Delivery::Sent;
                        }
                    }
                });
                // A receipt can come before the send's answer (the device saves and archives
                // after the relay stored it): what the peers have read already covers it.
                self.apply_open_markers(seq);
            }
            Ok(_) => {}
            Err(NotSent { kept: true, .. }) => {
                with_tabs(|t| t.unanswered.push(u));
            }
            Err(NotSent { why, .. }) => self.timeline.msgs.update(|ms| {
                if let Some(m) = ms.iter_mut().find(|m| m.key == key) {
                    m.state = Delivery::Failed(why);
                }
            }),
        }
    }

    /// Applies the open chat's receipts (the peer's markers, or each member's) to its message
    /// at log position `seq`.
    fn apply_open_markers(&self, seq: u64) {
        match self.rooms.active.get_untracked() {
            Some(Room::Direct(peer)) => {
                let markers = self.markers_of(&peer);
                self.timeline.msgs.update(|ms| {
                    if let Some(m) = ms.iter_mut().find(|m| m.seq == Some(seq)) {
                        apply_markers(std::slice::from_mut(m), markers);
                    }
                });
            }
            Some(Room::Group(_)) => self.apply_group_receipts(),
            None => {}
        }
    }

    /// Which chat a conversation's events go to: the direct chat with its peer, or the group.
    fn room_of(&self, conversation: ConversationId) -> Room {
        match super::keys::with_keys(|k| k.vault.directory().peer(conversation).map(|p| p.to_string()))
            .flatten()
        {
            Some(peer) => Room::Direct(peer),
            None => Room::Group(conversation),
        }
    }

    /// What the owner read: messages go to their chat and the list; changes to a group become
    /// lines of its timeline.
    fn on_group_events(self, events: &[TabEvent]) {
        let me = self.account.me.get_untracked().unwrap_or_default();
        let mut reload = false;
        for e in events {
            let room = self.room_of(e.conversation);
            let group = room.group().is_some();
            self.learn_moved(e.conversation);
            let open = self.is_open(&room);
            match &e.what {
                TabEventKind::Message { sender, sent_ms, payload, entry } => {
                    let Some(payload) = payload_of(payload) else { continue };
                    let mine = *sender == me;
                    let msg = Msg {
                        relay_ts: sealroom_session::clock_disagrees(*sent_ms, e.ts).then_some(e.ts as f64),
                        ..mls_msg(
                            archived_key(e.conversation, e.seq),
                            group.then_some(sender.as_str()),
                            mine,
                            Ok(&payload),
                            *sent_ms,
                            Some(e.seq),
                        )
                    };
                    if let (Payload::GroupName(name), Room::Group(_)) = (&payload, &room) {
                        if self.title_of(&room) == *name {
                            continue; // sent again unchanged, for members just added
                        }
                        self.rooms.convs.update(|cs| {
                            if let Some(c) = cs.iter_mut().find(|c| c.room == room) {
                                c.title = group_title(Some(name), &c.members, &me);
                            }
                        });
                    }
                    let system = msg.system;
                    let preview = super::conversations::preview_of(&msg);
                    let text = msg.text.clone();
                    let visible = is_visible();
                    if open {
                        self.timeline.forward_secret.set(Some(true));
                        let markers = match &room {
                            Room::Direct(peer) => Some(self.markers_of(peer)),
                            Room::Group(_) => None,
                        };
                        let shown_as = entry.map(|c| c.to_b64());
                        self.timeline.msgs.update(|ms| {
                            let sending = ms.iter().position(|m| Some(&m.key) == shown_as.as_ref());
                            let other =
                                ms.iter().any(|m| m.seq == Some(e.seq) && Some(&m.key) != shown_as.as_ref());
                            if let Some(i) = sending {
                                // This tab's copy while it was sending: now stored (once).
                                if other {
                                    ms.remove(i);
                                } else {
                                    ms[i].seq = Some(e.seq);
                                    if matches!(ms[i].state, Delivery::Sending | Delivery::Failed(_)) {
                                        ms[i].state = Delivery::Sent;
                                    }
                                    if let Some(markers) = markers {
                                        apply_markers(std::slice::from_mut(&mut ms[i]), markers);
                                    }
                                }
                            } else if !other {
                                ms.push(msg);
                                if let Some(markers) = markers {
                                    apply_markers(
                                        std::slice::from_mut(ms.last_mut().expect("pushed")),
                                        markers,
                                    );
                                }
                            }
                        });
                        if group {
                            self.apply_group_receipts();
                        }
                        if !mine {
                            if self.timeline.typing_who.get_untracked() == *sender || !group {
                                self.timeline.typing_until.set(0.0);
                            }
                            if visible {
                                spawn_local(async move { self.mark_read_open().await });
                            }
                        }
                    }
                    self.touch_conv(
                        &room,
                        preview,
                        *sent_ms as f64,
                        !(mine || system || open && visible),
                        next_event(),
                    );
                    let title = self.title_of(&room);
                    if !mine && !open {
                        self.ui.announcement.set(if group {
                            format!("New message in {title}.")
                        } else {
                            format!("New message from {title}.")
                        });
                    }
                    if !mine && !visible && !system {
                        let from = if group { format!("{sender} in {title}") } else { title };
                        crate::browser::notify(&from, &text);
                    }
                }
                TabEventKind::Notice { text } => {
                    if open {
                        self.ui.notice.set(Some(text.clone()));
                    }
                }
                TabEventKind::Changed { line } => {
                    if !group {
                        continue;
                    }
                    reload = true;
                    if open {
                        if let Some(line) = line {
                            let key = archived_key(e.conversation, e.seq);
                            let msg = Msg {
                                system: true,
                                ..mls_msg(
                                    key,
                                    None,
                                    false,
                                    Ok(&Payload::Text(line.clone())),
                                    e.ts.unsigned_abs(),
                                    Some(e.seq),
                                )
                            };
                            self.timeline.msgs.update(|ms| {
                                if !ms.iter().any(|m| m.key == msg.key) {
                                    ms.push(msg);
                                }
                            });
                        }
                        let app = self;
                        let id = e.conversation;
                        spawn_local(async move { app.refresh_group(id).await });
                    }
                }
                TabEventKind::Gone { text } => {
                    reload = true;
                    if open {
                        self.ui.notice.set(Some(text.clone()));
                        self.rooms.group.set(None);
                    }
                }
            }
        }
        if reload {
            spawn_local(async move { self.load_conversations().await });
        }
    }

    /// Reads the newest page of the open chat's archive again and shows what this tab missed
    /// (it was loading while the owner read it, or the owner that read it went away).
    async fn reread_archive(self, size: u32) {
        let Some(room) = self.rooms.active.get_untracked() else { return };
        let Some(conversation) = self.open_conversation() else { return };
        if room.group().is_none() && with_tabs(|t| t.moved.get(&conversation) == Some(&true)) != Some(true) {
            return;
        }
        let (page, _) = self.archived_page(conversation, None, size).await;
        if !self.is_open(&room) || page.is_empty() {
            return;
        }
        self.timeline.msgs.update(|shown| *shown = with_arrived(std::mem::take(shown), page));
        match &room {
            Room::Group(_) => self.apply_group_receipts(),
            Room::Direct(peer) => {
                let markers = self.markers_of(peer);
                self.timeline.msgs.update(|ms| apply_markers(ms, markers));
            }
        }
    }

    /// What the list calls a chat.
    pub(crate) fn title_of(&self, room: &Room) -> String {
        self.rooms
            .convs
            .with_untracked(|cs| cs.iter().find(|c| c.room == *room).map(|c| c.title.clone()))
            .unwrap_or_else(|| room.peer().unwrap_or("a group").to_owned())
    }

    /// The names of `groups` the device knows (asked of the owning tab).
    pub(crate) async fn group_names(self, groups: Vec<ConversationId>) -> BTreeMap<ConversationId, String> {
        if groups.is_empty() {
            return BTreeMap::new();
        }
        match self.ask(Op::Names { conversations: groups }).await {
            Ok(Done::Names { names }) => names.into_iter().collect(),
            _ => BTreeMap::new(),
        }
    }

    /// Creates a group named `name` with `members` (this user its admin), and opens it.
    pub(crate) async fn create_group(self, name: String, members: Vec<String>) -> Result<(), String> {
        match self.ask(Op::Create { name, members }).await {
            Ok(Done::Created { conversation }) => {
                self.load_conversations().await;
                self.open_group_chat(conversation).await;
                Ok(())
            }
            Ok(_) => Err("no answer from this browser's device".into()),
            Err(e) => Err(e.why),
        }
    }

    /// Changes the open group (or leaves it).
    pub(crate) async fn change_group(
        self,
        conversation: ConversationId,
        change: GroupChange,
    ) -> Result<(), String> {
        let leaving = matches!(change, GroupChange::Leave);
        match self.ask(Op::Change { conversation, change }).await {
            Ok(_) => {
                if leaving {
                    if self.is_open(&Room::Group(conversation)) {
                        self.rooms.active.set(None);
                    }
                    self.load_conversations().await;
                } else {
                    self.refresh_group(conversation).await;
                }
                Ok(())
            }
            Err(e) => Err(e.why),
        }
    }

    /// The page of `conversation`'s history in this user's archive just older than log
    /// position `before` (the newest page without), as messages; and whether older ones remain.
    pub(crate) async fn archived_page(
        self,
        conversation: ConversationId,
        before: Option<u64>,
        limit: u32,
    ) -> (Vec<Msg>, bool) {
        let me = self.account.me.get_untracked().unwrap_or_default();
        let Ok((page, more)) =
            groups::archived(&Fetch(self), &WebVault, conversation, before, Some(limit)).await
        else {
            return (Vec::new(), false);
        };
        if !page.is_empty() {
            self.learn_moved(conversation);
        }
        let group = self.room_of(conversation).group().is_some();
        // A name sent again unchanged (with every member added) is no news: shown once.
        let mut last_name: Option<String> = None;
        let msgs = page
            .into_iter()
            .filter(|m| match &m.payload {
                Ok(Payload::GroupName(n)) => last_name.replace(n.clone()).as_ref() != Some(n),
                _ => true,
            })
            .map(|m| {
                let key = archived_key(conversation, m.seq);
                let sender = group.then_some(m.sender.as_str());
                mls_msg(
                    key,
                    sender,
                    m.sender == me,
                    m.payload.as_ref().map_err(|_| ()),
                    m.sent_ms,
                    Some(m.seq),
                )
            })
            .collect();
        (msgs, more)
    }

    /// What the relay stores of the open chat's MLS message at `seq`, for the ciphertext view:
    /// a label saying what it is, and the bytes in base64 (or why there are none).
    pub(crate) async fn stored_copy(self, seq: u64) -> (String, String) {
        let Some(conversation) = self.open_conversation() else {
            return ("Not stored".into(), String::new());
        };
        match groups::stored_copy(&Fetch(self), conversation, seq).await {
            Ok(groups::StoredCopy::Log(bytes)) => {
                ("MLS message as stored by the server".into(), sealroom_protocol::encode_b64(&bytes))
            }
            Ok(groups::StoredCopy::Archive(bytes)) => (
                "The server no longer keeps the MLS message (every device has read it). Your \
                 archive's copy, sealed under your archive key, as stored by the server:"
                    .into(),
                sealroom_protocol::encode_b64(&bytes),
            ),
            Ok(groups::StoredCopy::Gone) => {
                ("The server keeps nothing of this message any more.".into(), String::new())
            }
            Err(e) => (format!("Could not ask the server: {}", e.human()), String::new()),
        }
    }

    /// This user's devices that may still act (oldest first), and which is this browser's.
    pub(crate) async fn devices(self) -> Result<(Vec<DeviceInfo>, Option<DeviceId>), String> {
        let me = self.account.me.get_untracked().ok_or("signed out")?;
        let list = super::keys::call::<Devices>(Devices::PATH, None).await.map_err(|e| human(&e))?;
        let active = list.devices.into_iter().filter(|d| d.revoked_at.is_none()).collect();
        Ok((active, BrowserDevice::id_of(&me).await))
    }

    /// Removes one of this user's other devices: it may no longer act, and the members of its
    /// groups commit its removal.
    pub(crate) async fn remove_device(self, device: DeviceId) -> Result<(), String> {
        super::keys::call::<RemoveDevice>(&RemoveDevice::path(&[&device]), None).await.map_err(|e| human(&e))
    }

    /// Removes this browser's device of `user` for good: at the relay (it may no longer act,
    /// and its groups' members take it out) and from IndexedDB, after this tab lets it go.
    pub(crate) async fn end_device(self, user: &str) {
        if let Some(id) = BrowserDevice::id_of(user).await {
            if let Err(why) = self.remove_device(id).await {
                web_sys::console::warn_1(&format!("this browser's device was not removed: {why}").into());
            }
        }
        self.stop_device();
        if BrowserDevice::forget(user).await.is_err() {
            web_sys::console::warn_1(&"this browser's device state could not be deleted".into());
        }
    }

    /// Turns the history archive on or off for every device of this user (the key backup
    /// says which); off deletes what the relay holds. The other tabs take the change from the
    /// backup.
    pub(crate) async fn set_archive(self, on: bool) -> Result<(), String> {
        groups::set_archive(&Fetch(self), &WebVault, on).await.map_err(|e| e.human())?;
        post(&TabMsg::Archive { on });
        Ok(())
    }

    /// Whether the history archive is on.
    pub(crate) fn archive_on(&self) -> bool {
        WebVault.with(|v| v.archive_on()).unwrap_or(true)
    }

    /// Another tab changed the archive setting: this tab's copy of the vault follows (the key
    /// from the stored backup, so every tab seals under the same one).
    async fn archive_changed(self, on: bool) {
        let Ok(me) = super::keys::call::<GetMe>(&GetMe::path(&[]), None).await else { return };
        WebVault.with(|v| {
            let _ = v.backup_conflict(&me);
            let _ = v.set_archive(on);
        });
    }

    /// Leaves the tabs: the lock is released (another tab takes the device over) and the
    /// channel closed.
    pub(crate) fn stop_device(&self) {
        TABS.with(|t| t.borrow_mut().take());
    }
}

/// What a commit says in the timeline: who came and went (a key update says nothing).
fn commit_line(
    s: &sealroom_session::mls::CommitSummary,
    me: &str,
    still_member: impl Fn(&str) -> bool,
) -> Option<String> {
    let who = |u: &str| if u == me { "you".to_owned() } else { u.to_owned() };
    let by = if s.by == me { "You".to_owned() } else { s.by.clone() };
    fn users(list: &[(String, sealroom_session::mls::DeviceId)]) -> Vec<&str> {
        let mut users: Vec<&str> = list.iter().map(|(u, _)| u.as_str()).collect();
        users.sort_unstable();
        users.dedup();
        users
    }
    let added = users(&s.added);
    // A device removed from a user who stays is that user's news, not a departure.
    let (removed, devices): (Vec<&str>, Vec<&str>) =
        users(&s.removed).into_iter().partition(|u| !still_member(u));
    let mut parts = Vec::new();
    // A member's own new device joins by itself; anyone else's is added.
    let (own, others): (Vec<&str>, Vec<&str>) = added.iter().partition(|u| **u == s.by);
    if !own.is_empty() {
        parts.push(format!("{by} joined from a new device (their safety number is unchanged: devices are signed by their key)"));
    }
    if !others.is_empty() {
        let names: Vec<String> = others.iter().map(|u| who(u)).collect();
        parts.push(format!("{by} added {}", names.join(", ")));
    }
    if !removed.is_empty() {
        let names: Vec<String> = removed.iter().map(|u| who(u)).collect();
        parts.push(format!(
            "{} no longer in the group",
            if names.len() == 1 && names[0] != "you" {
                format!("{} is", names[0])
            } else if names == ["you"] {
                "You are".to_owned()
            } else {
                format!("{} are", names.join(", "))
            }
        ));
    }
    if !devices.is_empty() {
        let names: Vec<String> = devices.iter().map(|u| who(u)).collect();
        parts.push(if names == ["you"] {
            "One of your devices was removed".to_owned()
        } else {
            format!("A device of {} was removed", names.join(", "))
        });
    }
    if s.admins_changed {
        parts.push(format!("{by} changed who the admins are"));
    }
    // Each part starts as a sentence does, or with a username (never capitalized).
    (!parts.is_empty()).then(|| parts.join("; ") + ".")
}

/// An event as the tabs pass it on (`None`: nothing to show).
fn tab_event(
    e: &GroupEvent,
    me: &str,
    still_member: &impl Fn(ConversationId, &str) -> bool,
) -> Option<TabEvent> {
    let what = match &e.what {
        EventKind::Message { sender, sent_ms, payload, .. } => TabEventKind::Message {
            sender: sender.clone(),
            sent_ms: *sent_ms,
            payload: b64_payload(payload)?,
            entry: None,
        },
        // This device's own message, sent again from its outbox: every tab shows it.
        EventKind::Resent { entry, sent_ms, payload } => TabEventKind::Message {
            sender: me.to_owned(),
            sent_ms: *sent_ms,
            payload: b64_payload(payload)?,
            entry: Some(ClientMsgId(*entry)),
        },
        EventKind::Joined => TabEventKind::Changed { line: None },
        EventKind::Commit(summary) if summary.self_removed => {
            TabEventKind::Gone { text: format!("{} removed you from this group.", summary.by) }
        }
        EventKind::Commit(summary) => {
            TabEventKind::Changed { line: commit_line(summary, me, |u| still_member(e.conversation, u)) }
        }
        EventKind::Removed => TabEventKind::Gone { text: "You are no longer in this group.".into() },
        EventKind::Unreadable(why) | EventKind::Refused(why) | EventKind::Unconfirmed(why) => {
            TabEventKind::Notice { text: capitalize(why) }
        }
    };
    Some(TabEvent { conversation: e.conversation, seq: e.seq, ts: e.ts, what })
}

/// The device's catching up ([`groups::maintain`], as in the CLI). What failed after the first
/// read is only logged: what was read is shown, and the next read tries the rest again.
async fn maintain(app: App, dev: &BrowserDevice) -> Result<Vec<GroupEvent>, Failure> {
    let done = groups::maintain(&Fetch(app), &WebVault, dev, now() as i64).await?;
    if let Some(e) = done.failed {
        web_sys::console::warn_1(&format!("tidying or renewing the groups failed: {}", e.human()).into());
    }
    Ok(done.events)
}

/// The key of the message at `seq` in `conversation`'s log.
fn archived_key(conversation: ConversationId, seq: u64) -> String {
    format!("mls-{}-{}", conversation.0, seq)
}

/// A message of an MLS conversation as the timeline shows it (stored by the relay; `payload`
/// is `Err` for one that does not open). `sender` is named in a group.
fn mls_msg(
    key: String,
    sender: Option<&str>,
    mine: bool,
    payload: Result<&Payload, ()>,
    sent_ms: u64,
    seq: Option<u64>,
) -> Msg {
    let (text, file, undecryptable) = match payload {
        Ok(Payload::GroupName(n)) => {
            let who = if mine { "You" } else { sender.unwrap_or("Someone") };
            (format!("{who} named the group “{n}”."), None, false)
        }
        Ok(p) => {
            let (text, file) = describe(p);
            (text, file, false)
        }
        Err(()) => ("This message could not be decrypted.".to_owned(), None, true),
    };
    let system = matches!(payload, Ok(Payload::Upgrade { .. } | Payload::GroupName(_)));
    Msg {
        sender: if mine { None } else { sender.map(str::to_owned) },
        system,
        folded: text.to_lowercase(),
        key,
        id: None,
        mine,
        text,
        ts: sent_ms as f64,
        relay_ts: None,
        state: Delivery::Sent,
        envelope: String::new(),
        undecryptable,
        file,
        seq,
    }
}

/// What the introduction of a conversation moving to MLS shows.
pub const MOVED: &str = "Moved to forward-secret encryption (MLS).";

/// What a payload shows: its text, and the file it carries.
pub(crate) fn describe(payload: &Payload) -> (String, Option<FileMeta>) {
    match payload {
        Payload::Text(t) => (t.clone(), None),
        Payload::File(f) => (
            format!("File: {}", f.name),
            Some(FileMeta {
                name: f.name.clone(),
                size: f.size,
                mime: f.mime.clone(),
                stored: Some(f.clone()),
            }),
        ),
        Payload::Upgrade { .. } => (MOVED.into(), None),
        Payload::GroupName(n) => (format!("Named the group “{n}”."), None),
        _ => ("This message needs a newer version of Sealroom.".into(), None),
    }
}

/// Usernames, or why one is not.
fn usernames(names: &[String]) -> Result<Vec<Username>, String> {
    names.iter().map(|n| Username::parse(n).map_err(|_| format!("“{n}” is not a username"))).collect()
}

fn js_text(e: &wasm_bindgen::JsValue) -> String {
    e.as_string().unwrap_or_else(|| format!("{e:?}"))
}
