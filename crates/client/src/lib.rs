//! Sealroom's native client: REST + WebSocket, with real end-to-end encryption.
//!
//! Keys are derived and made here; the relay only ever receives `auth_key`, public keys, the
//! sealed key backup and envelopes. Each peer's identity key is pinned on first use and kept in
//! the sealed backup; a changed key is refused until the caller accepts it explicitly.
//!
//! # Example
//!
//! ```no_run
//! # async fn demo() -> Result<(), sealroom_client::ClientError> {
//! use sealroom_client::Client;
//! let client = Client::new("http://127.0.0.1:8080")?;
//! let mut alice = client.login("alice", "correct horse battery staple").await?;
//! let sent = alice.send_text("bob", "hello, bob", false).await?;
//! for m in alice.history("bob", 50).await? {
//!     println!("{} {} {}", m.id, m.from, m.text());
//! }
//! # let _ = sent; Ok(()) }
//! ```
#![deny(missing_docs)]

mod conn;
mod error;
mod files;
mod groups;

use std::sync::Mutex;

use sealroom_crypto::{KdfParams, PasswordKeys, Payload, Pin, PublicKey, SafetyNumber};
use sealroom_protocol::endpoint::{
    Clear, Conversations, Endpoint, GetMessage, History, LogoutAll, MarkRead, SearchUsers,
};
use sealroom_protocol::{
    ApiError, ClearRequest, ConversationId, ConversationSummary, HistoryQuery, HistoryResponse, Me,
    MessageId, MessageOut, UserInfo, Username,
};
use sealroom_session::{flows, PeerKey, Transport, Vault};
use serde::de::DeserializeOwned;

pub use conn::Connection;
pub use error::ClientError;
pub use files::{check_limits, guess_mime, Upload};
pub use groups::{DirectMessage, Sent};
pub use sealroom_session::groups::{ArchivedMessage, EventKind, GroupEvent};

/// Result alias.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// An HTTP client for one relay.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: url::Url,
    state_dir: Option<std::path::PathBuf>,
}

