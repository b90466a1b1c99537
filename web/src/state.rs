//! The app's state and everything that changes it: keys, pins, conversations, the open chat,
//! the outbox, and the handling of every frame from the relay.
//!
//! Secrets (identity secret, backup key, pair keys) live in a thread-local, outside the
//! reactive graph, and only in memory: signing out or closing the tab forgets them.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use leptos::prelude::*;
use leptos::task::spawn_local;
use sealroom_crypto::{BackupKey, KdfParams, MessageHeader, PasswordKeys, Payload};
use sealroom_protocol::endpoint::{
    Clear, Conversations, Endpoint, History, Logout, LogoutAll, MarkRead, SearchUsers, SetFlags,
};
use sealroom_protocol::{
    ApiError, ClearRequest, ClientFrame, ClientMsgId, ConversationId, ConversationSummary, ErrorCode,
    IdentityKey, MessageId, MessageOut, ServerFrame, Username,
};
use sealroom_session::{flows, KeyChange, Outbox, OutboxEvent, PeerKey, Transport, Vault, VaultCell};

use crate::api::{self, Socket};

/// Which screen is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    /// Sign in.
    SignIn,
    /// Create an account.
    SignUp,
    /// The messenger.
    Chats,
}

/// Where a sent message is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Queued or on the wire, not yet acknowledged.
    Sending,
    /// Stored by the relay.
    Sent,
    /// On at least one of the peer's devices.
    Delivered,
    /// Read by the peer.
    Read,
    /// Refused by the relay.
    Failed(String),
}

/// A decrypted message in the open chat.
#[derive(Debug, Clone, PartialEq)]
pub struct Msg {
    /// Stable key: the client_msg_id in base64.
    pub key: String,
    /// Server id once stored.
    pub id: Option<i64>,
    /// Sent by this user.
    pub mine: bool,
    /// The text (or a description of a non-text payload).
    pub text: String,
    /// `text` lowercased once, for search.
    pub folded: String,
    /// When (server time, or local time while sending).
    pub ts: f64,
    /// Delivery state of this user's messages.
    pub state: Delivery,
    /// The exact envelope stored by the relay, base64.
    pub envelope: String,
    /// Decryption failed.
    pub undecryptable: bool,
    /// The attachment, for a file message.
    pub file: Option<FileMeta>,
}

/// What a file message says about its file.
#[derive(Debug, Clone, PartialEq)]
pub struct FileMeta {
    /// File name (from the sender; shown as text, never used as a path).
    pub name: String,
    /// Plaintext size in bytes.
    pub size: u64,
    /// MIME type as the sender's browser reported it.
    pub mime: String,
    /// Where it is and how to open it; `None` while this browser is still uploading it.
    pub stored: Option<sealroom_crypto::FileRef>,
}

/// A row of the conversation list.
#[derive(Debug, Clone, PartialEq)]
pub struct Conv {
    /// The relay's id for it.
    pub id: ConversationId,
    /// The peer.
    pub peer: String,
    /// Decrypted preview of the last message.
    pub preview: String,
    /// Last activity.
    pub ts: f64,
    /// Unread messages.
    pub unread: u32,
    /// Peer online now.
    pub online: bool,
    /// Peer last seen.
    pub last_seen: Option<f64>,
    /// Pinned.
    pub pinned: bool,
    /// Hidden (closed).
    pub hidden: bool,
}

/// A pinned key that no longer matches the directory: sending is blocked until accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyAlert {
    /// The peer.
    pub peer: String,
    /// The new key.
    pub new_key: [u8; 32],
    /// Safety number with the new key.
    pub safety_number: String,
}

/// What lives outside the reactive graph: the vault (every key), the outbox and the socket.
struct Keys {
    vault: Vault,
    outbox: Outbox,
    socket: Option<Socket>,
}

thread_local! {
    static KEYS: RefCell<Option<Keys>> = const { RefCell::new(None) };
}

fn with_keys<T>(f: impl FnOnce(&mut Keys) -> T) -> Option<T> {
    KEYS.with(|k| k.borrow_mut().as_mut().map(f))
}

/// The signed-in vault, for the shared client core's flows.
struct WebVault;

impl VaultCell for WebVault {
    fn with<R>(&self, f: impl FnOnce(&mut Vault) -> R) -> Option<R> {
        with_keys(|k| f(&mut k.vault))
    }
}

/// Why something did not work: the relay said no, or the client core did.
#[derive(Debug)]
pub enum Failure {
    /// The relay refused (or could not be reached).
    Api(ApiError),
    /// The client core refused.
    Core(sealroom_session::Error),
}

impl From<sealroom_session::Error> for Failure {
    fn from(e: sealroom_session::Error) -> Self {
        Failure::Core(e)
    }
}

impl Failure {
    /// As a sentence for people.
    pub fn human(&self) -> String {
        use sealroom_session::Error as E;
        match self {
            Failure::Api(e) => human(e),
            Failure::Core(E::BackupUnreadable) => "Your key backup does not open with this password.".into(),
            Failure::Core(E::IdentityMismatch) => {
                "The server is publishing a different identity key for you \
                 than the one in your key backup, so signing in was stopped: your contacts could be \
                 encrypting to a key you do not hold. Contact the server's operator."
                    .into()
            }
            Failure::Core(E::WeakPassword(_)) => "Use a password of at least 8 characters.".into(),
            Failure::Core(E::KeyChanged(c)) => format!(
                "{}'s security key has changed. Compare the new safety number before sending.",
                c.peer
            ),
            Failure::Core(e) => capitalize(&e.to_string()),
        }
    }

