//! REST requests and responses (all under `/api/`). Times are Unix milliseconds.

use serde::{Deserialize, Serialize};

use crate::bytes::{AuthKeyBytes, ClientMsgId, Envelope, IdentityKey, Salt, SealedBackup};
use crate::ids::{ConversationId, MessageId, UserId};
use crate::username::Username;

/// A JSON body that must be an object. serde's derived structs also accept an array of the
/// fields in order (`[null, null]` for [`ConversationFlags`]); the relay reads every request
/// body through this, so only the documented form is accepted (found by schemathesis).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonObject<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for JsonObject<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        object(d).map(JsonObject)
    }
}

impl<T> JsonObject<T> {
    /// The value.
    pub fn into_inner(self) -> T {
        self.0
    }
}

/// Deserializes a struct only from a JSON object, streaming (so errors keep their order and
/// position); for nested fields through `deserialize_with`.
fn object<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    struct Object<T>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Object<T> {
        type Value = T;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
        }
    }
    d.deserialize_map(Object(std::marker::PhantomData))
}

/// Argon2id cost parameters, stored with the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_kib: u32,
    /// Passes.
    pub t: u32,
    /// Lanes.
    pub p: u32,
}

/// `POST /api/prelogin`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PreloginRequest {
    /// Who is about to log in.
    pub username: Username,
}

/// The salt and parameters to derive `auth_key` with. An unknown user gets a stable fake salt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PreloginResponse {
    /// Argon2id salt.
    pub salt: Salt,
    /// Argon2id parameters.
    pub kdf: KdfParams,
}

/// `POST /api/register`: creates the account and logs in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// The new name.
    pub username: Username,
    /// HKDF(Argon2id(password), "sealroom/v1/auth").
    pub auth_key: AuthKeyBytes,
    /// The Argon2id salt the client chose.
    pub salt: Salt,
    /// The Argon2id parameters the client used.
    #[serde(deserialize_with = "object")]
    pub kdf: KdfParams,
    /// The X25519 identity public key.
    pub identity_key: IdentityKey,
    /// The sealed key backup.
    pub key_backup: SealedBackup,
    /// An invite code, needed when the relay's registration is `invite` (see [`ServerInfo`]);
    /// as the user typed it (case, spaces and dashes do not matter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invite: Option<String>,
}

/// Who may create an account on this relay (`--registration`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Registration {
    /// Anyone.
    Open,
    /// Whoever has an invite code.
    Invite,
    /// No one: the operator creates no accounts through sign-up.
    Closed,
}

impl Registration {
    /// The wire (and command-line) word.
    pub fn as_str(self) -> &'static str {
        match self {
            Registration::Open => "open",
            Registration::Invite => "invite",
            Registration::Closed => "closed",
        }
    }
}

/// `GET /api/server`: what a sign-up form needs to know before anyone is signed in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServerInfo {
    /// Who may register.
    pub registration: Registration,
    /// Messages older than this many days are deleted by the relay (none: kept until cleared).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<u32>,
}

/// `POST /api/admin/invites` (relay admins only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateInviteRequest {
    /// Sign-ups the code allows (1 to 10,000).
    pub max_uses: u32,
    /// Seconds until the code expires (at most a year); none: it never expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_secs: Option<u64>,
    /// A note for the admins (whom it is for), at most 200 characters.
    #[serde(default)]
    pub note: String,
}

/// Where an invite stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum InviteState {
    /// It can still be used.
    Active,
    /// Every use is taken.
    UsedUp,
    /// Past its expiry.
    Expired,
    /// Revoked by an admin.
    Revoked,
}

/// An invite as admins see it. The code itself is shown once, when it is created: the relay
/// keeps only a hash of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InviteInfo {
    /// Its id (to revoke it).
    pub id: i64,
    /// The admins' note.
    pub note: String,
    /// Sign-ups allowed.
    pub max_uses: u32,
    /// Sign-ups made with it.
    pub uses: u32,
    /// When it was made.
    pub created_at: i64,
    /// When it expires, if ever.
    pub expires_at: Option<i64>,
    /// The admin who made it (none: the admin CLI).
    pub created_by: Option<Username>,
    /// Where it stands now.
    pub state: InviteState,
}

/// A new invite, with its code (shown this once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedInvite {
    /// The code to hand to the people invited.
    pub code: String,
    /// The invite.
    pub invite: InviteInfo,
}

/// `GET /api/admin/invites`: every invite, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InviteList {
    /// The invites.
    pub invites: Vec<InviteInfo>,
}

/// `POST /api/login`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Who.
    pub username: Username,
    /// The credential derived from the password.
    pub auth_key: AuthKeyBytes,
}