impl Client {
    /// A client for the relay at `server` (e.g. `http://127.0.0.1:8080`).
    pub fn new(server: &str) -> Result<Self> {
        let base = url::Url::parse(server)
            .map_err(|e| ClientError::Usage(format!("bad server URL `{server}`: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(ClientError::Usage(format!(
                "server URL must be http:// or https://, not `{server}`"
            )));
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("sealroom-client/", env!("CARGO_PKG_VERSION")))
            // The relay closes an idle keep-alive connection after 5 s; a request sent on one
            // at that moment fails (IncompleteMessage). Idle ones are dropped here first.
            .pool_idle_timeout(std::time::Duration::from_secs(3))
            .build()
            .map_err(ClientError::Http)?;
        Ok(Client { http, base, state_dir: None })
    }

    /// Remembers per account, in `dir`, the newest key-backup generation this device has
    /// opened or written, and refuses an older backup from the relay (a rollback). Without a
    /// state directory nothing is remembered between runs.
    pub fn with_state_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.state_dir = Some(dir.into());
        self
    }

    /// `<state dir>/<relay host_port>/<username>.generation`.
    fn generation_file(&self, username: &str) -> Option<std::path::PathBuf> {
        let relay: String = format!("{}_{}", self.base.host_str()?, self.base.port_or_known_default()?)
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' })
            .collect();
        Some(self.state_dir.as_ref()?.join(relay).join(format!("{username}.generation")))
    }

    /// Where this device keeps its session with `username` at this relay (beside the backup
    /// generation it remembers).
    fn session_file(&self, username: &str) -> Option<std::path::PathBuf> {
        Some(self.generation_file(username)?.with_extension("session"))
    }

    /// Where this device keeps its group (MLS) state for `username` at this relay.
    fn device_file(&self, username: &str) -> Option<std::path::PathBuf> {
        Some(self.generation_file(username)?.with_extension("mls"))
    }

    fn saved_session(&self, username: &str) -> Option<SavedSession> {
        let text = std::fs::read_to_string(self.session_file(username)?).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Saves the session token for the next command (mode 0600: it is a credential).
    fn save_session(&self, session: &Session) {
        let Some(file) = self.session_file(session.username().as_str()) else { return };
        let saved = SavedSession { token: session.token.clone(), session_id: session.session_id.clone() };
        let text = serde_json::to_string(&saved).unwrap_or_default();
        write_state_file(&file, text.as_bytes(), "the session");
    }

    fn forget_session(&self, username: &str) {
        if let Some(file) = self.session_file(username) {
            let _ = std::fs::remove_file(file);
        }
    }

    fn url(&self, path: &str) -> Result<url::Url> {
        self.base.join(path).map_err(|e| ClientError::Usage(e.to_string()))
    }

    /// Calls endpoint `E` at `path` (from [`Endpoint::path`]), with a Bearer token once signed in.
    async fn call<E: Endpoint>(
        &self,
        path: &str,
        token: Option<&str>,
        body: Option<&E::Body>,
    ) -> Result<E::Response> {
        let method = reqwest::Method::from_bytes(E::METHOD.as_str().as_bytes())
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let mut req = self.http.request(method, self.url(path)?);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(ClientError::Http)?;
        self.read_response(resp).await
    }

    /// A success body as `T` (204 as JSON `null`), or the relay's error.
    async fn read_response<T: DeserializeOwned>(&self, resp: reqwest::Response) -> Result<T> {
        let status = resp.status();
        if status.is_success() {
            if status == reqwest::StatusCode::NO_CONTENT {
                return serde_json::from_str("null").map_err(|e| ClientError::Protocol(e.to_string()));
            }
            return resp.json::<T>().await.map_err(|e| ClientError::Protocol(format!("bad response: {e}")));
        }
        let text = resp.text().await.unwrap_or_default();
        match serde_json::from_str::<ApiError>(&text) {
            Ok(e) => Err(ClientError::Api(e)),
            Err(_) => Err(ClientError::Protocol(format!(
                "HTTP {status}: {}",
                text.chars().take(200).collect::<String>()
            ))),
        }
    }

    fn transport<'a>(&'a self, token: Option<&'a str>) -> Http<'a> {
        Http { client: self, token }
    }

    /// Who may register here, and how long the relay keeps messages (no session needed).
    pub async fn server_info(&self) -> Result<sealroom_protocol::ServerInfo> {
        use sealroom_protocol::endpoint::GetServerInfo;
        self.call::<GetServerInfo>(GetServerInfo::PATH, None, None).await
    }

    /// Creates an account: the identity key and the password keys are made here and the
    /// backup sealed here ([`sealroom_session::flows::register`]). Argon2id runs on a
    /// blocking thread.
    pub async fn register(&self, username: &str, password: &str) -> Result<Session> {
        self.register_invited(username, password, None).await
    }

    /// [`register`](Self::register) with an invite code, for a relay whose registration is
    /// invite-only.
    pub async fn register_invited(
        &self,
        username: &str,
        password: &str,
        invite: Option<&str>,
    ) -> Result<Session> {
        let username = parse(username)?;
        let (resp, vault) = flows::register(&self.transport(None), &username, password, invite).await?;
        Ok(Session::start(self.clone(), resp, vault))
    }

    /// Signs in, reusing this device's saved session while the relay still accepts it (no new
    /// session, no password hash on the relay; the password still unseals the backup here),
    /// else [`login`](Self::login) and save the new session in the state dir (mode 0600) for
    /// the next time. Without a state dir, the same as `login`.
    pub async fn sign_in(&self, username: &str, password: &str) -> Result<Session> {
        let name = parse(username)?;
        if let Some(saved) = self.saved_session(name.as_str()) {
            match flows::resume_with_password(&self.transport(Some(&saved.token)), &name, password).await {
                Ok(Some((me, vault))) => {
                    return Ok(Session {
                        client: self.clone(),
                        token: saved.token,
                        session_id: saved.session_id,
                        me,
                        vault,
                        mls: None,
                    })
                }
                // Expired, revoked, or someone else's: it is of no more use.
                Ok(None) => self.forget_session(name.as_str()),
                Err(ClientError::Api(e)) if e.error.http_status() == 401 => {
                    self.forget_session(name.as_str())
                }
                Err(e @ (ClientError::Http(_) | ClientError::Timeout)) => return Err(e),
                // The backup did not open (a wrong password, or one changed on another device):
                // the relay's login decides, with its rate limits.
                Err(_) => {}
            }
        }
        let session = self.login(username, password).await?;
        self.save_session(&session);
        Ok(session)
    }

    /// Logs in: fetches salt and parameters, derives the keys, logs in, unseals the backup and
    /// checks its identity against the one the relay publishes.
    pub async fn login(&self, username: &str, password: &str) -> Result<Session> {
        let username = parse(username)?;
        let (resp, vault) = flows::login(&self.transport(None), &username, password).await?;
        Ok(Session::start(self.clone(), resp, vault))
    }
}