    fn code(&self) -> Option<ErrorCode> {
        match self {
            Failure::Api(e) => Some(e.error),
            Failure::Core(_) => None,
        }
    }
}

/// The browser's [`Transport`]: `fetch` with the session cookie. Argon2id runs after the page
/// painted "Deriving keys…".
#[derive(Clone, Copy)]
struct Fetch(App);

impl Transport for Fetch {
    type Error = Failure;

    async fn call<E: Endpoint>(&self, path: &str, body: Option<&E::Body>) -> Result<E::Response, Failure> {
        api::call::<E::Body, E::Response>(E::METHOD.as_str(), path, body).await.map_err(Failure::Api)
    }

    fn api_error(e: &Failure) -> Option<&ApiError> {
        match e {
            Failure::Api(a) => Some(a),
            Failure::Core(_) => None,
        }
    }

    async fn derive_keys(
        &self,
        password: &str,
        salt: &[u8],
        params: KdfParams,
    ) -> Result<PasswordKeys, Failure> {
        self.0.busy.set(Some("Deriving keys from your password…".into()));
        sleep(60).await; // let the browser paint the state first
        let keys = PasswordKeys::derive(password, salt, params).map_err(|e| {
            Failure::Api(ApiError::new(
                ErrorCode::Internal,
                format!("the server asked for unsafe key parameters: {e}"),
            ))
        });
        self.0.busy.set(Some("Contacting the server…".into()));
        keys
    }
}

/// A REST call to endpoint `E` at `path`.
pub(crate) async fn call<E: Endpoint>(path: &str, body: Option<&E::Body>) -> Result<E::Response, ApiError> {
    api::call::<E::Body, E::Response>(E::METHOD.as_str(), path, body).await
}

/// Unix ms now.
pub fn now() -> f64 {
    js_sys::Date::now()
}

/// The reactive state, shared through context. All fields are signals (Copy).
#[derive(Debug, Clone, Copy)]
pub struct App {
    /// Current screen.
    pub screen: RwSignal<Screen>,
    /// Signed-in user.
    pub me: RwSignal<Option<String>>,
    /// "Deriving keys…" and similar.
    pub busy: RwSignal<Option<String>>,
    /// Inline error of the auth forms.
    pub auth_error: RwSignal<Option<String>>,
    /// Conversation list.
    pub convs: RwSignal<Vec<Conv>>,
    /// Open chat's peer.
    pub active: RwSignal<Option<String>>,
    /// Open chat's messages, oldest first.
    pub msgs: RwSignal<Vec<Msg>>,
    /// Older history exists.
    pub has_more: RwSignal<bool>,
    /// The WebSocket is up.
    pub online: RwSignal<bool>,
    /// Peer typing in the open chat (until the time given).
    pub typing_until: RwSignal<f64>,
    /// Peers whose key changed and was not accepted: nothing is sent to them, from anywhere.
    pub key_alerts: RwSignal<BTreeMap<String, KeyAlert>>,
    /// The key-change alert of the open chat, if its peer is in `key_alerts`.
    pub key_alert: Memo<Option<KeyAlert>>,
    /// Messages the relay handed this user that were addressed to someone else (not shown).
    pub misaddressed: RwSignal<u64>,
    /// A transient notice.
    pub notice: RwSignal<Option<String>>,
    /// Directory search results.
    pub found: RwSignal<Vec<String>>,
    /// Dark theme forced on (None: follow the system).
    pub dark: RwSignal<Option<bool>>,
    /// Unread while the tab is hidden (title badge).
    pub hidden_unread: RwSignal<u32>,
    /// "Remember this browser" is ticked.
    pub remember: RwSignal<bool>,
    /// Attachment transfers in progress, by message key: (what, fraction done).
    pub progress: RwSignal<HashMap<String, (String, f64)>>,
    /// Decrypted attachments by message key: an object URL, or why there is none.
    pub files: RwSignal<HashMap<String, Result<String, String>>>,
}

impl App {
    /// Fresh state.
    pub fn new() -> Self {
        let active = RwSignal::new(None::<String>);
        let key_alerts = RwSignal::new(BTreeMap::<String, KeyAlert>::new());
        let key_alert = Memo::new(move |_| {
            active.with(|a| a.as_ref().and_then(|p| key_alerts.with(|k| k.get(p).cloned())))
        });
        App {
            screen: RwSignal::new(Screen::SignIn),
            me: RwSignal::new(None),
            busy: RwSignal::new(None),
            auth_error: RwSignal::new(None),
            convs: RwSignal::new(Vec::new()),
            active,
            msgs: RwSignal::new(Vec::new()),
            has_more: RwSignal::new(false),
            online: RwSignal::new(false),
            typing_until: RwSignal::new(0.0),
            key_alerts,
            key_alert,
            misaddressed: RwSignal::new(0),
            notice: RwSignal::new(None),
            found: RwSignal::new(Vec::new()),
            dark: RwSignal::new(None),
            hidden_unread: RwSignal::new(0),
            remember: RwSignal::new(false),
            progress: RwSignal::new(HashMap::new()),
            files: RwSignal::new(HashMap::new()),
        }
    }

