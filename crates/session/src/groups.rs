//! Group conversations (MLS) for both clients, over a [`Transport`]: setting up this device,
//! creating groups, committing changes, sending, and reading the log in order.
//!
//! The rules kept here, once:
//! - a device's state is saved ([`DeviceCell::save`]) after every change and before anything
//!   that depends on it leaves (a commit is saved as pending before the relay sees it, so an
//!   acceptance lost on the way is repaired when the device reads its commit back);
//! - a `stale_epoch` refusal means another commit won: the device catches up on the log and
//!   makes its change again, by itself;
//! - users are pinned on first use (identity and signing key) before a Welcome, a commit or an
//!   add that names them is accepted;
//! - a device that finds a group of its user it is not in joins it by external commit;
//! - every message a device sends or decrypts is sealed for the user's history archive and
//!   queued in the device's state before its cursor moves past it, then stored at the relay
//!   (unless the user turned the archive off).

use std::collections::BTreeSet;

use sealroom_crypto::{open_archive_entry, seal_archive_entry, ArchivePlace, Payload, SigningPublic};
use sealroom_protocol::endpoint::{
    AppendToGroup, ArchiveMessages, ArchivedHistory, ClaimKeyPackages, CreateGroup, DeleteArchive, Endpoint,
    GetGroup, GetGroupInfo, GetUser, GroupLog, Groups, LeaveGroup, MoveToMls, PublishSigningKey,
    RegisterDevice, UploadKeyPackages, Welcomes, WelcomesTaken,
};
use sealroom_protocol::{
    AppendRequest, AppendedEntry, ArchiveBytes, ArchiveEntryIn, ArchiveQuery, ArchiveUpload, BlobId,
    CertificateBytes, ClaimKeyPackagesRequest, ClientMsgId, CommitEffects, ConversationId,
    CreateGroupRequest, DeviceId, ErrorCode, GroupId, GroupLogQuery, MlsBytes, PublishSigningKeyRequest,
    RegisterDeviceRequest, SigningKey, UploadKeyPackagesRequest, Username, WelcomesTakenRequest,
};

use crate::mls::{self, Changes, Invitee, MlsDevice, MlsError, Processed, QueuedEntry};
use crate::{flows, unanswered, Error, Transport, VaultCell};

/// One-use key packages a device keeps on the relay.
pub const KEY_PACKAGE_TARGET: u32 = 50;
/// Below this many, a device uploads more.
pub const KEY_PACKAGE_LOW: u32 = 20;
/// A device commits an update after sending this many messages in a group...
pub const UPDATE_AFTER_MESSAGES: u32 = 100;
/// ...or this long after its last commit there, whichever comes first (post-compromise
/// security heals with each one).
pub const UPDATE_AFTER_MS: i64 = 7 * 24 * 3600 * 1000;
/// How many times a change is made again after losing to a concurrent commit.
const RETRIES: usize = 8;

/// Where an adapter keeps this device's MLS state: borrowed briefly, never across an await.
/// The futures need not be `Send` (the browser's IndexedDB writes are not).
#[allow(async_fn_in_trait)]
pub trait DeviceCell {
    /// Runs `f` on the device.
    fn with<R>(&self, f: impl FnOnce(&mut MlsDevice) -> R) -> R;
    /// Writes the device's state to its storage, sealed, and returns once it is there: the
    /// flows send nothing that depends on a change before its save returns (a message key
    /// used, a commit pending, key packages handed out), so a crash never makes a device
    /// use a secret twice or forget one the group relies on.
    async fn save(&self) -> Result<(), Error>;
    /// Keeps events that a flow read while catching up on its own (a send or a change that
    /// lost to a concurrent commit), for the next [`sync`] to return first.
    fn stash(&self, events: Vec<GroupEvent>);
    /// Takes the kept events, oldest first.
    fn take_stashed(&self) -> Vec<GroupEvent>;
}

/// Something that happened in a group, in log order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEvent {
    /// The group conversation.
    pub conversation: ConversationId,
    /// The log position (of the Welcome's commit, for a join).
    pub seq: u64,
    /// When the relay stored it.
    pub ts: i64,
    /// What.
    pub what: EventKind,
}

/// What a [`GroupEvent`] is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// This device joined the group (by a Welcome, or by itself).
    Joined,
    /// A message.
    Message {
        /// The sending user.
        sender: String,
        /// Their sending device.
        device: DeviceId,
        /// The sender's clock (authenticated).
        sent_ms: u64,
        /// What it says.
        payload: Payload,
    },
    /// Membership or keys changed.
    Commit(mls::CommitSummary),
    /// This user is no longer a member (removed, or left on another device): the device
    /// forgot the group.
    Removed,
    /// This device cannot read an entry (it was not yet, or no longer, a member of its epoch).
    Unreadable(String),
    /// An entry or a Welcome was refused (a device not signed by its user, a change by someone
    /// not allowed to make it): the group stops here for this device until it is resolved.
    Refused(String),
    /// A message this device sent without hearing the relay's answer could not be sent again
    /// (the device left the group meanwhile, or the relay refused it): it may or may not have
    /// reached the group the first time. This device forgot it.
    Unconfirmed(String),
    /// A message this device kept because its sending was not confirmed went now (the relay
    /// stored it at the event's position, once): its own copy, for what shows it.
    Resent {
        /// The entry id it was kept (and appended) under.
        entry: [u8; 16],
        /// The sender's clock when it was written.
        sent_ms: u64,
        /// What it says.
        payload: Payload,
    },
}

/// What the relay stores of one message of a conversation in MLS (the "show ciphertext" of a
/// message): the MLS message in the group's log while it is there, else the user's archived
/// copy (sealed under their archive key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredCopy {
    /// The MLS message, as in the log.
    Log(Vec<u8>),
    /// The log no longer has it (every device processed it): the archive entry.
    Archive(Vec<u8>),
    /// Neither: cleared, or never archived (strict forward secrecy).
    Gone,
}

/// What the relay stores of the message at log position `seq` of `conversation`
/// ([`StoredCopy`]). Reads only: no device's cursor moves.
pub async fn stored_copy<T: Transport>(
    t: &T,
    conversation: ConversationId,
    seq: u64,
) -> Result<StoredCopy, T::Error> {
    let q = GroupLogQuery { since: seq.saturating_sub(1), limit: Some(1), device: None };
    let page = t.call::<GroupLog>(&format!("{}{}", GroupLog::PATH, q.to_query()), None).await?;
    if let Some(e) = page.entries.into_iter().find(|e| e.seq == seq && e.conversation == conversation) {
        return Ok(StoredCopy::Log(e.message.as_bytes().to_vec()));
    }
    let q = ArchiveQuery { before: Some(seq.saturating_add(1)), limit: Some(1) };
    let path = format!("{}{}", ArchivedHistory::path(&[&conversation]), q.to_query());
    let page = t.call::<ArchivedHistory>(&path, None).await?;
    Ok(match page.entries.into_iter().find(|e| e.seq == seq) {
        Some(e) => StoredCopy::Archive(e.entry.as_bytes().to_vec()),
        None => StoredCopy::Gone,
    })
}

/// The `group_delivered` receipts for what a device just read: per conversation, up to the
/// newest message another user sent (this user's own are not acknowledged).
pub fn delivered_receipts(events: &[GroupEvent], me: &str) -> Vec<sealroom_protocol::ClientFrame> {
    let mut newest: std::collections::BTreeMap<ConversationId, u64> = Default::default();
    for e in events {
        if matches!(&e.what, EventKind::Message { sender, .. } if sender != me) {
            let up_to = newest.entry(e.conversation).or_default();
            *up_to = (*up_to).max(e.seq);
        }
    }
    newest
        .into_iter()
        .map(|(conversation, up_to)| sealroom_protocol::ClientFrame::GroupDelivered { conversation, up_to })
        .collect()
}

