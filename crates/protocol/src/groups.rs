//! REST bodies and values of version 2 (MLS) conversations: devices, key packages, groups,
//! their ordered log and the Welcomes waiting for devices. docs/PROTOCOL.md "Groups" describes
//! the flows; the relay reads nothing of an MLS message but its framing ([`crate::mls`]).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::bytes::{ArchiveBytes, CertificateBytes, ClientMsgId, GroupId, MlsBytes, SigningKey};
use crate::ids::ConversationId;
use crate::username::Username;

/// A device's id: 16 random bytes chosen by the device, written as 32 lowercase hex digits in
/// JSON and in paths.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceId(pub [u8; 16]);

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for DeviceId {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some("^[0-9a-f]{32}$"))
            .description(Some("a device id: 16 bytes as 32 lowercase hex digits"))
            .into()
    }
}
#[cfg(feature = "openapi")]
impl utoipa::ToSchema for DeviceId {}

/// A device id that is not 32 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("device: expected 32 lowercase hex digits")]
pub struct DeviceIdError;

impl DeviceId {
    /// From a slice of exactly 16 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, DeviceIdError> {
        Ok(DeviceId(bytes.try_into().map_err(|_| DeviceIdError)?))
    }
}

impl std::fmt::Display for DeviceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for DeviceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeviceId({self})")
    }
}

impl std::str::FromStr for DeviceId {
    type Err = DeviceIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let b = s.as_bytes();
        if b.len() != 32 {
            return Err(DeviceIdError);
        }
        let digit = |c: u8| match c {
            b'0'..=b'9' => Ok(c - b'0'),
            b'a'..=b'f' => Ok(c - b'a' + 10),
            _ => Err(DeviceIdError),
        };
        let mut out = [0u8; 16];
        for (i, pair) in b.chunks(2).enumerate() {
            out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
        }
        Ok(DeviceId(out))
    }
}

impl Serialize for DeviceId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DeviceId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// `PUT /api/me/signing-key`: publishes this user's identity signing key (once; the same key
/// again is accepted, another one is `conflict`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PublishSigningKeyRequest {
    /// The Ed25519 public key.
    pub signing_key: SigningKey,
}

/// `POST /api/devices`: records one of this user's devices with its certificate (signed by the
/// user's signing key; the relay stores it for peers, who check it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RegisterDeviceRequest {
    /// The device's id.
    pub device: DeviceId,
    /// Its certificate.
    pub certificate: CertificateBytes,
}

/// One of a user's devices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeviceInfo {
    /// Its id.
    pub device: DeviceId,
    /// Its certificate.
    pub certificate: CertificateBytes,
    /// First registered.
    pub created_at: i64,
    /// Last time it acted (registered, uploaded key packages, appended to a log), to the
    /// minute.
    pub last_seen: i64,
    /// When it was removed (a removed device may no longer act).
    pub revoked_at: Option<i64>,
    /// One-use key packages the relay still holds for it.
    pub key_packages: u32,
}

/// `GET /api/devices`: this user's devices, removed ones included, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeviceList {
    /// The devices.
    pub devices: Vec<DeviceInfo>,
}

/// `POST /api/devices/{device}/key-packages`: one-use key packages (and optionally a new
/// last-resort one) for one of this user's devices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UploadKeyPackagesRequest {
    /// One-use key packages (the device then holds at most
    /// [`crate::MAX_KEY_PACKAGES_PER_DEVICE`]).
    pub key_packages: Vec<MlsBytes>,
    /// Replaces the device's last-resort key package (handed out when no one-use one is left).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_resort: Option<MlsBytes>,
}

/// How many one-use key packages a device has left on the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyPackageCount {
    /// One-use packages left.
    pub left: u32,
}

/// `POST /api/key-packages/claim`: one key package for each active device of each user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ClaimKeyPackagesRequest {
    /// The users (at most [`crate::MAX_CLAIM_USERS`]).
    pub users: Vec<Username>,
}

/// One device's key package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeviceKeyPackage {
    /// The device.
    pub device: DeviceId,
    /// Its key package (a one-use one, handed out once, or the last-resort one).
    pub key_package: MlsBytes,
}

/// Key packages of one user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserKeyPackages {
    /// The user.
    pub user: Username,
    /// One per active device that has any (empty: the user has no device that can be added).
    pub key_packages: Vec<DeviceKeyPackage>,
}

/// The answer to a claim, in the order asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClaimedKeyPackages {
    /// Per user.
    pub users: Vec<UserKeyPackages>,
}

