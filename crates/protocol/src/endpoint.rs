//! Every REST endpoint, declared once: method, path pattern, request body and response body.
//!
//! The relay mounts its routes from these declarations and the clients build their requests
//! from them, so no URL is written twice. A path pattern uses actix's `{name}` segments;
//! [`Endpoint::path`] fills them in order, percent-encoding nothing because every value put in a
//! path is a username, a decimal id or a base64url blob id (all URL-safe by construction).
//!
//! # Example
//!
//! ```
//! use sealroom_protocol::endpoint::{Endpoint, History, Method};
//! use sealroom_protocol::{ConversationId, HistoryQuery, MessageId};
//!
//! assert_eq!(History::METHOD, Method::Get);
//! let q = HistoryQuery { before: Some(MessageId(9)), after: None, limit: Some(50) };
//! assert_eq!(
//!     History::path(&[&ConversationId(3)]) + &q.to_query(),
//!     "/api/conversations/3/messages?before=9&limit=50"
//! );
//! ```

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::api::*;
use crate::groups::*;

/// An HTTP method an endpoint answers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Method {
    /// GET.
    Get,
    /// POST.
    Post,
    /// PUT.
    Put,
    /// DELETE.
    Delete,
}

impl Method {
    /// The method's name as HTTP spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
        }
    }
}

/// One REST endpoint.
pub trait Endpoint {
    /// Its method.
    const METHOD: Method;
    /// Its path pattern, with `{name}` for each path parameter.
    const PATH: &'static str;
    /// The JSON request body (`()` for none).
    type Body: Serialize + DeserializeOwned;
    /// The JSON response body (`()` for 204 No Content).
    type Response: Serialize + DeserializeOwned;
    /// Whether success creates something: 201 Created rather than 200 OK.
    const CREATES: bool = false;

    /// The path with its `{…}` segments replaced by `args`, in order.
    fn path(args: &[&dyn std::fmt::Display]) -> String {
        fill(Self::PATH, args)
    }
}

fn fill(pattern: &str, args: &[&dyn std::fmt::Display]) -> String {
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut args = args.iter();
    let mut rest = pattern;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let Some(len) = rest[start..].find('}') else { break };
        match args.next() {
            Some(a) => out.push_str(&a.to_string()),
            None => out.push_str(&rest[start..=start + len]),
        }
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    out
}

