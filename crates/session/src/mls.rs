//! Version 2 conversations: this device as an MLS client (RFC 9420, through OpenMLS).
//!
//! An [`MlsDevice`] is one device of one user: its leaf signature key, the certificate the
//! user's identity signing key issued for it, its key packages, and every group it is in, each
//! with the position in the group's log it has processed. Like the rest of the client core it
//! does no I/O: the adapter hands it what the relay sent and gets back what to send, and it
//! saves [`MlsDevice::seal`]'s bytes after every change (docs/CRYPTO.md, "A device's state at
//! rest"). Every operation either completes or leaves the device exactly as it was: an
//! operation that fails restores the state from before it, so a refused Welcome or commit can
//! be retried once the adapter has what was missing (a peer's key, say).
//!
//! What it decides:
//! - which leaves may be in a group: a leaf is accepted (in a Welcome, an Add, an Update, a
//!   commit's path or an external join) only when its credential is a device certificate that
//!   verifies under the **pinned** signing key of the user it names and certifies the leaf's own
//!   signature key ([`MlsError::DeviceRefused`], [`MlsError::UnpinnedUsers`]);
//! - who may let someone read: only an admin (the group's admin list, in the GroupContext) adds
//!   a user who was not a member or changes the admin list; a device joins by external commit
//!   only for a user who is already a member;
//! - that the log is processed in order, once: a position at or below the cursor is skipped,
//!   and this device's own commit is merged when the relay has ordered it.
//!
//! Removals change who can *not* read; the relay's policy authorizes them (docs/CRYPTO.md).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::*;
use openmls_memory_storage::MemoryStorage;

use crate::mls_crypto::{LeafSigner, SuiteCrypto};
use openmls_traits::OpenMlsProvider;
use sealroom_crypto::{
    open_device_state, seal_device_state, DeviceCertificate, DeviceStateKey, Payload, SigningPublic,
    SigningSecret, DEVICE_ID_LEN,
};
use zeroize::Zeroizing;

/// The one ciphersuite Sealroom's groups use: X25519, ChaCha20-Poly1305, SHA-256, Ed25519.
pub const CIPHERSUITE: Ciphersuite = Ciphersuite::MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519;
/// The private-use GroupContext extension that holds a group's admins.
pub const ADMINS_EXTENSION: u16 = 0xF5A1;
/// The version byte of the admins extension and of a sealed device state's contents.
const FORMAT_VERSION: u8 = 0x01;
/// The device state's layout written: 0x03 keeps, per group, what the update rule counts.
/// (0x01, without group names and the archive queue, and 0x02, without the counts, are still
/// read.)
const STATE_VERSION: u8 = 0x04;

/// A device's random id.
pub type DeviceId = [u8; DEVICE_ID_LEN];
/// An MLS group's random id.
pub type GroupId = [u8; 16];

/// What the MLS layer refuses.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum MlsError {
    /// Some leaves name users whose signing key is not pinned yet: pin them (first use) and try
    /// again; nothing was changed.
    #[error("the keys of {} are needed first", .0.join(", "))]
    UnpinnedUsers(Vec<String>),
    /// A leaf's certificate is not a valid device certificate of the user it names under that
    /// user's pinned key: the group is not joined, the commit not applied.
    #[error("a device of {user} is not signed by {user}'s identity key; refused")]
    DeviceRefused {
        /// The user the leaf claims to belong to.
        user: String,
    },
    /// A change only an admin may make (adding a user, changing the admins), by someone who is
    /// not one.
    #[error("{by} is not an admin of this group and may not {what}")]
    NotAdmin {
        /// Who tried.
        by: String,
        /// What they tried.
        what: &'static str,
    },
    /// A device of a user who is not a member tried to join by external commit.
    #[error("{0} is not a member of this group and may not join it")]
    NotAMember(String),
    /// This device is not in that group.
    #[error("this device is not in that group")]
    UnknownGroup,
    /// A group would have more members than allowed.
    #[error("a group has at most {max} members")]
    TooManyMembers {
        /// The limit.
        max: usize,
    },
    /// A change that changes nothing (no such user or device in the group, say).
    #[error("{0}")]
    Nothing(&'static str),
    /// This device has a commit the relay has not yet ordered; it must be accepted or refused
    /// first.
    #[error("a change of this device is still waiting for the relay")]
    PendingCommit,
    /// A malformed or undecryptable MLS message, or one OpenMLS refused (its reason).
    #[error("MLS: {0}")]
    Protocol(String),
    /// The sealed state did not open or parse.
    #[error("this device's stored state could not be read")]
    State,
}

fn protocol(e: impl std::fmt::Display) -> MlsError {
    MlsError::Protocol(e.to_string())
}

/// Where the client core finds a user's pinned identity signing key.
pub trait Pins {
    /// The pinned Ed25519 key of `user`, or `None` when none is pinned yet.
    fn signing_key(&self, user: &str) -> Option<SigningPublic>;
}

impl<F: Fn(&str) -> Option<SigningPublic>> Pins for F {
    fn signing_key(&self, user: &str) -> Option<SigningPublic> {
        self(user)
    }
}

/// The one-ciphersuite crypto (`mls_crypto`) with an in-memory store that [`MlsDevice::seal`]
/// writes out.
#[derive(Debug, Default)]
struct Provider {
    crypto: SuiteCrypto,
    storage: MemoryStorage,
}

impl OpenMlsProvider for Provider {
    type CryptoProvider = SuiteCrypto;
    type RandProvider = SuiteCrypto;
    type StorageProvider = MemoryStorage;

    fn storage(&self) -> &MemoryStorage {
        &self.storage
    }
    fn crypto(&self) -> &SuiteCrypto {
        &self.crypto
    }
    fn rand(&self) -> &SuiteCrypto {
        &self.crypto
    }
}

impl Provider {
    fn snapshot(&self) -> HashMap<Vec<u8>, Vec<u8>> {
        self.storage.values.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
    fn restore(&self, values: HashMap<Vec<u8>, Vec<u8>>) {
        *self.storage.values.write().unwrap_or_else(std::sync::PoisonError::into_inner) = values;
    }
}

/// What this device remembers about a group beside OpenMLS's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GroupEntry {
    /// The relay's conversation id, once the relay knows the group.
    pub conversation: Option<u64>,
    /// The highest log position this device has processed.
    pub cursor: u64,
    /// Application messages this device sent since its last commit in the group.
    pub sent: u32,
    /// When this device last committed in the group (or joined it), by the relay's clock
    /// (Unix ms; 0: not known yet).
    pub renewed_ts: i64,
}

