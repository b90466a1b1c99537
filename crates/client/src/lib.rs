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

use std::collections::HashMap;

use sealroom_crypto::{
    open_message, seal_backup, seal_message, unseal_backup, BackupContents, BackupKey, IdentitySecret,
    KdfParams, MessageHeader, PairKey, PasswordKeys, Payload, Pin, PublicKey, SafetyNumber,
};
use sealroom_protocol::{
    ApiError, AuthKeyBytes, ChangePasswordRequest, ClearRequest, ConversationSummary, ConversationsResponse,
    HistoryQuery, HistoryResponse, IdentityKey, KeyBackupVersion, LoginRequest, Me, MessageId, MessageOut,
    PreloginRequest, PreloginResponse, RegisterRequest, Salt, SealedBackup, SessionResponse,
    UpdateKeyBackupRequest, UserInfo, UserSearchResponse, Username,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use conn::Connection;
pub use error::ClientError;
pub use files::{check_limits, guess_mime, Upload};

/// Result alias.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// An HTTP client for one relay.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: url::Url,
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
            .build()
            .map_err(ClientError::Http)?;
        Ok(Client { http, base })
    }

    fn url(&self, path: &str) -> Result<url::Url> {
        self.base.join(path).map_err(|e| ClientError::Usage(e.to_string()))
    }

    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&B>,
    ) -> Result<T> {
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

    /// Creates an account: makes the identity key and the password keys here, seals the
    /// backup, registers. Argon2id runs on a blocking thread.
    pub async fn register(&self, username: &str, password: &str) -> Result<Session> {
        let username = Username::parse(username).map_err(|e| ClientError::Usage(e.to_string()))?;
        let salt = sealroom_crypto::generate_salt()?;
        let keys = derive(password, salt.to_vec(), KdfParams::PRODUCTION).await?;
        let identity = IdentitySecret::generate()?;
        let public = identity.public_key();
        let contents = BackupContents::new(identity);
        let sealed = seal_backup(&keys.backup_key, username.as_str(), &contents)?;
        let p = KdfParams::PRODUCTION;
        let req = RegisterRequest {
            username,
            auth_key: AuthKeyBytes(*keys.auth_key.as_bytes()),
            salt: Salt(salt),
            kdf: sealroom_protocol::KdfParams { m_kib: p.m_kib, t: p.t, p: p.p },
            identity_key: IdentityKey(*public.as_bytes()),
            key_backup: SealedBackup::new(sealed)?,
        };
        let resp: SessionResponse =
            self.call(reqwest::Method::POST, "/api/register", None, Some(&req)).await?;
        Session::start(self.clone(), resp, keys.backup_key, contents)
    }

    /// Logs in: fetches salt and parameters, derives the keys, logs in, unseals the backup.
    pub async fn login(&self, username: &str, password: &str) -> Result<Session> {
        let username = Username::parse(username).map_err(|e| ClientError::Usage(e.to_string()))?;
        let pre: PreloginResponse = self
            .call(
                reqwest::Method::POST,
                "/api/prelogin",
                None,
                Some(&PreloginRequest { username: username.clone() }),
            )
            .await?;
        let params = KdfParams { m_kib: pre.kdf.m_kib, t: pre.kdf.t, p: pre.kdf.p };
        let keys = derive(password, pre.salt.0.to_vec(), params).await?;
        let req =
            LoginRequest { username: username.clone(), auth_key: AuthKeyBytes(*keys.auth_key.as_bytes()) };
        let resp: SessionResponse = self.call(reqwest::Method::POST, "/api/login", None, Some(&req)).await?;
        let contents = unseal_backup(&keys.backup_key, username.as_str(), resp.user.key_backup.as_bytes())
            .map_err(|_| ClientError::BackupUnreadable)?;
        if contents.identity.public_key().as_bytes() != &resp.user.identity_key.0 {
            return Err(ClientError::BackupUnreadable);
        }
        Session::start(self.clone(), resp, keys.backup_key, contents)
    }
}