macro_rules! endpoints {
    (@created) => { true };
    ($($(#[doc = $doc:literal])* $name:ident, $method:ident, $path:literal, $body:ty => $resp:ty $(, $creates:ident)?;)*) => {
        $(
            $(#[doc = $doc])*
            #[derive(Debug, Clone, Copy)]
            pub struct $name;
            impl Endpoint for $name {
                const METHOD: Method = Method::$method;
                const PATH: &'static str = $path;
                type Body = $body;
                type Response = $resp;
                $(const CREATES: bool = endpoints!(@$creates);)?
            }
        )*

        /// Every endpoint's method and path pattern, in declaration order (the authorization
        /// matrix test walks this list, so a new endpoint cannot go untested).
        pub const ALL: &[(Method, &str)] = &[$((Method::$method, $path)),*];

        /// Every endpoint's OpenAPI operation, in declaration order.
        #[cfg(feature = "openapi")]
        pub(crate) fn operations() -> Vec<crate::openapi::Operation> {
            vec![$(crate::openapi::Operation::of::<$name>(stringify!($name), &[$($doc),*])),*]
        }
    };
}

endpoints! {
    /// KDF salt and parameters for a username (a stable fake one for unknown names).
    Prelogin, Post, "/api/prelogin", PreloginRequest => PreloginResponse;
    /// Creates an account and a session.
    Register, Post, "/api/register", RegisterRequest => SessionResponse, created;
    /// Starts a session.
    Login, Post, "/api/login", LoginRequest => SessionResponse;
    /// Ends this session.
    Logout, Post, "/api/logout", () => ();
    /// Ends every session of this user.
    LogoutAll, Post, "/api/logout-all", () => ();
    /// Replaces credential and key backup together; signs out the other sessions.
    ChangePassword, Post, "/api/password", ChangePasswordRequest => Me;
    /// This user, with the sealed key backup.
    GetMe, Get, "/api/me", () => Me;
    /// Deletes this account (password required): sessions end, the key backup, devices and
    /// archive go; what they sent stays with its recipients.
    DeleteAccount, Post, "/api/me/delete", DeleteAccountRequest => ();
    /// Stores a re-sealed key backup, guarded by its version.
    PutKeyBackup, Put, "/api/me/key-backup", UpdateKeyBackupRequest => KeyBackupVersion;
    /// Users by name prefix (`?prefix=…&limit=…`).
    SearchUsers, Get, "/api/users", () => UserSearchResponse;
    /// One user's public identity: `{username}`.
    GetUser, Get, "/api/users/{username}", () => UserInfo;
    /// The conversation list.
    Conversations, Get, "/api/conversations", () => ConversationsResponse;
    /// The direct conversation with a user, created on first use.
    OpenDirect, Post, "/api/conversations/direct", OpenDirectRequest => ConversationSummary;
    /// A page of conversation `{id}`'s history (query: [`HistoryQuery`]).
    History, Get, "/api/conversations/{id}/messages", () => HistoryResponse;
    /// Moves this user's read marker in conversation `{id}`.
    MarkRead, Post, "/api/conversations/{id}/read", MarkReadRequest => ();
    /// Clears conversation `{id}`.
    Clear, Post, "/api/conversations/{id}/clear", ClearRequest => ();
    /// Pins or closes conversation `{id}`.
    SetFlags, Put, "/api/conversations/{id}/flags", ConversationFlags => ();
    /// The users this user has blocked.
    Blocks, Get, "/api/blocks", () => BlockList;
    /// Blocks `{username}`: what they send is withheld from this user; they are not told.
    Block, Put, "/api/blocks/{username}", () => ();
    /// Unblocks `{username}` (what was withheld stays withheld).
    Unblock, Delete, "/api/blocks/{username}", () => ();
    /// One stored message `{id}` this user may see.
    GetMessage, Get, "/api/messages/{id}", () => MessageOut;
    /// Uploads an encrypted blob (the body is raw bytes, not JSON).
    UploadBlob, Post, "/api/blobs", () => UploadResponse, created;
    /// This user's attachment storage and the relay's limits.
    BlobInfo, Get, "/api/blobs", () => StorageInfo;
    /// Downloads blob `{id}` (the response is raw bytes, not JSON).
    DownloadBlob, Get, "/api/blobs/{id}", () => ();
    /// Withdraws unsent blob `{id}`.
    DeleteBlob, Delete, "/api/blobs/{id}", () => ();
    /// Publishes this user's identity signing key (set once).
    PublishSigningKey, Put, "/api/me/signing-key", PublishSigningKeyRequest => ();
    /// Records one of this user's devices.
    RegisterDevice, Post, "/api/devices", RegisterDeviceRequest => DeviceInfo, created;
    /// This user's devices.
    Devices, Get, "/api/devices", () => DeviceList;
    /// Removes device `{device}`: it may no longer act, and the other members of its groups
    /// commit its removal.
    RemoveDevice, Delete, "/api/devices/{device}", () => ();
    /// Adds key packages to device `{device}`.
    UploadKeyPackages, Post, "/api/devices/{device}/key-packages", UploadKeyPackagesRequest => KeyPackageCount;
    /// The Welcomes waiting for device `{device}`.
    Welcomes, Get, "/api/devices/{device}/welcomes", () => WelcomeList;
    /// Device `{device}` has taken its Welcomes up to an id.
    WelcomesTaken, Post, "/api/devices/{device}/welcomes/taken", WelcomesTakenRequest => ();
    /// One key package for each device of each named user (one-use ones are handed out once).
    ClaimKeyPackages, Post, "/api/key-packages/claim", ClaimKeyPackagesRequest => ClaimedKeyPackages;
    /// Creates a group conversation.
    CreateGroup, Post, "/api/groups", CreateGroupRequest => GroupState, created;
    /// Moves direct conversation `{id}` to MLS: its group, made by one of its two users.
    MoveToMls, Post, "/api/conversations/{id}/group", CreateGroupRequest => GroupState, created;
    /// This user's group conversations (and direct conversations moved to MLS).
    Groups, Get, "/api/groups", () => GroupList;
    /// Group conversation `{id}`: members, admins and epoch.
    GetGroup, Get, "/api/groups/{id}", () => GroupState;
    /// The current GroupInfo of group `{id}`, for an external join.
    GetGroupInfo, Get, "/api/groups/{id}/group-info", () => GroupInfoResponse;
    /// Appends an MLS message to group `{id}`'s log.
    AppendToGroup, Post, "/api/groups/{id}/log", AppendRequest => AppendedEntry;
    /// Leaves group `{id}`: the relay stops routing it to this user at once; the remaining
    /// members commit the removal.
    LeaveGroup, Post, "/api/groups/{id}/leave", () => ();
    /// The group log of every group this user is in (query: [`GroupLogQuery`]).
    GroupLog, Get, "/api/group-log", () => GroupLogResponse;
    /// Adds messages to this user's history archive (a member's, or a past member's up to
    /// where they left).
    ArchiveMessages, Post, "/api/archive", ArchiveUpload => ArchiveStored;
    /// The conversations in this user's history archive.
    Archive, Get, "/api/archive", () => ArchiveList;
    /// A page of one conversation in this user's archive (query: [`crate::ArchiveQuery`]).
    ArchivedHistory, Get, "/api/archive/{id}", () => ArchivePage;
    /// Deletes this user's whole history archive (turning it off: strict forward secrecy).
    DeleteArchive, Delete, "/api/archive", () => ();
    /// Who may register here (needs no session).
    GetServerInfo, Get, "/api/server", () => ServerInfo;
    /// Creates an invite code (relay admins only).
    CreateInvite, Post, "/api/admin/invites", CreateInviteRequest => CreatedInvite, created;
    /// Every invite, newest first (relay admins only).
    Invites, Get, "/api/admin/invites", () => InviteList;
    /// Revokes invite `{id}` (relay admins only).
    RevokeInvite, Delete, "/api/admin/invites/{id}", () => ();
    /// This API's OpenAPI 3.1 description (generated from these declarations).
    OpenApiDocument, Get, "/api/openapi.json", () => serde_json::Value;
}

/// Whether `path` (no query) is an instance of the pattern `pattern` (`{name}` matches one
/// non-empty segment).
pub fn matches(pattern: &str, path: &str) -> bool {
    let (mut p, mut q) = (pattern.split('/'), path.split('/'));
    loop {
        match (p.next(), q.next()) {
            (None, None) => return true,
            (Some(a), Some(b)) if a.starts_with('{') && a.ends_with('}') => {
                if b.is_empty() {
                    return false;
                }
            }
            (Some(a), Some(b)) if a == b => {}
            _ => return false,
        }
    }
}

/// The methods that `path` answers to (empty for a path no endpoint has).
pub fn methods_at(path: &str) -> Vec<Method> {
    let mut out: Vec<Method> = ALL.iter().filter(|(_, p)| matches(p, path)).map(|(m, _)| *m).collect();
    out.sort();
    out.dedup();
    out
}

/// The WebSocket's path.
pub const WS_PATH: &str = "/ws";

impl HistoryQuery {
    /// `?before=…&after=…&limit=…` with only the fields that are set (empty when none).
    pub fn to_query(&self) -> String {
        let mut parts = Vec::new();
        if let Some(b) = self.before {
            parts.push(format!("before={b}"));
        }
        if let Some(a) = self.after {
            parts.push(format!("after={a}"));
        }
        if let Some(l) = self.limit {
            parts.push(format!("limit={l}"));
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!("?{}", parts.join("&"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_fill_in_order_and_keep_unfilled_segments() {
        assert_eq!(GetUser::path(&[&"bob"]), "/api/users/bob");
        assert_eq!(Clear::path(&[&crate::ConversationId(5)]), "/api/conversations/5/clear");
        assert_eq!(GetMessage::path(&[&42]), "/api/messages/42");
        assert_eq!(Clear::path(&[]), "/api/conversations/{id}/clear");
        assert_eq!(Login::path(&[]), "/api/login");
        assert_eq!(HistoryQuery::default().to_query(), "");
        assert!(matches("/api/users/{username}", "/api/users/bob"));
        assert!(!matches("/api/users/{username}", "/api/users/"));
        assert!(!matches("/api/users/{username}", "/api/users/bob/x"));
        assert_eq!(methods_at("/api/blobs/abc"), vec![Method::Get, Method::Delete]);
        assert_eq!(methods_at("/api/nothing"), vec![]);
        assert_eq!(
            HistoryQuery { before: None, after: Some(crate::MessageId(3)), limit: None }.to_query(),
            "?after=3"
        );
    }
}