/// A message sealed for the user's history archive, waiting to be stored at the relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedEntry {
    /// The relay's conversation id.
    pub conversation: u64,
    /// The message's log position.
    pub seq: u64,
    /// Who sent it.
    pub sender: String,
    /// The sender's clock.
    pub sent_ms: u64,
    /// The sealed entry.
    pub entry: Vec<u8>,
}

/// A message this device is sending to a group, kept in its sealed state from before the relay
/// is asked until the relay's answer is handled: a device whose process ends in between, or
/// that never heard the answer, sends it again (the relay stores an entry id once), so the
/// message is neither lost nor doubled, and is archived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingSend {
    /// The relay's conversation id.
    pub conversation: u64,
    /// The entry id the relay de-duplicates by.
    pub client_msg_id: [u8; 16],
    /// The sender's clock when it was written.
    pub sent_ms: u64,
    /// The payload, encoded (`Payload::encode`).
    pub payload: Vec<u8>,
    /// The attachments it carries (blob ids).
    pub blobs: Vec<String>,
}

/// A member device of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDevice {
    /// Its user.
    pub user: String,
    /// The device.
    pub device: DeviceId,
    /// Its leaf index in the tree.
    pub leaf: u32,
}

/// A user to add, with one key package per device (as the relay handed them out).
#[derive(Debug, Clone)]
pub struct Invitee {
    /// The user.
    pub user: String,
    /// TLS-encoded `KeyPackage`s.
    pub key_packages: Vec<Vec<u8>>,
}

/// The changes one commit makes. Empty means a plain update (new leaf key material).
#[derive(Debug, Clone, Default)]
pub struct Changes {
    /// Users (or more devices of member users) to add.
    pub add: Vec<Invitee>,
    /// Users to remove, with all their devices (an admin's decision).
    pub remove_users: Vec<String>,
    /// Users who left, to take out with all their devices: any member may (the relay checks
    /// that they left).
    pub departed: Vec<String>,
    /// Single devices to remove.
    pub remove_devices: Vec<DeviceId>,
    /// The new admin list.
    pub admins: Option<Vec<String>>,
}

/// A commit for the relay to order, with what goes with it.
#[derive(Debug, Clone)]
pub struct Commit {
    /// The group.
    pub group: GroupId,
    /// The epoch the commit was made in (the relay accepts it only while the group is there).
    pub epoch: u64,
    /// The `MLSMessage` with the commit.
    pub message: Vec<u8>,
    /// The `MLSMessage` with a Welcome for the added devices, if any.
    pub welcome: Option<Vec<u8>>,
    /// The devices the Welcome is for.
    pub welcome_devices: Vec<DeviceId>,
    /// The `MLSMessage` with the new epoch's GroupInfo (with the ratchet tree), for external
    /// joins.
    pub group_info: Vec<u8>,
    /// Users who had no device in the group before and have one after.
    pub added_users: Vec<String>,
    /// Users removed (by an admin) or departed who had a device in the group before and have
    /// none after.
    pub removed_users: Vec<String>,
}

/// What processing one log entry did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Processed {
    /// A message.
    Message {
        /// Who sent it.
        sender: String,
        /// From which device.
        device: DeviceId,
        /// The sender's clock at sending (authenticated).
        sent_ms: u64,
        /// What it says.
        payload: Payload,
    },
    /// Another device's commit, applied.
    Commit(CommitSummary),
    /// This device's own message or commit (its commit, if still pending, is now merged).
    Own,
    /// Already processed, or a kind of entry Sealroom does not use (a standalone proposal).
    Skipped,
    /// A message this device cannot decrypt (reported to the user; the log goes on).
    Unreadable {
        /// Why, for the report.
        reason: String,
    },
}

/// What a commit changed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CommitSummary {
    /// Who committed.
    pub by: String,
    /// The new epoch.
    pub epoch: u64,
    /// Devices that joined (users and devices).
    pub added: Vec<(String, DeviceId)>,
    /// Devices that left or were removed.
    pub removed: Vec<(String, DeviceId)>,
    /// The admin list changed.
    pub admins_changed: bool,
    /// This device was removed: the group is gone from it.
    pub self_removed: bool,
}

/// One device of one user as an MLS client.
pub struct MlsDevice {
    username: String,
    certificate: DeviceCertificate,
    signer: LeafSigner,
    provider: Provider,
    groups: BTreeMap<GroupId, GroupEntry>,
    /// Group names by conversation, as the newest `GroupName` this device read or sent.
    names: BTreeMap<u64, String>,
    /// Archive entries not yet stored at the relay, oldest first.
    archive_queue: Vec<QueuedEntry>,
    /// Messages sent without a handled answer yet, oldest first.
    outbox: Vec<PendingSend>,
}

impl std::fmt::Debug for MlsDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MlsDevice")
            .field("username", &self.username)
            .field("device", &hex(&self.certificate.device_id))
            .field("groups", &self.groups.len())
            .finish_non_exhaustive()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The capabilities every Sealroom leaf advertises: the admins extension.
fn capabilities() -> Capabilities {
    Capabilities::new(
        None,
        Some(&[CIPHERSUITE]),
        Some(&[ExtensionType::Unknown(ADMINS_EXTENSION)]),
        None,
        None,
    )
}

fn join_config() -> MlsGroupJoinConfig {
    MlsGroupJoinConfig::builder()
        .wire_format_policy(MIXED_CIPHERTEXT_WIRE_FORMAT_POLICY)
        .use_ratchet_tree_extension(true)
        .build()
}

/// The admins extension's bytes: `0x01 | count: u16 BE | count × (name_len: u8 | username)`.
pub fn encode_admins(admins: &[String]) -> Result<Vec<u8>, MlsError> {
    let count = u16::try_from(admins.len()).map_err(|_| MlsError::Nothing("too many admins"))?;
    let mut out = vec![FORMAT_VERSION];
    out.extend_from_slice(&count.to_be_bytes());
    for a in admins {
        let len = u8::try_from(a.len()).ok().filter(|&l| l > 0).ok_or(MlsError::Nothing("admin name"))?;
        out.push(len);
        out.extend_from_slice(a.as_bytes());
    }
    Ok(out)
}

/// Parses the admins extension; anything but the exact format is refused.
pub fn decode_admins(bytes: &[u8]) -> Result<Vec<String>, MlsError> {
    let bad = || MlsError::Protocol("malformed admins extension".into());
    let (&version, rest) = bytes.split_first().ok_or_else(bad)?;
    if version != FORMAT_VERSION || rest.len() < 2 {
        return Err(bad());
    }
    let count = u16::from_be_bytes([rest[0], rest[1]]);
    let mut rest = &rest[2..];
    let mut admins = Vec::with_capacity(usize::from(count).min(1024));
    for _ in 0..count {
        let (&len, tail) = rest.split_first().ok_or_else(bad)?;
        let len = usize::from(len);
        if len == 0 || tail.len() < len {
            return Err(bad());
        }
        let name = std::str::from_utf8(&tail[..len]).map_err(|_| bad())?;
        admins.push(name.to_owned());
        rest = &tail[len..];
    }
    if rest.is_empty() {
        Ok(admins)
    } else {
        Err(bad())
    }
}