/// A message from the user's history archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedMessage {
    /// Its position in the group's log.
    pub seq: u64,
    /// Who sent it.
    pub sender: String,
    /// The sender's clock.
    pub sent_ms: u64,
    /// What it says, or why it does not open (an entry altered or misplaced at the relay).
    pub payload: Result<Payload, String>,
}

fn signed_out<T: Transport>() -> T::Error {
    Error::SignedOut.into()
}

fn is<T: Transport>(e: &T::Error, code: ErrorCode) -> bool {
    T::api_error(e).is_some_and(|a| a.error == code)
}

fn mls_bytes(bytes: Vec<u8>) -> Result<MlsBytes, Error> {
    Ok(MlsBytes::new(bytes)?)
}

fn name(user: &str) -> Result<Username, Error> {
    Username::parse(user).map_err(|_| Error::Mls(MlsError::Protocol(format!("not a username: {user}"))))
}

/// Sets this device up with the relay: the user's signing key made (saved in the backup), the
/// device registered with its certificate, its key packages topped up, and the signing key
/// published (last: see below).
pub async fn start_device<T: Transport, V: VaultCell, D: DeviceCell>(
    t: &T,
    vault: &V,
    dev: &D,
) -> Result<(), T::Error> {
    if vault.with(|v| v.ensure_signing_key()).ok_or_else(signed_out::<T>)?? {
        flows::save_backup(t, vault).await?;
    }
    let (device, certificate) = (device_of(dev), dev.with(|d| d.certificate().encode()));
    let req = RegisterDeviceRequest {
        device,
        certificate: CertificateBytes::new(certificate).map_err(Error::from)?,
    };
    let info = match t.call::<RegisterDevice>(RegisterDevice::PATH, Some(&req)).await {
        // The id is random: taken means this device's own registration, revoked.
        Err(e) if is::<T>(&e, ErrorCode::Conflict) => return Err(Error::DeviceRemoved.into()),
        other => other?,
    };
    if info.key_packages < KEY_PACKAGE_LOW {
        let n = (KEY_PACKAGE_TARGET - info.key_packages) as usize;
        let (packages, last_resort) = dev
            .with(|d| Ok::<_, MlsError>((d.key_packages(n)?, d.last_resort_key_package()?)))
            .map_err(Error::from)?;
        // The private keys are saved before the packages can be handed out.
        dev.save().await?;
        let req = UploadKeyPackagesRequest {
            key_packages: packages.into_iter().map(mls_bytes).collect::<Result<_, _>>()?,
            last_resort: Some(mls_bytes(last_resort)?),
        };
        t.call::<UploadKeyPackages>(&UploadKeyPackages::path(&[&device]), Some(&req)).await?;
    }
    // Last: peers move their conversations with this user to MLS once they see the signing
    // key, and by then this device has key packages to be added with (a message sent to a
    // group before a device is in it is one that device can never read).
    let public =
        vault.with(|v| v.signing_key().map(|s| s.public_key())).flatten().ok_or_else(signed_out::<T>)?;
    let req = PublishSigningKeyRequest { signing_key: SigningKey(*public.as_bytes()) };
    t.call::<PublishSigningKey>(PublishSigningKey::PATH, Some(&req)).await?;
    Ok(())
}

/// Pins `users` on first use: each one's identity key and signing key from the directory. A
/// user whose keys changed, or who has no signing key yet, is refused.
pub async fn pin_users<T: Transport, V: VaultCell>(
    t: &T,
    vault: &V,
    users: &[String],
) -> Result<(), T::Error> {
    let mut added = false;
    for user in users {
        let user = name(user)?;
        let info = t.call::<GetUser>(&GetUser::path(&[&user]), None).await?;
        let signing = info.signing_key.ok_or_else(|| Error::NoSigningKey(user.clone()))?;
        let signing = SigningPublic::from_bytes(&signing.0).map_err(Error::from)?;
        added |= vault
            .with(|v| v.pin_signing_key(&user, &info.identity_key, signing))
            .ok_or_else(signed_out::<T>)??;
    }
    if added {
        flows::save_backup(t, vault).await?;
    }
    Ok(())
}

/// Runs an MLS operation with the vault's pins; when it names users not pinned yet, pins them
/// and runs it again (it changed nothing the first time). The outer error is the relay's or the
/// vault's; the inner one, what MLS refused.
async fn try_with_pins<T: Transport, V: VaultCell, R>(
    t: &T,
    vault: &V,
    mut op: impl FnMut(&dyn mls::Pins) -> Result<R, MlsError>,
) -> Result<Result<R, MlsError>, T::Error> {
    for _ in 0..3 {
        let pins = |user: &str| vault.with(|v| v.signing_pin(user)).flatten();
        match op(&pins) {
            Err(MlsError::UnpinnedUsers(users)) => pin_users(t, vault, &users).await?,
            other => return Ok(other),
        }
    }
    Ok(Err(MlsError::Protocol("users could not be pinned".into())))
}

/// [`try_with_pins`], with what MLS refused as an error too.
async fn with_pins<T: Transport, V: VaultCell, R>(
    t: &T,
    vault: &V,
    op: impl FnMut(&dyn mls::Pins) -> Result<R, MlsError>,
) -> Result<R, T::Error> {
    Ok(try_with_pins(t, vault, op).await?.map_err(Error::from)?)
}

/// The device's key for a conversation id (ids are positive).
fn key(c: ConversationId) -> u64 {
    c.0.unsigned_abs()
}

fn group_of<T: Transport, D: DeviceCell>(
    dev: &D,
    conversation: ConversationId,
) -> Result<mls::GroupId, T::Error> {
    dev.with(|d| d.group_of(key(conversation))).ok_or_else(|| Error::Mls(MlsError::UnknownGroup).into())
}

/// Creates a group conversation with this user as its admin and adds `members` to it.
pub async fn create_group<T: Transport, V: VaultCell, D: DeviceCell>(
    t: &T,
    vault: &V,
    dev: &D,
    members: &[Username],
    now_ms: u64,
) -> Result<ConversationId, T::Error> {
    let me = vault.with(|v| v.username().to_string()).ok_or_else(signed_out::<T>)?;
    // Everyone named must be able to join before there is a group to leave behind.
    pin_users(t, vault, &members.iter().map(|u| u.to_string()).collect::<Vec<_>>()).await?;
    let (group, info) = dev.with(|d| d.create_group(std::slice::from_ref(&me))).map_err(Error::from)?;
    dev.save().await?;
    let req =
        CreateGroupRequest { group_id: GroupId(group), device: device_of(dev), group_info: mls_bytes(info)? };
    let state = t.call::<CreateGroup>(CreateGroup::PATH, Some(&req)).await?;
    adopt_new_group::<T, D>(dev, &group, state.conversation).await?;
    if !members.is_empty() {
        add_members(t, vault, dev, state.conversation, members, now_ms).await?;
    }
    Ok(state.conversation)
}

/// Records a group this device just made as `conversation`'s: it has nothing in the log yet,
/// so its cursor starts where the device's other groups are.
async fn adopt_new_group<T: Transport, D: DeviceCell>(
    dev: &D,
    group: &mls::GroupId,
    conversation: ConversationId,
) -> Result<(), T::Error> {
    dev.with(|d| {
        let furthest = d.groups().values().map(|g| g.cursor).max().unwrap_or(0);
        d.set_conversation(group, key(conversation))?;
        d.advance_cursor(group, furthest)
    })
    .map_err(Error::from)?;
    dev.save().await?;
    Ok(())
}