/// Writes one of this device's state files: to a temporary file (mode 0600: the session file
/// is a credential) renamed into place, so a crash never leaves a torn one. A failure is a
/// warning; the command itself goes on.
fn write_state_file(file: &std::path::Path, contents: &[u8], what: &str) {
    if let Err(e) = write_private_file(file, contents) {
        eprintln!("warning: could not save {what} in {}: {e}", file.display());
    }
}

/// Writes a file of this device's (mode 0600) through a temporary file renamed into place,
/// flushed to disk first, so a crash leaves the old file or the new one, never a torn one.
fn write_private_file(file: &std::path::Path, contents: &[u8]) -> std::io::Result<()> {
    let mut tmp = file.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    if let Some(parent) = file.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(&tmp)?;
    std::io::Write::write_all(&mut f, contents)?;
    f.sync_all()?;
    std::fs::rename(&tmp, file)
}

/// A session token a device keeps between commands.
#[derive(serde::Serialize, serde::Deserialize)]
struct SavedSession {
    token: String,
    session_id: String,
}

/// The native [`Transport`]: reqwest, with the session's Bearer token.
struct Http<'a> {
    client: &'a Client,
    token: Option<&'a str>,
}

impl Transport for Http<'_> {
    type Error = ClientError;

    async fn call<E: Endpoint>(&self, path: &str, body: Option<&E::Body>) -> Result<E::Response> {
        self.client.call::<E>(path, self.token, body).await
    }

    fn api_error(e: &ClientError) -> Option<&ApiError> {
        match e {
            ClientError::Api(a) => Some(a),
            _ => None,
        }
    }

    fn no_answer(e: &ClientError) -> bool {
        matches!(e, ClientError::Http(_))
    }

    async fn derive_keys(&self, password: &str, salt: &[u8], params: KdfParams) -> Result<PasswordKeys> {
        let password = zeroize::Zeroizing::new(password.to_owned());
        let salt = salt.to_vec();
        tokio::task::spawn_blocking(move || PasswordKeys::derive(&password, &salt, params))
            .await
            .map_err(|e| ClientError::Protocol(format!("key derivation task failed: {e}")))?
            .map_err(ClientError::from)
    }

    fn seen_generation(&self, username: &str) -> Option<u64> {
        let text = std::fs::read_to_string(self.client.generation_file(username)?).ok()?;
        text.trim().parse().ok()
    }

    fn saw_generation(&self, username: &str, generation: u64) {
        let Some(file) = self.client.generation_file(username) else { return };
        if self.seen_generation(username).is_some_and(|seen| seen >= generation) {
            return;
        }
        write_state_file(&file, format!("{generation}\n").as_bytes(), "the key backup generation");
    }
}