fn admins_extensions(admins: &[String]) -> Result<Extensions<GroupContext>, MlsError> {
    // Every member must understand the admins extension (else OpenMLS refuses to change it).
    let required = Extension::RequiredCapabilities(RequiredCapabilitiesExtension::new(
        &[ExtensionType::Unknown(ADMINS_EXTENSION)],
        &[],
        &[],
    ));
    let ext = Extension::Unknown(ADMINS_EXTENSION, UnknownExtension(encode_admins(admins)?));
    Extensions::from_vec(vec![required, ext]).map_err(protocol)
}

fn admins_of(extensions: &Extensions<GroupContext>) -> Vec<String> {
    extensions
        .iter()
        .find_map(|e| match e {
            Extension::Unknown(ADMINS_EXTENSION, UnknownExtension(bytes)) => decode_admins(bytes).ok(),
            _ => None,
        })
        .unwrap_or_default()
}

/// The user and device a leaf belongs to, after checking its certificate under the pinned key.
fn check_leaf(
    credential: &Credential,
    signature_key: &[u8],
    pins: &dyn Pins,
) -> Result<(String, DeviceId), MlsError> {
    let cert = certificate_of(credential)?;
    let Some(key) = pins.signing_key(&cert.username) else {
        return Err(MlsError::UnpinnedUsers(vec![cert.username]));
    };
    cert.verify(&key, &cert.username, signature_key)
        .map_err(|_| MlsError::DeviceRefused { user: cert.username.clone() })?;
    Ok((cert.username, cert.device_id))
}

/// The certificate in a credential, parsed but not verified (for leaves already in the tree,
/// which were verified when they entered it).
fn certificate_of(credential: &Credential) -> Result<DeviceCertificate, MlsError> {
    if credential.credential_type() != CredentialType::Basic {
        return Err(MlsError::Protocol("a credential that is not a device certificate".into()));
    }
    let basic: BasicCredential = BasicCredential::new(credential.serialized_content().to_vec());
    DeviceCertificate::decode(basic.identity())
        .map_err(|_| MlsError::Protocol("a credential that is not a device certificate".into()))
}

/// Checks every leaf in `leaves`, collecting all unpinned users before failing so the adapter
/// can fetch them in one go.
fn check_leaves<'a>(
    leaves: impl IntoIterator<Item = (&'a Credential, &'a [u8])>,
    pins: &dyn Pins,
) -> Result<Vec<(String, DeviceId)>, MlsError> {
    let mut unpinned = BTreeSet::new();
    let mut checked = Vec::new();
    for (credential, key) in leaves {
        match check_leaf(credential, key, pins) {
            Ok(ok) => checked.push(ok),
            Err(MlsError::UnpinnedUsers(users)) => unpinned.extend(users),
            Err(e) => return Err(e),
        }
    }
    if unpinned.is_empty() {
        Ok(checked)
    } else {
        Err(MlsError::UnpinnedUsers(unpinned.into_iter().collect()))
    }
}

/// A TLS-encoded `KeyPackage`, parsed and validated (its signature, ciphersuite, lifetime).
fn parse_key_package(
    bytes: &[u8],
    crypto: &impl openmls_traits::crypto::OpenMlsCrypto,
) -> Result<KeyPackage, MlsError> {
    KeyPackageIn::tls_deserialize_exact(bytes)
        .map_err(protocol)?
        .validate(crypto, ProtocolVersion::Mls10)
        .map_err(protocol)
}

fn serialize(message: &MlsMessageOut) -> Result<Vec<u8>, MlsError> {
    message.tls_serialize_detached().map_err(protocol)
}

fn group_id_of(group: &MlsGroup) -> Result<GroupId, MlsError> {
    group
        .group_id()
        .as_slice()
        .try_into()
        .map_err(|_| MlsError::Protocol("a group id that is not 16 bytes".into()))
}

/// The users of a set of member devices.
fn users(devices: &[MemberDevice]) -> BTreeSet<String> {
    devices.iter().map(|d| d.user.clone()).collect()
}

impl MlsDevice {
    /// A new device of `username`: a fresh leaf signature key and device id, and the
    /// certificate `identity` issues for them.
    pub fn new(identity: &SigningSecret, username: &str, now_ms: u64) -> Result<Self, MlsError> {
        let signer = LeafSigner::generate().map_err(protocol)?;
        let mut device_id = [0u8; DEVICE_ID_LEN];
        getrandom_fill(&mut device_id)?;
        let leaf_key: [u8; 32] =
            signer.public().try_into().map_err(|_| MlsError::Protocol("leaf key length".into()))?;
        let certificate =
            DeviceCertificate::issue(identity, username, device_id, leaf_key, now_ms).map_err(protocol)?;
        let device = MlsDevice {
            username: username.to_owned(),
            certificate,
            signer,
            provider: Provider::default(),
            groups: BTreeMap::new(),
            names: BTreeMap::new(),
            archive_queue: Vec::new(),
            outbox: Vec::new(),
        };
        device.signer.store(device.provider.storage()).map_err(protocol)?;
        Ok(device)
    }

    /// This device's id.
    pub fn device_id(&self) -> DeviceId {
        self.certificate.device_id
    }

    /// This device's certificate.
    pub fn certificate(&self) -> &DeviceCertificate {
        &self.certificate
    }

    /// The user this device belongs to.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The groups this device is in.
    pub fn groups(&self) -> &BTreeMap<GroupId, GroupEntry> {
        &self.groups
    }

    /// The group of a relay conversation.
    pub fn group_of(&self, conversation: u64) -> Option<GroupId> {
        self.groups.iter().find(|(_, e)| e.conversation == Some(conversation)).map(|(g, _)| *g)
    }

    /// Records the relay's conversation id for a group.
    pub fn set_conversation(&mut self, group: &GroupId, conversation: u64) -> Result<(), MlsError> {
        self.groups.get_mut(group).ok_or(MlsError::UnknownGroup)?.conversation = Some(conversation);
        Ok(())
    }

    /// A group's name, as this device last learned it.
    pub fn name_of(&self, conversation: u64) -> Option<&str> {
        self.names.get(&conversation).map(String::as_str)
    }

    /// Records a group's name (from a `GroupName` message, in log order).
    pub fn set_name(&mut self, conversation: u64, name: &str) {
        self.names.insert(conversation, name.to_owned());
    }

