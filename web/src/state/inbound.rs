//! Every frame from the relay, and the tab coming back into view.

use sealroom_protocol::{ApiError, ClientFrame, ErrorCode, MessageOut, ServerFrame};
use sealroom_session::OutboxEvent;

use crate::api::Socket;
use crate::browser::{is_visible, notify, now};
use leptos::prelude::*;
use leptos::task::spawn_local;

use super::conversations::next_event;
use super::keys::with_keys;
use super::model::*;
use super::App;

/// How long "typing…" shows after a typing frame (the relay passes one every 1.5 seconds while
/// someone types).
const TYPING_SHOWN_MS: f64 = 4000.0;

impl App {
    pub(crate) fn on_socket(&self, up: bool) {
        self.account.online.set(up);
    }

    pub(crate) fn on_frame(&self, frame: ServerFrame) {
        let app = *self;
        match frame {
            ServerFrame::Hello { .. } => {
                // A fresh connection: what the last one complained about is resolved.
                self.ui.connection_notice.set(None);
                // Catch up on what was missed, then flush the outbox (resends are de-duplicated
                // by client_msg_id, so nothing is stored twice).
                self.flush_outbox();
                // What the list fetched while this device was away is delivered now, whether
                // or not its chat is opened.
                let receipts = self.rooms.convs.with_untracked(|cs| fetched_receipts(cs));
                with_keys(|k| {
                    if let Some(s) = &k.socket {
                        for f in &receipts {
                            s.send(f);
                        }
                    }
                });
                if with_keys(|k| k.outbox.cursor().0 > 0).unwrap_or(false) {
                    spawn_local(async move { app.load_conversations().await });
                }
                self.recheck_group_members();
                // What the groups' logs got meanwhile, and this tab's unanswered sends.
                self.sync_groups();
                self.resend_unanswered();
            }
            ServerFrame::Ack { .. } | ServerFrame::Synced { .. } => {
                match with_keys(|k| k.outbox.on_frame(&frame)) {
                    Some(OutboxEvent::Acked { client_msg_id, id, ts }) => {
                        let key = client_msg_id.to_b64();
                        self.timeline.msgs.update(|ms| {
                            if let Some(m) = ms.iter_mut().find(|m| m.key == key) {
                                m.id = Some(id.0);
                                m.ts = ts as f64;
                                if m.state == Delivery::Sending {
                                    m.state = Delivery::Sent;
                                }
                            }
                        });
                    }
                    Some(OutboxEvent::SyncMore(next)) => {
                        with_keys(|k| k.socket.as_ref().map(|s| s.send(&next)));
                    }
                    _ => {}
                }
            }
            ServerFrame::Message { message } => {
                with_keys(|k| k.outbox.arrived(message.id));
                spawn_local(async move { app.on_message(message).await })
            }
            ServerFrame::Presence { user, online, last_seen } => self.rooms.convs.update(|cs| {
                if let Some(c) = cs.iter_mut().find(|c| c.is_with(user.as_str())) {
                    c.online = online;
                    c.last_seen = last_seen.map(|t| t as f64);
                }
            }),
            ServerFrame::Typing { from, conversation } => {
                let here = match self.rooms.active.get_untracked() {
                    Some(Room::Direct(peer)) => peer == from.as_str(),
                    Some(Room::Group(id)) => id == conversation,
                    None => false,
                };
                if here {
                    self.timeline.typing_who.set(from.to_string());
                    // "typing…" ends by itself when no new frame renews it.
                    let until = now() + TYPING_SHOWN_MS;
                    let shown = self.timeline.typing_until;
                    shown.set(until);
                    set_timeout(
                        move || {
                            if shown.try_get_untracked() == Some(until) {
                                shown.set(0.0);
                            }
                        },
                        std::time::Duration::from_millis(TYPING_SHOWN_MS as u64 + 50),
                    );
                }
            }
            ServerFrame::Delivered { by, up_to, .. } | ServerFrame::Read { by, up_to, .. }
                if self.account.me.get_untracked().as_deref() == Some(by.as_str()) =>
            {
                // This user read on another tab.
                let _ = up_to;
                spawn_local(async move { app.load_conversations().await });
            }
            ServerFrame::Delivered { by, up_to, .. } => {
                self.peer_marker(by.as_str(), Mark::V1(up_to.0), false)
            }
            ServerFrame::Read { by, up_to, .. } => self.peer_marker(by.as_str(), Mark::V1(up_to.0), true),
            ServerFrame::GroupDelivered { by, .. } | ServerFrame::GroupRead { by, .. }
                if self.account.me.get_untracked().as_deref() == Some(by.as_str()) =>
            {
                // This user read on another tab or device.
                spawn_local(async move { app.load_conversations().await });
            }
            ServerFrame::GroupDelivered { by, up_to, conversation } => {
                self.log_marker(conversation, by.as_str(), up_to, false)
            }
            ServerFrame::GroupRead { by, up_to, conversation } => {
                self.log_marker(conversation, by.as_str(), up_to, true)
            }
            ServerFrame::ChatCleared { conversation, by, up_to, .. } => {
                let me = self.account.me.get_untracked().unwrap_or_default();
                if self.open_conversation() == Some(conversation) {
                    // Version 1 messages up to `up_to` go; in MLS, the relay cleared the archive
                    // up to its newest position, so every MLS message shown goes too.
                    self.timeline
                        .msgs
                        .update(|ms| ms.retain(|m| m.seq.is_none() && m.id.is_none_or(|id| id > up_to.0)));
                    if by.as_str() != me {
                        self.ui.notice.set(Some(if self.open_group().is_some() {
                            format!("{by} cleared this group for everyone.")
                        } else {
                            format!("{by} cleared this chat for both of you.")
                        }));
                    }
                }
                spawn_local(async move { app.load_conversations().await });
            }
            // The relay lowers the sync position; the reconnect that follows syncs from there.
            ServerFrame::CatchUp { .. } => {
                with_keys(|k| k.outbox.on_frame(&frame));
            }
            ServerFrame::SessionRevoked { reason } => self.forget(Some(format!("Signed out: {reason}."))),
            ServerFrame::Error { client_msg_id: Some(_), .. } => {
                match with_keys(|k| k.outbox.on_frame(&frame)) {
                    Some(OutboxEvent::Failed { client_msg_id, message, .. }) => {
                        let key = client_msg_id.to_b64();
                        self.timeline.msgs.update(|ms| {
                            if let Some(m) = ms.iter_mut().find(|m| m.key == key) {
                                m.state = Delivery::Failed(message.clone());
                            }
                        });
                    }
                    Some(OutboxEvent::RateLimited { client_msg_id }) => set_timeout(
                        move || {
                            with_keys(|k| {
                                if let (Some(s), Some(f)) = (&k.socket, k.outbox.frame(client_msg_id)) {
                                    s.send(f);
                                }
                            });
                        },
                        std::time::Duration::from_secs(1),
                    ),
                    _ => {}
                }
            }
            ServerFrame::Error { code, message, client_msg_id: None } => match code {
                // Slowing down is handled where it applies; a relay going away (or a node that
                // lost its message bus) is what the offline banner says while this client
                // reconnects.
                ErrorCode::RateLimited | ErrorCode::Internal | ErrorCode::Unavailable => {}
                _ => self.ui.connection_notice.set(Some(human(&ApiError::new(code, message)))),
            },
            // News in this user's groups: the tab that owns the device reads it (the others
            // hear from it).
            ServerFrame::GroupEntry { .. } | ServerFrame::Welcome { .. } | ServerFrame::Left { .. } => {
                self.sync_groups()
            }
            // This client appends over REST, not with `group_send`.
            ServerFrame::GroupAck { .. } => {}
        }
    }