/// A decrypted message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Server id.
    pub id: MessageId,
    /// When the relay stored it (Unix ms).
    pub ts: i64,
    /// Sender.
    pub from: Username,
    /// Recipient.
    pub to: Username,
    /// The sender's clock (Unix ms), authenticated.
    pub sent_at_ms: u64,
    /// What it says.
    pub payload: Payload,
}

impl Message {
    /// A one-line rendering of the payload (tabs and newlines escaped).
    pub fn text(&self) -> String {
        payload_text(&self.payload)
    }
}

/// A one-line rendering of a payload, for scripts: tabs, newlines and backslashes escaped.
pub fn payload_text(payload: &Payload) -> String {
    let escape =
        |t: &str| t.replace('\\', "\\\\").replace('\n', "\\n").replace('\t', "\\t").replace('\r', "\\r");
    match payload {
        Payload::Text(t) => escape(t),
        Payload::File(f) => format!("[file {} ({} bytes, {})]", escape(&f.name), f.size, f.mime),
        Payload::GroupName(n) => format!("[named the group: {}]", escape(n)),
        Payload::Upgrade { .. } => "[moved to forward-secret encryption (MLS)]".to_owned(),
        _ => "[unsupported message type]".into(),
    }
}

impl From<sealroom_session::Opened> for Message {
    fn from(o: sealroom_session::Opened) -> Self {
        Message { id: o.id, ts: o.ts, from: o.from, to: o.to, sent_at_ms: o.sent_at_ms, payload: o.payload }
    }
}

/// A logged-in user, holding their keys in memory (in a [`Vault`] of the shared client core).
pub struct Session {
    client: Client,
    token: String,
    session_id: String,
    me: Me,
    vault: Vault,
    /// This device's group state, once [`Session::mls_start`] ran.
    mls: Option<groups::NativeDevice>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("user", &self.me.username)
            .field("session_id", &self.session_id)
            .finish_non_exhaustive()
    }
}

/// Runs a [`flows`] function with this session's transport and its vault borrowed for the call.
macro_rules! flow {
    ($self:ident, $f:ident($($arg:expr),*)) => {{
        let t = Http { client: &$self.client, token: Some(&$self.token) };
        let cell = Mutex::new(&mut $self.vault);
        flows::$f(&t, &cell $(, $arg)*).await
    }};
}

impl Session {
    fn start(client: Client, resp: sealroom_protocol::SessionResponse, vault: Vault) -> Self {
        Session { client, token: resp.token, session_id: resp.session_id, me: resp.user, vault, mls: None }
    }

    /// This user.
    pub fn username(&self) -> &Username {
        &self.me.username
    }

    /// The session token (for a `Bearer` header).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// This session's id.
    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// This user's identity public key.
    pub fn identity_key(&self) -> PublicKey {
        self.vault.identity_key()
    }

    /// The pinned keys.
    pub fn pins(&self) -> &std::collections::BTreeMap<String, Pin> {
        self.vault.pins()
    }

    async fn get<E: Endpoint<Body = ()>>(&self, path: &str) -> Result<E::Response> {
        self.client.call::<E>(path, Some(&self.token), None).await
    }

    async fn send_json<E: Endpoint>(&self, path: &str, body: &E::Body) -> Result<E::Response> {
        self.client.call::<E>(path, Some(&self.token), Some(body)).await
    }

    /// The directory's key for `peer`, checked against the pin (pinning it on first use). A
    /// key that differs from the pin is refused with [`ClientError::KeyChanged`] unless
    /// `accept_new_key`, which re-pins it (unverified).
    pub async fn peer_key(&mut self, peer: &Username, accept_new_key: bool) -> Result<PublicKey> {
        match flow!(self, peer_key(peer))? {
            PeerKey::FirstUse(key) | PeerKey::Pinned(key) => Ok(key),
            PeerKey::Changed(change) if accept_new_key => {
                flow!(self, accept_new_key(peer))?;
                Ok(change.new_key)
            }
            PeerKey::Changed(change) => Err(sealroom_session::Error::KeyChanged(Box::new(change)).into()),
        }
    }

