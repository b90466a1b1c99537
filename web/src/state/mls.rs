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
//! What the browser does not do yet (issue 14 goes on): group chats in the interface.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;

use futures::channel::oneshot;
use leptos::prelude::*;
use leptos::task::spawn_local;
use sealroom_crypto::Payload;
use sealroom_protocol::endpoint::{Devices, Endpoint, GetGroup, RemoveDevice};
use sealroom_protocol::{BlobId, ClientMsgId, ConversationId, DeviceId, DeviceInfo, ErrorCode, Username};
use sealroom_session::groups::{self, DirectRoute, DirectStep, EventKind, GroupEvent};
use sealroom_session::VaultCell;
use serde::{Deserialize, Serialize};

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
}

/// The owner's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "done", rename_all = "snake_case")]
enum Done {
    /// A send is in the log at `seq`.
    Sent { seq: u64, ts: i64 },
    /// A message to the peer goes in this conversation's MLS group (`None`: as version 1).
    Routed { conversation: Option<ConversationId> },
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
    /// A message (the payload encoded, base64).
    Message { sender: String, sent_ms: u64, payload: String },
    /// Something the user is told about (a refused entry, a send not confirmed, a removal).
    Notice { text: String },
    /// Membership or keys changed, or this device joined.
    Changed,
}

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
}