    /// Queues sealed archive entries until the relay has stored them.
    pub fn queue_archive(&mut self, entries: impl IntoIterator<Item = QueuedEntry>) {
        self.archive_queue.extend(entries);
    }

    /// The archive entries waiting to be stored, oldest first.
    pub fn archive_queue(&self) -> &[QueuedEntry] {
        &self.archive_queue
    }

    /// Drops the first `n` queued archive entries (stored, or refused for good).
    pub fn archive_done(&mut self, n: usize) {
        self.archive_queue.drain(..n.min(self.archive_queue.len()));
    }

    /// Records that this device committed in (or joined) a group at the relay's time `ts`.
    pub fn renewed(&mut self, group: &GroupId, ts: i64) -> Result<(), MlsError> {
        let entry = self.groups.get_mut(group).ok_or(MlsError::UnknownGroup)?;
        entry.sent = 0;
        entry.renewed_ts = ts;
        Ok(())
    }

    /// Keeps a message this device is about to send until [`sent`](Self::sent).
    pub fn queue_send(&mut self, pending: PendingSend) {
        self.outbox.push(pending);
    }

    /// The messages sent without a handled answer, oldest first.
    pub fn outbox(&self) -> &[PendingSend] {
        &self.outbox
    }

    /// Forgets a pending message: the relay stored it (and it is archived), or refused it.
    pub fn sent(&mut self, client_msg_id: &[u8; 16]) {
        self.outbox.retain(|p| &p.client_msg_id != client_msg_id);
    }

    /// Counts an application message this device sent in a group at the relay's time `ts`.
    pub fn counted_send(&mut self, group: &GroupId, ts: i64) -> Result<(), MlsError> {
        let entry = self.groups.get_mut(group).ok_or(MlsError::UnknownGroup)?;
        entry.sent = entry.sent.saturating_add(1);
        if entry.renewed_ts == 0 {
            // A device that joined by Welcome learns the time with its first message.
            entry.renewed_ts = ts;
        }
        Ok(())
    }

    /// Moves a group's cursor to `position` when that is further: every entry of the group up
    /// to it has been processed (the log had none of the group's between the two).
    pub fn advance_cursor(&mut self, group: &GroupId, position: u64) -> Result<(), MlsError> {
        let entry = self.groups.get_mut(group).ok_or(MlsError::UnknownGroup)?;
        entry.cursor = entry.cursor.max(position);
        Ok(())
    }

    fn credential_with_key(&self) -> CredentialWithKey {
        CredentialWithKey {
            credential: BasicCredential::new(self.certificate.encode()).into(),
            signature_key: self.signer.public().into(),
        }
    }