    /// The safety number with `peer` (pinning their key on first use).
    pub async fn safety_number(&mut self, peer: &str) -> Result<SafetyNumber> {
        let peer = parse(peer)?;
        self.peer_key(&peer, false).await?;
        self.vault.safety_number(&peer).ok_or_else(|| ClientError::Protocol("no pinned key".into()))
    }

    /// Marks `peer`'s pinned key as verified (after comparing safety numbers).
    pub async fn mark_verified(&mut self, peer: &str) -> Result<()> {
        let peer = parse(peer)?;
        self.peer_key(&peer, false).await?;
        flow!(self, mark_verified(&peer))?;
        Ok(())
    }

    /// Encrypts a payload to `peer`: returns (client_msg_id, envelope).
    pub async fn encrypt_to(
        &mut self,
        peer: &Username,
        payload: &Payload,
        accept_new_key: bool,
    ) -> Result<(sealroom_protocol::ClientMsgId, sealroom_protocol::Envelope)> {
        self.peer_key(peer, accept_new_key).await?;
        self.seal_to(peer, payload, now_ms() as u64)
    }

    /// Encrypts a payload to `peer`, whose key was just checked, as sent at `sent_at_ms`.
    fn seal_to(
        &mut self,
        peer: &Username,
        payload: &Payload,
        sent_at_ms: u64,
    ) -> Result<(sealroom_protocol::ClientMsgId, sealroom_protocol::Envelope)> {
        let header = sealroom_crypto::MessageHeader::new(sent_at_ms)?;
        Ok(self.vault.seal(peer, &header, payload)?)
    }

    /// Seals a payload to `peer` without asking the relay anything: for an outbox that keeps
    /// composing while the relay is away. The peer's key must already be pinned (by
    /// [`peer_key`](Self::peer_key) or an earlier message); a pending key change refuses.
    pub fn seal_offline(
        &mut self,
        peer: &Username,
        payload: &Payload,
    ) -> Result<(sealroom_protocol::ClientMsgId, sealroom_protocol::Envelope)> {
        self.seal_to(peer, payload, now_ms() as u64)
    }

    /// [`encrypt_to`](Self::encrypt_to) with the sender's clock set to `sent_at_ms`: what a
    /// sender with a wrong clock (or one back-dating a message) produces. For tests.
    #[doc(hidden)]
    pub async fn encrypt_to_with_clock(
        &mut self,
        peer: &Username,
        payload: &Payload,
        sent_at_ms: u64,
    ) -> Result<(sealroom_protocol::ClientMsgId, sealroom_protocol::Envelope)> {
        self.peer_key(peer, false).await?;
        self.seal_to(peer, payload, sent_at_ms)
    }

    /// Decrypts a stored message to or from this user.
    pub async fn decrypt(&mut self, m: &MessageOut) -> Result<Message> {
        Ok(flow!(self, open(m))?.into())
    }

    /// Opens a WebSocket for this session.
    pub async fn connect(&self) -> Result<Connection> {
        Connection::open(&self.client.base, &self.token).await
    }

    /// Encrypts and sends a text; returns the stored message's id once the relay acknowledged
    /// it (after a durable commit).
    pub async fn send_text(&mut self, peer: &str, text: &str, accept_new_key: bool) -> Result<MessageId> {
        self.send_payload(peer, &Payload::Text(text.to_owned()), accept_new_key).await
    }

    /// Encrypts and sends any payload over a fresh connection; returns the acknowledged id.
    pub async fn send_payload(
        &mut self,
        peer: &str,
        payload: &Payload,
        accept_new_key: bool,
    ) -> Result<MessageId> {
        let peer = parse(peer)?;
        // The conversation first: what the relay says of it (whether this user has written
        // there) is what tells a lost pin from a first use.
        let conversation = self.conversation_with(&peer).await?;
        let (client_msg_id, envelope) = self.encrypt_to(&peer, payload, accept_new_key).await?;
        let mut conn = self.connect().await?;
        let id = conn.send_and_wait(conversation, client_msg_id, envelope).await?;
        conn.close().await;
        Ok(id)
    }

