//! The state's plain types and the pure functions over them: no browser, no signals, no keys.

use sealroom_protocol::{ApiError, ClientFrame, ConversationId, ErrorCode, MessageId};

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
    /// When: the sender's authenticated `sent_at` (local time while sending; the relay's time
    /// only for a message that does not open).
    pub ts: f64,
    /// The relay's receipt time, when it disagrees with `ts` by more than
    /// [`sealroom_session::CLOCK_SKEW_MS`]: shown beside it.
    pub relay_ts: Option<f64>,
    /// Delivery state of this user's messages.
    pub state: Delivery,
    /// The exact envelope stored by the relay, base64.
    pub envelope: String,
    /// Decryption failed.
    pub undecryptable: bool,
    /// The attachment, for a file message.
    pub file: Option<FileMeta>,
    /// Its position in the conversation's MLS log: a forward-secret message (`id` is then
    /// `None`: only version 1 messages have the relay's message ids).
    pub seq: Option<u64>,
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
    /// The relay's id for it.
    pub id: ConversationId,
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
    /// The newest message, when the peer sent it and this user has not read it: what this
    /// device has fetched and acknowledges as delivered.
    pub unread_up_to: Option<MessageId>,
}

/// The `delivered` receipts for what the conversation list fetched: every conversation whose
/// newest message is the peer's and unread. (Live and synced messages are acknowledged one by
/// one as they arrive.)
pub(crate) fn fetched_receipts(convs: &[Conv]) -> Vec<ClientFrame> {
    convs
        .iter()
        .filter_map(|c| c.unread_up_to.map(|up_to| ClientFrame::Delivered { conversation: c.id, up_to }))
        .collect()
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
    /// The key backup has no pin for them though this user wrote to them (an older backup
    /// was served): the key they checked was lost, not changed.
    pub pin_lost: bool,
}

pub(crate) fn apply_markers(msgs: &mut [Msg], delivered: i64, read: i64) {
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

/// What a username may be, in a sentence.
pub const USERNAME_RULE: &str = "Usernames are 3–32 letters, digits or _, starting with a letter.";

/// An error as a sentence for people.
pub fn human(e: &ApiError) -> String {
    match e.error {
        ErrorCode::UsernameTaken => "That name is taken. Try another.".into(),
        ErrorCode::InvalidUsername => USERNAME_RULE.into(),
        ErrorCode::InvalidCredentials => "Wrong username or password.".into(),
        ErrorCode::RateLimited => format!("Too many attempts. {}", capitalize(&e.message)),
        ErrorCode::Internal if e.message.starts_with("server unreachable") => {
            "The server is unreachable. Check your connection and try again.".into()
        }
        _ => capitalize(&e.message),
    }
}

pub(crate) fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// The list's order: pinned first, then newest activity first.
pub(crate) fn sort_convs(cs: &mut [Conv]) {
    cs.sort_by(|a, b| b.pinned.cmp(&a.pinned).then(b.ts.total_cmp(&a.ts)));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mine(id: i64) -> Msg {
        Msg {
            key: format!("k{id}"),
            id: Some(id),
            mine: true,
            text: String::new(),
            folded: String::new(),
            ts: 0.0,
            relay_ts: None,
            state: Delivery::Sent,
            envelope: String::new(),
            undecryptable: false,
            file: None,
            seq: None,
        }
    }

    #[test]
    fn markers_set_delivery_states_of_own_messages_only() {
        let mut msgs = vec![mine(1), mine(2), mine(3), Msg { mine: false, ..mine(4) }];
        apply_markers(&mut msgs, 2, 1);
        let states: Vec<_> = msgs.iter().map(|m| m.state.clone()).collect();
        assert_eq!(states, [Delivery::Read, Delivery::Delivered, Delivery::Sent, Delivery::Sent]);
    }

    #[test]
    fn the_list_is_pinned_first_then_newest() {
        let conv = |id, ts, pinned| Conv {
            id: ConversationId(id),
            peer: format!("p{id}"),
            preview: String::new(),
            ts,
            unread: 0,
            online: false,
            last_seen: None,
            pinned,
            hidden: false,
            unread_up_to: None,
        };
        let mut cs = vec![conv(1, 10.0, false), conv(2, 30.0, false), conv(3, 5.0, true)];
        sort_convs(&mut cs);
        assert_eq!(cs.iter().map(|c| c.id.0).collect::<Vec<_>>(), [3, 2, 1]);
    }

    #[test]
    fn what_the_list_fetched_is_acknowledged_per_conversation() {
        let conv = |id, unread_up_to: Option<i64>| Conv {
            id: ConversationId(id),
            peer: String::new(),
            preview: String::new(),
            ts: 0.0,
            unread: u32::from(unread_up_to.is_some()),
            online: false,
            last_seen: None,
            pinned: false,
            hidden: false,
            unread_up_to: unread_up_to.map(MessageId),
        };
        let frames = fetched_receipts(&[conv(1, Some(7)), conv(2, None), conv(3, Some(9))]);
        assert_eq!(
            frames,
            [
                ClientFrame::Delivered { conversation: ConversationId(1), up_to: MessageId(7) },
                ClientFrame::Delivered { conversation: ConversationId(3), up_to: MessageId(9) },
            ]
        );
    }

    #[test]
    fn errors_read_as_sentences() {
        assert_eq!(human(&ApiError::new(ErrorCode::UsernameTaken, "x")), "That name is taken. Try another.");
        assert_eq!(
            human(&ApiError::new(ErrorCode::NotFound, "no such conversation")),
            "No such conversation"
        );
        let offline = ApiError::new(ErrorCode::Internal, "server unreachable: reset");
        assert!(human(&offline).starts_with("The server is unreachable"));
    }
}