    fn fail(&self, e: &ApiError) {
        self.notice.set(Some(human(e)));
    }

    // -----------------------------------------------------------------------------------------
    // Accounts (the flows themselves live in sealroom-session, shared with the CLI)

    /// Creates an account: keys are made here, the password never leaves the browser.
    pub async fn sign_up(self, username: String, password: String) {
        self.auth_error.set(None);
        let username = match Username::parse(&username) {
            Ok(u) => u,
            Err(e) => return self.auth_error.set(Some(e.to_string())),
        };
        match flows::register(&Fetch(self), &username, &password).await {
            Ok((resp, vault)) => self.start(resp.user.username, vault, self.remember.get_untracked()),
            Err(e) => {
                self.busy.set(None);
                self.auth_error.set(Some(e.human()));
            }
        }
    }

    /// Signs in on any browser: keys come back out of the sealed backup, whose identity must
    /// be the one the relay publishes for this user.
    pub async fn sign_in(self, username: String, password: String) {
        self.auth_error.set(None);
        let username = match Username::parse(&username) {
            Ok(u) => u,
            Err(e) => return self.auth_error.set(Some(e.to_string())),
        };
        self.busy.set(Some("Contacting the server…".into()));
        match flows::login(&Fetch(self), &username, &password).await {
            Ok((resp, vault)) => self.start(resp.user.username, vault, self.remember.get_untracked()),
            Err(e) => {
                self.busy.set(None);
                self.auth_error.set(Some(e.human()));
            }
        }
    }

    fn start(self, username: Username, vault: Vault, remember: bool) {
        if remember {
            let name = username.to_string();
            let bytes = zeroize::Zeroizing::new(*vault.backup_key().expose_bytes());
            spawn_local(async move {
                if crate::device::remember(&name, &bytes).await.is_err() {
                    web_sys::console::warn_1(&"could not remember this browser".into());
                }
            });
        }
        KEYS.with(|k| *k.borrow_mut() = Some(Keys { vault, outbox: Outbox::default(), socket: None }));
        self.busy.set(None);
        self.me.set(Some(username.to_string()));
        self.screen.set(Screen::Chats);
        let app = self;
        spawn_local(async move {
            // The list first: its newest message is where live sync starts, so a sign-in does
            // not stream the whole history over the socket.
            app.load_conversations().await;
            let socket = Socket::connect(move |f| app.on_frame(f), move |up| app.on_socket(up));
            with_keys(|k| k.socket = Some(socket));
        });
        ask_notification_permission();
    }

    /// Changes the password: the backup is re-sealed under the new key here, and the relay
    /// replaces credential and backup in one transaction, signing out every other session.
    pub async fn change_password(self, current: String, new: String) -> Result<(), String> {
        let result = flows::change_password(&Fetch(self), &WebVault, &current, &new).await;
        self.busy.set(None);
        let me = result.map_err(|e| match e.code() {
            Some(ErrorCode::InvalidCredentials) => "Your current password is wrong.".to_owned(),
            _ => e.human(),
        })?;
        if crate::device::recall().await.is_some() {
            if let Some(key) = WebVault.with(|v| zeroize::Zeroizing::new(*v.backup_key().expose_bytes())) {
                let _ = crate::device::remember(me.username.as_str(), &key).await;
            }
        }
        Ok(())
    }

    /// Reopens a remembered browser without the password, while its session is valid.
    pub async fn resume(self) {
        let Some(saved) = crate::device::recall().await else { return };
        self.busy.set(Some("Unlocking…".into()));
        let key = BackupKey::from_bytes(saved.backup_key);
        match flows::resume(&Fetch(self), &saved.username, key).await {
            Ok(Some(vault)) => {
                self.remember.set(true);
                let name = vault.username().clone();
                self.start(name, vault, false); // already remembered; don't re-store
            }
            Ok(None) | Err(Failure::Api(_)) => {
                crate::device::forget().await;
                self.busy.set(None);
            }
            Err(e) => {
                crate::device::forget().await;
                self.busy.set(None);
                self.auth_error.set(Some(e.human()));
            }
        }
    }

    /// Signs out of this session (or all of them) and forgets every key.
    pub async fn sign_out(self, everywhere: bool) {
        let path = if everywhere { LogoutAll::PATH } else { Logout::PATH };
        let _ = api::call::<(), ()>("POST", path, None).await;
        self.forget(None);
    }

    fn forget(&self, why: Option<String>) {
        spawn_local(crate::device::forget());
        if let Some(s) = KEYS.with(|k| k.borrow_mut().take()).and_then(|k| k.socket) {
            s.stop();
        }
        self.me.set(None);
        self.convs.set(Vec::new());
        self.msgs.set(Vec::new());
        crate::files::drop_all(*self, true);
        self.active.set(None);
        self.key_alerts.set(BTreeMap::new());
        self.misaddressed.set(0);
        self.online.set(false);
        self.auth_error.set(why);
        self.screen.set(Screen::SignIn);
    }

