//! Group conversations (MLS) in the native client: this device's MLS state, kept sealed in
//! `<state dir>/<relay>/<user>.mls` (device id, then the sealed state; rewritten whole after
//! every change), and the session's group calls, each a flow of
//! [`sealroom_session::groups`].

use std::path::PathBuf;
use std::sync::Mutex;

use sealroom_crypto::{Payload, SigningSecret};
use sealroom_protocol::endpoint::{Devices, Endpoint, GetGroup, Groups, RemoveDevice};
use sealroom_protocol::{AppendedEntry, ConversationId, DeviceId, DeviceInfo, GroupState, Username};
use sealroom_session::groups::{
    self as flows, ArchivedMessage, DeviceCell, DirectRoute, DirectStep, GroupEvent,
};
use sealroom_session::mls::{Changes, MlsDevice, Processed};

use crate::{ClientError, Http, Result, Session};

/// Where [`Session::send_to`] sent a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// A version 1 message, by its id.
    V1(sealroom_protocol::MessageId),
    /// In the conversation's MLS group, at this log position.
    Mls(ConversationId, AppendedEntry),
}

/// A message of a direct conversation's history ([`Session::direct_history`]).
#[derive(Debug, Clone)]
pub enum DirectMessage {
    /// A version 1 message.
    V1(crate::Message),
    /// A message in the conversation's MLS group, as the user's archive keeps it.
    Mls(ConversationId, ArchivedMessage),
}

impl DirectMessage {
    /// When the sender says it was sent (Unix ms, authenticated).
    pub fn sent_ms(&self) -> u64 {
        match self {
            DirectMessage::V1(m) => m.sent_at_ms,
            DirectMessage::Mls(_, m) => m.sent_ms,
        }
    }
}

/// This device's MLS state, saved sealed to its file (none: kept in memory only).
pub(crate) struct NativeDevice {
    device: Mutex<MlsDevice>,
    stashed: Mutex<Vec<GroupEvent>>,
    file: Option<PathBuf>,
    identity: SigningSecret,
}