/// `users` pinned, with a key package for each of their devices (claimed at the relay).
async fn invitees<T: Transport, V: VaultCell>(
    t: &T,
    vault: &V,
    users: &[Username],
) -> Result<Vec<Invitee>, T::Error> {
    pin_users(t, vault, &users.iter().map(|u| u.to_string()).collect::<Vec<_>>()).await?;
    let req = ClaimKeyPackagesRequest { users: users.to_vec() };
    let claimed = t.call::<ClaimKeyPackages>(ClaimKeyPackages::PATH, Some(&req)).await?;
    Ok(claimed
        .users
        .into_iter()
        .map(|u| Invitee {
            user: u.user.to_string(),
            key_packages: u.key_packages.into_iter().map(|k| k.key_package.into_bytes()).collect(),
        })
        .collect())
}

/// Adds users (with every device they have) to a group: admins only. The group's name, when
/// this device knows it, follows at the sender's clock `now_ms`, for the new members.
pub async fn add_members<T: Transport, V: VaultCell, D: DeviceCell>(
    t: &T,
    vault: &V,
    dev: &D,
    conversation: ConversationId,
    users: &[Username],
    now_ms: u64,
) -> Result<AppendedEntry, T::Error> {
    let add = invitees(t, vault, users).await?;
    let added = change(t, vault, dev, conversation, Changes { add, ..Changes::default() }).await?;
    // The name is an application message: new members can read it only from one sent now.
    if let Some(name) = group_name(t, vault, dev, conversation).await? {
        send(t, vault, dev, conversation, &Payload::GroupName(name), now_ms).await?;
    }
    Ok(added)
}

/// Commits `changes` to a group, catching up and making it again when a concurrent commit won.
pub async fn change<T: Transport, V: VaultCell, D: DeviceCell>(
    t: &T,
    vault: &V,
    dev: &D,
    conversation: ConversationId,
    changes: Changes,
) -> Result<AppendedEntry, T::Error> {
    for _ in 0..RETRIES {
        if let Some(appended) = change_once(t, vault, dev, conversation, &changes).await? {
            return Ok(appended);
        }
    }
    Err(Error::Mls(MlsError::Protocol("the group kept changing; try again".into())).into())
}

/// Commits `changes` once: `None` when a concurrent commit won (the device has caught up since).
async fn change_once<T: Transport, V: VaultCell, D: DeviceCell>(
    t: &T,
    vault: &V,
    dev: &D,
    conversation: ConversationId,
    changes: &Changes,
) -> Result<Option<AppendedEntry>, T::Error> {
    let group = group_of::<T, D>(dev, conversation)?;
    let max = sealroom_protocol::MAX_GROUP_MEMBERS;
    let commit = with_pins(t, vault, |pins| dev.with(|d| d.commit(&group, changes, max, pins))).await?;
    dev.save().await?;
    let req = commit_request(device_of(dev), commit, changes.admins.as_deref())?;
    match append::<T>(t, conversation, &req).await {
        Ok(appended) => {
            // The commit takes effect where the relay put it: the device first reads the
            // entries before it (messages of the epoch it ends, which other members appended
            // meanwhile), and merges it when it reads it back. Merging it now would leave those
            // messages in an epoch the device has already left. (A read cut short leaves it
            // pending; the next sync merges it.)
            let _ = catch_up(t, vault, dev).await;
            dev.with(|d| d.renewed(&group, appended.ts)).map_err(Error::from)?;
            dev.save().await?;
            Ok(Some(appended))
        }
        Err(e) if is::<T>(&e, ErrorCode::StaleEpoch) => {
            dev.with(|d| d.commit_refused(&group)).map_err(Error::from)?;
            dev.save().await?;
            catch_up(t, vault, dev).await?;
            Ok(None)
        }
        Err(e) => {
            // Refused for good: the change is dropped. (A transport failure leaves it pending:
            // it may have landed, and reading the log tells.)
            if T::api_error(&e).is_some() {
                dev.with(|d| d.commit_refused(&group)).map_err(Error::from)?;
                dev.save().await?;
            }
            Err(e)
        }
    }
}

/// Sends `payload` to a group at the sender's clock `now_ms`, catching up and encrypting again
/// when a commit came first.
pub async fn send<T: Transport, V: VaultCell, D: DeviceCell>(
    t: &T,
    vault: &V,
    dev: &D,
    conversation: ConversationId,
    payload: &Payload,
    now_ms: u64,
) -> Result<AppendedEntry, T::Error> {
    send_with_blobs(t, vault, dev, conversation, payload, &[], now_ms).await
}

/// [`send`], for a message that carries attachments (`blobs`, this user's uploads): the relay
/// lets the group's members download them. The message is kept in the device's sealed state
/// ([`mls::PendingSend`]) until the relay's answer is handled; without an answer it stays, and
/// the next [`sync`] or send delivers it (stored once: the relay knows its entry id). Messages
/// kept that way go first.
pub async fn send_with_blobs<T: Transport, V: VaultCell, D: DeviceCell>(
    t: &T,
    vault: &V,
    dev: &D,
    conversation: ConversationId,
    payload: &Payload,
    blobs: &[BlobId],
    now_ms: u64,
) -> Result<AppendedEntry, T::Error> {
    let entry = mls::random_id().map_err(Error::from)?;
    let sent = send_entry(t, vault, dev, conversation, entry, payload, blobs, now_ms).await?;
    after_send(t, vault, dev, &[(conversation, sent.ts)]).await;
    Ok(sent)
}

/// Keeps a message in the device's outbox, saved, before it is sent: a caller that may wait for
/// other flows first (a browser tab queueing behind the device's read) calls this at once, so
/// that the message survives the caller going away; [`send_entry`] then sends it, and
/// otherwise the next [`sync`] does. Nothing happens for an entry already kept.
pub async fn keep_entry<T: Transport, D: DeviceCell>(
    dev: &D,
    conversation: ConversationId,
    entry: [u8; 16],
    payload: &Payload,
    blobs: &[BlobId],
    now_ms: u64,
) -> Result<(), T::Error> {
    // Not checked against the device's groups: the flow it waits for may be the read that
    // joins this group (a new device); `send_entry` decides, and forgets it if it cannot go.
    if dev.with(|d| d.outbox().iter().any(|p| p.client_msg_id == entry)) {
        return Ok(());
    }
    let pending = pending_send::<T>(conversation, entry, payload, blobs, now_ms)?;
    dev.with(|d| d.queue_send(pending));
    dev.save().await?;
    Ok(())
}

/// A message for the device's outbox.
fn pending_send<T: Transport>(
    conversation: ConversationId,
    entry: [u8; 16],
    payload: &Payload,
    blobs: &[BlobId],
    now_ms: u64,
) -> Result<mls::PendingSend, T::Error> {
    Ok(mls::PendingSend {
        conversation: key(conversation),
        client_msg_id: entry,
        sent_ms: now_ms,
        payload: payload.encode().map_err(|e| Error::Mls(MlsError::Protocol(e.to_string())))?,
        blobs: blobs.iter().map(ToString::to_string).collect(),
    })
}

/// Forgets a message kept by [`keep_entry`] that will not be sent after all.
pub async fn drop_entry<T: Transport, D: DeviceCell>(dev: &D, entry: [u8; 16]) -> Result<(), T::Error> {
    dev.with(|d| d.sent(&entry));
    dev.save().await?;
    Ok(())
}