    /// Runs `f`, and on failure puts the device back as it was before.
    fn atomically<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T, MlsError>) -> Result<T, MlsError> {
        let storage = self.provider.snapshot();
        let groups = self.groups.clone();
        let result = f(self);
        if result.is_err() {
            self.provider.restore(storage);
            self.groups = groups;
        }
        result
    }

    fn load(&self, group: &GroupId) -> Result<MlsGroup, MlsError> {
        if !self.groups.contains_key(group) {
            return Err(MlsError::UnknownGroup);
        }
        MlsGroup::load(self.provider.storage(), &openmls::group::GroupId::from_slice(group))
            .map_err(protocol)?
            .ok_or(MlsError::UnknownGroup)
    }

    /// `n` one-use key packages, TLS-encoded, for the relay to hand out.
    pub fn key_packages(&mut self, n: usize) -> Result<Vec<Vec<u8>>, MlsError> {
        self.atomically(|d| (0..n).map(|_| d.key_package(false)).collect())
    }

    /// The last-resort key package, handed out when the one-use ones are gone.
    pub fn last_resort_key_package(&mut self) -> Result<Vec<u8>, MlsError> {
        self.atomically(|d| d.key_package(true))
    }

    fn key_package(&mut self, last_resort: bool) -> Result<Vec<u8>, MlsError> {
        let mut builder = KeyPackage::builder().leaf_node_capabilities(capabilities());
        if last_resort {
            builder = builder.mark_as_last_resort();
        }
        let bundle = builder
            .build(CIPHERSUITE, &self.provider, &self.signer, self.credential_with_key())
            .map_err(protocol)?;
        bundle.key_package().tls_serialize_detached().map_err(protocol)
    }

    /// Creates a group with this device as its only member at epoch 0; `admins` (this user
    /// among them) may add users. Returns its id and the GroupInfo for the relay.
    pub fn create_group(&mut self, admins: &[String]) -> Result<(GroupId, Vec<u8>), MlsError> {
        if !admins.contains(&self.username) {
            return Err(MlsError::Nothing("the creator must be an admin"));
        }
        self.atomically(|d| {
            let mut id = [0u8; 16];
            getrandom_fill(&mut id)?;
            let config = MlsGroupCreateConfig::builder()
                .ciphersuite(CIPHERSUITE)
                .wire_format_policy(MIXED_CIPHERTEXT_WIRE_FORMAT_POLICY)
                .use_ratchet_tree_extension(true)
                .capabilities(capabilities())
                .with_group_context_extensions(admins_extensions(admins)?)
                .build();
            let group = MlsGroup::new_with_group_id(
                &d.provider,
                &d.signer,
                &config,
                openmls::group::GroupId::from_slice(&id),
                d.credential_with_key(),
            )
            .map_err(protocol)?;
            d.groups.insert(id, GroupEntry::default());
            let info = group.export_group_info(d.provider.crypto(), &d.signer, true).map_err(protocol)?;
            Ok((id, serialize(&info)?))
        })
    }

    /// The member devices of a group.
    pub fn members(&self, group: &GroupId) -> Result<Vec<MemberDevice>, MlsError> {
        Self::members_of(&self.load(group)?)
    }

    fn members_of(group: &MlsGroup) -> Result<Vec<MemberDevice>, MlsError> {
        group
            .members()
            .map(|m| {
                let cert = certificate_of(&m.credential)?;
                Ok(MemberDevice { user: cert.username, device: cert.device_id, leaf: m.index.u32() })
            })
            .collect()
    }

    /// The group's admins.
    pub fn admins(&self, group: &GroupId) -> Result<Vec<String>, MlsError> {
        Ok(admins_of(self.load(group)?.extensions()))
    }

    /// The group's current epoch.
    pub fn epoch(&self, group: &GroupId) -> Result<u64, MlsError> {
        Ok(self.load(group)?.epoch().as_u64())
    }

    /// Makes a commit with `changes` (an update when empty), staged until the relay orders it:
    /// then [`commit_accepted`](Self::commit_accepted), or on `stale_epoch`
    /// [`commit_refused`](Self::commit_refused), catch up, and make it again.
    pub fn commit(
        &mut self,
        group_id: &GroupId,
        changes: &Changes,
        max_members: usize,
        pins: &dyn Pins,
    ) -> Result<Commit, MlsError> {
        self.atomically(|d| {
            let mut group = d.load(group_id)?;
            if group.pending_commit().is_some() {
                return Err(MlsError::PendingCommit);
            }
            let before = Self::members_of(&group)?;
            let member_users = users(&before);
            let admins = admins_of(group.extensions());
            let is_admin = admins.contains(&d.username);

            let mut key_packages = Vec::new();
            let mut welcome_devices = Vec::new();
            for invitee in &changes.add {
                if !member_users.contains(&invitee.user) && !is_admin {
                    return Err(MlsError::NotAdmin { by: d.username.clone(), what: "add users" });
                }
                for bytes in &invitee.key_packages {
                    let kp = parse_key_package(bytes, d.provider.crypto())?;
                    let leaf = kp.leaf_node();
                    let (user, device) =
                        check_leaf(leaf.credential(), leaf.signature_key().as_slice(), pins)?;
                    if user != invitee.user {
                        return Err(MlsError::DeviceRefused { user: invitee.user.clone() });
                    }
                    if before.iter().any(|m| m.device == device) || welcome_devices.contains(&device) {
                        continue;
                    }
                    welcome_devices.push(device);
                    key_packages.push(kp);
                }
            }
            let mut removed_leaves = BTreeSet::new();
            for user in &changes.remove_users {
                if *user != d.username && !is_admin {
                    return Err(MlsError::NotAdmin { by: d.username.clone(), what: "remove other users" });
                }
                removed_leaves.extend(before.iter().filter(|m| m.user == *user).map(|m| m.leaf));
            }
            for user in &changes.departed {
                removed_leaves.extend(before.iter().filter(|m| m.user == *user).map(|m| m.leaf));
            }
            for device in &changes.remove_devices {
                removed_leaves.extend(before.iter().filter(|m| m.device == *device).map(|m| m.leaf));
            }
            if removed_leaves.contains(&group.own_leaf_index().u32()) {
                return Err(MlsError::Nothing("a device cannot remove itself; another member does"));
            }
            if let Some(new_admins) = &changes.admins {
                if !is_admin {
                    return Err(MlsError::NotAdmin { by: d.username.clone(), what: "change the admins" });
                }
                if new_admins.is_empty() {
                    return Err(MlsError::Nothing("a group needs at least one admin"));
                }
            }
            let asked_something = !changes.add.is_empty()
                || !changes.remove_users.is_empty()
                || !changes.departed.is_empty()
                || !changes.remove_devices.is_empty()
                || changes.admins.is_some();
            if asked_something
                && key_packages.is_empty()
                && removed_leaves.is_empty()
                && changes.admins.is_none()
            {
                return Err(MlsError::Nothing("no such member or device, or already there"));
            }

            // Users keep membership while any of their devices stays.
            let mut after: BTreeSet<String> =
                before.iter().filter(|m| !removed_leaves.contains(&m.leaf)).map(|m| m.user.clone()).collect();
            after.extend(changes.add.iter().filter(|i| !i.key_packages.is_empty()).map(|i| i.user.clone()));
            if after.len() > max_members {
                return Err(MlsError::TooManyMembers { max: max_members });
            }

            let epoch = group.epoch().as_u64();
            let mut builder = group
                .commit_builder()
                .propose_adds(key_packages)
                .propose_removals(removed_leaves.iter().map(|&l| LeafNodeIndex::new(l)))
                .force_self_update(!asked_something);
            if let Some(new_admins) = &changes.admins {
                builder = builder
                    .propose_group_context_extensions(admins_extensions(new_admins)?)
                    .map_err(protocol)?;
            }
            let bundle = builder
                .load_psks(d.provider.storage())
                .map_err(protocol)?
                .build(d.provider.rand(), d.provider.crypto(), &d.signer, |_| true)
                .map_err(protocol)?
                .stage_commit(&d.provider)
                .map_err(protocol)?;
            let (message, welcome, info) = bundle.into_messages();
            let info = info.ok_or_else(|| MlsError::Protocol("no GroupInfo for the new epoch".into()))?;

            Ok(Commit {
                group: *group_id,
                epoch,
                message: serialize(&message)?,
                welcome: welcome.as_ref().map(serialize).transpose()?,
                welcome_devices,
                group_info: serialize(&info)?,
                added_users: after.difference(&member_users).cloned().collect(),
                // Only users removed as users: a user whose devices were all taken out (removed
                // or idle ones) stays a member at the relay.
                removed_users: member_users
                    .difference(&after)
                    .filter(|u| changes.remove_users.contains(u) || changes.departed.contains(u))
                    .cloned()
                    .collect(),
            })
        })
    }

    /// The relay ordered this device's commit: it takes effect.
    pub fn commit_accepted(&mut self, group_id: &GroupId) -> Result<(), MlsError> {
        self.atomically(|d| {
            let mut group = d.load(group_id)?;
            if group.pending_commit().is_none() {
                return Ok(());
            }
            group.merge_pending_commit(&d.provider).map_err(protocol)
        })
    }

    /// The relay refused this device's commit (another was ordered first for its epoch): it is
    /// dropped.
    pub fn commit_refused(&mut self, group_id: &GroupId) -> Result<(), MlsError> {
        self.atomically(|d| {
            let mut group = d.load(group_id)?;
            group.clear_pending_commit(d.provider.storage()).map_err(protocol)
        })
    }

    /// Joins a group from a Welcome (an `MLSMessage`), checking every leaf of its tree.
    pub fn join(&mut self, welcome: &[u8], pins: &dyn Pins) -> Result<GroupId, MlsError> {
        self.atomically(|d| {
            let message = MlsMessageIn::tls_deserialize_exact(welcome).map_err(protocol)?;
            let MlsMessageBodyIn::Welcome(welcome) = message.extract() else {
                return Err(MlsError::Protocol("not a Welcome".into()));
            };
            let staged = StagedWelcome::new_from_welcome(&d.provider, &join_config(), welcome, None)
                .map_err(protocol)?;
            let members: Vec<Member> = staged.members().collect();
            check_leaves(members.iter().map(|m| (&m.credential, m.signature_key.as_slice())), pins)?;
            let group = staged.into_group(&d.provider).map_err(protocol)?;
            let id = group_id_of(&group)?;
            d.groups.insert(id, GroupEntry::default());
            Ok(id)
        })
    }

    /// Joins a group by external commit from its GroupInfo (an `MLSMessage`), allowed only for
    /// a user who is already a member. The returned commit goes to the relay like any other: on
    /// acceptance [`commit_accepted`](Self::commit_accepted) (nothing more to merge), on refusal
    /// [`forget_group`](Self::forget_group) and try again with the newer GroupInfo.
    pub fn join_external(&mut self, group_info: &[u8], pins: &dyn Pins) -> Result<Commit, MlsError> {
        self.atomically(|d| {
            let message = MlsMessageIn::tls_deserialize_exact(group_info).map_err(protocol)?;
            let MlsMessageBodyIn::GroupInfo(info) = message.extract() else {
                return Err(MlsError::Protocol("not a GroupInfo".into()));
            };
            let id: GroupId = info
                .group_id()
                .as_slice()
                .try_into()
                .map_err(|_| MlsError::Protocol("a group id that is not 16 bytes".into()))?;
            let (group, bundle) = MlsGroup::external_commit_builder()
                .with_config(join_config())
                .build_group(&d.provider, info, d.credential_with_key())
                .map_err(protocol)?
                .leaf_node_parameters(LeafNodeParameters::builder().with_capabilities(capabilities()).build())
                .load_psks(d.provider.storage())
                .map_err(protocol)?
                .build(d.provider.rand(), d.provider.crypto(), &d.signer, |_| true)
                .map_err(protocol)?
                .finalize(&d.provider)
                .map_err(protocol)?;
            let members = Self::members_of(&group)?;
            let leaves: Vec<Member> = group.members().collect();
            check_leaves(leaves.iter().map(|m| (&m.credential, m.signature_key.as_slice())), pins)?;
            if !members.iter().any(|m| m.user == d.username && m.device != d.device_id()) {
                return Err(MlsError::NotAMember(d.username.clone()));
            }
            let (message, _, info) = bundle.into_messages();
            let info = match info {
                Some(info) => info,
                None => group.export_group_info(d.provider.crypto(), &d.signer, true).map_err(protocol)?,
            };
            d.groups.insert(id, GroupEntry::default());
            Ok(Commit {
                group: id,
                epoch: group.epoch().as_u64().saturating_sub(1),
                message: serialize(&message)?,
                welcome: None,
                welcome_devices: Vec::new(),
                group_info: serialize(&info)?,
                added_users: Vec::new(),
                removed_users: Vec::new(),
            })
        })
    }

    /// Removes a group from this device (after leaving it, being removed, or a refused external
    /// join).
    pub fn forget_group(&mut self, group_id: &GroupId) -> Result<(), MlsError> {
        self.atomically(|d| {
            if let Ok(mut group) = d.load(group_id) {
                group.delete(d.provider.storage()).map_err(protocol)?;
            }
            d.groups.remove(group_id);
            Ok(())
        })
    }

    /// Encrypts a message for the group: `sent_ms: u64 BE | padded payload` as MLS application
    /// data.
    pub fn encrypt(
        &mut self,
        group_id: &GroupId,
        sent_ms: u64,
        payload: &Payload,
    ) -> Result<Vec<u8>, MlsError> {
        self.atomically(|d| {
            let mut group = d.load(group_id)?;
            if group.pending_commit().is_some() {
                return Err(MlsError::PendingCommit);
            }
            let padded =
                Zeroizing::new(sealroom_crypto::pad(&payload.encode().map_err(protocol)?).map_err(protocol)?);
            let mut data = Zeroizing::new(Vec::with_capacity(8 + padded.len()));
            data.extend_from_slice(&sent_ms.to_be_bytes());
            data.extend_from_slice(&padded);
            let message = group.create_message(&d.provider, &d.signer, &data).map_err(protocol)?;
            serialize(&message)
        })
    }

    /// Processes the group's log entry at `position`, sent by this device when `own` (as the
    /// relay recorded). Entries must come in log order; one at or below the cursor is skipped.
    pub fn process(
        &mut self,
        group_id: &GroupId,
        position: u64,
        own: bool,
        entry: &[u8],
        pins: &dyn Pins,
    ) -> Result<Processed, MlsError> {
        let cursor = self.groups.get(group_id).ok_or(MlsError::UnknownGroup)?.cursor;
        if position <= cursor {
            return Ok(Processed::Skipped);
        }
        let result = self.atomically(|d| {
            let result = d.process_entry(group_id, own, entry, pins)?;
            if let Some(e) = d.groups.get_mut(group_id) {
                e.cursor = position;
            }
            Ok(result)
        });
        match result {
            // A message that does not decrypt stays unreadable whatever comes later: it is
            // passed (and reported), so the log goes on. A commit that fails is never passed:
            // every later entry depends on it.
            Err(MlsError::Protocol(reason)) if !is_commit(entry) => {
                if let Some(e) = self.groups.get_mut(group_id) {
                    e.cursor = position;
                }
                Ok(Processed::Unreadable { reason })
            }
            other => other,
        }
    }

    fn process_entry(
        &mut self,
        group_id: &GroupId,
        own: bool,
        entry: &[u8],
        pins: &dyn Pins,
    ) -> Result<Processed, MlsError> {
        let mut group = self.load(group_id)?;
        let message = MlsMessageIn::tls_deserialize_exact(entry).map_err(protocol)?;
        let message = message.try_into_protocol_message().map_err(protocol)?;
        if message.group_id().as_slice() != group_id {
            return Err(MlsError::Protocol("an entry of another group".into()));
        }
        if message.epoch() != group.epoch() {
            // The relay orders every commit, so an entry can only be of an epoch this device has
            // passed: a commit it has applied (the one the relay ordered for that epoch), this
            // device's own message, or a message nobody can decrypt any more.
            return Ok(if message.content_type() == ContentType::Commit || own {
                Processed::Skipped
            } else {
                Processed::Unreadable {
                    reason: format!(
                        "a message of epoch {} while the group is at {}",
                        message.epoch().as_u64(),
                        group.epoch().as_u64()
                    ),
                }
            });
        }
        if own {
            // This device's message (no device decrypts its own), or its commit: the relay
            // ordered it, so it takes effect now if the acceptance was lost on the way.
            if message.content_type() == ContentType::Commit && group.pending_commit().is_some() {
                // What it changed, as for anyone's commit (the timeline's "you added…").
                let before = Self::members_of(&group)?;
                let admins = admins_of(group.extensions());
                group.merge_pending_commit(&self.provider).map_err(protocol)?;
                let after = Self::members_of(&group)?;
                let diff = |a: &[MemberDevice], b: &[MemberDevice]| -> Vec<(String, DeviceId)> {
                    a.iter()
                        .filter(|m| !b.iter().any(|x| x.device == m.device))
                        .map(|m| (m.user.clone(), m.device))
                        .collect()
                };
                return Ok(Processed::Commit(CommitSummary {
                    by: self.username.clone(),
                    epoch: group.epoch().as_u64(),
                    added: diff(&after, &before),
                    removed: diff(&before, &after),
                    admins_changed: admins_of(group.extensions()) != admins,
                    self_removed: false,
                }));
            }
            return Ok(Processed::Own);
        }
        let before = Self::members_of(&group)?;
        let admins = admins_of(group.extensions());
        let processed = group.process_message(&self.provider, message).map_err(protocol)?;
        let sender = certificate_of(processed.credential())?;
        let external = matches!(processed.sender(), Sender::NewMemberCommit);
        match processed.into_content() {
            ProcessedMessageContent::ApplicationMessage(app) => {
                let data = Zeroizing::new(app.into_bytes());
                if data.len() < 8 {
                    return Err(MlsError::Protocol("a message too short".into()));
                }
                let sent_ms = u64::from_be_bytes(data[..8].try_into().map_err(protocol)?);
                let payload = sealroom_crypto::unpad(&data[8..])
                    .and_then(Payload::decode)
                    .map_err(|_| MlsError::Protocol("a message that does not decode".into()))?;
                Ok(Processed::Message { sender: sender.username, device: sender.device_id, sent_ms, payload })
            }
            ProcessedMessageContent::StagedCommitMessage(staged) => {
                // Every new or changed leaf: certified by its user's pinned key.
                let mut leaves: Vec<(&Credential, &[u8])> = Vec::new();
                if let Some(leaf) = staged.update_path_leaf_node() {
                    leaves.push((leaf.credential(), leaf.signature_key().as_slice()));
                }
                for p in staged.queued_proposals() {
                    match p.proposal() {
                        Proposal::Add(add) => {
                            let leaf = add.key_package().leaf_node();
                            leaves.push((leaf.credential(), leaf.signature_key().as_slice()));
                        }
                        Proposal::Update(update) => {
                            let leaf = update.leaf_node();
                            leaves.push((leaf.credential(), leaf.signature_key().as_slice()));
                        }
                        _ => {}
                    }
                }
                let checked = check_leaves(leaves, pins)?;
                let before_users = users(&before);
                let is_admin = admins.contains(&sender.username);
                if external && !before_users.contains(&sender.username) {
                    return Err(MlsError::NotAMember(sender.username));
                }
                let added_users: Vec<&String> =
                    checked.iter().map(|(u, _)| u).filter(|u| !before_users.contains(*u)).collect();
                if !added_users.is_empty() && !is_admin {
                    return Err(MlsError::NotAdmin { by: sender.username, what: "add users" });
                }
                let new_admins = admins_of(staged.group_context().extensions());
                let admins_changed = new_admins != admins;
                if admins_changed && !is_admin {
                    return Err(MlsError::NotAdmin { by: sender.username, what: "change the admins" });
                }
                let self_removed = staged.self_removed();
                let removed_leaves: BTreeSet<u32> =
                    staged.remove_proposals().map(|p| p.remove_proposal().removed().u32()).collect();
                let epoch = staged.epoch().as_u64();
                group.merge_staged_commit(&self.provider, *staged).map_err(protocol)?;
                let after = if self_removed { Vec::new() } else { Self::members_of(&group)? };
                let added = after
                    .iter()
                    .filter(|m| !before.iter().any(|b| b.device == m.device))
                    .map(|m| (m.user.clone(), m.device))
                    .collect();
                // (A device taken out has no group after the commit: what went is what the
                // commit's removals name.)
                let removed = before
                    .iter()
                    .filter(|b| match self_removed {
                        true => removed_leaves.contains(&b.leaf),
                        false => !after.iter().any(|m| m.device == b.device),
                    })
                    .map(|m| (m.user.clone(), m.device))
                    .collect();
                if self_removed {
                    group.delete(self.provider.storage()).map_err(protocol)?;
                    self.groups.remove(group_id);
                }
                Ok(Processed::Commit(CommitSummary {
                    by: sender.username,
                    epoch,
                    added,
                    removed,
                    admins_changed,
                    self_removed,
                }))
            }
            // An entry the relay did not record as this device's claims to be from it.
            ProcessedMessageContent::OwnPrivateMessage | ProcessedMessageContent::OwnPendingCommit => {
                Err(MlsError::Protocol("an entry from another device claims to be this device's".into()))
            }
            // Sealroom sends no standalone proposals; one is not stored.
            ProcessedMessageContent::ProposalMessage(_)
            | ProcessedMessageContent::ExternalJoinProposalMessage(_) => Ok(Processed::Skipped),
        }
    }

    /// The sealed state, for the adapter to write (replacing the previous file).
    pub fn seal(&self, identity: &SigningSecret) -> Result<Vec<u8>, MlsError> {
        let key = DeviceStateKey::derive(identity, &self.certificate.device_id);
        let mut state = Zeroizing::new(vec![STATE_VERSION]);
        let cert = self.certificate.encode();
        put_bytes(&mut state, &cert);
        put_u32(&mut state, self.groups.len());
        for (id, entry) in &self.groups {
            state.extend_from_slice(id);
            state.extend_from_slice(&entry.conversation.unwrap_or(0).to_be_bytes());
            state.extend_from_slice(&entry.cursor.to_be_bytes());
            state.extend_from_slice(&entry.sent.to_be_bytes());
            state.extend_from_slice(&entry.renewed_ts.to_be_bytes());
        }
        put_u32(&mut state, self.names.len());
        for (conversation, name) in &self.names {
            state.extend_from_slice(&conversation.to_be_bytes());
            put_bytes(&mut state, name.as_bytes());
        }
        put_u32(&mut state, self.archive_queue.len());
        for q in &self.archive_queue {
            state.extend_from_slice(&q.conversation.to_be_bytes());
            state.extend_from_slice(&q.seq.to_be_bytes());
            put_bytes(&mut state, q.sender.as_bytes());
            state.extend_from_slice(&q.sent_ms.to_be_bytes());
            put_bytes(&mut state, &q.entry);
        }
        put_u32(&mut state, self.outbox.len());
        for p in &self.outbox {
            state.extend_from_slice(&p.conversation.to_be_bytes());
            state.extend_from_slice(&p.client_msg_id);
            state.extend_from_slice(&p.sent_ms.to_be_bytes());
            put_bytes(&mut state, &p.payload);
            put_u32(&mut state, p.blobs.len());
            for b in &p.blobs {
                put_bytes(&mut state, b.as_bytes());
            }
        }
        let values = self.provider.snapshot();
        let mut keys: Vec<&Vec<u8>> = values.keys().collect();
        keys.sort();
        put_u32(&mut state, keys.len());
        for k in keys {
            put_bytes(&mut state, k);
            put_bytes(&mut state, &values[k]);
        }
        seal_device_state(&key, &self.username, &self.certificate.device_id, &state).map_err(protocol)
    }

    /// The device as an adapter stores it (the CLI's file, the browser's IndexedDB record):
    /// its id (16 bytes), then its sealed state.
    pub fn stored(&self, identity: &SigningSecret) -> Result<Vec<u8>, MlsError> {
        let sealed = self.seal(identity)?;
        let mut out = Vec::with_capacity(16 + sealed.len());
        out.extend_from_slice(&self.certificate.device_id);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// The id of the device whose state [`stored`](Self::stored) wrote (it comes first,
    /// unsealed), without opening the state.
    pub fn stored_device_id(bytes: &[u8]) -> Option<DeviceId> {
        bytes.get(..16)?.try_into().ok()
    }

    /// `username`'s device from what [`stored`](Self::stored) wrote.
    pub fn from_stored(identity: &SigningSecret, username: &str, bytes: &[u8]) -> Result<Self, MlsError> {
        if bytes.len() <= 16 {
            return Err(MlsError::State);
        }
        let (id, sealed) = bytes.split_at(16);
        let id: DeviceId = id.try_into().map_err(|_| MlsError::State)?;
        Self::open(identity, username, &id, sealed)
    }

    /// Opens a sealed state of `username`'s device `device_id`.
    pub fn open(
        identity: &SigningSecret,
        username: &str,
        device_id: &DeviceId,
        sealed: &[u8],
    ) -> Result<Self, MlsError> {
        let key = DeviceStateKey::derive(identity, device_id);
        let state = open_device_state(&key, username, device_id, sealed).map_err(|_| MlsError::State)?;
        let mut r = Reader(&state);
        let version = r.take(1)?[0];
        if !(0x01..=STATE_VERSION).contains(&version) {
            return Err(MlsError::State);
        }
        let certificate = DeviceCertificate::decode(r.bytes()?).map_err(|_| MlsError::State)?;
        if certificate.username != username || certificate.device_id != *device_id {
            return Err(MlsError::State);
        }
        let mut groups = BTreeMap::new();
        for _ in 0..r.u32()? {
            let id: GroupId = r.take(16)?.try_into().map_err(|_| MlsError::State)?;
            let conversation = u64::from_be_bytes(r.take(8)?.try_into().map_err(|_| MlsError::State)?);
            let cursor = u64::from_be_bytes(r.take(8)?.try_into().map_err(|_| MlsError::State)?);
            let (sent, renewed_ts) = if version >= 0x03 {
                let sent = u32::from_be_bytes(r.take(4)?.try_into().map_err(|_| MlsError::State)?);
                let ts = i64::from_be_bytes(r.take(8)?.try_into().map_err(|_| MlsError::State)?);
                (sent, ts)
            } else {
                (0, 0)
            };
            let conversation = (conversation != 0).then_some(conversation);
            groups.insert(id, GroupEntry { conversation, cursor, sent, renewed_ts });
        }
        let u64_at = |r: &mut Reader| -> Result<u64, MlsError> {
            Ok(u64::from_be_bytes(r.take(8)?.try_into().map_err(|_| MlsError::State)?))
        };
        let text = |bytes: &[u8]| String::from_utf8(bytes.to_vec()).map_err(|_| MlsError::State);
        let mut names = BTreeMap::new();
        let mut archive_queue = Vec::new();
        if version >= 0x02 {
            for _ in 0..r.u32()? {
                let conversation = u64_at(&mut r)?;
                names.insert(conversation, text(r.bytes()?)?);
            }
            for _ in 0..r.u32()? {
                let conversation = u64_at(&mut r)?;
                let seq = u64_at(&mut r)?;
                let sender = text(r.bytes()?)?;
                let sent_ms = u64_at(&mut r)?;
                let entry = r.bytes()?.to_vec();
                archive_queue.push(QueuedEntry { conversation, seq, sender, sent_ms, entry });
            }
        }
        let mut outbox = Vec::new();
        if version >= 0x04 {
            for _ in 0..r.u32()? {
                let conversation = u64_at(&mut r)?;
                let client_msg_id: [u8; 16] = r.take(16)?.try_into().map_err(|_| MlsError::State)?;
                let sent_ms = u64_at(&mut r)?;
                let payload = r.bytes()?.to_vec();
                let mut blobs = Vec::new();
                for _ in 0..r.u32()? {
                    blobs.push(text(r.bytes()?)?);
                }
                outbox.push(PendingSend { conversation, client_msg_id, sent_ms, payload, blobs });
            }
        }
        let mut values = HashMap::new();
        for _ in 0..r.u32()? {
            let k = r.bytes()?.to_vec();
            let v = r.bytes()?.to_vec();
            values.insert(k, v);
        }
        if !r.0.is_empty() {
            return Err(MlsError::State);
        }
        let provider = Provider::default();
        provider.restore(values);
        let signer = LeafSigner::read(provider.storage(), &certificate.leaf_key).ok_or(MlsError::State)?;
        Ok(MlsDevice {
            username: username.to_owned(),
            certificate,
            signer,
            provider,
            groups,
            names,
            archive_queue,
            outbox,
        })
    }
}