/// The logged-in user, with the sealed key backup to unseal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Me {
    /// Server id.
    pub id: UserId,
    /// Name.
    pub username: Username,
    /// X25519 identity public key.
    pub identity_key: IdentityKey,
    /// The sealed key backup.
    pub key_backup: SealedBackup,
    /// Its version: updates must name it (`PUT /api/me/key-backup`).
    pub key_backup_version: i64,
    /// Account creation time.
    pub created_at: i64,
    /// Whether this user administers the relay (may manage invites); granted by the operator
    /// with `sealroom admin grant-admin`.
    #[serde(default)]
    pub admin: bool,
}

/// Answer to register, login and password change. Browsers also get the token as an
/// HttpOnly, SameSite=Strict cookie and can ignore `token`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionResponse {
    /// The JWT, for `Authorization: Bearer`.
    pub token: String,
    /// This session's id.
    pub session_id: String,
    /// When the token expires.
    pub expires_at: i64,
    /// The user.
    pub user: Me,
}

/// `POST /api/password`: re-authenticates with the current `auth_key`, then atomically
/// replaces the credential, KDF salt/params and key backup; other sessions are revoked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    /// The current credential.
    pub auth_key: AuthKeyBytes,
    /// The new credential.
    pub new_auth_key: AuthKeyBytes,
    /// The new salt.
    pub new_salt: Salt,
    /// The new parameters.
    #[serde(deserialize_with = "object")]
    pub new_kdf: KdfParams,
    /// The backup re-sealed under the new password.
    pub new_key_backup: SealedBackup,
}

/// `PUT /api/me/key-backup`: replaces the backup if `expected_version` is the stored one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateKeyBackupRequest {
    /// The new sealed backup.
    pub key_backup: SealedBackup,
    /// The version this update was based on.
    pub expected_version: i64,
}

/// The stored backup's version after an update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyBackupVersion {
    /// New version.
    pub key_backup_version: i64,
}

/// `POST /api/me/delete`: deletes this account, proven with the password's credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DeleteAccountRequest {
    /// The current credential.
    pub auth_key: AuthKeyBytes,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A user in the directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserInfo {
    /// Name.
    pub username: Username,
    /// X25519 identity public key.
    pub identity_key: IdentityKey,
    /// Ed25519 identity signing key, once the user has published one (it signs the user's
    /// device certificates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_key: Option<crate::SigningKey>,
    /// They deleted their account: what they sent still decrypts (with this identity key), and
    /// nothing can be sent to them.
    #[serde(default, skip_serializing_if = "is_false")]
    pub deleted: bool,
}

/// `GET /api/users?prefix=…&limit=…`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserSearchResponse {
    /// Matches, by name.
    pub users: Vec<UserInfo>,
}

/// A stored message as the relay hands it out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MessageOut {
    /// Server-assigned, strictly increasing.
    pub id: MessageId,
    /// The conversation it belongs to.
    pub conversation: ConversationId,
    /// Sender (taken from the sender's session, never from what it sent).
    pub from: Username,
    /// Recipient.
    pub to: Username,
    /// The sender's id for it.
    pub client_msg_id: ClientMsgId,
    /// The ciphertext.
    pub envelope: Envelope,
    /// When the relay stored it.
    pub ts: i64,
}

/// What kind of conversation it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ConversationKind {
    /// Two users, found or created by the peer's name ([`OpenDirectRequest`]).
    Direct,
    /// A named group of users with admins, on MLS (version 2).
    Group,
}

/// One row of the conversation list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConversationSummary {
    /// The relay's id for it: every conversation operation names it.
    pub id: ConversationId,
    /// Its kind.
    pub kind: ConversationKind,
    /// Every member, this user included, by name.
    pub members: Vec<Username>,
    /// The other participant (of a direct conversation).
    pub peer: Username,
    /// Their identity key.
    pub peer_identity_key: IdentityKey,
    /// The newest message this user can still see.
    pub last_message: Option<MessageOut>,
    /// Messages from the peer after this user's read marker: version 1 messages, and
    /// application messages in the conversation's MLS log after `log_read_up_to`.
    pub unread: u32,
    /// The peer has a live connection.
    pub peer_online: bool,
    /// When the peer was last connected (none if never, or online now).
    pub peer_last_seen: Option<i64>,
    /// Up to where the peer's clients have received this user's messages.
    pub peer_delivered_up_to: MessageId,
    /// Up to where the peer has read.
    pub peer_read_up_to: MessageId,
    /// Up to where this user has read.
    pub read_up_to: MessageId,
    /// Up to where this user has read the conversation's MLS log (a log position; 0 until it
    /// moved). Log positions are not message ids: each has its own markers.
    pub log_read_up_to: u64,
    /// Up to where the peer's devices have received the log.
    pub peer_log_delivered_up_to: u64,
    /// Up to where the peer has read the log.
    pub peer_log_read_up_to: u64,
    /// The peer deleted their account (shown as a deleted user; nothing can be sent to them).
    #[serde(default, skip_serializing_if = "is_false")]
    pub peer_deleted: bool,
    /// Pinned to the top by this user.
    pub pinned: bool,
    /// Closed by this user (reopens on the next message).
    pub hidden: bool,
    /// Time of the last message (0 for a conversation opened but never written to).
    pub last_activity: i64,
}