    // -----------------------------------------------------------------------------------------
    // Keys and pins: every decision is the vault's; this only shows the outcome.

    /// Checks `peer`'s key: the relay's current one when `directory` is given (the conversation
    /// list carries it), else the directory's. A changed key raises the alert for that peer
    /// whether or not their chat is open; sending to them stops everywhere until accepted.
    async fn check_peer(&self, peer: &str, directory: Option<IdentityKey>) {
        let Ok(name) = Username::parse(peer) else { return };
        let checked = match directory {
            Some(key) => flows::learn_peer_key(&Fetch(*self), &WebVault, &name, &key).await,
            None => flows::peer_key(&Fetch(*self), &WebVault, &name).await,
        };
        match checked {
            Ok(PeerKey::Changed(change)) => self.raise_key_alert(&change),
            Ok(_) => self.key_alerts.update(|a| {
                a.remove(peer);
            }),
            // Unreachable directory or an unknown user: nothing to decide now.
            Err(_) => {}
        }
    }

    fn raise_key_alert(&self, change: &KeyChange) {
        let alert = KeyAlert {
            peer: change.peer.to_string(),
            new_key: *change.new_key.as_bytes(),
            safety_number: change.new_safety_number.clone(),
        };
        if self.key_alerts.with_untracked(|a| a.get(&alert.peer) != Some(&alert)) {
            self.key_alerts.update(|a| {
                a.insert(alert.peer.clone(), alert);
            });
        }
    }

    /// Accepts the open chat's changed key after the user compared the new safety number.
    pub async fn accept_new_key(self) {
        let Some(alert) = self.key_alert.get_untracked() else { return };
        let Ok(peer) = Username::parse(&alert.peer) else { return };
        match flows::accept_new_key(&Fetch(self), &WebVault, &peer).await {
            Ok(()) => {
                self.key_alerts.update(|a| {
                    a.remove(&alert.peer);
                });
                self.flush_outbox();
            }
            Err(e) => self.notice.set(Some(e.human())),
        }
    }

    /// Marks the open chat's peer as verified (kept in the sealed backup).
    pub async fn mark_verified(self, peer: String) {
        let Ok(name) = Username::parse(&peer) else { return };
        match flows::mark_verified(&Fetch(self), &WebVault, &name).await {
            Ok(true) => self.notice.set(Some(format!("{peer} is marked as verified."))),
            Ok(false) => {
                self.notice.set(Some(format!("{peer}'s key has changed: accept it before verifying.")))
            }
            Err(e) => self.notice.set(Some(e.human())),
        }
    }

    /// Whether `peer`'s pinned key is verified.
    pub fn is_verified(&self, peer: &str) -> bool {
        WebVault.with(|v| v.is_verified(peer)).unwrap_or(false)
    }

    /// The safety number with `peer`'s pinned key.
    pub fn safety_number(&self, peer: &str) -> Option<String> {
        let peer = Username::parse(peer).ok()?;
        WebVault.with(|v| v.safety_number(&peer)).flatten().map(|s| s.to_string())
    }

    /// Decrypts a stored message for display. `None` for a message addressed to someone else:
    /// it is never shown, only counted.
    async fn decrypt(&self, m: &MessageOut) -> Option<Msg> {
        let opened = flows::open(&Fetch(*self), &WebVault, m).await;
        let mine = self.me.get_untracked().as_deref() == Some(m.from.as_str());
        let mut file = None;
        let (text, undecryptable) = match opened.map(|o| o.payload) {
            Ok(Payload::Text(t)) => (t, false),
            Ok(Payload::File(f)) => {
                let text = format!("📎 {}", f.name);
                file = Some(FileMeta {
                    name: f.name.clone(),
                    size: f.size,
                    mime: f.mime.clone(),
                    stored: Some(f),
                });
                (text, false)
            }
            Ok(_) => ("This message needs a newer version of Sealroom.".into(), false),
            Err(Failure::Core(sealroom_session::Error::NotForMe)) => {
                self.misaddressed.set(WebVault.with(|v| v.misaddressed()).unwrap_or(0));
                return None;
            }
            Err(_) => ("🔒 This message could not be decrypted.".into(), true),
        };
        Some(Msg {
            folded: text.to_lowercase(),
            key: m.client_msg_id.to_b64(),
            id: Some(m.id.0),
            mine,
            text,
            ts: m.ts as f64,
            state: Delivery::Sent,
            envelope: sealroom_protocol::encode_b64(m.envelope.as_bytes()),
            undecryptable,
            file,
        })
    }

    // -----------------------------------------------------------------------------------------
    // Conversations and chat

    /// Reloads the conversation list, decrypting previews.
    pub async fn load_conversations(self) {
        let list = match call::<Conversations>(Conversations::PATH, None).await {
            Ok(l) => l.conversations,
            Err(e) if e.error == ErrorCode::SessionRevoked || e.error == ErrorCode::Unauthorized => {
                return self.forget(Some("Your session ended. Please sign in again.".into()))
            }
            Err(e) => return self.fail(&e),
        };
        let newest = list.iter().filter_map(|c| c.last_message.as_ref().map(|m| m.id.0)).max().unwrap_or(0);
        with_keys(|k| k.outbox.advance(MessageId(newest)));
        with_keys(|k| list.iter().for_each(|c| k.vault.directory_mut().learn(c)));
        let mut out = Vec::with_capacity(list.len());
        for c in list {
            out.push(self.conv_of(c).await);
        }
        self.convs.set(out);
    }