/// `POST /api/groups`: a new group conversation with this user as its only member and admin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateGroupRequest {
    /// The MLS group id.
    pub group_id: GroupId,
    /// The device creating it (one of this user's).
    pub device: DeviceId,
    /// The GroupInfo of epoch 0.
    pub group_info: MlsBytes,
}

/// A member of a group conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GroupMember {
    /// Who.
    pub user: Username,
    /// May add members, remove others and change the admins.
    pub admin: bool,
    /// Their devices have received the log up to this position (receipts: "delivered to 3
    /// of 5"; 0 before anything).
    pub delivered_up_to: u64,
    /// They have read the log up to this position.
    pub read_up_to: u64,
}

/// A group conversation as the relay sees it: who may read its log, and its current epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GroupState {
    /// The conversation.
    pub conversation: ConversationId,
    /// A group, or a direct conversation moved to MLS (its two users, both admins, neither of
    /// whom may add, remove or leave).
    pub kind: crate::ConversationKind,
    /// The MLS group id.
    pub group_id: GroupId,
    /// The current epoch (the number of commits in the log).
    pub epoch: u64,
    /// The members, by name.
    pub members: Vec<GroupMember>,
    /// Removed devices of the members: whichever member sees one still in the group commits
    /// its removal.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed_devices: Vec<DeviceId>,
}

/// `GET /api/groups`: this user's group conversations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GroupList {
    /// The groups, by conversation id.
    pub groups: Vec<GroupState>,
}

/// `GET /api/groups/{id}/group-info`: the GroupInfo of the current epoch, for a member's new
/// device to join by an external commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GroupInfoResponse {
    /// Its epoch.
    pub epoch: u64,
    /// The log position the joiner's commit comes after (its cursor once joined).
    pub seq: u64,
    /// The GroupInfo.
    pub group_info: MlsBytes,
}

/// What a commit changes at the relay (the relay cannot read the commit; its members check that
/// these agree with it, and the relay checks who may make them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CommitEffects {
    /// The new epoch's GroupInfo.
    pub group_info: MlsBytes,
    /// The Welcome for added devices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub welcome: Option<MlsBytes>,
    /// The devices the Welcome is for (each an active device of a member after the commit).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub welcome_devices: Vec<DeviceId>,
    /// Users who become members (admins only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub added: Vec<Username>,
    /// Users who stop being members (admins only, but for users who left).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<Username>,
    /// The new list of admins, when it changes (admins only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admins: Option<Vec<Username>>,
}

/// `POST /api/groups/{id}/log`: appends an MLS message to a group's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AppendRequest {
    /// The sending device (one of this user's).
    pub device: DeviceId,
    /// The device's id for the entry; a resend with the same id is stored once.
    pub client_msg_id: ClientMsgId,
    /// The MLS message (its group and epoch must be the group's current ones).
    pub message: MlsBytes,
    /// For a commit: what it changes. Absent for an application message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<CommitEffects>,
    /// The attachments an application message carries (the sender's own uploads, at most
    /// [`crate::MAX_BLOBS_PER_MESSAGE`]): the group's members, and past members up to where
    /// they left, may then download them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blobs: Vec<crate::BlobId>,
}

/// Where an entry landed in its group's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AppendedEntry {
    /// Its position (strictly increasing across all groups).
    pub seq: u64,
    /// When the relay stored it.
    pub ts: i64,
}

/// What an MLS log entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// An application message.
    Application,
    /// A standalone proposal.
    Proposal,
    /// A commit.
    Commit,
}

/// One entry of a group's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GroupEntry {
    /// Its position.
    pub seq: u64,
    /// The group conversation.
    pub conversation: ConversationId,
    /// The sending user.
    pub sender: Username,
    /// The sending device.
    pub device: DeviceId,
    /// The epoch it was made in.
    pub epoch: u64,
    /// What it is.
    pub kind: EntryKind,
    /// The MLS message.
    pub message: MlsBytes,
    /// When the relay stored it.
    pub ts: i64,
}

/// `GET /api/group-log?since=…&limit=…`: entries after `since` of every group this user is a
/// member of.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct GroupLogQuery {
    /// The last position this device has.
    #[serde(default)]
    pub since: u64,
    /// Page size (default and most: [`crate::MAX_LOG_PAGE`]).
    pub limit: Option<u32>,
    /// The reading device (one of this user's): the relay records that it has processed every
    /// entry up to `since` in all its groups, and deletes entries every device has passed.
    pub device: Option<DeviceId>,
}

