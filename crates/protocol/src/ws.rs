//! WebSocket frames on `/ws`: JSON text frames, internally tagged by `type`, snake_case.

use serde::{Deserialize, Serialize};

use crate::api::MessageOut;
use crate::blob::BlobId;
use crate::bytes::{ClientMsgId, Envelope};
use crate::error::{ApiError, ErrorCode};
use crate::groups::{DeviceId, GroupEntry};
use crate::ids::{ConversationId, MessageId};
use crate::username::Username;
use crate::MlsBytes;

/// What a client sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientFrame {
    /// Optional: states the protocol version the client speaks.
    Hello {
        /// Must be [`crate::PROTOCOL_VERSION`].
        protocol: u32,
    },
    /// Store and relay a message. The sender is always the session's user.
    Send {
        /// The conversation (the sender must be a member).
        conversation: ConversationId,
        /// The client's id for it; a resend with the same id is stored once.
        client_msg_id: ClientMsgId,
        /// The ciphertext.
        envelope: Envelope,
        /// Attachment blobs (uploaded by the sender) the message refers to; the relay then
        /// lets the other members download them. Omitted when empty.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        blobs: Vec<BlobId>,
    },
    /// Everything after `since` (in batches; each ends with `synced`).
    Sync {
        /// The last id this client has.
        since: MessageId,
    },
    /// "I am typing" in `conversation` (never stored; rate-limited).
    Typing {
        /// Where.
        conversation: ConversationId,
    },
    /// This client has received the conversation's messages up to `up_to`.
    Delivered {
        /// The conversation.
        conversation: ConversationId,
        /// Highest id received.
        up_to: MessageId,
    },
    /// This user has read the conversation's messages up to `up_to`.
    Read {
        /// The conversation.
        conversation: ConversationId,
        /// Highest id read.
        up_to: MessageId,
    },
    /// This client has received the messages of `conversation`'s MLS log up to position
    /// `up_to` (receipts in MLS; log positions are not message ids).
    GroupDelivered {
        /// The conversation (in MLS).
        conversation: ConversationId,
        /// Highest log position received.
        up_to: u64,
    },
    /// This user has read `conversation`'s MLS log up to position `up_to`.
    GroupRead {
        /// The conversation (in MLS).
        conversation: ConversationId,
        /// Highest log position read.
        up_to: u64,
    },
    /// Append an MLS application message to a group's log (commits go through
    /// `POST /api/groups/{id}/log`). Answered by `group_ack`, or an error carrying the
    /// `client_msg_id` (`stale_epoch`: process the log, encrypt again, retry).
    GroupSend {
        /// The group conversation.
        conversation: ConversationId,
        /// The sending device.
        device: DeviceId,
        /// The device's id for it; a resend with the same id is stored once.
        client_msg_id: ClientMsgId,
        /// The MLS message.
        message: MlsBytes,
    },
}