    async fn conv_of(&self, c: ConversationSummary) -> Conv {
        let peer = c.peer.to_string();
        self.check_peer(&peer, Some(c.peer_identity_key)).await;
        let last = match &c.last_message {
            Some(m) => self.decrypt(m).await.map(|d| (d, m.ts as f64)),
            None => None,
        };
        let (preview, ts) = match last {
            Some((d, ts)) => {
                let prefix = if d.mine { "You: " } else { "" };
                (format!("{prefix}{}", d.text), ts)
            }
            None => (String::new(), c.last_activity as f64),
        };
        Conv {
            id: c.id,
            peer,
            preview,
            ts,
            unread: c.unread,
            online: c.peer_online,
            last_seen: c.peer_last_seen.map(|t| t as f64),
            pinned: c.pinned,
            hidden: c.hidden,
        }
    }

    /// The direct conversation with `peer`, if this client knows it (from the list or a
    /// message).
    fn conversation_of(&self, peer: &str) -> Option<ConversationId> {
        let peer = Username::parse(peer).ok()?;
        with_keys(|k| k.vault.directory().id(&peer)).flatten()
    }

    /// Opens the chat with `peer` (the relay creates the conversation on the first message).
    pub async fn open_chat(self, peer: String) {
        self.active.set(Some(peer.clone()));
        self.msgs.set(Vec::new());
        crate::files::drop_all(self, false);
        self.has_more.set(false);
        self.found.set(Vec::new());
        self.check_peer(&peer, None).await;
        let Some(id) = self.conversation_of(&peer) else { return }; // a new chat
        let query = sealroom_protocol::HistoryQuery { limit: Some(50), ..Default::default() };
        let page = match call::<History>(&(History::path(&[&id]) + &query.to_query()), None).await {
            Ok(p) => p,
            Err(e) if e.error == ErrorCode::NotFound => return, // a new chat
            Err(e) => return self.fail(&e),
        };
        let mut msgs = Vec::with_capacity(page.messages.len());
        for m in &page.messages {
            msgs.extend(self.decrypt(m).await);
        }
        apply_markers(&mut msgs, page.peer_delivered_up_to.0, page.peer_read_up_to.0);
        if self.active.get_untracked().as_deref() != Some(peer.as_str()) {
            return;
        }
        self.has_more.set(page.has_more);
        let newest = msgs.iter().filter_map(|m| m.id).max();
        self.msgs.set(msgs);
        if let Some(id) = newest {
            self.mark_read(peer, id).await;
        }
    }

    /// Loads the page before the oldest message shown (infinite scroll).
    pub async fn load_older(self) {
        self.load_older_page(50).await;
    }

    /// Loads the whole history of the open chat, so that search covers all of it (the relay
    /// cannot search: it only has ciphertext).
    pub async fn load_all(self) {
        let peer = self.active.get_untracked();
        while self.has_more.get_untracked() && self.active.get_untracked() == peer {
            let before = self.msgs.with_untracked(Vec::len);
            self.load_older_page(sealroom_protocol::MAX_PAGE).await;
            if self.msgs.with_untracked(Vec::len) == before {
                break;
            }
        }
    }

    async fn load_older_page(self, limit: u32) {
        let Some(peer) = self.active.get_untracked() else { return };
        let Some(id) = self.conversation_of(&peer) else { return };
        let Some(oldest) = self.msgs.with_untracked(|m| m.iter().filter_map(|m| m.id).min()) else { return };
        let query = sealroom_protocol::HistoryQuery {
            before: Some(MessageId(oldest)),
            after: None,
            limit: Some(limit),
        };
        let Ok(page) = call::<History>(&(History::path(&[&id]) + &query.to_query()), None).await else {
            return;
        };
        if self.active.get_untracked().as_deref() != Some(peer.as_str()) {
            return;
        }
        let mut older = Vec::new();
        for m in &page.messages {
            older.extend(self.decrypt(m).await);
        }
        apply_markers(&mut older, page.peer_delivered_up_to.0, page.peer_read_up_to.0);
        self.has_more.set(page.has_more);
        self.msgs.update(|msgs| {
            older.append(msgs);
            *msgs = older;
        });
    }

    async fn mark_read(&self, peer: String, up_to: i64) {
        let Some(id) = self.conversation_of(&peer) else { return };
        let body = sealroom_protocol::MarkReadRequest { up_to: MessageId(up_to) };
        let _ = call::<MarkRead>(&MarkRead::path(&[&id]), Some(&body)).await;
        self.convs.update(|cs| {
            if let Some(c) = cs.iter_mut().find(|c| c.peer == peer) {
                c.unread = 0;
            }
        });
    }

