//! The state's plain types and the pure functions over them: no browser, no signals, no keys.

use sealroom_protocol::{ApiError, ClientFrame, ConversationId, ErrorCode, GroupState, MessageId};

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
    /// Who wrote it, in a group (shown above others' messages); `None` in a direct chat.
    pub sender: Option<String>,
    /// A line of the timeline rather than a message: a move to MLS, a rename, a member
    /// added or gone, a new device.
    pub system: bool,
}

/// Which chat: a direct one, by the peer's name, or a group, by its conversation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Room {
    /// With this user.
    Direct(String),
    /// This group conversation.
    Group(ConversationId),
}

impl Room {
    /// The peer of a direct chat.
    pub fn peer(&self) -> Option<&str> {
        match self {
            Room::Direct(p) => Some(p),
            Room::Group(_) => None,
        }
    }

    /// The group's conversation.
    pub fn group(&self) -> Option<ConversationId> {
        match self {
            Room::Direct(_) => None,
            Room::Group(id) => Some(*id),
        }
    }

    /// The room a [`slug`](Self::slug) names.
    pub fn from_slug(slug: &str) -> Option<Room> {
        match slug.strip_prefix('#') {
            Some(id) => id.parse().ok().map(|id| Room::Group(ConversationId(id))),
            None => sealroom_protocol::Username::parse(slug).ok().map(|u| Room::Direct(u.to_string())),
        }
    }

    /// A name for it in this tab's storage and in the page (drafts, scroll, element ids):
    /// the peer's name, or `#` and the group's id (never a username).
    pub fn slug(&self) -> String {
        match self {
            Room::Direct(p) => p.clone(),
            Room::Group(id) => format!("#{}", id.0),
        }
    }
}

/// A group's name for people: its name, else its other members.
pub fn group_title(name: Option<&str>, members: &[String], me: &str) -> String {
    match name {
        Some(n) if !n.trim().is_empty() => n.to_owned(),
        _ => {
            let others: Vec<&str> = members.iter().map(String::as_str).filter(|m| *m != me).collect();
            if others.is_empty() {
                "Group".into()
            } else {
                others.join(", ")
            }
        }
    }
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
    /// Which chat it is.
    pub room: Room,
    /// What the list shows: the peer's name, or the group's.
    pub title: String,
    /// A group's members, this user included (empty for a direct chat).
    pub members: Vec<String>,
    /// Decrypted preview of the last message.
    pub preview: String,
    /// Which event set the preview ([`super::conversations::next_event`]): a later one only
    /// replaces it, whatever order their decryptions finish in.
    pub preview_event: u64,
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
    /// How far the peer has received and read this user's messages.
    pub markers: Markers,
    /// Up to where this user has read the conversation's MLS log.
    pub log_read_up_to: u64,
    /// The peer deleted their account: the history stays readable, nothing can be sent.
    pub deleted: bool,
}

impl Conv {
    /// The peer of a direct chat.
    pub fn peer(&self) -> Option<&str> {
        self.room.peer()
    }

    /// Whether this is the direct chat with `peer`.
    pub fn is_with(&self, peer: &str) -> bool {
        self.peer() == Some(peer)
    }
}

/// How far someone has received and read a conversation: in version 1 (message ids) and in
/// its MLS log (log positions), each counted apart.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Markers {
    /// Version 1: received up to this id.
    pub delivered: i64,
    /// Version 1: read up to this id.
    pub read: i64,
    /// The MLS log: received up to this position.
    pub log_delivered: u64,
    /// The MLS log: read up to this position.
    pub log_read: u64,
}

/// A marker that rose: a version 1 id or a position in the MLS log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// Up to this version 1 message id.
    V1(i64),
    /// Up to this position in the MLS log.
    Log(u64),
}