impl DeviceCell for NativeDevice {
    fn with<R>(&self, f: impl FnOnce(&mut MlsDevice) -> R) -> R {
        f(&mut self.device.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    fn stash(&self, events: Vec<GroupEvent>) {
        self.stashed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend(events);
    }

    fn take_stashed(&self) -> Vec<GroupEvent> {
        std::mem::take(&mut *self.stashed.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    async fn save(&self) -> std::result::Result<(), sealroom_session::Error> {
        let Some(file) = &self.file else { return Ok(()) };
        let contents = self.with(|d| d.stored(&self.identity))?;
        crate::write_private_file(file, &contents).map_err(|e| {
            sealroom_session::Error::DeviceStorage(format!(
                "could not save this device's state in {}: {e}",
                file.display()
            ))
        })
    }
}

impl NativeDevice {
    /// This device of `username`: read from `file` when there is one, else a new device.
    async fn load(
        identity: &SigningSecret,
        username: &Username,
        file: Option<PathBuf>,
        now_ms: u64,
    ) -> Result<Self> {
        let stored = match &file {
            Some(f) => match std::fs::read(f) {
                Ok(bytes) => Some(bytes),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(ClientError::Io(format!("cannot read {}: {e}", f.display()))),
            },
            None => None,
        };
        let device = match stored {
            Some(bytes) => open_device(identity, username, &bytes).map_err(|e| {
                ClientError::Usage(format!(
                    "this device's group state does not open ({e}); move {} away to start a new device",
                    file.as_ref().map(|f| f.display().to_string()).unwrap_or_default()
                ))
            })?,
            None => {
                MlsDevice::new(identity, username.as_str(), now_ms).map_err(sealroom_session::Error::from)?
            }
        };
        let native = NativeDevice {
            device: Mutex::new(device),
            stashed: Mutex::new(Vec::new()),
            file,
            identity: identity.clone(),
        };
        native.save().await?;
        Ok(native)
    }
}

/// A device's state from the bytes of its file ([`MlsDevice::stored`]).
fn open_device(identity: &SigningSecret, username: &Username, bytes: &[u8]) -> Result<MlsDevice> {
    MlsDevice::from_stored(identity, username.as_str(), bytes)
        .map_err(|e| ClientError::Protocol(format!("the device state does not open: {e}")))
}

/// Runs a [`sealroom_session::groups`] flow with this session's transport, vault and device.
macro_rules! group_flow {
    ($self:ident, $f:ident($($arg:expr),*)) => {{
        $self.mls_start().await?;
        let t = Http { client: &$self.client, token: Some(&$self.token) };
        let cell = Mutex::new(&mut $self.vault);
        let dev = $self.mls.as_ref().ok_or(ClientError::Protocol("no device".into()))?;
        flows::$f(&t, &cell, dev $(, $arg)*).await
    }};
}

impl Session {
    /// Sets this device up for group conversations, once per session: its state loaded from
    /// the state dir (or a new device made), the signing key published, the device registered
    /// and its key packages topped up.
    pub async fn mls_start(&mut self) -> Result<()> {
        if self.mls.is_some() {
            return Ok(());
        }
        let t = Http { client: &self.client, token: Some(&self.token) };
        if self.vault.ensure_signing_key()? {
            let cell = Mutex::new(&mut self.vault);
            sealroom_session::flows::save_backup(&t, &cell).await?;
        }
        let identity =
            self.vault.signing_key().ok_or(ClientError::Protocol("no signing key".into()))?.clone();
        let file = self.client.device_file(self.me.username.as_str());
        let device =
            NativeDevice::load(&identity, &self.me.username, file, crate::now_ms().unsigned_abs()).await?;
        let cell = Mutex::new(&mut self.vault);
        flows::start_device(&t, &cell, &device).await.map_err(|e| match &e {
            ClientError::Session(sealroom_session::Error::DeviceRemoved) => {
                let file = device.file.as_ref().map(|f| f.display().to_string()).unwrap_or_default();
                ClientError::Usage(format!(
                    "this device was removed from your account; move {file} away to start a new device here"
                ))
            }
            _ => e,
        })?;
        self.mls = Some(device);
        Ok(())
    }

    /// This device's id (setting the device up first).
    pub async fn device_id(&mut self) -> Result<DeviceId> {
        self.mls_start().await?;
        Ok(DeviceId(self.mls.as_ref().map(|d| d.with(|d| d.device_id())).unwrap_or_default()))
    }

    /// Creates a group with `members` (this user its admin); returns its conversation id.
    pub async fn create_group(&mut self, members: &[&str]) -> Result<ConversationId> {
        let members: Vec<Username> = members.iter().map(|m| crate::parse(m)).collect::<Result<_>>()?;
        let now = crate::now_ms().unsigned_abs();
        group_flow!(self, create_group(&members, now))
    }

    /// Adds users to a group (admins only).
    pub async fn add_members(&mut self, group: ConversationId, users: &[&str]) -> Result<AppendedEntry> {
        let users: Vec<Username> = users.iter().map(|m| crate::parse(m)).collect::<Result<_>>()?;
        let now = crate::now_ms().unsigned_abs();
        group_flow!(self, add_members(group, &users, now))
    }

    /// Removes users from a group (admins only).
    pub async fn remove_members(&mut self, group: ConversationId, users: &[&str]) -> Result<AppendedEntry> {
        let changes =
            Changes { remove_users: users.iter().map(|u| u.to_string()).collect(), ..Changes::default() };
        group_flow!(self, change(group, changes))
    }

    /// Replaces a group's admins (admins only).
    pub async fn set_admins(&mut self, group: ConversationId, admins: &[&str]) -> Result<AppendedEntry> {
        let changes =
            Changes { admins: Some(admins.iter().map(|u| u.to_string()).collect()), ..Changes::default() };
        group_flow!(self, change(group, changes))
    }

    /// A commit that changes nothing but this device's keys (post-compromise security).
    pub async fn update_keys(&mut self, group: ConversationId) -> Result<AppendedEntry> {
        group_flow!(self, change(group, Changes::default()))
    }

    /// Sends to a group.
    pub async fn send_group(&mut self, group: ConversationId, payload: &Payload) -> Result<AppendedEntry> {
        let now = crate::now_ms().unsigned_abs();
        group_flow!(self, send(group, payload, now))
    }

    /// Sends to `peer` in your direct conversation, forward-secret when you both can: in its
    /// MLS group (moving it there first), else as version 1 (see [`route_to`](Self::route_to)).
    pub async fn send_to(&mut self, peer: &str, payload: &Payload, accept_new_key: bool) -> Result<Sent> {
        match self.route_to(peer, accept_new_key).await? {
            DirectRoute::Mls(c) => Ok(Sent::Mls(c, self.send_group(c, payload).await?)),
            _ => Ok(Sent::V1(self.send_payload(peer, payload, accept_new_key).await?)),
        }
    }

    /// Uploads the file at `path` and sends it to `peer`, the way [`send_to`](Self::send_to)
    /// sends a message.
    pub async fn send_file_to(
        &mut self,
        peer: &str,
        path: &std::path::Path,
        accept_new_key: bool,
    ) -> Result<Sent> {
        match self.route_to(peer, accept_new_key).await? {
            DirectRoute::Mls(c) => Ok(Sent::Mls(c, self.send_group_file(c, path).await?)),
            _ => Ok(Sent::V1(self.send_file(peer, path, accept_new_key).await?)),
        }
    }

    /// How the next message to `peer` goes: in the direct conversation's MLS group (moving it
    /// there first when both users can: the introduction goes as a last version 1 message,
    /// then the peer's devices are brought in), or as version 1 while the peer has never had
    /// a device that speaks MLS (a browser before issue 14). Never [`DirectRoute::Move`].
    pub async fn route_to(&mut self, peer: &str, accept_new_key: bool) -> Result<DirectRoute> {
        let peer = crate::parse(peer)?;
        for _ in 0..sealroom_session::groups::ROUTE_TRIES {
            match group_flow!(self, route(&peer))? {
                DirectStep::Introduce(introduction) => {
                    self.send_payload(peer.as_str(), &introduction, accept_new_key).await?;
                }
                DirectStep::Go(route) => return Ok(route),
            }
        }
        Err(ClientError::Protocol(format!("the conversation with {peer} kept changing; try again")))
    }

    /// The newest `limit` messages with `peer`, oldest first: the version 1 history merged,
    /// by the senders' authenticated clocks, with what the history archive keeps of the
    /// conversation since it moved to MLS (the `Upgrade` introduction marks where). Without
    /// the archive (strict forward secrecy) only the version 1 part.
    pub async fn direct_history(&mut self, peer: &str, limit: u32) -> Result<Vec<DirectMessage>> {
        let v1 = self.history(peer, limit).await?;
        let conversation = self.existing_conversation(peer).await?;
        let archived = if self.vault.archive_key().is_some() {
            if self.vault.signing_key().is_some() {
                // This device's own reading goes to the archive first.
                self.sync_groups().await?;
            }
            self.archived_latest(conversation, limit).await?
        } else {
            Vec::new()
        };
        let mut all: Vec<DirectMessage> = v1.into_iter().map(DirectMessage::V1).collect();
        all.extend(archived.into_iter().map(|m| DirectMessage::Mls(conversation, m)));
        // Stable: at equal times the version 1 message (the introduction) stays first.
        all.sort_by_key(DirectMessage::sent_ms);
        let skip = all.len().saturating_sub(limit as usize);
        Ok(all.split_off(skip))
    }

    /// Whether the direct conversation with `peer` has moved to MLS (`not_found` when there
    /// is no conversation).
    pub async fn direct_moved(&self, peer: &str) -> Result<bool> {
        let conversation = self.existing_conversation(peer).await?;
        match self.group(conversation).await {
            Ok(_) => Ok(true),
            Err(ClientError::Api(e)) if e.error == sealroom_protocol::ErrorCode::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The newest `limit` messages of a conversation in the user's history archive, oldest
    /// first (read page by page).
    pub async fn archived_latest(
        &mut self,
        group: ConversationId,
        limit: u32,
    ) -> Result<Vec<ArchivedMessage>> {
        let mut messages = Vec::new();
        let mut before = None;
        while (messages.len() as u32) < limit {
            let want = (limit - messages.len() as u32).min(sealroom_protocol::MAX_ARCHIVE_PAGE);
            let (mut page, more) = self.archived_history(group, before, Some(want)).await?;
            before = page.first().map(|m| m.seq);
            page.append(&mut messages);
            messages = page;
            if !more {
                break;
            }
        }
        Ok(messages)
    }

    /// How many messages this device sent to groups without hearing the relay's answer: they
    /// are kept, and go again (once) with the next sync or send.
    pub fn unanswered_sends(&self) -> usize {
        self.mls.as_ref().map_or(0, |d| d.with(|d| d.outbox().len()))
    }

    /// Reads everything new in this device's groups, in log order.
    pub async fn sync_groups(&mut self) -> Result<Vec<GroupEvent>> {
        group_flow!(self, sync())
    }

    /// Catches up as every device does ([`flows::maintain`]): reads every group's news, commits
    /// what is left to tidy and the updates this device owes, and reads those back.
    pub async fn maintain_groups(&mut self) -> Result<flows::Maintained<ClientError>> {
        group_flow!(self, maintain(crate::now_ms()))
    }

    /// Commits the removal of users who left and of removed devices from this device's groups.
    pub async fn tidy_groups(&mut self) -> Result<usize> {
        group_flow!(self, tidy())
    }

    /// Uploads the file at `path`, encrypted as it goes, and sends it to a group.
    pub async fn send_group_file(
        &mut self,
        group: ConversationId,
        path: &std::path::Path,
    ) -> Result<AppendedEntry> {
        let upload = self.upload_file(path).await?;
        let payload = Payload::File(upload.file);
        let now = crate::now_ms().unsigned_abs();
        let blobs = [upload.blob_id.clone()];
        let sent = async { group_flow!(self, send_with_blobs(group, &payload, &blobs, now)) }.await;
        if sent.is_err() {
            // Withdraw the upload rather than leave it to expire.
            let _ = self.delete_upload(&upload.blob_id).await;
        }
        sent
    }

    /// Downloads the attachment of a group's message at log position `seq` (read from the
    /// user's archive) into `out`; returns what the message says about the file.
    pub async fn get_group_file(
        &mut self,
        group: ConversationId,
        seq: u64,
        out: &std::path::Path,
        overwrite: bool,
    ) -> Result<sealroom_crypto::FileRef> {
        let (page, _) = self.archived_history(group, Some(seq.saturating_add(1)), Some(1)).await?;
        let message = page.into_iter().find(|m| m.seq == seq).ok_or_else(|| {
            ClientError::Usage(format!("no message #{group}/{seq} in your history archive"))
        })?;
        let Ok(Payload::File(file)) = message.payload else {
            return Err(ClientError::Usage(format!("message #{group}/{seq} is not a file")));
        };
        self.download_file(&file, out, overwrite).await?;
        Ok(file)
    }

    /// This device's epoch in a group (`None`: it is not in it).
    pub fn group_epoch(&self, group: ConversationId) -> Option<u64> {
        let dev = self.mls.as_ref()?;
        dev.with(|d| d.group_of(group.0.unsigned_abs()).and_then(|g| d.epoch(&g).ok()))
    }

    /// The member devices of a group as this device sees them: (user, device).
    pub fn group_devices(&self, group: ConversationId) -> Vec<(String, DeviceId)> {
        let Some(dev) = self.mls.as_ref() else { return Vec::new() };
        dev.with(|d| {
            let Some(g) = d.group_of(group.0.unsigned_abs()) else { return Vec::new() };
            d.members(&g).unwrap_or_default().into_iter().map(|m| (m.user, DeviceId(m.device))).collect()
        })
    }

    /// Names or renames a group (any member): a `GroupName` message, so only members read it.
    pub async fn rename_group(&mut self, group: ConversationId, name: &str) -> Result<AppendedEntry> {
        sealroom_crypto::check_group_name(name)
            .map_err(|e| ClientError::Usage(format!("not a group name: {e}")))?;
        self.send_group(group, &Payload::GroupName(name.to_owned())).await
    }

    /// A group's name as this device knows it, else from the archive.
    pub async fn group_name(&mut self, group: ConversationId) -> Result<Option<String>> {
        group_flow!(self, group_name(group))
    }

    /// A page of a group's history from the user's archive (the newest `limit` messages
    /// before position `before`, oldest first), and whether older ones remain.
    pub async fn archived_history(
        &mut self,
        group: ConversationId,
        before: Option<u64>,
        limit: Option<u32>,
    ) -> Result<(Vec<ArchivedMessage>, bool)> {
        let t = Http { client: &self.client, token: Some(&self.token) };
        let cell = Mutex::new(&mut self.vault);
        flows::archived(&t, &cell, group, before, limit).await
    }

    /// Whether the history archive is on for this user.
    pub fn archive_on(&self) -> bool {
        self.vault.archive_on()
    }

    /// Turns the history archive on or off for every device of this user; off deletes it.
    pub async fn set_archive(&mut self, on: bool) -> Result<()> {
        let t = Http { client: &self.client, token: Some(&self.token) };
        let cell = Mutex::new(&mut self.vault);
        flows::set_archive(&t, &cell, on).await
    }

    /// Commits an update in every group where this device owes one (after 100 messages sent
    /// or 7 days, whichever comes first); returns how many.
    pub async fn renew_groups(&mut self) -> Result<usize> {
        self.renew_groups_at(crate::now_ms()).await
    }

    /// [`renew_groups`](Self::renew_groups) as if the clock said `now_ms`.
    pub async fn renew_groups_at(&mut self, now_ms: i64) -> Result<usize> {
        group_flow!(self, renew(now_ms))
    }

    /// Leaves a group.
    pub async fn leave_group(&mut self, group: ConversationId) -> Result<()> {
        self.mls_start().await?;
        let t = Http { client: &self.client, token: Some(&self.token) };
        let dev = self.mls.as_ref().ok_or(ClientError::Protocol("no device".into()))?;
        flows::leave(&t, dev, group).await
    }

    /// What a copy of one of this user's device files (`bytes`, as read from disk) makes of
    /// an entry of a group's log (`entry`, as the relay stores it): the attack
    /// that forward secrecy defeats, done by someone who holds the password, the file and the
    /// relay's data, and who ignores the device's cursor. The payload when the stored state
    /// still decrypts the entry; `None` when it cannot. The state is changed only in memory.
    pub fn read_with_device_file(
        &self,
        bytes: &[u8],
        group: ConversationId,
        entry: &[u8],
    ) -> Result<Option<Payload>> {
        let identity = self.vault.signing_key().ok_or(ClientError::Protocol("no signing key".into()))?;
        let mut device = open_device(identity, &self.me.username, bytes)?;
        let g = device
            .group_of(group.0.unsigned_abs())
            .ok_or_else(|| ClientError::Usage(format!("that device state has no group #{group}")))?;
        let vault = &self.vault;
        let pins = |user: &str| vault.signing_pin(user);
        // Past any cursor: only the cryptography decides.
        match device.process(&g, u64::MAX, false, entry, &pins).map_err(sealroom_session::Error::from)? {
            Processed::Message { payload, .. } => Ok(Some(payload)),
            _ => Ok(None),
        }
    }

    /// This user's groups, as the relay sees them.
    pub async fn groups(&self) -> Result<Vec<GroupState>> {
        Ok(self.get::<Groups>(Groups::PATH).await?.groups)
    }

    /// One group, as the relay sees it.
    pub async fn group(&self, group: ConversationId) -> Result<GroupState> {
        self.get::<GetGroup>(&GetGroup::path(&[&group])).await
    }

    /// This user's devices.
    pub async fn devices(&self) -> Result<Vec<DeviceInfo>> {
        Ok(self.get::<Devices>(Devices::PATH).await?.devices)
    }

    /// Removes one of this user's devices: it may no longer act, and the other members of its
    /// groups commit its removal.
    pub async fn remove_device(&self, device: DeviceId) -> Result<()> {
        self.client.call::<RemoveDevice>(&RemoveDevice::path(&[&device]), Some(&self.token), None).await
    }
}