/// What the relay sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// First frame of every connection.
    Hello {
        /// Protocol version.
        protocol: u32,
        /// The session's user.
        user: Username,
        /// The session's id.
        session_id: String,
        /// The server's clock.
        server_time: i64,
    },
    /// A `send` was durably stored (or had been already: same id as the first time).
    Ack {
        /// The client's id.
        client_msg_id: ClientMsgId,
        /// The server's id.
        id: MessageId,
        /// Stored at.
        ts: i64,
    },
    /// A message to or from this user (live, or in a sync batch).
    Message {
        /// The message.
        message: MessageOut,
    },
    /// End of a sync batch.
    Synced {
        /// Highest id sent in this batch (or `since` if none).
        up_to: MessageId,
        /// Another batch follows after `sync {since: up_to}`.
        more: bool,
    },
    /// A user sharing a conversation with this one went online or offline.
    Presence {
        /// Who.
        user: Username,
        /// Online now.
        online: bool,
        /// When last seen, if offline.
        last_seen: Option<i64>,
    },
    /// `from` is typing in `conversation`.
    Typing {
        /// Where.
        conversation: ConversationId,
        /// Who types.
        from: Username,
    },
    /// `by` has received the messages of `conversation` up to `up_to`.
    Delivered {
        /// The conversation.
        conversation: ConversationId,
        /// The receiving user.
        by: Username,
        /// Highest id.
        up_to: MessageId,
    },
    /// `by` has read `conversation` up to `up_to`.
    Read {
        /// The conversation.
        conversation: ConversationId,
        /// The reading user.
        by: Username,
        /// Highest id.
        up_to: MessageId,
    },
    /// `by` has received `conversation`'s MLS log up to position `up_to`.
    GroupDelivered {
        /// The conversation.
        conversation: ConversationId,
        /// The receiving user.
        by: Username,
        /// Highest log position.
        up_to: u64,
    },
    /// `by` has read `conversation`'s MLS log up to position `up_to`.
    GroupRead {
        /// The conversation.
        conversation: ConversationId,
        /// The reading user.
        by: Username,
        /// Highest log position.
        up_to: u64,
    },
    /// `by` cleared `conversation` (for every member, or only for themself).
    ChatCleared {
        /// The conversation.
        conversation: ConversationId,
        /// Who cleared.
        by: Username,
        /// Deleted for every member.
        for_both: bool,
        /// Messages up to this id are gone.
        up_to: MessageId,
    },
    /// A `group_send` (or an append) is in the group's log.
    GroupAck {
        /// The client's id.
        client_msg_id: ClientMsgId,
        /// Its position.
        seq: u64,
        /// Stored at.
        ts: i64,
    },
    /// A new entry in the log of a group this user is in (or was removed from by it).
    GroupEntry {
        /// The entry.
        entry: GroupEntry,
    },
    /// A Welcome is waiting for one of this user's devices (`GET /api/devices/{device}/welcomes`).
    Welcome {
        /// The group conversation it joins.
        conversation: ConversationId,
        /// The device.
        device: DeviceId,
    },
    /// `user` left a group this user is in: a remaining member commits their removal.
    Left {
        /// The group conversation.
        conversation: ConversationId,
        /// Who left.
        user: Username,
    },
    /// The relay may have failed to pass on messages after `since` (one of its nodes lost its
    /// message bus, or another node died): lower the sync position to `since` if it is past
    /// it. The connection closes next (1013); reconnect and `sync`. Messages already had may
    /// come again through that sync: they are the same, by id.
    CatchUp {
        /// Sync from here.
        since: MessageId,
    },
    /// This session was logged out or replaced; the connection closes next.
    SessionRevoked {
        /// Why, for people.
        reason: String,
    },
    /// A frame was refused; the connection stays open unless the code says otherwise.
    Error {
        /// Stable code.
        code: ErrorCode,
        /// For people.
        message: String,
        /// The `send` this refers to, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_msg_id: Option<ClientMsgId>,
    },
}

impl ServerFrame {
    /// An error frame from an API error.
    pub fn error(e: ApiError, client_msg_id: Option<ClientMsgId>) -> Self {
        ServerFrame::Error { code: e.error, message: e.message, client_msg_id }
    }
}

/// Every `type` a client may send (a test checks each [`ClientFrame`] against it).
pub(crate) const CLIENT_TYPES: &[&str] =
    &["hello", "send", "sync", "typing", "delivered", "read", "group_delivered", "group_read", "group_send"];

/// Parses a client frame, telling apart bad JSON, an unknown `type`, and bad fields.
pub fn parse_client_frame(text: &str) -> Result<ClientFrame, ApiError> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| crate::error::classify_json_error(&e))?;
    match value.get("type") {
        Some(serde_json::Value::String(t)) if CLIENT_TYPES.contains(&t.as_str()) => {}
        Some(serde_json::Value::String(_)) => {
            return Err(ApiError::new(ErrorCode::UnknownFrame, "unknown frame type"));
        }
        _ => return Err(ApiError::new(ErrorCode::InvalidField, "frame needs a string field `type`")),
    }
    serde_json::from_value(value).map_err(|e| crate::error::classify_json_error(&e))
}