    /// `peer` received (or read) this user's messages up to `mark`.
    pub(crate) fn peer_marker(&self, peer: &str, mark: Mark, read: bool) {
        self.rooms.convs.update(|cs| {
            if let Some(c) = cs.iter_mut().find(|c| c.is_with(peer)) {
                c.markers = c.markers.raised(mark, read);
            }
        });
        if self.is_open_with(peer) {
            self.timeline.msgs.update(|ms| raise_markers(ms, mark, read));
        }
    }

    /// `by` received (or read) `conversation`'s log up to `up_to`: in a direct chat, the
    /// peer's marker; in a group, that member's.
    fn log_marker(&self, conversation: sealroom_protocol::ConversationId, by: &str, up_to: u64, read: bool) {
        let group = self
            .rooms
            .convs
            .with_untracked(|cs| cs.iter().any(|c| c.id == conversation && c.room.group().is_some()));
        if !group {
            return self.peer_marker(by, Mark::Log(up_to), read);
        }
        if self.open_group() == Some(conversation) {
            self.rooms.group.update(|g| {
                if let Some(g) = g {
                    raise_member(g, by, up_to, read);
                }
            });
            self.apply_group_receipts();
        }
    }

    pub(crate) async fn on_message(self, message: MessageOut) {
        // Taken on arrival (before the first await: messages start in the order they came).
        let event = next_event();
        let me = self.account.me.get_untracked().unwrap_or_default();
        let mine = message.from.as_str() == me;
        let peer = if mine { message.to.to_string() } else { message.from.to_string() };
        if !mine {
            let delivered = ClientFrame::Delivered { conversation: message.conversation, up_to: message.id };
            with_keys(|k| k.socket.as_ref().map(|s| s.send(&delivered)));
        }
        let Some(msg) = self.decrypt(&message).await else { return };
        let introduction = msg.file.is_none() && msg.text == super::mls::MOVED;
        if introduction {
            self.recheck_moved(message.conversation);
        }
        let visible = is_visible();
        let open = self.is_open_with(&peer);
        if open {
            let mut added = false;
            self.timeline.msgs.update(|ms| {
                if !ms.iter().any(|m| m.key == msg.key || m.id == msg.id) {
                    ms.push(msg.clone());
                    added = true;
                }
            });
            if added && !mine {
                self.timeline.typing_until.set(0.0);
                if visible {
                    self.mark_read_open().await;
                }
            }
        }
        let prefix = if mine { "You: " } else { "" };
        self.touch_conv(
            &Room::Direct(peer.clone()),
            format!("{prefix}{}", msg.text),
            message.ts as f64,
            !(mine || introduction || open && visible),
            event,
        );
        // Screen readers hear of a message in another chat (the open chat's history is itself
        // a live log).
        if !mine && !open {
            self.ui.announcement.set(format!("New message from {peer}."));
        }
        if !mine && !visible {
            notify(&peer, &msg.text);
        }
    }

    /// The browser is online again: the socket reconnects at once if it dropped, the device
    /// reads (and sends what it kept), and this tab's unanswered sends are asked again.
    pub fn on_network_back(self) {
        if !self.account.online.get_untracked() {
            with_keys(|k| k.socket.as_ref().map(Socket::reconnect_now));
        }
        self.sync_groups();
        self.resend_unanswered();
    }

    /// The tab became visible again: reset the badge, mark the open chat read, and make sure
    /// the socket is alive (a tab that slept may hold a dead one).
    pub fn on_visible(self) {
        if self.rooms.active.get_untracked().is_some() {
            spawn_local(async move { self.mark_read_open().await });
        }
        if !self.account.online.get_untracked() {
            with_keys(|k| k.socket.as_ref().map(Socket::reconnect_now));
        }
    }
}