    /// Encrypts and sends a text to the open chat's peer; queued while offline.
    pub async fn send(self, text: String) {
        let Some(peer) = self.active.get_untracked() else { return };
        if text.trim().is_empty() || self.key_alert.with_untracked(Option::is_some) {
            // The composer is disabled behind the banner; this is the same rule for Enter.
            return;
        }
        let header = match MessageHeader::new(now() as u64) {
            Ok(h) => h,
            Err(e) => return self.notice.set(Some(e.to_string())),
        };
        let Some((frame, envelope)) = self.seal(&peer, &header, &Payload::Text(text.clone()), vec![]).await
        else {
            return;
        };
        self.msgs.update(|m| {
            m.push(Msg {
                folded: text.to_lowercase(),
                key: ClientMsgId(header.client_msg_id).to_b64(),
                id: None,
                mine: true,
                text: text.clone(),
                ts: now(),
                state: Delivery::Sending,
                envelope,
                undecryptable: false,
                file: None,
            })
        });
        self.touch_conv(&peer, format!("You: {text}"), now(), false);
        self.enqueue(peer, frame);
    }

    /// Seals `payload` to `peer` under `header`: the `send` frame and the envelope in base64.
    /// `None` (with a notice) when the peer's key is unknown or has changed: the vault refuses
    /// to seal to a changed key, whichever chat is open and whichever way the user sends.
    pub(crate) async fn seal(
        &self,
        peer: &str,
        header: &MessageHeader,
        payload: &Payload,
        blobs: Vec<sealroom_protocol::BlobId>,
    ) -> Option<(ClientFrame, String)> {
        let to = Username::parse(peer).ok()?;
        let (client_msg_id, envelope) =
            match flows::seal(&Fetch(*self), &WebVault, &to, header, payload).await {
                Ok(sealed) => sealed,
                Err(Failure::Core(sealroom_session::Error::KeyChanged(change))) => {
                    self.raise_key_alert(&change);
                    self.notice.set(Some(Failure::Core(sealroom_session::Error::KeyChanged(change)).human()));
                    return None;
                }
                Err(e) => {
                    self.notice.set(Some(format!("Cannot send to {peer}: {}", e.human())));
                    return None;
                }
            };
        // The first message of a new chat opens the conversation on the relay.
        let conversation = match flows::open_direct(&Fetch(*self), &WebVault, &to).await {
            Ok(id) => id,
            Err(e) => {
                self.notice.set(Some(format!("Cannot send to {peer}: {}", e.human())));
                return None;
            }
        };
        let b64 = sealroom_protocol::encode_b64(envelope.as_bytes());
        Some((ClientFrame::Send { conversation, client_msg_id, envelope, blobs }, b64))
    }

    /// Queues a `send` until its ack (resent after a reconnect) and sends it now if online.
    pub(crate) fn enqueue(&self, peer: String, frame: ClientFrame) {
        let Ok(peer) = Username::parse(&peer) else { return };
        with_keys(|k| {
            k.outbox.push(peer, frame.clone());
            if let Some(s) = &k.socket {
                s.send(&frame);
            }
        });
    }

    /// Sends what the outbox says to send after a (re)connect or an accepted key: a sync from
    /// the cursor, then every unacknowledged message except to peers whose key changed.
    fn flush_outbox(&self) {
        with_keys(|k| {
            if let Some(s) = &k.socket {
                let vault = &k.vault;
                for f in k.outbox.on_hello(|p| vault.key_change(p).is_some()) {
                    s.send(&f);
                }
            }
        });
    }

    /// Tells the peer this user is typing (the relay throttles).
    pub fn typing(&self) {
        let Some(active) = self.active.get_untracked() else { return };
        // Only within an existing conversation: the relay relays typing in those only.
        let Some(conversation) = self.conversation_of(&active) else { return };
        with_keys(|k| k.socket.as_ref().map(|s| s.send(&ClientFrame::Typing { conversation })));
    }

    /// Clears the open chat for this user or both.
    pub async fn clear(self, for_both: bool) {
        let Some(peer) = self.active.get_untracked() else { return };
        let Some(id) = self.conversation_of(&peer) else { return };
        match call::<Clear>(&Clear::path(&[&id]), Some(&ClearRequest { for_both })).await {
            Ok(()) => {
                self.msgs.set(Vec::new());
                self.load_conversations().await;
            }
            Err(e) => self.fail(&e),
        }
    }

    /// Pins/unpins or closes a conversation.
    pub async fn set_flags(self, peer: String, pinned: Option<bool>, hidden: Option<bool>) {
        let Some(id) = self.conversation_of(&peer) else { return };
        let body = sealroom_protocol::ConversationFlags { pinned, hidden };
        match call::<SetFlags>(&SetFlags::path(&[&id]), Some(&body)).await {
            Ok(()) => self.load_conversations().await,
            Err(e) => self.fail(&e),
        }
    }

    /// Directory search.
    pub async fn search_users(self, prefix: String) {
        let prefix = prefix.trim().to_ascii_lowercase();
        if prefix.is_empty() {
            return self.found.set(Vec::new());
        }
        let me = self.me.get_untracked().unwrap_or_default();
        match call::<SearchUsers>(&format!("{}?prefix={prefix}&limit=10", SearchUsers::PATH), None).await {
            Ok(r) => self
                .found
                .set(r.users.into_iter().map(|u| u.username.to_string()).filter(|u| *u != me).collect()),
            Err(_) => self.found.set(Vec::new()),
        }
    }