    /// The direct conversation with `peer`, opened on the relay if the two have none (the peer
    /// sees it from its first message).
    pub async fn conversation_with(&mut self, peer: &Username) -> Result<ConversationId> {
        flow!(self, open_direct(peer))
    }

    /// The existing direct conversation with `peer` (`not_found` when there is none): reading,
    /// marking or clearing never creates one.
    pub async fn existing_conversation(&self, peer: &str) -> Result<ConversationId> {
        let peer = parse(peer)?;
        if let Some(id) = self.vault.directory().id(&peer) {
            return Ok(id);
        }
        self.conversations().await?.into_iter().find(|c| c.peer == peer).map(|c| c.id).ok_or_else(|| {
            ClientError::Api(sealroom_protocol::ApiError::new(
                sealroom_protocol::ErrorCode::NotFound,
                format!("no conversation with {peer}"),
            ))
        })
    }

    /// The newest `limit` messages with `peer`, decrypted, oldest first.
    pub async fn history(&mut self, peer: &str, limit: u32) -> Result<Vec<Message>> {
        let id = self.existing_conversation(peer).await?;
        let mut out: Vec<MessageOut> = Vec::new();
        let mut before = None;
        while (out.len() as u32) < limit {
            let want = (limit - out.len() as u32).min(sealroom_protocol::MAX_PAGE);
            let q = HistoryQuery { before, after: None, limit: Some(want) };
            let page = self.get::<History>(&(History::path(&[&id]) + &q.to_query())).await?;
            before = page.messages.first().map(|m| m.id);
            let more = page.has_more;
            let mut chunk = page.messages;
            chunk.append(&mut out);
            out = chunk;
            if !more {
                break;
            }
        }
        let mut decrypted = Vec::with_capacity(out.len());
        for m in &out {
            decrypted.push(self.decrypt(m).await?);
        }
        Ok(decrypted)
    }

    /// The raw history page (envelopes as stored).
    pub async fn history_raw(&self, peer: &str, query: &HistoryQuery) -> Result<HistoryResponse> {
        let id = self.existing_conversation(peer).await?;
        self.get::<History>(&(History::path(&[&id]) + &query.to_query())).await
    }

    /// One stored message this user may see (not decrypted).
    async fn message_raw(&self, id: MessageId) -> Result<MessageOut> {
        self.get::<GetMessage>(&GetMessage::path(&[&id])).await
    }

    /// The conversation list.
    pub async fn conversations(&self) -> Result<Vec<ConversationSummary>> {
        Ok(self.get::<Conversations>(&Conversations::path(&[])).await?.conversations)
    }

    /// The groups of the conversation list (what the relay knows of them: no names).
    pub async fn group_list(&self) -> Result<Vec<sealroom_protocol::GroupSummary>> {
        Ok(self.get::<Conversations>(&Conversations::path(&[])).await?.groups)
    }

    /// Users whose name starts with `prefix`.
    pub async fn users(&self, prefix: &str) -> Result<Vec<UserInfo>> {
        let mut url = self.client.url(SearchUsers::PATH)?;
        url.query_pairs_mut().append_pair("prefix", prefix);
        let path = format!("{}?{}", url.path(), url.query().unwrap_or_default());
        Ok(self.get::<SearchUsers>(&path).await?.users)
    }

    /// Clears the conversation with `peer`, for this user or for both, up to the newest
    /// message this client has seen (fetched now), so nothing arriving meanwhile goes unseen.
    pub async fn clear(&self, peer: &str, for_both: bool) -> Result<()> {
        let id = self.existing_conversation(peer).await?;
        let newest = self.history_raw(peer, &HistoryQuery { limit: Some(1), ..Default::default() }).await?;
        let up_to = newest.messages.last().map(|m| m.id);
        self.send_json::<Clear>(&Clear::path(&[&id]), &ClearRequest { for_both, up_to }).await
    }