/// [`send_with_blobs`] with the entry id chosen by the caller, so that asking again is safe:
/// a message this device still keeps under that id goes as it was kept, and one the relay
/// stored already is not stored again (the browser's tabs ask the tab that owns the device
/// this way, and ask again when that tab goes away without answering). It returns as soon as
/// the relay stored the message and the device saved that: the caller reports it sent, then
/// runs [`after_send`].
#[allow(clippy::too_many_arguments)]
pub async fn send_entry<T: Transport, V: VaultCell, D: DeviceCell>(
    t: &T,
    vault: &V,
    dev: &D,
    conversation: ConversationId,
    entry: [u8; 16],
    payload: &Payload,
    blobs: &[BlobId],
    now_ms: u64,
) -> Result<AppendedEntry, T::Error> {
    if dev.with(|d| d.group_of(key(conversation))).is_none() {
        // A device that has not joined this group yet (a new browser whose first read is still
        // joining its user's groups): it catches up, which joins every group of its user it is
        // not in, and sends then. Not a member at all: refused below.
        catch_up(t, vault, dev).await?;
    }
    if let Err(e) = group_of::<T, D>(dev, conversation) {
        // Not a member after all: a copy kept for it goes too.
        if dev.with(|d| d.outbox().iter().any(|p| p.client_msg_id == entry)) {
            dev.with(|d| d.sent(&entry));
            dev.save().await?;
        }
        return Err(e);
    }
    let kept = dev.with(|d| d.outbox().iter().find(|p| p.client_msg_id == entry).cloned());
    if let Some(pending) = kept {
        return deliver(t, vault, dev, conversation, &pending, payload, blobs).await;
    }
    let mut refused = Vec::new();
    flush_outbox(t, vault, dev, &mut refused).await?;
    dev.stash(refused);
    let pending = pending_send::<T>(conversation, entry, payload, blobs, now_ms)?;
    // Saved with the encrypted message, before the relay is asked.
    dev.with(|d| d.queue_send(pending.clone()));
    deliver(t, vault, dev, conversation, &pending, payload, blobs).await
}

/// Sends the messages this device kept without an answer, oldest first; one that cannot go is
/// forgotten and reported in `events` as [`EventKind::Unconfirmed`]. Stops at the first that
/// goes without an answer again.
async fn flush_outbox<T: Transport, V: VaultCell, D: DeviceCell>(
    t: &T,
    vault: &V,
    dev: &D,
    events: &mut Vec<GroupEvent>,
) -> Result<(), T::Error> {
    let outbox = dev.with(|d| d.outbox().to_vec());
    let mut sent = Vec::new();
    let flushed = flush_kept(t, vault, dev, outbox, events, &mut sent).await;
    if !sent.is_empty() {
        after_send(t, vault, dev, &sent).await;
    }
    flushed
}

/// [`flush_outbox`]'s sending; what went is added to `sent` (conversation, relay's time).
async fn flush_kept<T: Transport, V: VaultCell, D: DeviceCell>(
    t: &T,
    vault: &V,
    dev: &D,
    outbox: Vec<mls::PendingSend>,
    events: &mut Vec<GroupEvent>,
    sent: &mut Vec<(ConversationId, i64)>,
) -> Result<(), T::Error> {
    for pending in outbox {
        let conversation = ConversationId(i64::try_from(pending.conversation).unwrap_or(i64::MAX));
        let payload = Payload::decode(&pending.payload);
        let blobs: Result<Vec<_>, _> = pending.blobs.iter().map(|b| BlobId::parse(b)).collect();
        let why = match (payload, blobs) {
            _ if dev.with(|d| d.group_of(pending.conversation)).is_none() => {
                "this device is no longer in the group".to_owned()
            }
            (Ok(payload), Ok(blobs)) => {
                match deliver(t, vault, dev, conversation, &pending, &payload, &blobs).await {
                    Ok(at) => {
                        sent.push((conversation, at.ts));
                        let what = EventKind::Resent {
                            entry: pending.client_msg_id,
                            sent_ms: pending.sent_ms,
                            payload,
                        };
                        events.push(GroupEvent { conversation, seq: at.seq, ts: at.ts, what });
                        continue;
                    }
                    Err(e) if unanswered::<T>(&e) => return Err(e),
                    Err(e) => match T::api_error(&e) {
                        Some(a) => format!("{}: {}", a.error, a.message),
                        None => "the group kept changing".to_owned(),
                    },
                }
            }
            _ => "it no longer reads".to_owned(),
        };
        dev.with(|d| d.sent(&pending.client_msg_id));
        dev.save().await?;
        events.push(GroupEvent {
            conversation,
            seq: 0,
            ts: 0,
            what: EventKind::Unconfirmed(format!(
                "a message whose sending was not confirmed could not be sent again ({why}); \
                 it may not have reached the group"
            )),
        });
    }
    Ok(())
}