    pub(crate) fn touch_conv(&self, peer: &str, preview: String, ts: f64, unread: bool) {
        let mut known = true;
        self.convs.update(|cs| match cs.iter_mut().find(|c| c.peer == peer) {
            Some(c) => {
                c.preview = preview;
                c.ts = ts;
                c.hidden = false;
                if unread {
                    c.unread += 1;
                }
            }
            None => known = false,
        });
        if known {
            self.convs.update(|cs| cs.sort_by(|a, b| b.pinned.cmp(&a.pinned).then(b.ts.total_cmp(&a.ts))));
        } else {
            let app = *self;
            spawn_local(async move { app.load_conversations().await });
        }
    }

    // -----------------------------------------------------------------------------------------
    // The relay's frames

    fn on_socket(&self, up: bool) {
        self.online.set(up);
    }

    fn on_frame(&self, frame: ServerFrame) {
        let app = *self;
        match frame {
            ServerFrame::Hello { .. } => {
                // Catch up on what was missed, then flush the outbox (resends are de-duplicated
                // by client_msg_id, so nothing is stored twice).
                self.flush_outbox();
                if with_keys(|k| k.outbox.cursor().0 > 0).unwrap_or(false) {
                    spawn_local(async move { app.load_conversations().await });
                }
            }
            ServerFrame::Ack { .. } | ServerFrame::Synced { .. } => {
                match with_keys(|k| k.outbox.on_frame(&frame)) {
                    Some(OutboxEvent::Acked { client_msg_id, id, ts }) => {
                        let key = client_msg_id.to_b64();
                        self.msgs.update(|ms| {
                            if let Some(m) = ms.iter_mut().find(|m| m.key == key) {
                                m.id = Some(id.0);
                                m.ts = ts as f64;
                                if m.state == Delivery::Sending {
                                    m.state = Delivery::Sent;
                                }
                            }
                        });
                    }
                    Some(OutboxEvent::SyncMore(next)) => {
                        with_keys(|k| k.socket.as_ref().map(|s| s.send(&next)));
                    }
                    _ => {}
                }
            }
            ServerFrame::Message { message } => {
                with_keys(|k| k.outbox.advance(message.id));
                spawn_local(async move { app.on_message(message).await })
            }
            ServerFrame::Presence { user, online, last_seen } => self.convs.update(|cs| {
                if let Some(c) = cs.iter_mut().find(|c| c.peer == user.as_str()) {
                    c.online = online;
                    c.last_seen = last_seen.map(|t| t as f64);
                }
            }),
            ServerFrame::Typing { from, .. } => {
                if self.active.get_untracked().as_deref() == Some(from.as_str()) {
                    self.typing_until.set(now() + 4000.0);
                }
            }
            ServerFrame::Delivered { by, up_to, .. } | ServerFrame::Read { by, up_to, .. }
                if self.me.get_untracked().as_deref() == Some(by.as_str()) =>
            {
                // This user read on another tab.
                let _ = up_to;
                spawn_local(async move { app.load_conversations().await });
            }
            ServerFrame::Delivered { by, up_to, .. } => self.peer_marker(by.as_str(), up_to.0, false),
            ServerFrame::Read { by, up_to, .. } => self.peer_marker(by.as_str(), up_to.0, true),
            ServerFrame::ChatCleared { conversation, by, up_to, .. } => {
                let me = self.me.get_untracked().unwrap_or_default();
                let other = if by.as_str() == me {
                    with_keys(|k| k.vault.directory().peer(conversation).map(|p| p.to_string()))
                        .flatten()
                        .unwrap_or_default()
                } else {
                    by.to_string()
                };
                if self.active.get_untracked().as_deref() == Some(other.as_str()) {
                    self.msgs.update(|ms| ms.retain(|m| m.id.is_none_or(|id| id > up_to.0)));
                    if by.as_str() != me {
                        self.notice.set(Some(format!("{other} cleared this chat for both of you.")));
                    }
                }
                spawn_local(async move { app.load_conversations().await });
            }
            ServerFrame::SessionRevoked { reason } => self.forget(Some(format!("Signed out: {reason}."))),
            ServerFrame::Error { client_msg_id: Some(_), .. } => {
                match with_keys(|k| k.outbox.on_frame(&frame)) {
                    Some(OutboxEvent::Failed { client_msg_id, message, .. }) => {
                        let key = client_msg_id.to_b64();
                        self.msgs.update(|ms| {
                            if let Some(m) = ms.iter_mut().find(|m| m.key == key) {
                                m.state = Delivery::Failed(message.clone());
                            }
                        });
                    }
                    Some(OutboxEvent::RateLimited { client_msg_id }) => set_timeout(
                        move || {
                            with_keys(|k| {
                                if let (Some(s), Some(f)) = (&k.socket, k.outbox.frame(client_msg_id)) {
                                    s.send(f);
                                }
                            });
                        },
                        std::time::Duration::from_secs(1),
                    ),
                    _ => {}
                }
            }
            ServerFrame::Error { code, message, client_msg_id: None } => {
                if code != ErrorCode::RateLimited {
                    self.notice.set(Some(message));
                }
            }
        }
    }

