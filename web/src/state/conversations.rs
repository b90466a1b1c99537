//! The conversation list, opening a chat, flags, clearing and the directory search.

use sealroom_protocol::endpoint::{
    Block, Blocks, Clear, Conversations, Endpoint, GetGroup, History, SearchUsers, SetFlags, Unblock,
};
use sealroom_protocol::{
    ClearRequest, ConversationId, ConversationSummary, ErrorCode, GroupSummary, MessageId, Username,
};

use super::keys::call;
use leptos::prelude::*;
use leptos::task::spawn_local;

use super::keys::with_keys;
use super::model::*;
use super::App;

thread_local! {
    /// Group members whose key was checked against the directory on this connection.
    static MEMBERS_CHECKED: std::cell::RefCell<std::collections::BTreeSet<String>> =
        Default::default();
    /// The last number [`next_event`] gave.
    static EVENTS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// A number for something that changes a conversation's preview (a message arriving, a
/// send, the list being fetched), taken when it happens: the list shows the preview of the
/// latest, although decrypting an earlier message may finish after a later one's.
pub(crate) fn next_event() -> u64 {
    EVENTS.with(|e| {
        e.set(e.get() + 1);
        e.get()
    })
}

impl App {
    /// Reloads the conversation list, decrypting previews.
    pub async fn load_conversations(self) {
        // What arrives after this is newer than what the list is about to say.
        let event = next_event();
        let (list, groups) = match call::<Conversations>(Conversations::PATH, None).await {
            Ok(l) => (l.conversations, l.groups),
            Err(e) if e.error == ErrorCode::SessionRevoked || e.error == ErrorCode::Unauthorized => {
                return self.forget(Some("Your session ended. Please sign in again.".into()))
            }
            Err(e) => return self.fail(&e),
        };
        let newest = list.iter().filter_map(|c| c.last_message.as_ref().map(|m| m.id.0)).max().unwrap_or(0);
        with_keys(|k| k.outbox.advance(MessageId(newest)));
        with_keys(|k| list.iter().for_each(|c| k.vault.directory_mut().learn(c)));
        let mut out = Vec::with_capacity(list.len() + groups.len());
        for c in list {
            out.push(self.conv_of(c, event).await);
        }
        let names = self.group_names(groups.iter().map(|g| g.id).collect()).await;
        for g in groups {
            let name = names.get(&g.id).cloned();
            out.push(self.group_conv(g, name, event).await);
        }
        sort_convs(&mut out);
        self.rooms.convs.set(out);
    }

    /// After a reconnect (when a changed key shows for a direct chat's peer too, through the
    /// list), the open group's members are checked again.
    pub(crate) fn recheck_group_members(&self) {
        MEMBERS_CHECKED.with(|c| c.borrow_mut().clear());
        if matches!(self.rooms.active.get_untracked(), Some(Room::Group(_))) {
            self.check_group_members();
        }
    }

    /// Checks, against the directory, the keys of the open group's members that this user has
    /// pinned (a member never pinned is pinned by the group's own flows on first use), each
    /// once per connection. A changed key shows as a line of the group's timeline, and writing
    /// to that member directly stops until it is accepted (`check_peer`); the group is not
    /// paused, since its leaves are checked against the pinned signing keys.
    pub(crate) fn check_group_members(&self) {
        let me = self.account.me.get_untracked().unwrap_or_default();
        let members = self.rooms.group.with_untracked(member_names);
        let due: Vec<String> = members
            .into_iter()
            .filter(|m| *m != me)
            .filter(|m| with_keys(|k| k.vault.pins().contains_key(m.as_str())).unwrap_or(false))
            .filter(|m| MEMBERS_CHECKED.with(|c| c.borrow_mut().insert(m.clone())))
            .collect();
        if due.is_empty() {
            return;
        }
        let app = *self;
        spawn_local(async move {
            for member in due {
                app.check_peer(&member, None).await;
            }
        });
    }

    /// A group's row: its name (from the device), and the newest message of the archive as
    /// its preview.
    async fn group_conv(&self, g: GroupSummary, name: Option<String>, event: u64) -> Conv {
        let me = self.account.me.get_untracked().unwrap_or_default();
        let members: Vec<String> = g.members.iter().map(|m| m.to_string()).collect();
        self.learn_moved(g.id);
        let newest = self.archived_page(g.id, None, 1).await.0.pop();
        let (preview, ts) = match newest {
            Some(m) => (preview_of(&m), m.ts.max(g.last_activity as f64)),
            None => (String::new(), g.last_activity as f64),
        };
        Conv {
            id: g.id,
            room: Room::Group(g.id),
            title: group_title(name.as_deref(), &members, &me),
            members,
            preview,
            preview_event: event,
            ts,
            unread: g.unread,
            online: false,
            last_seen: None,
            pinned: g.pinned,
            hidden: g.hidden,
            unread_up_to: None,
            markers: Markers::default(),
            log_read_up_to: g.log_read_up_to,
            deleted: false,
        }
    }

    pub(crate) async fn conv_of(&self, c: ConversationSummary, event: u64) -> Conv {
        let peer = c.peer.to_string();
        self.check_peer(&peer, Some(c.peer_identity_key)).await;
        let last = match &c.last_message {
            Some(m) => self.decrypt(m).await.map(|d| (d, m.ts as f64)),
            None => None,
        };
        let unread_up_to = match (&c.last_message, &last) {
            (Some(m), Some((d, _))) if !d.mine && c.unread > 0 => Some(m.id),
            _ => None,
        };
        // The introduction of a move is a line of the timeline, not a message to read: the
        // relay counts it (it cannot read it), this list does not.
        let introduction = matches!(&last, Some((d, _)) if d.text == super::mls::MOVED);
        let unread =
            sealroom_session::unread_shown(&c, introduction && matches!(&last, Some((d, _)) if !d.mine));
        // Something happened after the newest version 1 message (or none is left, or it is the
        // introduction of a move): the newest message may be in the archive (MLS).
        let v1_ts = c.last_message.as_ref().map_or(0, |m| m.ts);
        let last = if c.last_activity > v1_ts || introduction {
            match self.archived_page(c.id, None, 1).await.0.pop() {
                Some(m) if last.as_ref().is_none_or(|(_, ts)| m.ts >= *ts) => Some((m.clone(), m.ts)),
                _ => last,
            }
        } else {
            last
        };
        let (preview, ts) = match last {
            Some((d, ts)) => {
                let prefix = if d.mine { "You: " } else { "" };
                (format!("{prefix}{}", d.text), ts)
            }
            None => (String::new(), c.last_activity as f64),
        };
        Conv {
            id: c.id,
            room: Room::Direct(peer.clone()),
            title: peer,
            members: Vec::new(),
            preview,
            preview_event: event,
            ts,
            unread,
            online: c.peer_online,
            last_seen: c.peer_last_seen.map(|t| t as f64),
            pinned: c.pinned,
            hidden: c.hidden,
            unread_up_to,
            markers: Markers {
                delivered: c.peer_delivered_up_to.0,
                read: c.peer_read_up_to.0,
                log_delivered: c.peer_log_delivered_up_to,
                log_read: c.peer_log_read_up_to,
            },
            log_read_up_to: c.log_read_up_to,
            deleted: c.peer_deleted,
        }
    }

    /// The direct conversation with `peer`, if this client knows it (from the list or a
    /// message).
    pub(crate) fn conversation_of(&self, peer: &str) -> Option<ConversationId> {
        let peer = Username::parse(peer).ok()?;
        with_keys(|k| k.vault.directory().id(&peer)).flatten()
    }

    /// Opens a chat.
    pub async fn open_room(self, room: Room) {
        match room {
            Room::Direct(peer) => self.open_chat(peer).await,
            Room::Group(id) => self.open_group_chat(id).await,
        }
    }

    /// Shows `room` with nothing in it yet.
    fn enter(&self, room: Room) {
        self.rooms.active.set(Some(room));
        self.rooms.group.set(None);
        self.timeline.msgs.set(Vec::new());
        crate::files::drop_all(*self, false);
        self.timeline.has_more.set(false);
        self.timeline.v1_more.set(false);
        self.timeline.archive_more.set(false);
        self.timeline.typing_until.set(0.0);
        self.rooms.found.set(Vec::new());
        self.timeline.forward_secret.set(None);
    }

    /// Opens group `id`: its state at the relay (members, receipts) and its history from the
    /// archive.
    pub async fn open_group_chat(self, id: ConversationId) {
        let room = Room::Group(id);
        self.enter(room.clone());
        self.timeline.forward_secret.set(Some(true));
        self.refresh_group(id).await;
        self.check_group_members();
        let (msgs, more) = self.archived_page(id, None, 50).await;
        if !self.is_open(&room) {
            return;
        }
        self.timeline.archive_more.set(more);
        self.timeline.has_more.set(more);
        // What arrived live while the page was fetched stays.
        self.timeline.msgs.update(|shown| *shown = with_arrived(msgs, std::mem::take(shown)));
        self.apply_group_receipts();
        self.mark_read_open().await;
    }

    /// Fetches the open group's state again (members, admins, receipts).
    pub(crate) async fn refresh_group(&self, id: ConversationId) {
        match call::<GetGroup>(&GetGroup::path(&[&id]), None).await {
            Ok(state) if self.is_open(&Room::Group(id)) => {
                self.rooms.group.set(Some(state));
                self.apply_group_receipts();
            }
            Ok(_) => {}
            Err(e) if e.error == ErrorCode::NotFound => {
                if self.is_open(&Room::Group(id)) {
                    self.rooms.group.set(None);
                }
            }
            Err(e) => self.fail(&e),
        }
    }

    /// Sets the delivery state of this user's messages in the open group from its members'
    /// markers: read once every other member read it, delivered once every one received it.
    pub(crate) fn apply_group_receipts(&self) {
        let me = self.account.me.get_untracked().unwrap_or_default();
        let Some(markers) = self.rooms.group.with_untracked(|g| g.as_ref().map(|g| group_markers(g, &me)))
        else {
            return;
        };
        self.timeline.msgs.update(|ms| apply_markers(ms, markers));
    }

    /// Opens the chat with `peer` (the relay creates the conversation on the first message).
    pub async fn open_chat(self, peer: String) {
        self.enter(Room::Direct(peer.clone()));
        self.check_peer(&peer, None).await;
        let Some(id) = self.conversation_of(&peer) else {
            // A new chat: its first message opens it, as version 1 (for now: issue 14).
            return self.timeline.forward_secret.set(Some(false));
        };
        let moved = self.moved(id).await.ok();
        if self.is_open_with(&peer) {
            self.timeline.forward_secret.set(moved);
        }
        let query = sealroom_protocol::HistoryQuery { limit: Some(50), ..Default::default() };
        let page = match call::<History>(&(History::path(&[&id]) + &query.to_query()), None).await {
            Ok(p) => p,
            Err(e) if e.error == ErrorCode::NotFound => return, // a new chat
            Err(e) => return self.fail(&e),
        };
        let mut msgs = Vec::with_capacity(page.messages.len());
        for m in &page.messages {
            msgs.extend(self.decrypt(m).await);
        }
        // Since the conversation moved to MLS, its messages are in this user's archive:
        // merged by the senders' clocks (stable, so the introduction stays first).
        let (archived, archive_more) = self.archived_page(id, None, 50).await;
        if !archived.is_empty() {
            msgs.extend(archived);
            msgs.sort_by(|a, b| a.ts.total_cmp(&b.ts));
        }
        let peer_markers = Markers {
            delivered: page.peer_delivered_up_to.0,
            read: page.peer_read_up_to.0,
            ..self.markers_of(&peer)
        };
        apply_markers(&mut msgs, peer_markers);
        if !self.is_open_with(&peer) {
            return;
        }
        self.timeline.v1_more.set(page.has_more);
        self.timeline.archive_more.set(archive_more);
        self.timeline.has_more.set(page.has_more || archive_more);
        self.timeline.msgs.update(|shown| *shown = with_arrived(msgs, std::mem::take(shown)));
        self.mark_read_open().await;
    }

    /// How far `peer` has received and read this user's messages, as last heard.
    pub(crate) fn markers_of(&self, peer: &str) -> Markers {
        self.rooms
            .convs
            .with_untracked(|cs| cs.iter().find(|c| c.is_with(peer)).map(|c| c.markers))
            .unwrap_or_default()
    }

    /// Clears the open chat for this user or both.
    pub async fn clear(self, for_both: bool) {
        let Some(id) = self.open_conversation() else { return };
        // Up to the newest message on screen: one arriving meanwhile is not cleared unseen.
        let up_to = self.timeline.msgs.with_untracked(|m| m.iter().filter_map(|m| m.id).max()).map(MessageId);
        match call::<Clear>(&Clear::path(&[&id]), Some(&ClearRequest { for_both, up_to })).await {
            Ok(()) => {
                self.timeline.msgs.set(Vec::new());
                self.load_conversations().await;
            }
            Err(e) => self.fail(&e),
        }
    }

    /// Pins/unpins or closes a conversation.
    pub async fn set_flags(self, id: ConversationId, pinned: Option<bool>, hidden: Option<bool>) {
        let body = sealroom_protocol::ConversationFlags { pinned, hidden };
        match call::<SetFlags>(&SetFlags::path(&[&id]), Some(&body)).await {
            Ok(()) => self.load_conversations().await,
            Err(e) => self.fail(&e),
        }
    }

    /// Directory search.
    pub async fn search_users(self, prefix: String) {
        let prefix = prefix.trim().to_ascii_lowercase();
        self.rooms.search_error.set(None);
        // Answers can come back out of order as the user types: only the latest query's counts.
        self.rooms.search_query.set(prefix.clone());
        if prefix.is_empty() {
            return self.rooms.found.set(Vec::new());
        }
        let me = self.account.me.get_untracked().unwrap_or_default();
        let answer =
            call::<SearchUsers>(&format!("{}?prefix={prefix}&limit=10", SearchUsers::PATH), None).await;
        if self.rooms.search_query.get_untracked() != prefix {
            return;
        }
        match answer {
            Ok(r) => self
                .rooms
                .found
                .set(r.users.into_iter().map(|u| u.username.to_string()).filter(|u| *u != me).collect()),
            Err(e) => {
                self.rooms.found.set(Vec::new());
                self.rooms.search_error.set(Some(if e.error == ErrorCode::Internal {
                    "Can't reach the server. Try again when the connection is back.".into()
                } else {
                    human(&e)
                }));
            }
        }
    }

    /// Loads the list of blocked users.
    pub async fn load_blocks(self) {
        if let Ok(list) = call::<Blocks>(Blocks::PATH, None).await {
            self.rooms.blocked.set(list.users.into_iter().map(|u| u.to_string()).collect());
        }
    }

    /// Blocks or unblocks `peer`: a blocked user's messages are withheld by the relay (they are
    /// not told); this client does not write to them until unblocked.
    pub async fn set_blocked(self, peer: String, blocked: bool) {
        let result = if blocked {
            call::<Block>(&Block::path(&[&peer]), None).await
        } else {
            call::<Unblock>(&Unblock::path(&[&peer]), None).await
        };
        match result {
            Ok(()) => {
                self.rooms.blocked.update(|b| {
                    if blocked {
                        b.insert(peer.clone());
                    } else {
                        b.remove(&peer);
                    }
                });
                self.ui.notice.set(Some(if blocked {
                    format!("You blocked {peer}. Their messages no longer reach you; they are not told.")
                } else {
                    format!("You unblocked {peer}.")
                }));
            }
            Err(e) => self.fail(&e),
        }
    }

    /// A message was sent or arrived in `room`: its preview, time and unread count.
    /// `event` ([`next_event`]) is when it happened: the preview and time change only if it
    /// is later than what set them.
    pub(crate) fn touch_conv(&self, room: &Room, preview: String, ts: f64, unread: bool, event: u64) {
        let mut known = true;
        self.rooms.convs.update(|cs| match cs.iter_mut().find(|c| c.room == *room) {
            Some(c) => {
                if event >= c.preview_event {
                    c.preview = preview;
                    c.preview_event = event;
                    c.ts = ts;
                }
                c.hidden = false;
                if unread {
                    c.unread += 1;
                }
            }
            None => known = false,
        });
        if known {
            self.rooms.convs.update(|cs| sort_convs(cs));
        } else {
            let app = *self;
            spawn_local(async move { app.load_conversations().await });
        }
    }
}

/// What the list shows of a message: its text, after "You: " or the sender's name in a group.
pub(crate) fn preview_of(m: &Msg) -> String {
    if m.mine {
        format!("You: {}", m.text)
    } else if let (Some(sender), false) = (&m.sender, m.system) {
        format!("{sender}: {}", m.text)
    } else {
        m.text.clone()
    }
}
