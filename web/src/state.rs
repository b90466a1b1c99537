//! The app's state and everything that changes it: keys, pins, conversations, the open chat,
//! the outbox, and the handling of every frame from the relay.
//!
//! Secrets (identity secret, backup key, pair keys) live in a thread-local, outside the
//! reactive graph, and only in memory: signing out or closing the tab forgets them.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use leptos::prelude::*;
use leptos::task::spawn_local;
use sealroom_crypto::{
    open_message, seal_backup, seal_message, unseal_backup, BackupContents, BackupKey, KdfParams,
    MessageHeader, PairKey, PasswordKeys, Payload, Pin, PublicKey, SafetyNumber,
};
use sealroom_protocol::{
    ApiError, AuthKeyBytes, ClearRequest, ClientFrame, ClientMsgId, ConversationSummary,
    ConversationsResponse, Envelope, ErrorCode, HistoryResponse, IdentityKey, KeyBackupVersion, LoginRequest,
    Me, MessageId, MessageOut, PreloginRequest, PreloginResponse, RegisterRequest, Salt, SealedBackup,
    ServerFrame, SessionResponse, UpdateKeyBackupRequest, UserInfo, UserSearchResponse, Username,
};

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

struct Keys {
    username: Username,
    backup_key: BackupKey,
    contents: BackupContents,
    backup_version: i64,
    pairs: HashMap<String, (PublicKey, PairKey)>,
    outbox: Vec<(String, ClientFrame)>,
    last_id: i64,
    socket: Option<Socket>,
}

thread_local! {
    static KEYS: RefCell<Option<Keys>> = const { RefCell::new(None) };
}