/// Whether an entry's framing says it is a commit (read as the relay reads it).
fn is_commit(entry: &[u8]) -> bool {
    sealroom_protocol::mls::parse_framing(entry)
        .is_ok_and(|f| f.content_type == sealroom_protocol::mls::ContentType::Commit)
}

fn put_u32(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes());
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_u32(out, bytes.len());
    out.extend_from_slice(bytes);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], MlsError> {
        if self.0.len() < n {
            return Err(MlsError::State);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn u32(&mut self) -> Result<usize, MlsError> {
        let b: [u8; 4] = self.take(4)?.try_into().map_err(|_| MlsError::State)?;
        usize::try_from(u32::from_be_bytes(b)).map_err(|_| MlsError::State)
    }
    fn bytes(&mut self) -> Result<&'a [u8], MlsError> {
        let n = self.u32()?;
        self.take(n)
    }
}

/// 16 random bytes (an entry's client_msg_id).
pub fn random_id() -> Result<[u8; 16], MlsError> {
    let mut id = [0u8; 16];
    getrandom_fill(&mut id)?;
    Ok(id)
}

fn getrandom_fill(buf: &mut [u8]) -> Result<(), MlsError> {
    crate::mls_crypto::fill_random(buf).map_err(protocol)
}

#[cfg(test)]
#[path = "mls_tests.rs"]
mod tests;