async fn derive(password: &str, salt: Vec<u8>, params: KdfParams) -> Result<PasswordKeys> {
    let password = zeroize::Zeroizing::new(password.to_owned());
    tokio::task::spawn_blocking(move || PasswordKeys::derive(&password, &salt, params))
        .await
        .map_err(|e| ClientError::Protocol(format!("key derivation task failed: {e}")))?
        .map_err(ClientError::from)
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
        match &self.payload {
            Payload::Text(t) => {
                t.replace('\\', "\\\\").replace('\n', "\\n").replace('\t', "\\t").replace('\r', "\\r")
            }
            Payload::File(f) => format!("[file {} ({} bytes, {})]", f.name, f.size, f.mime),
            _ => "[unsupported message type]".into(),
        }
    }
}

/// A logged-in user, holding their keys in memory.
pub struct Session {
    client: Client,
    token: String,
    session_id: String,
    me: Me,
    backup_key: BackupKey,
    contents: BackupContents,
    pairs: HashMap<Username, (PublicKey, PairKey)>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("user", &self.me.username)
            .field("session_id", &self.session_id)
            .finish_non_exhaustive()
    }
}

impl Session {
    fn start(
        client: Client,
        resp: SessionResponse,
        backup_key: BackupKey,
        contents: BackupContents,
    ) -> Result<Self> {
        Ok(Session {
            client,
            token: resp.token,
            session_id: resp.session_id,
            me: resp.user,
            backup_key,
            contents,
            pairs: HashMap::new(),
        })
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
        self.contents.identity.public_key()
    }

    /// The pinned keys.
    pub fn pins(&self) -> &std::collections::BTreeMap<String, Pin> {
        &self.contents.pins
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.client.call::<(), T>(reqwest::Method::GET, path, Some(&self.token), None).await
    }