/// `POST /api/conversations/direct`: the direct conversation with `peer`, created if the two
/// users have none yet. The peer does not see it until the first message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OpenDirectRequest {
    /// The other user.
    pub peer: Username,
}

/// `GET /api/conversations`: pinned first, then by last activity, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConversationsResponse {
    /// The direct conversations.
    pub conversations: Vec<ConversationSummary>,
    /// The group conversations this user is a member of (their names and messages are in
    /// MLS: only members read them). Same order.
    #[serde(default)]
    pub groups: Vec<GroupSummary>,
}

/// One group of the conversation list: what the relay knows of it (its name, in MLS, it
/// does not).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GroupSummary {
    /// The relay's id for it.
    pub id: ConversationId,
    /// Its members, this user included, by name.
    pub members: Vec<Username>,
    /// Application messages from others in its log after this user's read marker (and
    /// after what they cleared).
    pub unread: u32,
    /// Up to where this user has read its log.
    pub log_read_up_to: u64,
    /// Pinned to the top by this user.
    pub pinned: bool,
    /// Closed by this user (reopens on the next message).
    pub hidden: bool,
    /// Time of its newest log entry (or of its creation).
    pub last_activity: i64,
}

/// `GET /api/conversations/{id}/messages?before=&after=&limit=`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// Only messages with a smaller id (a page further back).
    pub before: Option<MessageId>,
    /// Only messages with a larger id (catching up).
    pub after: Option<MessageId>,
    /// Page size (default 50, at most 500).
    pub limit: Option<u32>,
}

/// A page of history, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HistoryResponse {
    /// Messages, ascending by id.
    pub messages: Vec<MessageOut>,
    /// More exist in the direction asked.
    pub has_more: bool,
    /// The peer's delivery marker for this user's messages.
    pub peer_delivered_up_to: MessageId,
    /// The peer's read marker.
    pub peer_read_up_to: MessageId,
}

/// `POST /api/conversations/{id}/read`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MarkReadRequest {
    /// Everything up to this id is read.
    pub up_to: MessageId,
}

/// `POST /api/conversations/{id}/clear`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ClearRequest {
    /// Also delete for every other member (their live clients get `chat_cleared`).
    #[serde(default)]
    pub for_both: bool,
    /// Clear up to and including this message: the newest the clearer has seen, so nothing
    /// that arrived meanwhile is cleared unseen. Omitted: up to the newest message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub up_to: Option<MessageId>,
}

/// `PUT /api/conversations/{id}/flags`: omitted fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ConversationFlags {
    /// Pin to the top.
    pub pinned: Option<bool>,
    /// Close (hide until the next message).
    pub hidden: Option<bool>,
}

/// `GET /api/blocks`: the users this user has blocked, by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BlockList {
    /// Blocked users.
    pub users: Vec<Username>,
}

/// `GET /healthz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    /// "ok", or "unavailable" (with status 503) while the database or the message bus is
    /// unreachable: a load balancer sends no one to this node then.
    pub status: String,
    /// Server version.
    pub version: String,
    /// The database: "ok" or "unreachable".
    pub database: String,
    /// Among several relay nodes, the message bus between them (NATS): "ok" or
    /// "unreachable"; absent on a single relay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nats: Option<String>,
}

/// `POST /api/blobs` (201): the stored upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UploadResponse {
    /// The relay's id for it; put it in the `send` frame's `blobs` and the encrypted payload.
    pub blob_id: crate::BlobId,
    /// Bytes stored.
    pub size: u64,
}

/// `GET /api/blobs`: this user's attachment storage and the relay's limits.
///
/// [`StorageInfo::refusal`] tells a client what the relay would say to an upload before it
/// sends a byte.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StorageInfo {
    /// Bytes of blobs this user uploaded that are still stored.
    pub used: u64,
    /// Most bytes of blobs one user may have stored.
    pub quota: u64,
    /// Largest file a client may send, in bytes of plaintext.
    pub max_file_size: u64,
    /// Largest blob the relay accepts: [`crate::blob_size_for`]`(max_file_size)`.
    pub max_blob_size: u64,
    /// Seconds an upload may stay unreferenced by any message before the relay deletes it.
    pub unattached_ttl_secs: u64,
}

impl StorageInfo {
    /// The error an upload of a `file_size`-byte file would get: `payload_too_large` over the
    /// size limit, `quota_exceeded` when its blob would not fit in the quota, else `None`.
    pub fn refusal(&self, file_size: u64) -> Option<crate::ErrorCode> {
        if file_size > self.max_file_size {
            Some(crate::ErrorCode::PayloadTooLarge)
        } else if self.used.saturating_add(crate::blob_size_for(file_size)) > self.quota {
            Some(crate::ErrorCode::QuotaExceeded)
        } else {
            None
        }
    }
}