impl GroupLogQuery {
    /// `?since=…[&limit=…][&device=…]`.
    pub fn to_query(&self) -> String {
        let mut q = format!("?since={}", self.since);
        if let Some(l) = self.limit {
            q.push_str(&format!("&limit={l}"));
        }
        if let Some(d) = self.device {
            q.push_str(&format!("&device={d}"));
        }
        q
    }
}

/// A page of the group log, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GroupLogResponse {
    /// The entries.
    pub entries: Vec<GroupEntry>,
    /// More follow after the last one.
    pub more: bool,
}

/// A Welcome waiting for a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WelcomeOut {
    /// Its id (to say it was taken).
    pub id: u64,
    /// The group conversation.
    pub conversation: ConversationId,
    /// The position of the commit that made it: the joined device reads the log after it.
    pub seq: u64,
    /// The Welcome.
    pub welcome: MlsBytes,
}

/// `GET /api/devices/{device}/welcomes`: oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WelcomeList {
    /// The Welcomes.
    pub welcomes: Vec<WelcomeOut>,
}

/// `POST /api/devices/{device}/welcomes/taken`: the device has joined (or refused) the
/// Welcomes up to `up_to`; they go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WelcomesTakenRequest {
    /// The highest Welcome id taken.
    pub up_to: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_ids_are_32_lowercase_hex_digits() {
        let id = DeviceId([0xab; 16]);
        assert_eq!(id.to_string(), "ab".repeat(16));
        assert_eq!(id.to_string().parse::<DeviceId>(), Ok(id));
        assert_eq!(serde_json::to_string(&id).unwrap(), format!("\"{}\"", "ab".repeat(16)));
        assert!("AB".repeat(16).parse::<DeviceId>().is_err());
        assert!("ab".repeat(15).parse::<DeviceId>().is_err());
        assert!(format!("{}é", "a".repeat(30)).parse::<DeviceId>().is_err());
        assert!(serde_json::from_str::<DeviceId>("\"zz\"").is_err());
    }
}

/// One message for the user's history archive: where it is in its group's log, who sent it
/// when (all four in the entry's associated data), and the sealed entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ArchiveEntryIn {
    /// The group conversation.
    pub conversation: ConversationId,
    /// The message's position in the group's log.
    pub seq: u64,
    /// Who sent it.
    pub sender: Username,
    /// The sender's clock, Unix milliseconds.
    pub sent_ms: u64,
    /// The sealed entry.
    pub entry: ArchiveBytes,
}

/// `POST /api/archive`: at most [`crate::MAX_ARCHIVE_BATCH`] entries. An entry already
/// archived (same conversation and position) is kept as it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ArchiveUpload {
    /// The entries.
    pub entries: Vec<ArchiveEntryIn>,
}

/// What an archive upload stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ArchiveStored {
    /// Entries new to the archive (the others were there already).
    pub stored: u32,
}

/// One archived message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ArchiveEntry {
    /// Its position in the group's log.
    pub seq: u64,
    /// Who sent it.
    pub sender: Username,
    /// The sender's clock, Unix milliseconds.
    pub sent_ms: u64,
    /// The sealed entry.
    pub entry: ArchiveBytes,
}

/// `GET /api/archive/{id}?before=&limit=`: the newest entries before `before`, oldest first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchiveQuery {
    /// Only entries at positions below this one.
    pub before: Option<u64>,
    /// Page size (default and most: [`crate::MAX_ARCHIVE_PAGE`]).
    pub limit: Option<u32>,
}

impl ArchiveQuery {
    /// `?before=…&limit=…`, each only when set.
    pub fn to_query(&self) -> String {
        let parts: Vec<String> =
            [self.before.map(|b| format!("before={b}")), self.limit.map(|l| format!("limit={l}"))]
                .into_iter()
                .flatten()
                .collect();
        if parts.is_empty() {
            String::new()
        } else {
            format!("?{}", parts.join("&"))
        }
    }
}

/// A page of an archived conversation, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ArchivePage {
    /// The entries.
    pub entries: Vec<ArchiveEntry>,
    /// Older entries remain before the first one.
    pub more: bool,
}

/// A conversation with archived messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ArchivedConversation {
    /// The group conversation.
    pub conversation: ConversationId,
    /// How many messages.
    pub entries: u64,
    /// The newest one's position.
    pub last_seq: u64,
}

/// `GET /api/archive`: every conversation in the user's archive, the most recent first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ArchiveList {
    /// The conversations.
    pub conversations: Vec<ArchivedConversation>,
}