    async fn send_json<B: Serialize, T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &B,
    ) -> Result<T> {
        self.client.call(method, path, Some(&self.token), Some(body)).await
    }

    /// Re-seals the backup and stores it, guarded by its version. If another client changed it
    /// meanwhile, fetches theirs, merges (their pins, then ours on top) and retries.
    async fn save_backup(&mut self) -> Result<()> {
        for _ in 0..5 {
            let sealed = seal_backup(&self.backup_key, self.me.username.as_str(), &self.contents)?;
            let req = UpdateKeyBackupRequest {
                key_backup: SealedBackup::new(sealed)?,
                expected_version: self.me.key_backup_version,
            };
            match self
                .send_json::<_, KeyBackupVersion>(reqwest::Method::PUT, "/api/me/key-backup", &req)
                .await
            {
                Ok(v) => {
                    self.me.key_backup_version = v.key_backup_version;
                    return Ok(());
                }
                Err(ClientError::Api(e)) if e.error == sealroom_protocol::ErrorCode::StaleBackupVersion => {
                    let fresh: Me = self.get("/api/me").await?;
                    let theirs = unseal_backup(
                        &self.backup_key,
                        self.me.username.as_str(),
                        fresh.key_backup.as_bytes(),
                    )
                    .map_err(|_| ClientError::BackupUnreadable)?;
                    self.contents.merge_from(theirs);
                    self.me.key_backup_version = fresh.key_backup_version;
                }
                Err(e) => return Err(e),
            }
        }
        Err(ClientError::Protocol("the key backup keeps changing; try again".into()))
    }

    /// The directory's key for `peer`, checked against the pin (pinning it on first use). A
    /// key that differs from the pin is refused with [`ClientError::KeyChanged`] unless
    /// `accept_new_key`, which re-pins it (unverified).
    pub async fn peer_key(&mut self, peer: &Username, accept_new_key: bool) -> Result<PublicKey> {
        let info: UserInfo = self.get(&format!("/api/users/{peer}")).await?;
        let key = PublicKey::from(info.identity_key.0);
        match self.contents.pins.get(peer.as_str()) {
            Some(pin) if pin.public_key == key => Ok(key),
            Some(pin) if !accept_new_key => Err(ClientError::KeyChanged {
                peer: peer.to_string(),
                old_safety_number: self.safety_number_for(peer, &pin.public_key)?.to_string(),
                new_safety_number: self.safety_number_for(peer, &key)?.to_string(),
            }),
            _ => {
                self.contents
                    .pins
                    .insert(peer.to_string(), Pin { public_key: key, verified: false, other_flags: 0 });
                self.save_backup().await?;
                self.pairs.remove(peer);
                Ok(key)
            }
        }
    }

    fn safety_number_for(&self, peer: &Username, key: &PublicKey) -> Result<SafetyNumber> {
        Ok(SafetyNumber::compute(self.me.username.as_str(), &self.identity_key(), peer.as_str(), key)?)
    }

    /// The safety number with `peer` (pinning their key on first use).
    pub async fn safety_number(&mut self, peer: &str) -> Result<SafetyNumber> {
        let peer = parse(peer)?;
        let key = self.peer_key(&peer, false).await?;
        self.safety_number_for(&peer, &key)
    }

    /// Marks `peer`'s pinned key as verified (after comparing safety numbers).
    pub async fn mark_verified(&mut self, peer: &str) -> Result<()> {
        let peer = parse(peer)?;
        self.peer_key(&peer, false).await?;
        if let Some(pin) = self.contents.pins.get_mut(peer.as_str()) {
            pin.verified = true;
        }
        self.save_backup().await
    }

    /// The pair key with `peer` under a given key (cached).
    fn pair_with(&mut self, peer: &Username, key: PublicKey) -> Result<PairKey> {
        if let Some((k, pair)) = self.pairs.get(peer) {
            if *k == key {
                return Ok(pair.clone());
            }
        }
        let pair = self.contents.identity.pair_key(&key)?;
        self.pairs.insert(peer.clone(), (key, pair.clone()));
        Ok(pair)
    }

    /// Encrypts a payload to `peer`: returns (client_msg_id, envelope).
    pub async fn encrypt_to(
        &mut self,
        peer: &Username,
        payload: &Payload,
        accept_new_key: bool,
    ) -> Result<(sealroom_protocol::ClientMsgId, sealroom_protocol::Envelope)> {
        let key = self.peer_key(peer, accept_new_key).await?;
        self.seal_to(peer, key, payload)
    }

    /// Encrypts a payload to `peer` under an already checked `key`.
    fn seal_to(
        &mut self,
        peer: &Username,
        key: PublicKey,
        payload: &Payload,
    ) -> Result<(sealroom_protocol::ClientMsgId, sealroom_protocol::Envelope)> {
        let pair = self.pair_with(peer, key)?;
        let header = MessageHeader::new(now_ms() as u64)?;
        let envelope = seal_message(&pair, &self.identity_key(), &key, &header, payload)?;
        Ok((
            sealroom_protocol::ClientMsgId(header.client_msg_id),
            sealroom_protocol::Envelope::new(envelope)?,
        ))
    }

    /// Decrypts a stored message to or from this user.
    pub async fn decrypt(&mut self, m: &MessageOut) -> Result<Message> {
        let mine = m.from == self.me.username;
        let peer = if mine { &m.to } else { &m.from };
        if !mine && m.to != self.me.username {
            return Err(ClientError::Protocol("a message for someone else".into()));
        }
        let key = match self.contents.pins.get(peer.as_str()) {
            Some(pin) => pin.public_key,
            None => self.peer_key(peer, false).await?,
        };
        let pair = self.pair_with(peer, key)?;
        let me = self.identity_key();
        let (sender, recipient) = if mine { (me, key) } else { (key, me) };
        let opened = open_message(&pair, &sender, &recipient, m.envelope.as_bytes())?;
        if opened.header.client_msg_id != m.client_msg_id.0 {
            return Err(ClientError::Crypto(sealroom_crypto::Error::Decryption));
        }
        Ok(Message {
            id: m.id,
            ts: m.ts,
            from: m.from.clone(),
            to: m.to.clone(),
            sent_at_ms: opened.header.sent_at_ms,
            payload: opened.payload,
        })
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
        let (client_msg_id, envelope) = self.encrypt_to(&peer, payload, accept_new_key).await?;
        let mut conn = self.connect().await?;
        let id = conn.send_and_wait(peer, client_msg_id, envelope).await?;
        conn.close().await;
        Ok(id)
    }

    /// The newest `limit` messages with `peer`, decrypted, oldest first.
    pub async fn history(&mut self, peer: &str, limit: u32) -> Result<Vec<Message>> {
        let peer = parse(peer)?;
        let mut out: Vec<MessageOut> = Vec::new();
        let mut before = None;
        while (out.len() as u32) < limit {
            let want = (limit - out.len() as u32).min(sealroom_protocol::MAX_PAGE);
            let q = HistoryQuery { before, after: None, limit: Some(want) };
            let page: HistoryResponse = self.get(&history_path(&peer, &q)).await?;
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
        let peer = parse(peer)?;
        self.get(&history_path(&peer, query)).await
    }

    /// The conversation list.
    pub async fn conversations(&self) -> Result<Vec<ConversationSummary>> {
        Ok(self.get::<ConversationsResponse>("/api/conversations").await?.conversations)
    }

    /// Users whose name starts with `prefix`.
    pub async fn users(&self, prefix: &str) -> Result<Vec<UserInfo>> {
        let mut url = self.client.url("/api/users")?;
        url.query_pairs_mut().append_pair("prefix", prefix);
        let path = format!("{}?{}", url.path(), url.query().unwrap_or_default());
        Ok(self.get::<UserSearchResponse>(&path).await?.users)
    }

    /// Clears the conversation with `peer`, for this user or for both.
    pub async fn clear(&self, peer: &str, for_both: bool) -> Result<()> {
        let peer = parse(peer)?;
        self.send_json::<_, ()>(
            reqwest::Method::POST,
            &format!("/api/conversations/{peer}/clear"),
            &ClearRequest { for_both },
        )
        .await
    }

    /// Marks the conversation with `peer` read up to `up_to`.
    pub async fn mark_read(&self, peer: &str, up_to: MessageId) -> Result<()> {
        let peer = parse(peer)?;
        let body = sealroom_protocol::MarkReadRequest { up_to };
        self.send_json::<_, ()>(reqwest::Method::POST, &format!("/api/conversations/{peer}/read"), &body)
            .await
    }

    /// Changes the password: new salt and keys, the backup re-sealed under the new key, the
    /// credential replaced; the relay signs out every other session.
    pub async fn change_password(&mut self, current: &str, new: &str) -> Result<()> {
        let pre: PreloginResponse = self
            .client
            .call(
                reqwest::Method::POST,
                "/api/prelogin",
                None,
                Some(&PreloginRequest { username: self.me.username.clone() }),
            )
            .await?;
        let old = derive(
            current,
            pre.salt.0.to_vec(),
            KdfParams { m_kib: pre.kdf.m_kib, t: pre.kdf.t, p: pre.kdf.p },
        )
        .await?;
        let salt = sealroom_crypto::generate_salt()?;
        let keys = derive(new, salt.to_vec(), KdfParams::PRODUCTION).await?;
        let sealed = seal_backup(&keys.backup_key, self.me.username.as_str(), &self.contents)?;
        let p = KdfParams::PRODUCTION;
        let req = ChangePasswordRequest {
            auth_key: AuthKeyBytes(*old.auth_key.as_bytes()),
            new_auth_key: AuthKeyBytes(*keys.auth_key.as_bytes()),
            new_salt: Salt(salt),
            new_kdf: sealroom_protocol::KdfParams { m_kib: p.m_kib, t: p.t, p: p.p },
            new_key_backup: SealedBackup::new(sealed)?,
        };
        let me: Me = self.send_json(reqwest::Method::POST, "/api/password", &req).await?;
        self.me = me;
        self.backup_key = keys.backup_key;
        Ok(())
    }

    /// Ends this session on the relay.
    pub async fn logout(self) -> Result<()> {
        self.client.call::<(), ()>(reqwest::Method::POST, "/api/logout", Some(&self.token), None).await
    }

    /// Ends every session of this user.
    pub async fn logout_everywhere(self) -> Result<()> {
        self.client.call::<(), ()>(reqwest::Method::POST, "/api/logout-all", Some(&self.token), None).await
    }
}

fn parse(name: &str) -> Result<Username> {
    Username::parse(name).map_err(|e| ClientError::Usage(e.to_string()))
}

fn history_path(peer: &Username, q: &HistoryQuery) -> String {
    let mut parts = Vec::new();
    if let Some(b) = q.before {
        parts.push(format!("before={b}"));
    }
    if let Some(a) = q.after {
        parts.push(format!("after={a}"));
    }
    if let Some(l) = q.limit {
        parts.push(format!("limit={l}"));
    }
    format!("/api/conversations/{peer}/messages?{}", parts.join("&"))
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