    fn peer_marker(&self, peer: &str, up_to: i64, read: bool) {
        if self.active.get_untracked().as_deref() != Some(peer) {
            return;
        }
        self.msgs.update(|ms| {
            for m in ms.iter_mut().filter(|m| m.mine && m.id.is_some_and(|id| id <= up_to)) {
                if read {
                    m.state = Delivery::Read;
                } else if matches!(m.state, Delivery::Sent | Delivery::Sending) {
                    m.state = Delivery::Delivered;
                }
            }
        });
    }

    async fn on_message(self, message: MessageOut) {
        let me = self.me.get_untracked().unwrap_or_default();
        let mine = message.from.as_str() == me;
        let peer = if mine { message.to.to_string() } else { message.from.to_string() };
        if !mine {
            let delivered = ClientFrame::Delivered { conversation: message.conversation, up_to: message.id };
            with_keys(|k| k.socket.as_ref().map(|s| s.send(&delivered)));
        }
        let Some(msg) = self.decrypt(&message).await else { return };
        let visible = is_visible();
        let open = self.active.get_untracked().as_deref() == Some(peer.as_str());
        if open {
            let mut added = false;
            self.msgs.update(|ms| {
                if !ms.iter().any(|m| m.key == msg.key || m.id == msg.id) {
                    ms.push(msg.clone());
                    added = true;
                }
            });
            if added && !mine {
                self.typing_until.set(0.0);
                if visible {
                    self.mark_read(peer.clone(), message.id.0).await;
                }
            }
        }
        let prefix = if mine { "You: " } else { "" };
        self.touch_conv(
            &peer,
            format!("{prefix}{}", msg.text),
            message.ts as f64,
            !(mine || open && visible),
        );
        if !mine && !visible {
            self.hidden_unread.update(|n| *n += 1);
            notify(&peer, &msg.text);
        }
    }

    /// The tab became visible again: reset the badge, mark the open chat read, and make sure
    /// the socket is alive (a tab that slept may hold a dead one).
    pub fn on_visible(self) {
        self.hidden_unread.set(0);
        if let Some(peer) = self.active.get_untracked() {
            if let Some(id) = self.msgs.with_untracked(|m| m.iter().filter_map(|m| m.id).max()) {
                spawn_local(async move { self.mark_read(peer, id).await });
            }
        }
        if !self.online.get_untracked() {
            with_keys(|k| k.socket.as_ref().map(Socket::reconnect_now));
        }
    }

    /// Pins set in this session (for the safety-number screen).
    pub fn pins(&self) -> BTreeMap<String, bool> {
        WebVault.with(|v| v.pins().iter().map(|(n, p)| (n.clone(), p.verified)).collect()).unwrap_or_default()
    }
}

impl Default for App {
    fn default() -> Self {
        Self::new()
    }
}

fn apply_markers(msgs: &mut [Msg], delivered: i64, read: i64) {
    for m in msgs.iter_mut().filter(|m| m.mine) {
        if let Some(id) = m.id {
            m.state = if id <= read {
                Delivery::Read
            } else if id <= delivered {
                Delivery::Delivered
            } else {
                Delivery::Sent
            };
        }
    }
}

/// An error as a sentence for people.
pub fn human(e: &ApiError) -> String {
    match e.error {
        ErrorCode::UsernameTaken => "That name is taken. Try another.".into(),
        ErrorCode::InvalidUsername => {
            "Usernames are 3–32 letters, digits or _, starting with a letter.".into()
        }
        ErrorCode::InvalidCredentials => "Wrong username or password.".into(),
        ErrorCode::RateLimited => format!("Too many attempts. {}", capitalize(&e.message)),
        ErrorCode::Internal if e.message.starts_with("server unreachable") => {
            "The server is unreachable. Check your connection and try again.".into()
        }
        _ => capitalize(&e.message),
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

async fn sleep(ms: u64) {
    let (tx, rx) = futures_channel();
    set_timeout(tx, std::time::Duration::from_millis(ms));
    rx.await;
}

/// A one-shot callback → future bridge without extra crates.
pub(crate) fn futures_channel() -> (impl FnOnce(), impl std::future::Future<Output = ()>) {
    let promise_resolve: std::rc::Rc<RefCell<Option<js_sys::Function>>> = Default::default();
    let slot = promise_resolve.clone();
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        *slot.borrow_mut() = Some(resolve);
    });
    let fire = move || {
        if let Some(f) = promise_resolve.borrow_mut().take() {
            let _ = f.call0(&wasm_bindgen::JsValue::NULL);
        }
    };
    (fire, async move {
        let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
    })
}

fn is_visible() -> bool {
    web_sys::window()
        .and_then(|w| w.document())
        .is_none_or(|d| d.visibility_state() == web_sys::VisibilityState::Visible)
}

fn ask_notification_permission() {
    if web_sys::Notification::permission() == web_sys::NotificationPermission::Default {
        let _ = web_sys::Notification::request_permission();
    }
}

fn notify(peer: &str, text: &str) {
    if web_sys::Notification::permission() != web_sys::NotificationPermission::Granted {
        return;
    }
    let opts = web_sys::NotificationOptions::new();
    let body: String = text.chars().take(120).collect();
    opts.set_body(&body);
    opts.set_tag(peer);
    let _ = web_sys::Notification::new_with_options(&format!("Message from {peer}"), &opts);
}