fn with_keys<T>(f: impl FnOnce(&mut Keys) -> T) -> Option<T> {
    KEYS.with(|k| k.borrow_mut().as_mut().map(f))
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
    /// Key-change alert for the open chat.
    pub key_alert: RwSignal<Option<KeyAlert>>,
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
        App {
            screen: RwSignal::new(Screen::SignIn),
            me: RwSignal::new(None),
            busy: RwSignal::new(None),
            auth_error: RwSignal::new(None),
            convs: RwSignal::new(Vec::new()),
            active: RwSignal::new(None),
            msgs: RwSignal::new(Vec::new()),
            has_more: RwSignal::new(false),
            online: RwSignal::new(false),
            typing_until: RwSignal::new(0.0),
            key_alert: RwSignal::new(None),
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
    // Accounts

    /// Creates an account: keys are made here, the password never leaves the browser.
    pub async fn sign_up(self, username: String, password: String) {
        self.auth_error.set(None);
        let username = match Username::parse(&username) {
            Ok(u) => u,
            Err(e) => return self.auth_error.set(Some(e.to_string())),
        };
        if password.chars().count() < 8 {
            return self.auth_error.set(Some("Use a password of at least 8 characters.".into()));
        }
        let Some(keys) = self.derive(&password, None).await else { return };
        let (salt, keys) = keys;
        let result = (|| -> Result<RegisterRequest, String> {
            let identity = sealroom_crypto::IdentitySecret::generate().map_err(|e| e.to_string())?;
            let public = identity.public_key();
            let contents = BackupContents::new(identity);
            let sealed =
                seal_backup(&keys.backup_key, username.as_str(), &contents).map_err(|e| e.to_string())?;
            let p = KdfParams::PRODUCTION;
            Ok(RegisterRequest {
                username: username.clone(),
                auth_key: AuthKeyBytes(*keys.auth_key.as_bytes()),
                salt: Salt(salt),
                kdf: sealroom_protocol::KdfParams { m_kib: p.m_kib, t: p.t, p: p.p },
                identity_key: IdentityKey(*public.as_bytes()),
                key_backup: SealedBackup::new(sealed).map_err(|e| e.to_string())?,
            })
        })();
        let req = match result {
            Ok(r) => r,
            Err(e) => {
                self.busy.set(None);
                return self.auth_error.set(Some(e));
            }
        };
        self.busy.set(Some("Creating your account…".into()));
        match api::call::<_, SessionResponse>("POST", "/api/register", Some(&req)).await {
            Ok(resp) => self.start(resp.user, keys.backup_key, None),
            Err(e) => {
                self.busy.set(None);
                self.auth_error.set(Some(human(&e)));
            }
        }
    }

    /// Signs in on any browser: keys come back out of the sealed backup.
    pub async fn sign_in(self, username: String, password: String) {
        self.auth_error.set(None);
        let username = match Username::parse(&username) {
            Ok(u) => u,
            Err(e) => return self.auth_error.set(Some(e.to_string())),
        };
        self.busy.set(Some("Contacting the server…".into()));
        let pre = match api::call::<_, PreloginResponse>(
            "POST",
            "/api/prelogin",
            Some(&PreloginRequest { username: username.clone() }),
        )
        .await
        {
            Ok(p) => p,
            Err(e) => {
                self.busy.set(None);
                return self.auth_error.set(Some(human(&e)));
            }
        };
        let params = KdfParams { m_kib: pre.kdf.m_kib, t: pre.kdf.t, p: pre.kdf.p };
        let Some((_, keys)) = self.derive(&password, Some((pre.salt.0, params))).await else { return };
        self.busy.set(Some("Signing in…".into()));
        let req =
            LoginRequest { username: username.clone(), auth_key: AuthKeyBytes(*keys.auth_key.as_bytes()) };
        match api::call::<_, SessionResponse>("POST", "/api/login", Some(&req)).await {
            Ok(resp) => {
                match unseal_backup(&keys.backup_key, username.as_str(), resp.user.key_backup.as_bytes()) {
                    Ok(contents) => self.start(resp.user, keys.backup_key, Some(contents)),
                    Err(_) => {
                        self.busy.set(None);
                        self.auth_error.set(Some("Your key backup does not open with this password.".into()));
                    }
                }
            }
            Err(e) => {
                self.busy.set(None);
                self.auth_error.set(Some(human(&e)));
            }
        }
    }

    /// Argon2id with a visible state; the page paints "Deriving keys…" before it runs.
    async fn derive(
        &self,
        password: &str,
        salt: Option<([u8; 16], KdfParams)>,
    ) -> Option<([u8; 16], PasswordKeys)> {
        self.busy.set(Some("Deriving keys from your password…".into()));
        sleep(60).await; // let the browser paint the state first
        let (salt, params) = match salt {
            Some(s) => s,
            None => match sealroom_crypto::generate_salt() {
                Ok(s) => (s, KdfParams::PRODUCTION),
                Err(e) => {
                    self.busy.set(None);
                    self.auth_error.set(Some(e.to_string()));
                    return None;
                }
            },
        };
        match PasswordKeys::derive(password, &salt, params) {
            Ok(k) => Some((salt, k)),
            Err(e) => {
                self.busy.set(None);
                self.auth_error.set(Some(format!("The server asked for unsafe key parameters: {e}")));
                None
            }
        }
    }

    fn start(self, user: Me, backup_key: BackupKey, contents: Option<BackupContents>) {
        let contents = match contents {
            Some(c) => c,
            None => match unseal_backup(&backup_key, user.username.as_str(), user.key_backup.as_bytes()) {
                Ok(c) => c,
                Err(e) => return self.auth_error.set(Some(e.to_string())),
            },
        };
        let username = user.username.clone();
        if self.remember.get_untracked() {
            let name = username.to_string();
            let bytes = zeroize::Zeroizing::new(*backup_key.expose_bytes());
            spawn_local(async move {
                if crate::device::remember(&name, &bytes).await.is_err() {
                    web_sys::console::warn_1(&"could not remember this browser".into());
                }
            });
        }
        KEYS.with(|k| {
            *k.borrow_mut() = Some(Keys {
                username: username.clone(),
                backup_key,
                contents,
                backup_version: user.key_backup_version,
                pairs: HashMap::new(),
                outbox: Vec::new(),
                last_id: 0,
                socket: None,
            })
        });
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
        if new.chars().count() < 8 {
            return Err("Use a new password of at least 8 characters.".into());
        }
        let Some(username) = with_keys(|k| k.username.clone()) else { return Err("Not signed in.".into()) };
        let pre = api::call::<_, PreloginResponse>(
            "POST",
            "/api/prelogin",
            Some(&PreloginRequest { username: username.clone() }),
        )
        .await
        .map_err(|e| human(&e))?;
        self.busy.set(Some("Deriving keys…".into()));
        sleep(60).await;
        let old = PasswordKeys::derive(
            &current,
            &pre.salt.0,
            KdfParams { m_kib: pre.kdf.m_kib, t: pre.kdf.t, p: pre.kdf.p },
        );
        let salt = sealroom_crypto::generate_salt();
        let result = async {
            let old = old.map_err(|e| e.to_string())?;
            let salt = salt.map_err(|e| e.to_string())?;
            let keys = PasswordKeys::derive(&new, &salt, KdfParams::PRODUCTION).map_err(|e| e.to_string())?;
            let sealed = with_keys(|k| seal_backup(&keys.backup_key, k.username.as_str(), &k.contents))
                .ok_or("Not signed in.")?
                .map_err(|e| e.to_string())?;
            let p = KdfParams::PRODUCTION;
            let req = sealroom_protocol::ChangePasswordRequest {
                auth_key: AuthKeyBytes(*old.auth_key.as_bytes()),
                new_auth_key: AuthKeyBytes(*keys.auth_key.as_bytes()),
                new_salt: Salt(salt),
                new_kdf: sealroom_protocol::KdfParams { m_kib: p.m_kib, t: p.t, p: p.p },
                new_key_backup: SealedBackup::new(sealed).map_err(|e| e.to_string())?,
            };
            let me =
                api::call::<_, Me>("POST", "/api/password", Some(&req)).await.map_err(|e| match e.error {
                    ErrorCode::InvalidCredentials => "Your current password is wrong.".to_owned(),
                    _ => human(&e),
                })?;
            if crate::device::recall().await.is_some() {
                let _ = crate::device::remember(me.username.as_str(), keys.backup_key.expose_bytes()).await;
            }
            with_keys(|k| {
                k.backup_key = keys.backup_key;
                k.backup_version = me.key_backup_version;
            });
            Ok(())
        }
        .await;
        self.busy.set(None);
        result
    }

    /// Reopens a remembered browser without the password, while its session is valid.
    pub async fn resume(self) {
        let Some(saved) = crate::device::recall().await else { return };
        self.busy.set(Some("Unlocking…".into()));
        let key = BackupKey::from_bytes(saved.backup_key);
        match api::get::<Me>("/api/me").await {
            Ok(me) if me.username.as_str() == saved.username => {
                self.remember.set(false); // already remembered; don't re-store
                self.start(me, key, None);
                self.remember.set(true);
            }
            _ => {
                crate::device::forget().await;
                self.busy.set(None);
            }
        }
    }

    /// Signs out of this session (or all of them) and forgets every key.
    pub async fn sign_out(self, everywhere: bool) {
        let path = if everywhere { "/api/logout-all" } else { "/api/logout" };
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
        self.key_alert.set(None);
        self.online.set(false);
        self.auth_error.set(why);
        self.screen.set(Screen::SignIn);
    }

    // -----------------------------------------------------------------------------------------
    // Keys and pins

    async fn save_backup(&self) {
        for _ in 0..5 {
            let req = with_keys(|k| -> Option<UpdateKeyBackupRequest> {
                let sealed = seal_backup(&k.backup_key, k.username.as_str(), &k.contents).ok()?;
                Some(UpdateKeyBackupRequest {
                    key_backup: SealedBackup::new(sealed).ok()?,
                    expected_version: k.backup_version,
                })
            })
            .flatten();
            let Some(req) = req else { return };
            match api::call::<_, KeyBackupVersion>("PUT", "/api/me/key-backup", Some(&req)).await {
                Ok(v) => {
                    with_keys(|k| k.backup_version = v.key_backup_version);
                    return;
                }
                Err(e) if e.error == ErrorCode::StaleBackupVersion => {
                    let Ok(fresh) = api::get::<Me>("/api/me").await else { return };
                    with_keys(|k| {
                        if let Ok(theirs) =
                            unseal_backup(&k.backup_key, k.username.as_str(), fresh.key_backup.as_bytes())
                        {
                            k.contents.merge_from(theirs);
                        }
                        k.backup_version = fresh.key_backup_version;
                    });
                }
                Err(e) => return self.fail(&e),
            }
        }
    }

    /// The key to use for `peer`: the pin, pinning the directory's key on first use. A
    /// directory key that differs from the pin raises the blocking alert.
    async fn peer_key(&self, peer: &str, directory: Option<[u8; 32]>) -> Option<PublicKey> {
        let pinned = with_keys(|k| k.contents.pins.get(peer).map(|p| p.public_key)).flatten();
        let directory = match directory {
            Some(d) => d,
            None => match api::get::<UserInfo>(&format!("/api/users/{peer}")).await {
                Ok(u) => u.identity_key.0,
                Err(_) => return pinned,
            },
        };
        match pinned {
            Some(p) if p.as_bytes() == &directory => Some(p),
            Some(p) => {
                if self.active.get_untracked().as_deref() == Some(peer) {
                    let sn = safety_number(peer, &PublicKey::from(directory)).unwrap_or_default();
                    self.key_alert.set(Some(KeyAlert {
                        peer: peer.to_owned(),
                        new_key: directory,
                        safety_number: sn,
                    }));
                }
                Some(p)
            }
            None => {
                with_keys(|k| {
                    k.contents.pins.insert(
                        peer.to_owned(),
                        Pin { public_key: PublicKey::from(directory), verified: false, other_flags: 0 },
                    )
                });
                self.save_backup().await;
                Some(PublicKey::from(directory))
            }
        }
    }

    /// Accepts a changed key after the user compared the new safety number.
    pub async fn accept_new_key(self) {
        let Some(alert) = self.key_alert.get_untracked() else { return };
        with_keys(|k| {
            k.contents.pins.insert(
                alert.peer.clone(),
                Pin { public_key: PublicKey::from(alert.new_key), verified: false, other_flags: 0 },
            );
            k.pairs.remove(&alert.peer);
        });
        self.save_backup().await;
        self.key_alert.set(None);
    }

    /// Marks the open chat's peer as verified (kept in the sealed backup).
    pub async fn mark_verified(self, peer: String) {
        with_keys(|k| {
            if let Some(p) = k.contents.pins.get_mut(&peer) {
                p.verified = true;
            }
        });
        self.save_backup().await;
        self.notice.set(Some(format!("{peer} is marked as verified.")));
    }

    /// Whether `peer`'s pinned key is verified.
    pub fn is_verified(&self, peer: &str) -> bool {
        with_keys(|k| k.contents.pins.get(peer).is_some_and(|p| p.verified)).unwrap_or(false)
    }

    /// The safety number with `peer`'s pinned key.
    pub fn safety_number(&self, peer: &str) -> Option<String> {
        let key = with_keys(|k| k.contents.pins.get(peer).map(|p| p.public_key)).flatten()?;
        safety_number(peer, &key)
    }

    fn pair(&self, peer: &str, key: PublicKey) -> Option<PairKey> {
        with_keys(|k| {
            if let Some((pk, pair)) = k.pairs.get(peer) {
                if *pk == key {
                    return Some(pair.clone());
                }
            }
            let pair = k.contents.identity.pair_key(&key).ok()?;
            k.pairs.insert(peer.to_owned(), (key, pair.clone()));
            Some(pair)
        })
        .flatten()
    }

    async fn decrypt(&self, m: &MessageOut) -> Msg {
        let me = self.me.get_untracked().unwrap_or_default();
        let mine = m.from.as_str() == me;
        let peer = if mine { m.to.as_str() } else { m.from.as_str() };
        // The pin, when there is one: the directory is consulted when a chat opens or the list
        // loads, not once per message.
        let pinned = with_keys(|k| k.contents.pins.get(peer).map(|p| p.public_key)).flatten();
        let key = match pinned {
            Some(k) => Some(k),
            None => self.peer_key(peer, None).await,
        };
        let my_key = with_keys(|k| k.contents.identity.public_key());
        let opened = match (key, my_key) {
            (Some(key), Some(my)) => self.pair(peer, key).and_then(|pair| {
                let (s, r) = if mine { (my, key) } else { (key, my) };
                open_message(&pair, &s, &r, m.envelope.as_bytes())
                    .ok()
                    .filter(|o| o.header.client_msg_id == m.client_msg_id.0)
            }),
            _ => None,
        };
        let mut file = None;
        let (text, undecryptable) = match opened.map(|o| o.payload) {
            Some(Payload::Text(t)) => (t, false),
            Some(Payload::File(f)) => {
                let text = format!("📎 {}", f.name);
                file = Some(FileMeta {
                    name: f.name.clone(),
                    size: f.size,
                    mime: f.mime.clone(),
                    stored: Some(f),
                });
                (text, false)
            }
            Some(_) => ("This message needs a newer version of Sealroom.".into(), false),
            None => ("🔒 This message could not be decrypted.".into(), true),
        };
        Msg {
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
        }
    }

    // -----------------------------------------------------------------------------------------
    // Conversations and chat

    /// Reloads the conversation list, decrypting previews.
    pub async fn load_conversations(self) {
        let list = match api::get::<ConversationsResponse>("/api/conversations").await {
            Ok(l) => l.conversations,
            Err(e) if e.error == ErrorCode::SessionRevoked || e.error == ErrorCode::Unauthorized => {
                return self.forget(Some("Your session ended. Please sign in again.".into()))
            }
            Err(e) => return self.fail(&e),
        };
        let newest = list.iter().filter_map(|c| c.last_message.as_ref().map(|m| m.id.0)).max().unwrap_or(0);
        with_keys(|k| k.last_id = k.last_id.max(newest));
        let mut out = Vec::with_capacity(list.len());
        for c in list {
            out.push(self.conv_of(c).await);
        }
        self.convs.set(out);
    }

    async fn conv_of(&self, c: ConversationSummary) -> Conv {
        let peer = c.peer.to_string();
        self.peer_key(&peer, Some(c.peer_identity_key.0)).await;
        let (preview, ts) = match &c.last_message {
            Some(m) => {
                let d = self.decrypt(m).await;
                let prefix = if d.mine { "You: " } else { "" };
                (format!("{prefix}{}", d.text), m.ts as f64)
            }
            None => (String::new(), c.last_activity as f64),
        };
        Conv {
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

    /// Opens the chat with `peer` (creating it on the first message).
    pub async fn open_chat(self, peer: String) {
        self.active.set(Some(peer.clone()));
        self.key_alert.set(None);
        self.msgs.set(Vec::new());
        crate::files::drop_all(self, false);
        self.has_more.set(false);
        self.found.set(Vec::new());
        self.peer_key(&peer, None).await;
        let page = match api::get::<HistoryResponse>(&format!("/api/conversations/{peer}/messages?limit=50"))
            .await
        {
            Ok(p) => p,
            Err(e) if e.error == ErrorCode::NotFound => return, // a new chat
            Err(e) => return self.fail(&e),
        };
        let mut msgs = Vec::with_capacity(page.messages.len());
        for m in &page.messages {
            msgs.push(self.decrypt(m).await);
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
        let Some(oldest) = self.msgs.with_untracked(|m| m.iter().filter_map(|m| m.id).min()) else { return };
        let path = format!("/api/conversations/{peer}/messages?before={oldest}&limit={limit}");
        let Ok(page) = api::get::<HistoryResponse>(&path).await else {
            return;
        };
        if self.active.get_untracked().as_deref() != Some(peer.as_str()) {
            return;
        }
        let mut older = Vec::new();
        for m in &page.messages {
            older.push(self.decrypt(m).await);
        }
        apply_markers(&mut older, page.peer_delivered_up_to.0, page.peer_read_up_to.0);
        self.has_more.set(page.has_more);
        self.msgs.update(|msgs| {
            older.append(msgs);
            *msgs = older;
        });
    }

    async fn mark_read(&self, peer: String, up_to: i64) {
        let body = sealroom_protocol::MarkReadRequest { up_to: MessageId(up_to) };
        let _ = api::call::<_, ()>("POST", &format!("/api/conversations/{peer}/read"), Some(&body)).await;
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
    /// `None` (with a notice) when the peer's key is unknown or has changed.
    pub(crate) async fn seal(
        &self,
        peer: &str,
        header: &MessageHeader,
        payload: &Payload,
        blobs: Vec<sealroom_protocol::BlobId>,
    ) -> Option<(ClientFrame, String)> {
        let Some(key) = self.peer_key(peer, None).await else {
            self.notice.set(Some(format!("Cannot find {peer}'s key.")));
            return None;
        };
        if self.key_alert.with_untracked(Option::is_some) {
            return None;
        }
        let pair = self.pair(peer, key)?;
        let my = with_keys(|k| k.contents.identity.public_key())?;
        let env = match seal_message(&pair, &my, &key, header, payload) {
            Ok(env) => env,
            Err(e) => {
                self.notice.set(Some(e.to_string()));
                return None;
            }
        };
        let to = Username::parse(peer).ok()?;
        let envelope = Envelope::new(env).ok()?;
        let b64 = sealroom_protocol::encode_b64(envelope.as_bytes());
        let frame =
            ClientFrame::Send { to, client_msg_id: ClientMsgId(header.client_msg_id), envelope, blobs };
        Some((frame, b64))
    }

    /// Queues a `send` until its ack (resent after a reconnect) and sends it now if online.
    pub(crate) fn enqueue(&self, peer: String, frame: ClientFrame) {
        with_keys(|k| {
            k.outbox.push((peer, frame.clone()));
            if let Some(s) = &k.socket {
                s.send(&frame);
            }
        });
    }

    /// Tells the peer this user is typing (the relay throttles).
    pub fn typing(&self) {
        let Some(active) = self.active.get_untracked() else { return };
        // Only within an existing conversation: the relay relays typing to known peers only.
        if !self.convs.with_untracked(|cs| cs.iter().any(|c| c.peer == active)) {
            return;
        }
        let Ok(peer) = Username::parse(&active) else { return };
        with_keys(|k| k.socket.as_ref().map(|s| s.send(&ClientFrame::Typing { to: peer })));
    }

    /// Clears the open chat for this user or both.
    pub async fn clear(self, for_both: bool) {
        let Some(peer) = self.active.get_untracked() else { return };
        match api::call::<_, ()>(
            "POST",
            &format!("/api/conversations/{peer}/clear"),
            Some(&ClearRequest { for_both }),
        )
        .await
        {
            Ok(()) => {
                self.msgs.set(Vec::new());
                self.load_conversations().await;
            }
            Err(e) => self.fail(&e),
        }
    }

    /// Pins/unpins or closes a conversation.
    pub async fn set_flags(self, peer: String, pinned: Option<bool>, hidden: Option<bool>) {
        let body = sealroom_protocol::ConversationFlags { pinned, hidden };
        match api::call::<_, ()>("PUT", &format!("/api/conversations/{peer}/flags"), Some(&body)).await {
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
        match api::get::<UserSearchResponse>(&format!("/api/users?prefix={prefix}&limit=10")).await {
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
                with_keys(|k| {
                    if let Some(s) = &k.socket {
                        s.send(&ClientFrame::Sync { since: MessageId(k.last_id) });
                        for (_, f) in &k.outbox {
                            s.send(f);
                        }
                    }
                });
                if with_keys(|k| k.last_id > 0).unwrap_or(false) {
                    spawn_local(async move { app.load_conversations().await });
                }
            }
            ServerFrame::Ack { client_msg_id, id, ts } => {
                with_keys(|k| {
                    k.outbox.retain(|(_, f)| !matches!(f, ClientFrame::Send { client_msg_id: c, .. } if *c == client_msg_id));
                    k.last_id = k.last_id.max(id.0);
                });
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
            ServerFrame::Message { message } => spawn_local(async move { app.on_message(message).await }),
            ServerFrame::Synced { up_to, more } => {
                with_keys(|k| k.last_id = k.last_id.max(up_to.0));
                if more {
                    with_keys(|k| k.socket.as_ref().map(|s| s.send(&ClientFrame::Sync { since: up_to })));
                }
            }
            ServerFrame::Presence { user, online, last_seen } => self.convs.update(|cs| {
                if let Some(c) = cs.iter_mut().find(|c| c.peer == user.as_str()) {
                    c.online = online;
                    c.last_seen = last_seen.map(|t| t as f64);
                }
            }),
            ServerFrame::Typing { from } => {
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
            ServerFrame::ChatCleared { by, peer, up_to, .. } => {
                let me = self.me.get_untracked().unwrap_or_default();
                let other = if by.as_str() == me { peer.to_string() } else { by.to_string() };
                if self.active.get_untracked().as_deref() == Some(other.as_str()) {
                    self.msgs.update(|ms| ms.retain(|m| m.id.is_none_or(|id| id > up_to.0)));
                    if by.as_str() != me {
                        self.notice.set(Some(format!("{other} cleared this chat for both of you.")));
                    }
                }
                spawn_local(async move { app.load_conversations().await });
            }
            ServerFrame::SessionRevoked { reason } => self.forget(Some(format!("Signed out: {reason}."))),
            ServerFrame::Error { code, message, client_msg_id } => match client_msg_id {
                Some(id) => {
                    with_keys(|k| {
                        k.outbox.retain(
                            |(_, f)| !matches!(f, ClientFrame::Send { client_msg_id: c, .. } if *c == id),
                        )
                    });
                    let key = id.to_b64();
                    self.msgs.update(|ms| {
                        if let Some(m) = ms.iter_mut().find(|m| m.key == key) {
                            m.state = Delivery::Failed(message.clone());
                        }
                    });
                }
                None if code != ErrorCode::RateLimited => self.notice.set(Some(message)),
                None => {}
            },
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
        with_keys(|k| k.last_id = k.last_id.max(message.id.0));
        let me = self.me.get_untracked().unwrap_or_default();
        let mine = message.from.as_str() == me;
        let peer = if mine { message.to.to_string() } else { message.from.to_string() };
        if !mine {
            if let Ok(p) = Username::parse(&peer) {
                with_keys(|k| {
                    k.socket.as_ref().map(|s| s.send(&ClientFrame::Delivered { peer: p, up_to: message.id }))
                });
            }
        }
        let msg = self.decrypt(&message).await;
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
        with_keys(|k| k.contents.pins.iter().map(|(n, p)| (n.clone(), p.verified)).collect())
            .unwrap_or_default()
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

fn safety_number(peer: &str, key: &PublicKey) -> Option<String> {
    with_keys(|k| {
        SafetyNumber::compute(k.username.as_str(), &k.contents.identity.public_key(), peer, key).ok()
    })
    .flatten()
    .map(|s| s.to_string())
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