impl Mark {
    /// Whether `m` is at or below this mark (a message of the other kind never is).
    fn covers(self, m: &Msg) -> bool {
        match self {
            Mark::V1(up_to) => m.id.is_some_and(|id| id <= up_to),
            Mark::Log(up_to) => m.seq.is_some_and(|seq| seq <= up_to),
        }
    }
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

/// Sets the delivery state of this user's stored messages from the peer's markers.
pub(crate) fn apply_markers(msgs: &mut [Msg], peer: Markers) {
    for m in msgs.iter_mut().filter(|m| m.mine && (m.id.is_some() || m.seq.is_some())) {
        m.state = if Mark::V1(peer.read).covers(m) || Mark::Log(peer.log_read).covers(m) {
            Delivery::Read
        } else if Mark::V1(peer.delivered).covers(m) || Mark::Log(peer.log_delivered).covers(m) {
            Delivery::Delivered
        } else {
            Delivery::Sent
        };
    }
}

/// A peer's marker rose: this user's messages it covers are delivered, or read (states only
/// move forward; a failed one stays failed).
pub(crate) fn raise_markers(msgs: &mut [Msg], mark: Mark, read: bool) {
    for m in msgs.iter_mut().filter(|m| m.mine && mark.covers(m)) {
        if read {
            m.state = Delivery::Read;
        } else if matches!(m.state, Delivery::Sent | Delivery::Sending) {
            m.state = Delivery::Delivered;
        }
    }
}

impl Markers {
    /// These markers with `mark` raised (received, and read when `read`).
    pub(crate) fn raised(mut self, mark: Mark, read: bool) -> Self {
        match mark {
            Mark::V1(up_to) => {
                self.delivered = self.delivered.max(up_to);
                if read {
                    self.read = self.read.max(up_to);
                }
            }
            Mark::Log(up_to) => {
                self.log_delivered = self.log_delivered.max(up_to);
                if read {
                    self.log_read = self.log_read.max(up_to);
                }
            }
        }
        self
    }
}

/// The usernames of the open group's members (none while no group is open).
pub fn member_names(g: &Option<GroupState>) -> Vec<String> {
    g.iter().flat_map(|g| g.members.iter().map(|m| m.user.to_string())).collect()
}

/// Where a group's slowest other member is: this user's messages are delivered once every
/// other member received them, and read once every one read them.
pub fn group_markers(g: &GroupState, me: &str) -> Markers {
    let others = || g.members.iter().filter(|m| m.user.as_str() != me);
    Markers {
        log_delivered: others().map(|m| m.delivered_up_to).min().unwrap_or(0),
        log_read: others().map(|m| m.read_up_to).min().unwrap_or(0),
        ..Markers::default()
    }
}

/// How many of a group's other members have received and read the message at `seq`, and how
/// many there are: ("read by 3 of 5").
pub fn group_receipt(g: &GroupState, me: &str, seq: u64) -> (usize, usize, usize) {
    let others: Vec<_> = g.members.iter().filter(|m| m.user.as_str() != me).collect();
    let read = others.iter().filter(|m| m.read_up_to >= seq).count();
    let delivered = others.iter().filter(|m| m.delivered_up_to.max(m.read_up_to) >= seq).count();
    (read, delivered, others.len())
}

/// A member's marker in a group's state rose (never down).
pub fn raise_member(g: &mut GroupState, who: &str, up_to: u64, read: bool) {
    if let Some(m) = g.members.iter_mut().find(|m| m.user.as_str() == who) {
        m.delivered_up_to = m.delivered_up_to.max(up_to);
        if read {
            m.read_up_to = m.read_up_to.max(up_to);
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
        ErrorCode::InviteRequired => {
            "This server is invite-only: enter the invite code you were given.".into()
        }
        ErrorCode::InviteInvalid => {
            "That invite code is not valid: it may be mistyped, used up, expired or revoked.".into()
        }
        ErrorCode::RegistrationClosed => {
            "This server is not taking new accounts. Ask its operator if you should have one.".into()
        }
        ErrorCode::AccountDisabled => {
            "This account has been disabled by the server's operator. Ask them why.".into()
        }
        ErrorCode::RateLimited => format!("Too many attempts. {}", capitalize(&e.message)),
        ErrorCode::Unavailable => "The server is busy recovering. Try again in a moment.".into(),
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

/// A chat's history as fetched, with what arrived live while it was being fetched (and is not
/// in it: the same key, log position or message id is one message), in the senders' order.
pub(crate) fn with_arrived(mut page: Vec<Msg>, arrived: Vec<Msg>) -> Vec<Msg> {
    for m in arrived {
        // (A copy still sending has no position yet: the same sender's clock and text.)
        let known = page.iter().any(|p| {
            p.key == m.key
                || (m.seq.is_some() && p.seq == m.seq)
                || (m.id.is_some() && p.id == m.id)
                || (p.mine && m.mine && p.ts == m.ts && p.text == m.text)
        });
        if !known {
            page.push(m);
        }
    }
    page.sort_by(|a, b| a.ts.total_cmp(&b.ts));
    page
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
            sender: None,
            system: false,
        }
    }

    fn in_log(seq: u64) -> Msg {
        Msg { id: None, seq: Some(seq), key: format!("s{seq}"), ..mine(0) }
    }

    fn states(msgs: &[Msg]) -> Vec<Delivery> {
        msgs.iter().map(|m| m.state.clone()).collect()
    }

    #[test]
    fn markers_set_delivery_states_of_own_messages_only() {
        let mut msgs = vec![mine(1), mine(2), mine(3), Msg { mine: false, ..mine(4) }];
        apply_markers(&mut msgs, Markers { delivered: 2, read: 1, ..Markers::default() });
        assert_eq!(states(&msgs), [Delivery::Read, Delivery::Delivered, Delivery::Sent, Delivery::Sent]);
    }

    /// A conversation that moved has version 1 ids and log positions side by side: each
    /// marker covers only its own kind, however the numbers compare.
    #[test]
    fn log_positions_and_message_ids_are_counted_apart() {
        let mut msgs = vec![mine(40), in_log(3), in_log(5), in_log(9)];
        let peer = Markers { delivered: 40, read: 0, log_delivered: 5, log_read: 3 };
        apply_markers(&mut msgs, peer);
        assert_eq!(states(&msgs), [Delivery::Delivered, Delivery::Read, Delivery::Delivered, Delivery::Sent]);

        raise_markers(&mut msgs, Mark::Log(9), false);
        assert_eq!(
            states(&msgs),
            [Delivery::Delivered, Delivery::Read, Delivery::Delivered, Delivery::Delivered]
        );
        raise_markers(&mut msgs, Mark::V1(100), true);
        assert_eq!(states(&msgs), [Delivery::Read, Delivery::Read, Delivery::Delivered, Delivery::Delivered]);
        // A failed message stays failed when only its delivery is reported.
        let mut failed = vec![Msg { state: Delivery::Failed("no".into()), ..in_log(10) }];
        raise_markers(&mut failed, Mark::Log(10), false);
        assert_eq!(states(&failed), [Delivery::Failed("no".into())]);

        let raised = peer.raised(Mark::Log(4), true).raised(Mark::Log(12), false);
        assert_eq!(raised, Markers { log_delivered: 12, log_read: 4, ..peer }, "never down");
    }

    /// A message that arrived live while the history was fetched is kept, once.
    #[test]
    fn what_arrives_while_history_loads_is_kept_once() {
        let at = |seq: u64, ts: f64| Msg { ts, ..in_log(seq) };
        let page = vec![at(1, 1.0), at(2, 2.0)];
        let arrived = vec![at(2, 2.0), at(3, 3.0), Msg { key: "sending".into(), seq: None, ..at(0, 4.0) }];
        let merged = with_arrived(page, arrived);
        let keys: Vec<&str> = merged.iter().map(|m| m.key.as_str()).collect();
        assert_eq!(keys, ["s1", "s2", "s3", "sending"]);
    }

    #[test]
    fn the_list_is_pinned_first_then_newest() {
        let conv = |id, ts, pinned| Conv {
            id: ConversationId(id),
            room: Room::Direct(format!("p{id}")),
            title: format!("p{id}"),
            members: Vec::new(),
            preview: String::new(),
            preview_event: 0,
            ts,
            unread: 0,
            online: false,
            last_seen: None,
            pinned,
            hidden: false,
            unread_up_to: None,
            markers: Markers::default(),
            log_read_up_to: 0,
            deleted: false,
        };
        let mut cs = vec![conv(1, 10.0, false), conv(2, 30.0, false), conv(3, 5.0, true)];
        sort_convs(&mut cs);
        assert_eq!(cs.iter().map(|c| c.id.0).collect::<Vec<_>>(), [3, 2, 1]);
    }

    #[test]
    fn what_the_list_fetched_is_acknowledged_per_conversation() {
        let conv = |id, unread_up_to: Option<i64>| Conv {
            id: ConversationId(id),
            room: Room::Group(ConversationId(id)),
            title: String::new(),
            members: Vec::new(),
            preview: String::new(),
            preview_event: 0,
            ts: 0.0,
            unread: u32::from(unread_up_to.is_some()),
            online: false,
            last_seen: None,
            pinned: false,
            hidden: false,
            unread_up_to: unread_up_to.map(MessageId),
            markers: Markers::default(),
            log_read_up_to: 0,
            deleted: false,
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
    fn a_group_without_a_name_is_called_by_its_other_members() {
        let members = ["alice".to_owned(), "bob".to_owned(), "carol".to_owned()];
        assert_eq!(group_title(Some("Book club"), &members, "bob"), "Book club");
        assert_eq!(group_title(None, &members, "bob"), "alice, carol");
        assert_eq!(group_title(Some("  "), &members, "bob"), "alice, carol");
        assert_eq!(group_title(None, &members[1..2], "bob"), "Group");
        assert_eq!(Room::Group(ConversationId(6)).slug(), "#6");
        for room in [Room::Group(ConversationId(6)), Room::Direct("bob".into())] {
            assert_eq!(Room::from_slug(&room.slug()), Some(room));
        }
        assert_eq!(Room::from_slug("#x"), None);
    }

    #[test]
    fn a_group_message_is_read_when_every_other_member_read_it() {
        use sealroom_protocol::{GroupId, GroupMember, Username};
        let member = |u: &str, delivered_up_to, read_up_to| GroupMember {
            user: Username::parse(u).unwrap(),
            admin: false,
            delivered_up_to,
            read_up_to,
        };
        let mut g = GroupState {
            conversation: ConversationId(6),
            kind: sealroom_protocol::ConversationKind::Group,
            group_id: GroupId([0; 16]),
            epoch: 1,
            members: vec![member("alice", 0, 0), member("bob", 9, 5), member("carol", 7, 7)],
            removed_devices: vec![],
        };
        assert_eq!(
            group_markers(&g, "alice"),
            Markers { log_delivered: 7, log_read: 5, ..Markers::default() }
        );
        assert_eq!(group_receipt(&g, "alice", 6), (1, 2, 2), "carol read it; both have it");
        assert_eq!(group_receipt(&g, "alice", 8), (0, 1, 2));
        raise_member(&mut g, "bob", 8, true);
        raise_member(&mut g, "carol", 3, true);
        assert_eq!(group_receipt(&g, "alice", 8), (1, 1, 2), "markers never go down");
        let mut msgs = vec![in_log(5), in_log(7), in_log(8)];
        apply_markers(&mut msgs, group_markers(&g, "alice"));
        assert_eq!(states(&msgs), [Delivery::Read, Delivery::Read, Delivery::Sent], "carol has not got 8");
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