/// The device, in the tab that owns it.
struct Owned {
    _lock: Option<Lock>,
    device: Result<BrowserDevice, String>,
    /// One device flow at a time.
    serial: futures::lock::Mutex<()>,
    syncing: Cell<bool>,
    sync_again: Cell<bool>,
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
        let _one = owned.serial.lock().await;
        let t = Fetch(self);
        let failed = |e: Failure| NotSent { kept: sealroom_session::unanswered::<Fetch>(&e), why: e.human() };
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
        };
        let payload = payload_of(&payload).ok_or_else(|| refused("a message that does not read".into()))?;
        if let Some(peer) = peer {
            let peer = Username::parse(&peer).map_err(|_| refused("not a username".into()))?;
            match groups::direct(&t, &WebVault, dev, &peer).await.map_err(failed)? {
                DirectRoute::Mls(c) if c == conversation => {}
                _ => return Err(refused(format!("the conversation with {peer} is not in MLS"))),
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
                what: TabEventKind::Message { sender: me, sent_ms, payload },
            };
            self.publish(vec![event]);
        }
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
                        Ok(dev) => groups::sync(&Fetch(self), &WebVault, dev).await,
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
                        self.publish(events.iter().filter_map(tab_event).collect())
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
            Ok(Done::Sent { .. }) | Err(_) => Ok(None),
        }
    }

    /// Sends `payload` to `peer` in their conversation's MLS group: shown at once, then
    /// asked of the device's owner.
    pub(crate) async fn send_mls(self, peer: String, conversation: ConversationId, payload: Payload) {
        let mut entry = [0u8; 16];
        if getrandom::getrandom(&mut entry).is_err() {
            return;
        }
        let sent_ms = now() as u64;
        let msg = mls_msg(ClientMsgId(entry).to_b64(), true, Ok(&payload), sent_ms, None);
        let text = msg.text.clone();
        self.timeline.msgs.update(|m| m.push(Msg { state: Delivery::Sending, ..msg }));
        self.touch_conv(&peer, format!("You: {text}"), sent_ms as f64, false);
        self.send_shown(peer, conversation, entry, &payload, Vec::new(), sent_ms).await;
    }

    /// Asks the device's owner to send a message already shown (under the key of `entry`) in
    /// `peer`'s MLS conversation; its state follows the answer.
    pub(crate) async fn send_shown(
        self,
        peer: String,
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
            peer: Some(peer),
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
            Ok(Done::Sent { seq, .. }) => self.timeline.msgs.update(|ms| {
                if ms.iter().any(|m| m.seq == Some(seq)) {
                    // The owner's event came first: one copy.
                    ms.retain(|m| m.key != key);
                } else if let Some(m) = ms.iter_mut().find(|m| m.key == key) {
                    m.seq = Some(seq);
                    m.state = Delivery::Sent;
                }
            }),
            Ok(Done::Routed { .. }) => {}
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

    /// What the owner read: messages of direct conversations go to their chat and the list.
    fn on_group_events(self, events: &[TabEvent]) {
        let me = self.account.me.get_untracked().unwrap_or_default();
        for e in events {
            let Some(peer) =
                super::keys::with_keys(|k| k.vault.directory().peer(e.conversation).map(|p| p.to_string()))
                    .flatten()
            else {
                continue; // a group chat: shown with the group interface
            };
            self.learn_moved(e.conversation);
            match &e.what {
                TabEventKind::Message { sender, sent_ms, payload } => {
                    let Some(payload) = payload_of(payload) else { continue };
                    let mine = *sender == me;
                    let msg = Msg {
                        relay_ts: sealroom_session::clock_disagrees(*sent_ms, e.ts).then_some(e.ts as f64),
                        ..mls_msg(
                            archived_key(e.conversation, e.seq),
                            mine,
                            Ok(&payload),
                            *sent_ms,
                            Some(e.seq),
                        )
                    };
                    let text = msg.text.clone();
                    let open = self.rooms.active.get_untracked().as_deref() == Some(peer.as_str());
                    let visible = is_visible();
                    if open {
                        self.timeline.forward_secret.set(Some(true));
                        let markers = self.markers_of(&peer);
                        self.timeline.msgs.update(|ms| {
                            if !ms.iter().any(|m| m.seq == Some(e.seq)) {
                                ms.push(msg);
                                apply_markers(std::slice::from_mut(ms.last_mut().expect("pushed")), markers);
                            }
                        });
                        if !mine {
                            self.timeline.typing_until.set(0.0);
                            if visible {
                                let peer = peer.clone();
                                spawn_local(async move { self.mark_read(peer).await });
                            }
                        }
                    }
                    let prefix = if mine { "You: " } else { "" };
                    self.touch_conv(
                        &peer,
                        format!("{prefix}{text}"),
                        *sent_ms as f64,
                        !(mine || open && visible),
                    );
                    if !mine && !open {
                        self.ui.announcement.set(format!("New message from {peer}."));
                    }
                    if !mine && !visible {
                        crate::browser::notify(&peer, &text);
                    }
                }
                TabEventKind::Notice { text } => {
                    if self.rooms.active.get_untracked().as_deref() == Some(peer.as_str()) {
                        self.ui.notice.set(Some(text.clone()));
                    }
                }
                TabEventKind::Changed => {}
            }
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
        let msgs = page
            .into_iter()
            .map(|m| {
                let key = archived_key(conversation, m.seq);
                mls_msg(key, m.sender == me, m.payload.as_ref().map_err(|_| ()), m.sent_ms, Some(m.seq))
            })
            .collect();
        (msgs, more)
    }

    /// What the relay stores of the open chat's MLS message at `seq`, for the ciphertext view:
    /// a label saying what it is, and the bytes in base64 (or why there are none).
    pub(crate) async fn stored_copy(self, seq: u64) -> (String, String) {
        let conversation = self.rooms.active.get_untracked().and_then(|peer| self.conversation_of(&peer));
        let Some(conversation) = conversation else { return ("Not stored".into(), String::new()) };
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

    /// Leaves the tabs: the lock is released (another tab takes the device over) and the
    /// channel closed.
    pub(crate) fn stop_device(&self) {
        TABS.with(|t| t.borrow_mut().take());
    }
}

/// An event as the tabs pass it on (`None`: nothing to show).
fn tab_event(e: &GroupEvent) -> Option<TabEvent> {
    let what = match &e.what {
        EventKind::Message { sender, sent_ms, payload, .. } => TabEventKind::Message {
            sender: sender.clone(),
            sent_ms: *sent_ms,
            payload: b64_payload(payload)?,
        },
        EventKind::Joined | EventKind::Commit(_) => TabEventKind::Changed,
        EventKind::Removed => {
            TabEventKind::Notice { text: "You are no longer in this conversation's group.".into() }
        }
        EventKind::Unreadable(why) | EventKind::Refused(why) | EventKind::Unconfirmed(why) => {
            TabEventKind::Notice { text: capitalize(why) }
        }
    };
    Some(TabEvent { conversation: e.conversation, seq: e.seq, ts: e.ts, what })
}

/// The key of the message at `seq` in `conversation`'s log.
fn archived_key(conversation: ConversationId, seq: u64) -> String {
    format!("mls-{}-{}", conversation.0, seq)
}

/// A message of an MLS conversation as the timeline shows it (stored by the relay; `payload`
/// is `Err` for one that does not open).
fn mls_msg(key: String, mine: bool, payload: Result<&Payload, ()>, sent_ms: u64, seq: Option<u64>) -> Msg {
    let (text, file, undecryptable) = match payload {
        Ok(p) => {
            let (text, file) = describe(p);
            (text, file, false)
        }
        Err(()) => ("This message could not be decrypted.".to_owned(), None, true),
    };
    Msg {
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

fn js_text(e: &wasm_bindgen::JsValue) -> String {
    e.as_string().unwrap_or_else(|| format!("{e:?}"))
}