    /// Marks the conversation with `peer` read up to `up_to`.
    pub async fn mark_read(&self, peer: &str, up_to: MessageId) -> Result<()> {
        let id = self.existing_conversation(peer).await?;
        let body = sealroom_protocol::MarkReadRequest { up_to };
        self.send_json::<MarkRead>(&MarkRead::path(&[&id]), &body).await
    }

    /// Blocks `name`: what they send is withheld from this user from now on (they are not told).
    pub async fn block(&self, name: &str) -> Result<()> {
        use sealroom_protocol::endpoint::Block;
        let name = parse(name)?;
        self.client.call::<Block>(&Block::path(&[&name]), Some(&self.token), None).await
    }

    /// Unblocks `name` (what was withheld stays withheld).
    pub async fn unblock(&self, name: &str) -> Result<()> {
        use sealroom_protocol::endpoint::Unblock;
        let name = parse(name)?;
        self.client.call::<Unblock>(&Unblock::path(&[&name]), Some(&self.token), None).await
    }

    /// The users this user has blocked.
    pub async fn blocked(&self) -> Result<Vec<Username>> {
        use sealroom_protocol::endpoint::Blocks;
        Ok(self.get::<Blocks>(Blocks::PATH).await?.users)
    }

    /// Changes the password: new salt and keys, the backup re-sealed under the new key, the
    /// credential replaced; the relay signs out every other session.
    pub async fn change_password(&mut self, current: &str, new: &str) -> Result<()> {
        self.me = flow!(self, change_password(current, new))?;
        Ok(())
    }

    /// Forgets this session on this device if it is the one saved.
    fn forget(&self) {
        let name = self.me.username.as_str();
        if self.client.saved_session(name).is_some_and(|s| s.session_id == self.session_id) {
            self.client.forget_session(name);
        }
    }

    /// Keeps this session for the next [`Client::sign_in`] on this device (state dir).
    pub fn save(&self) {
        self.client.save_session(self);
    }

    /// Ends this session on the relay (and forgets it on this device).
    pub async fn logout(self) -> Result<()> {
        use sealroom_protocol::endpoint::Logout;
        self.forget();
        self.client.call::<Logout>(Logout::PATH, Some(&self.token), None).await
    }

    /// Deletes this account (the password proves it): every session ends, and this device's
    /// saved session is forgotten.
    pub async fn delete_account(mut self, password: &str) -> Result<()> {
        flow!(self, delete_account(password))?;
        self.forget();
        Ok(())
    }

    /// Everything this user can read, decrypted here, as an export
    /// ([`sealroom_session::export::collect`]); `progress` hears the messages so far. Sync the
    /// groups first ([`Session::sync_groups`]) so this device's own reading is in the archive.
    pub async fn export(&mut self, progress: impl FnMut(usize)) -> Result<sealroom_session::export::Export> {
        let server = self.client.base.to_string();
        let t = Http { client: &self.client, token: Some(&self.token) };
        let cell = Mutex::new(&mut self.vault);
        sealroom_session::export::collect(&t, &cell, &server, now_ms(), progress).await
    }

    /// The relay's address.
    pub fn server_url(&self) -> &str {
        self.client.base.as_str()
    }

    /// [`Client::server_info`] of this session's relay.
    pub async fn server_info(&self) -> Result<sealroom_protocol::ServerInfo> {
        self.client.server_info().await
    }

    /// Ends every session of this user (and forgets this one on this device).
    pub async fn logout_everywhere(self) -> Result<()> {
        self.forget();
        self.client.call::<LogoutAll>(LogoutAll::PATH, Some(&self.token), None).await
    }
}

fn parse(name: &str) -> Result<Username> {
    Username::parse(name).map_err(|e| ClientError::Usage(e.to_string()))
}

/// Unix time in milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// RFC 3339 rendering of a Unix-millisecond time (UTC).
pub fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| ms.to_string())
}