/// Sends a kept message in the group's current epoch (encrypting it again after a commit came
/// first), then queues its archive copy and forgets it, in one save ([`after_send`] uploads the
/// copy). A refusal forgets it too; without an answer it stays.
async fn deliver<T: Transport, V: VaultCell, D: DeviceCell>(
    t: &T,
    vault: &V,
    dev: &D,
    conversation: ConversationId,
    pending: &mls::PendingSend,
    payload: &Payload,
    blobs: &[BlobId],
) -> Result<AppendedEntry, T::Error> {
    let sent = async {
        let group = group_of::<T, D>(dev, conversation)?;
        let device = device_of(dev);
        let now_ms = pending.sent_ms;
        for _ in 0..RETRIES {
            let message = dev.with(|d| d.encrypt(&group, now_ms, payload));
            let message = match message {
                Ok(m) => m,
                Err(MlsError::PendingCommit) => {
                    // A commit whose answer was lost: the log says whether it landed.
                    catch_up(t, vault, dev).await?;
                    if dev.with(|d| d.encrypt(&group, now_ms, payload)) == Err(MlsError::PendingCommit) {
                        dev.with(|d| d.commit_refused(&group)).map_err(Error::from)?;
                    }
                    continue;
                }
                Err(e) => return Err(Error::from(e).into()),
            };
            dev.save().await?;
            let req = AppendRequest {
                device,
                client_msg_id: ClientMsgId(pending.client_msg_id),
                message: mls_bytes(message)?,
                commit: None,
                blobs: blobs.to_vec(),
            };
            match append::<T>(t, conversation, &req).await {
                Ok(appended) => {
                    let me = vault.with(|v| v.username().to_string()).ok_or_else(signed_out::<T>)?;
                    let sent = [(conversation, appended.seq, me, now_ms, payload.clone())];
                    // In the same write that forgets the kept message (below).
                    archive_messages(vault, dev, sent)?;
                    dev.with(|d| d.counted_send(&group, appended.ts)).map_err(Error::from)?;
                    return Ok(appended);
                }
                Err(e) if is::<T>(&e, ErrorCode::StaleEpoch) => {
                    catch_up(t, vault, dev).await?;
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::Mls(MlsError::Protocol("the group kept changing; try again".into())).into())
    }
    .await;
    match &sent {
        Err(e) if unanswered::<T>(e) => {}
        _ => {
            dev.with(|d| d.sent(&pending.client_msg_id));
            dev.save().await?;
        }
    }
    sent
}

/// What follows a send once it is reported sent ([`send`] does it itself; a caller of
/// [`send_entry`] does it after telling its user): the archive upload of what was sent and an
/// update the group is due. Neither fails the send: what fails now the next sync or send does.
pub async fn after_send<T: Transport, V: VaultCell, D: DeviceCell>(
    t: &T,
    vault: &V,
    dev: &D,
    sent: &[(ConversationId, i64)],
) {
    let _ = flush_archive(t, vault, dev).await;
    for (conversation, ts) in sent {
        if let Some(group) = dev.with(|d| d.group_of(key(*conversation))) {
            if update_due(dev, &group, *ts) {
                let _ = change(t, vault, dev, *conversation, Changes::default()).await;
            }
        }
    }
}

/// Leaves a group: the relay stops routing it to this user at once, a remaining member commits
/// the removal, and this device forgets it.
pub async fn leave<T: Transport, D: DeviceCell>(
    t: &T,
    dev: &D,
    conversation: ConversationId,
) -> Result<(), T::Error> {
    t.call::<LeaveGroup>(&LeaveGroup::path(&[&conversation]), None).await?;
    if let Some(group) = dev.with(|d| d.group_of(key(conversation))) {
        dev.with(|d| d.forget_group(&group)).map_err(Error::from)?;
        dev.save().await?;
    }
    Ok(())
}

/// Joins a group of this user's by external commit (a new device, or one never added).
async fn join_external<T: Transport, V: VaultCell, D: DeviceCell>(
    t: &T,
    vault: &V,
    dev: &D,
    conversation: ConversationId,
) -> Result<Option<GroupEvent>, T::Error> {
    for _ in 0..RETRIES {
        let info = match t.call::<GetGroupInfo>(&GetGroupInfo::path(&[&conversation]), None).await {
            // No longer this user's group (removed since the list was read).
            Err(e) if is::<T>(&e, ErrorCode::NotFound) => return Ok(None),
            other => other?,
        };
        // A join the group refuses (this user has no device in it yet: a Welcome is on its
        // way, or an admin must add them again) is no error of the sync that tried it: the
        // next one tries again.
        let joined =
            try_with_pins(t, vault, |pins| dev.with(|d| d.join_external(info.group_info.as_bytes(), pins)))
                .await?;
        let Ok(commit) = joined else { return Ok(None) };
        let group = commit.group;
        dev.with(|d| d.set_conversation(&group, key(conversation))).map_err(Error::from)?;
        dev.save().await?;
        let req = commit_request(device_of(dev), commit, None)?;
        match append::<T>(t, conversation, &req).await {
            Ok(a) => {
                dev.with(|d| {
                    d.commit_accepted(&group)?;
                    d.renewed(&group, a.ts)?;
                    d.advance_cursor(&group, a.seq)
                })
                .map_err(Error::from)?;
                dev.save().await?;
                return Ok(Some(GroupEvent { conversation, seq: a.seq, ts: a.ts, what: EventKind::Joined }));
            }
            Err(e) => {
                dev.with(|d| d.forget_group(&group)).map_err(Error::from)?;
                dev.save().await?;
                if !is::<T>(&e, ErrorCode::StaleEpoch) {
                    return Err(e);
                }
            }
        }
    }
    Ok(None)
}

/// This device's id.
fn device_of<D: DeviceCell>(dev: &D) -> DeviceId {
    DeviceId(dev.with(|d| d.device_id()))
}

/// A fresh id for a log entry.
fn new_entry_id() -> Result<ClientMsgId, Error> {
    Ok(ClientMsgId(mls::random_id()?))
}

/// A commit as the relay takes it: the message, and what it changes at the relay.
fn commit_request(
    device: DeviceId,
    commit: mls::Commit,
    admins: Option<&[String]>,
) -> Result<AppendRequest, Error> {
    let effects = CommitEffects {
        group_info: mls_bytes(commit.group_info)?,
        welcome: commit.welcome.map(mls_bytes).transpose()?,
        welcome_devices: commit.welcome_devices.into_iter().map(DeviceId).collect(),
        added: commit.added_users.iter().map(|u| name(u)).collect::<Result<_, _>>()?,
        removed: commit.removed_users.iter().map(|u| name(u)).collect::<Result<_, _>>()?,
        admins: admins.map(|a| a.iter().map(|u| name(u)).collect()).transpose()?,
    };
    Ok(AppendRequest {
        device,
        client_msg_id: new_entry_id()?,
        message: mls_bytes(commit.message)?,
        commit: Some(effects),
        blobs: Vec::new(),
    })
}

/// Appends an entry to a group's log.
async fn append<T: Transport>(
    t: &T,
    conversation: ConversationId,
    req: &AppendRequest,
) -> Result<AppendedEntry, T::Error> {
    t.call::<AppendToGroup>(&AppendToGroup::path(&[&conversation]), Some(req)).await
}

/// [`sync`] inside another flow: what it reads is kept for the caller's next `sync`.
async fn catch_up<T: Transport, V: VaultCell, D: DeviceCell>(
    t: &T,
    vault: &V,
    dev: &D,
) -> Result<(), T::Error> {
    let mut events = Vec::new();
    let read = read_log(t, vault, dev, &mut events).await;
    dev.stash(events);
    read
}

/// Catches this device up: joins the groups its Welcomes are for, then processes every new
/// log entry of its groups in order (joining by itself any group of its user it is not in).
/// What other flows read while catching up on their own comes first.
pub async fn sync<T: Transport, V: VaultCell, D: DeviceCell>(
    t: &T,
    vault: &V,
    dev: &D,
) -> Result<Vec<GroupEvent>, T::Error> {
    let mut events = dev.take_stashed();
    let read = match read_log(t, vault, dev, &mut events).await {
        // Then what this device sent without an answer, now that it is up to date.
        Ok(()) => flush_outbox(t, vault, dev, &mut events).await,
        Err(e) => Err(e),
    };
    match read {
        Ok(()) => Ok(events),
        Err(e) => {
            // What was read before the failure is not read again (the cursors moved past it):
            // the next sync returns it.
            dev.stash(events);
            Err(e)
        }
    }
}

/// Reads the log into `events`; on an error, what it read until then is in `events`.
async fn read_log<T: Transport, V: VaultCell, D: DeviceCell>(
    t: &T,
    vault: &V,
    dev: &D,
    events: &mut Vec<GroupEvent>,
) -> Result<(), T::Error> {
    let device = device_of(dev);
    let mut tried_joining = BTreeSet::new();
    let mut stuck = BTreeSet::new();
    for _ in 0..RETRIES {
        let deferred = take_welcomes(t, vault, dev, device, events).await?;
        // The relay's list of this user's groups: a group not on it is one the user left or
        // was removed from (the log still shows them its entries up to there, and the commit
        // that removed them); one on it that this device is not in, it joins by itself.
        let listed: BTreeSet<u64> =
            t.call::<Groups>(Groups::PATH, None).await?.groups.iter().map(|g| key(g.conversation)).collect();
        // Every entry up to here was handled in this pass (processed, or of a group this
        // device is not in): the next page starts after it even when no cursor moved.
        let mut passed = 0;
        loop {
            let since = dev.with(|d| {
                d.groups()
                    .iter()
                    .filter(|(g, e)| e.conversation.is_some() && !stuck.contains(*g))
                    .map(|(_, e)| e.cursor)
                    .min()
            });
            let since = since.unwrap_or(0).max(passed);
            let q = GroupLogQuery { since, limit: None, device: Some(device) };
            let page = t.call::<GroupLog>(&format!("{}{}", GroupLog::PATH, q.to_query()), None).await?;
            let Some(last) = page.entries.last().map(|e| e.seq) else { break };
            passed = last;
            for e in page.entries {
                let group = match dev.with(|d| d.group_of(key(e.conversation))) {
                    Some(g) => g,
                    None => {
                        if listed.contains(&key(e.conversation)) && tried_joining.insert(e.conversation) {
                            events.extend(join_external(t, vault, dev, e.conversation).await?);
                        }
                        continue;
                    }
                };
                if stuck.contains(&group) {
                    continue;
                }
                let own = e.device == device;
                let processed = try_with_pins(t, vault, |pins| {
                    dev.with(|d| d.process(&group, e.seq, own, e.message.as_bytes(), pins))
                })
                .await?;
                let what = match processed {
                    Ok(Processed::Message { sender, device, sent_ms, payload }) => {
                        // Queued for the archive with the cursor's move past it (saved together).
                        let read = [(e.conversation, e.seq, sender.clone(), sent_ms, payload.clone())];
                        archive_messages(vault, dev, read)?;
                        Some(EventKind::Message { sender, device: DeviceId(device), sent_ms, payload })
                    }
                    Ok(Processed::Commit(summary)) => {
                        if summary.self_removed {
                            dev.with(|d| d.forget_group(&group)).map_err(Error::from)?;
                        }
                        Some(EventKind::Commit(summary))
                    }
                    Ok(Processed::Unreadable { reason }) => Some(EventKind::Unreadable(reason)),
                    Ok(Processed::Own | Processed::Skipped) => None,
                    Err(err) => {
                        stuck.insert(group);
                        Some(EventKind::Refused(err.to_string()))
                    }
                };
                if !stuck.contains(&group) {
                    // The device's state moved with the entry; so does its cursor (a failure
                    // later in the page saves both or neither). A forgotten group has none.
                    let _ = dev.with(|d| d.advance_cursor(&group, e.seq));
                }
                if let Some(what) = what {
                    events.push(GroupEvent { conversation: e.conversation, seq: e.seq, ts: e.ts, what });
                }
            }
            // Every group not stuck has processed whatever the page held of it.
            dev.with(|d| {
                let groups: Vec<mls::GroupId> =
                    d.groups().keys().filter(|g| !stuck.contains(*g)).copied().collect();
                for g in groups {
                    let _ = d.advance_cursor(&g, last);
                }
            });
            dev.save().await?;
            // Even after a last page, once more: the empty answer tells the relay how far this
            // device has read (the relay deletes what every device passed).
        }
        let gone: Vec<(mls::GroupId, u64)> = dev.with(|d| {
            d.groups()
                .iter()
                .filter_map(|(g, e)| e.conversation.filter(|c| !listed.contains(c)).map(|c| (*g, c)))
                .collect()
        });
        for (group, conversation) in gone {
            dev.with(|d| d.forget_group(&group)).map_err(Error::from)?;
            let conversation = ConversationId(i64::try_from(conversation).unwrap_or(i64::MAX));
            events.push(GroupEvent { conversation, seq: 0, ts: 0, what: EventKind::Removed });
        }
        let unknown: Vec<ConversationId> = listed
            .iter()
            .filter(|c| dev.with(|d| d.group_of(**c)).is_none())
            .map(|c| ConversationId(i64::try_from(*c).unwrap_or(i64::MAX)))
            .filter(|c| tried_joining.insert(*c))
            .collect();
        if unknown.is_empty() && !deferred {
            break;
        }
        for conversation in unknown {
            events.extend(join_external(t, vault, dev, conversation).await?);
        }
    }
    dev.save().await?;
    flush_archive(t, vault, dev).await?;
    Ok(())
}

/// Joins the groups this device's Welcomes are for. A Welcome for a group the device is still
/// in, from after its cursor there, is kept for later (the device was removed and added again,
/// and has not read its removal yet): `true` then, and the caller reads the log and comes back.
async fn take_welcomes<T: Transport, V: VaultCell, D: DeviceCell>(
    t: &T,
    vault: &V,
    dev: &D,
    device: DeviceId,
    events: &mut Vec<GroupEvent>,
) -> Result<bool, T::Error> {
    let list = t.call::<Welcomes>(&Welcomes::path(&[&device]), None).await?;
    let mut deferred = false;
    let mut taken = None;
    for w in list.welcomes {
        let known =
            dev.with(|d| d.group_of(key(w.conversation)).map(|g| d.groups().get(&g).map(|e| e.cursor)));
        match known {
            Some(Some(cursor)) if w.seq > cursor => {
                deferred = true;
                // Welcomes are taken in order: none after this one either, for now.
                break;
            }
            Some(_) => {}
            None => {
                let joined =
                    try_with_pins(t, vault, |pins| dev.with(|d| d.join(w.welcome.as_bytes(), pins))).await?;
                let what = match joined {
                    Ok(group) => {
                        dev.with(|d| {
                            d.set_conversation(&group, key(w.conversation))?;
                            d.advance_cursor(&group, w.seq)
                        })
                        .map_err(Error::from)?;
                        EventKind::Joined
                    }
                    Err(e) => EventKind::Refused(e.to_string()),
                };
                events.push(GroupEvent { conversation: w.conversation, seq: w.seq, ts: 0, what });
            }
        }
        taken = Some(w.id);
    }
    if let Some(up_to) = taken {
        dev.save().await?;
        t.call::<WelcomesTaken>(&WelcomesTaken::path(&[&device]), Some(&WelcomesTakenRequest { up_to }))
            .await?;
    }
    Ok(deferred)
}

/// Seals messages for the user's history archive and queues them in the device's state (the
/// caller saves it); a `GroupName` also becomes the group's name on this device. Nothing is
/// sealed while the archive is off.
fn archive_messages<V: VaultCell, D: DeviceCell>(
    vault: &V,
    dev: &D,
    messages: impl IntoIterator<Item = (ConversationId, u64, String, u64, Payload)>,
) -> Result<(), Error> {
    let (me, archive_key) =
        vault.with(|v| (v.username().to_string(), v.archive_key().cloned())).ok_or(Error::SignedOut)?;
    let mut queued = Vec::new();
    for (conversation, seq, sender, sent_ms, payload) in messages {
        if let Payload::GroupName(name) = &payload {
            dev.with(|d| d.set_name(key(conversation), name));
        }
        let Some(archive_key) = &archive_key else { continue };
        let place = ArchivePlace {
            owner: me.clone(),
            conversation_id: key(conversation),
            log_sequence: seq,
            sender,
            sent_ms,
        };
        let entry = seal_archive_entry(archive_key, &place, &payload)?;
        queued.push(QueuedEntry {
            conversation: place.conversation_id,
            seq,
            sender: place.sender,
            sent_ms,
            entry,
        });
    }
    dev.with(|d| d.queue_archive(queued));
    Ok(())
}

/// Stores the device's queued archive entries at the relay, a batch at a time; an entry the
/// relay refuses for good is dropped (an upload of several is then retried one by one, so one
/// refusal drops only its own entry). With the archive off, the queue is dropped.
pub async fn flush_archive<T: Transport, V: VaultCell, D: DeviceCell>(
    t: &T,
    vault: &V,
    dev: &D,
) -> Result<usize, T::Error> {
    let on = vault.with(|v| v.archive_key().is_some()).ok_or_else(signed_out::<T>)?;
    let mut stored = 0;
    loop {
        let batch: Vec<QueuedEntry> = dev.with(|d| {
            if !on {
                let n = d.archive_queue().len();
                d.archive_done(n);
            }
            d.archive_queue().iter().take(sealroom_protocol::MAX_ARCHIVE_BATCH).cloned().collect()
        });
        if batch.is_empty() {
            dev.save().await?;
            return Ok(stored);
        }
        let entries: Vec<ArchiveEntryIn> = batch.iter().filter_map(wire_entry).collect();
        let upload = |entries: Vec<ArchiveEntryIn>| async move {
            t.call::<ArchiveMessages>(ArchiveMessages::PATH, Some(&ArchiveUpload { entries })).await
        };
        match upload(entries.clone()).await {
            Ok(r) => stored += r.stored as usize,
            Err(e) if T::api_error(&e).is_some() && entries.len() > 1 => {
                for one in entries {
                    match upload(vec![one]).await {
                        Ok(r) => stored += r.stored as usize,
                        Err(e) if T::api_error(&e).is_some() => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            Err(e) if T::api_error(&e).is_some() => {}
            Err(e) => return Err(e),
        }
        dev.with(|d| d.archive_done(batch.len()));
        dev.save().await?;
    }
}

/// A queued entry as the relay takes it (`None` for one that cannot be sent: dropped).
fn wire_entry(q: &QueuedEntry) -> Option<ArchiveEntryIn> {
    Some(ArchiveEntryIn {
        conversation: ConversationId(i64::try_from(q.conversation).ok()?),
        seq: q.seq,
        sender: Username::parse(&q.sender).ok()?,
        sent_ms: q.sent_ms,
        entry: ArchiveBytes::new(q.entry.clone()).ok()?,
    })
}

/// A page of a conversation's history from the user's archive: the newest `limit` messages
/// before position `before`, oldest first, and whether older ones remain.
pub async fn archived<T: Transport, V: VaultCell>(
    t: &T,
    vault: &V,
    conversation: ConversationId,
    before: Option<u64>,
    limit: Option<u32>,
) -> Result<(Vec<ArchivedMessage>, bool), T::Error> {
    let (me, archive_key) =
        vault.with(|v| (v.username().to_string(), v.archive_key().cloned())).ok_or_else(signed_out::<T>)?;
    let archive_key = archive_key.ok_or(Error::ArchiveOff)?;
    let q = ArchiveQuery { before, limit };
    let path = format!("{}{}", ArchivedHistory::path(&[&conversation]), q.to_query());
    let page = t.call::<ArchivedHistory>(&path, None).await?;
    let messages = page
        .entries
        .into_iter()
        .map(|e| {
            let place = ArchivePlace {
                owner: me.clone(),
                conversation_id: key(conversation),
                log_sequence: e.seq,
                sender: e.sender.to_string(),
                sent_ms: e.sent_ms,
            };
            let payload =
                open_archive_entry(&archive_key, &place, e.entry.as_bytes()).map_err(|e| e.to_string());
            ArchivedMessage { seq: e.seq, sender: place.sender, sent_ms: e.sent_ms, payload }
        })
        .collect();
    Ok((messages, page.more))
}

/// Most archive pages read looking for a group's name.
const NAME_PAGES: usize = 10;

/// A group's name: as this device knows it, else the newest `GroupName` in the archive (a
/// device that joined after the name was set), remembered from then on.
pub async fn group_name<T: Transport, V: VaultCell, D: DeviceCell>(
    t: &T,
    vault: &V,
    dev: &D,
    conversation: ConversationId,
) -> Result<Option<String>, T::Error> {
    if let Some(name) = dev.with(|d| d.name_of(key(conversation)).map(str::to_owned)) {
        return Ok(Some(name));
    }
    if vault.with(|v| v.archive_key().is_none()).ok_or_else(signed_out::<T>)? {
        return Ok(None);
    }
    let mut before = None;
    for _ in 0..NAME_PAGES {
        let (page, more) = archived(t, vault, conversation, before, None).await?;
        let named = page.iter().rev().find_map(|m| match &m.payload {
            Ok(Payload::GroupName(n)) => Some(n.clone()),
            _ => None,
        });
        if let Some(name) = named {
            dev.with(|d| d.set_name(key(conversation), &name));
            dev.save().await?;
            return Ok(Some(name));
        }
        match page.first() {
            Some(first) if more => before = Some(first.seq),
            _ => break,
        }
    }
    Ok(None)
}

/// Turns the user's history archive on or off (for all their devices, through the key
/// backup); turning it off deletes what the relay holds of it.
pub async fn set_archive<T: Transport, V: VaultCell>(t: &T, vault: &V, on: bool) -> Result<(), T::Error> {
    if vault.with(|v| v.set_archive(on)).ok_or_else(signed_out::<T>)?? {
        flows::save_backup(t, vault).await?;
    }
    if !on {
        t.call::<DeleteArchive>(DeleteArchive::PATH, None).await?;
    }
    Ok(())
}

/// Whether this device owes a group an update at the relay's time `ts` (the 100 messages
/// or 7 days rule).
fn update_due<D: DeviceCell>(dev: &D, group: &mls::GroupId, ts: i64) -> bool {
    dev.with(|d| {
        d.groups().get(group).is_some_and(|e| {
            e.sent >= UPDATE_AFTER_MESSAGES
                || (e.renewed_ts != 0 && ts.saturating_sub(e.renewed_ts) >= UPDATE_AFTER_MS)
        })
    })
}

/// Commits an update in every group where this device owes one at `now_ms` (the 100 messages
/// or 7 days rule); a group whose time of joining it does not know yet starts counting now.
/// Returns how many it committed.
pub async fn renew<T: Transport, V: VaultCell, D: DeviceCell>(
    t: &T,
    vault: &V,
    dev: &D,
    now_ms: i64,
) -> Result<usize, T::Error> {
    let groups: Vec<(mls::GroupId, u64)> =
        dev.with(|d| d.groups().iter().filter_map(|(g, e)| e.conversation.map(|c| (*g, c))).collect());
    let mut committed = 0;
    for (group, conversation) in groups {
        let unknown = dev.with(|d| d.groups().get(&group).is_some_and(|e| e.renewed_ts == 0));
        if unknown {
            dev.with(|d| d.renewed(&group, now_ms)).map_err(Error::from)?;
            dev.save().await?;
            continue;
        }
        if update_due(dev, &group, now_ms) {
            let conversation = ConversationId(i64::try_from(conversation).unwrap_or(i64::MAX));
            change(t, vault, dev, conversation, Changes::default()).await?;
            committed += 1;
        }
    }
    Ok(committed)
}

/// What [`maintain`] read, and the first thing that failed after its first read.
#[derive(Debug)]
pub struct Maintained<E> {
    /// Everything read, in log order (the first read's, then the read after the commits).
    pub events: Vec<GroupEvent>,
    /// Tidying, renewing or the read after them failed: nothing read is lost (it is in
    /// `events`), and what was not done is tried again by the next `maintain`.
    pub failed: Option<E>,
}

/// What a device does whenever it catches up, in the browser and in the CLI alike: reads every
/// group's news ([`sync`]), commits what is left to tidy ([`tidy`]: users who left, removed
/// devices) and the updates it owes ([`renew`]), and reads those commits back. Only the first
/// read's failure is an error: after it, what was read is always returned, with what failed.
pub async fn maintain<T: Transport, V: VaultCell, D: DeviceCell>(
    t: &T,
    vault: &V,
    dev: &D,
    now_ms: i64,
) -> Result<Maintained<T::Error>, T::Error> {
    let mut events = sync(t, vault, dev).await?;
    let mut failed = None;
    let mut committed = 0;
    match tidy(t, vault, dev).await {
        Ok(n) => committed += n,
        Err(e) => failed = Some(e),
    }
    match renew(t, vault, dev, now_ms).await {
        Ok(n) => committed += n,
        Err(e) => failed = failed.or(Some(e)),
    }
    if committed > 0 {
        match sync(t, vault, dev).await {
            Ok(more) => events.extend(more),
            // What that read got before failing, the next sync returns (stashed by `sync`).
            Err(e) => failed = failed.or(Some(e)),
        }
    }
    Ok(Maintained { events, failed })
}

/// Commits, in each group this device is in, the removal of users who left and of removed
/// devices (anyone may; whoever is first does it, the others find nothing left to do).
pub async fn tidy<T: Transport, V: VaultCell, D: DeviceCell>(
    t: &T,
    vault: &V,
    dev: &D,
) -> Result<usize, T::Error> {
    let mut commits = 0;
    for _ in 0..RETRIES {
        let groups = t.call::<Groups>(Groups::PATH, None).await?.groups;
        let mut todo = None;
        for g in &groups {
            let Some(group) = dev.with(|d| d.group_of(key(g.conversation))) else { continue };
            let members = dev.with(|d| d.members(&group)).map_err(Error::from)?;
            let users: BTreeSet<String> = g.members.iter().map(|m| m.user.to_string()).collect();
            let gone: BTreeSet<String> =
                members.iter().map(|m| m.user.clone()).filter(|u| !users.contains(u)).collect();
            let devices: Vec<mls::DeviceId> = members
                .iter()
                .filter(|m| users.contains(&m.user) && g.removed_devices.iter().any(|d| d.0 == m.device))
                .map(|m| m.device)
                .collect();
            if !gone.is_empty() || !devices.is_empty() {
                let changes = Changes {
                    departed: gone.into_iter().collect(),
                    remove_devices: devices,
                    ..Changes::default()
                };
                todo = Some((g.conversation, changes));
                break;
            }
        }
        let Some((conversation, changes)) = todo else { return Ok(commits) };
        // Losing to another member's commit is fine: the next round sees what is left to do.
        if change_once(t, vault, dev, conversation, &changes).await?.is_some() {
            commits += 1;
        }
    }
    Ok(commits)
}

/// How a message to a peer goes ([`direct`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectRoute {
    /// In the direct conversation's MLS group, where this device is.
    Mls(ConversationId),
    /// As a version 1 message: the peer has never had a device that speaks MLS.
    V1(ConversationId),
    /// Neither yet: the conversation moves to MLS now ([`move_direct`]).
    Move(ConversationId),
}

/// The direct conversation with `peer`, and how a message to them goes: in its MLS group when
/// it has one (this device joins it first if it is not in it yet, and brings in the peer's
/// devices if none is there); as version 1 while the peer has no signing key (none of their
/// devices speaks MLS yet); else it is time to move it ([`DirectRoute::Move`]).
pub async fn direct<T: Transport, V: VaultCell, D: DeviceCell>(
    t: &T,
    vault: &V,
    dev: &D,
    peer: &Username,
) -> Result<DirectRoute, T::Error> {
    let conversation = flows::open_direct(t, vault, peer).await?;
    if dev.with(|d| d.group_of(key(conversation))).is_none() {
        match t.call::<GetGroup>(&GetGroup::path(&[&conversation]), None).await {
            // Moved already, by the peer or another device of this user: join it.
            Ok(_) => {
                catch_up(t, vault, dev).await?;
                if dev.with(|d| d.group_of(key(conversation))).is_none() {
                    return Err(Error::Mls(MlsError::Protocol(format!(
                        "the conversation with {peer} has moved to MLS, and this device could not join it yet; try again"
                    )))
                    .into());
                }
            }
            Err(e) if is::<T>(&e, ErrorCode::NotFound) => {
                let info = t.call::<GetUser>(&GetUser::path(&[peer]), None).await?;
                return Ok(if info.signing_key.is_some() {
                    DirectRoute::Move(conversation)
                } else {
                    DirectRoute::V1(conversation)
                });
            }
            Err(e) => return Err(e),
        }
    }
    let group = group_of::<T, D>(dev, conversation)?;
    let peer_in =
        dev.with(|d| d.members(&group)).map_err(Error::from)?.iter().any(|m| m.user == peer.as_str());
    if !peer_in {
        match add_devices_of(t, vault, dev, conversation, peer).await {
            // The peer has no device to bring in yet, and was asked often: the next send asks
            // again. The message still goes; their next device joins by itself.
            Err(e) if is::<T>(&e, ErrorCode::RateLimited) => {}
            other => other?,
        }
    }
    Ok(DirectRoute::Mls(conversation))
}

/// One step towards sending to `peer` ([`route`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirectStep {
    /// The way is known: in MLS, or as version 1 (never [`DirectRoute::Move`]).
    Go(DirectRoute),
    /// The conversation just moved to MLS: send this introduction as a version 1 message (it
    /// carries this user's signing key and the group), then ask again.
    Introduce(Payload),
}

/// How a message to `peer` goes, moving the conversation to MLS first when both users can
/// ([`direct`], then [`move_direct`]): the caller sends an [`DirectStep::Introduce`] as
/// version 1 and asks again, at most [`ROUTE_TRIES`] times.
pub async fn route<T: Transport, V: VaultCell, D: DeviceCell>(
    t: &T,
    vault: &V,
    dev: &D,
    peer: &Username,
) -> Result<DirectStep, T::Error> {
    match direct(t, vault, dev, peer).await? {
        DirectRoute::Move(c) => Ok(match move_direct(t, vault, dev, c, peer).await? {
            Some(introduction) => DirectStep::Introduce(introduction),
            // The peer (or another device of this user) moved it first: join theirs.
            None => DirectStep::Go(direct(t, vault, dev, peer).await?),
        }),
        route => Ok(DirectStep::Go(route)),
    }
}

/// How often [`route`] is asked for one message before giving up (the conversation kept
/// changing under it).
pub const ROUTE_TRIES: usize = 3;

/// Brings every device `user` has into a group they are a member of already (a direct
/// conversation's peer).
async fn add_devices_of<T: Transport, V: VaultCell, D: DeviceCell>(
    t: &T,
    vault: &V,
    dev: &D,
    conversation: ConversationId,
    user: &Username,
) -> Result<(), T::Error> {
    let add = invitees(t, vault, std::slice::from_ref(user)).await?;
    if add.iter().any(|i| !i.key_packages.is_empty()) {
        change(t, vault, dev, conversation, Changes { add, ..Changes::default() }).await?;
    }
    Ok(())
}

/// Moves the direct conversation with `peer` to MLS: a group of the two users (both admins)
/// with this device in it, attached to the conversation at the relay. Returns the introduction
/// the caller sends as a version 1 message before anything else (an `Upgrade` payload: this
/// user's signing key, authenticated by the pair key, and the group), after which [`direct`]
/// brings in the peer's devices. `None` when the peer (or another device of this user) moved
/// it first: [`direct`] joins theirs.
pub async fn move_direct<T: Transport, V: VaultCell, D: DeviceCell>(
    t: &T,
    vault: &V,
    dev: &D,
    conversation: ConversationId,
    peer: &Username,
) -> Result<Option<Payload>, T::Error> {
    let (me, signing) = vault
        .with(|v| (v.username().to_string(), v.signing_key().map(|s| s.public_key())))
        .ok_or_else(signed_out::<T>)?;
    let signing =
        signing.ok_or(Error::Mls(MlsError::Protocol("this device is not set up for MLS".into())))?;
    let (group, info) = dev.with(|d| d.create_group(&[me, peer.to_string()])).map_err(Error::from)?;
    dev.save().await?;
    let req =
        CreateGroupRequest { group_id: GroupId(group), device: device_of(dev), group_info: mls_bytes(info)? };
    match t.call::<MoveToMls>(&MoveToMls::path(&[&conversation]), Some(&req)).await {
        Ok(_) => {
            adopt_new_group::<T, D>(dev, &group, conversation).await?;
            Ok(Some(Payload::Upgrade { signing_key: signing, group_id: group }))
        }
        Err(e) if is::<T>(&e, ErrorCode::Conflict) => {
            dev.with(|d| d.forget_group(&group)).map_err(Error::from)?;
            dev.save().await?;
            Ok(None)
        }
        Err(e) => {
            dev.with(|d| d.forget_group(&group)).map_err(Error::from)?;
            dev.save().await?;
            Err(e)
        }
    }
}
