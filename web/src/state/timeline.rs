//! The open chat's messages: decrypting, history pages, read markers, sending and the outbox.

use sealroom_crypto::{MessageHeader, Payload};
use sealroom_protocol::endpoint::{Endpoint, History, MarkRead};
use sealroom_protocol::{ClientFrame, ClientMsgId, MessageId, MessageOut, Username};

use sealroom_session::{flows, VaultCell};

use super::keys::call;
use crate::browser::now;
use leptos::prelude::*;

use super::conversations::next_event;
use super::keys::{with_keys, Failure, Fetch, WebVault};
use super::model::*;
use super::App;

impl App {
    /// Decrypts a stored message for display. `None` for a message addressed to someone else:
    /// it is never shown, only counted.
    pub(crate) async fn decrypt(&self, m: &MessageOut) -> Option<Msg> {
        let opened = flows::open(&Fetch(*self), &WebVault, m).await;
        let sent_at = opened.as_ref().ok().map(|o| o.sent_at_ms);
        let mine = self.account.me.get_untracked().as_deref() == Some(m.from.as_str());
        let mut file = None;
        let (text, undecryptable) = match opened.map(|o| o.payload) {
            Ok(payload) => {
                let (text, f) = super::mls::describe(&payload);
                file = f;
                (text, false)
            }
            Err(Failure::Core(sealroom_session::Error::NotForMe)) => {
                self.ui.misaddressed.set(WebVault.with(|v| v.misaddressed()).unwrap_or(0));
                return None;
            }
            Err(_) => ("This message could not be decrypted.".into(), true),
        };
        Some(Msg {
            system: file.is_none() && text == super::mls::MOVED,
            sender: None,
            folded: text.to_lowercase(),
            key: m.client_msg_id.to_b64(),
            id: Some(m.id.0),
            mine,
            text,
            ts: sent_at.map_or(m.ts as f64, |s| s as f64),
            relay_ts: sent_at.filter(|s| sealroom_session::clock_disagrees(*s, m.ts)).map(|_| m.ts as f64),
            state: Delivery::Sent,
            envelope: sealroom_protocol::encode_b64(m.envelope.as_bytes()),
            undecryptable,
            file,
            seq: None,
        })
    }

    /// Loads the page before the oldest message shown (infinite scroll).
    pub async fn load_older(self) {
        self.load_older_page(50).await;
    }

    /// Loads the whole history of the open chat, so that search covers all of it (the relay
    /// cannot search: it only has ciphertext).
    pub async fn load_all(self) {
        let room = self.rooms.active.get_untracked();
        while self.timeline.has_more.get_untracked() && self.rooms.active.get_untracked() == room {
            let before = self.timeline.msgs.with_untracked(Vec::len);
            self.load_older_page(sealroom_protocol::MAX_PAGE).await;
            if self.timeline.msgs.with_untracked(Vec::len) == before {
                break;
            }
        }
    }

    /// The page of history just older than what the chat shows: from version 1 and from the
    /// archive (a conversation that moved has both), merged by the senders' clocks.
    pub(crate) async fn load_older_page(self, limit: u32) {
        let Some(room) = self.rooms.active.get_untracked() else { return };
        let Some(id) = self.open_conversation() else { return };
        let (oldest_id, oldest_seq) = self
            .timeline
            .msgs
            .with_untracked(|m| (m.iter().filter_map(|m| m.id).min(), m.iter().filter_map(|m| m.seq).min()));
        let mut older = Vec::new();
        let mut v1_more = false;
        let mut peer_markers = match room.peer() {
            Some(peer) => self.markers_of(peer),
            None => Markers::default(),
        };
        if let (true, Some(oldest)) = (self.timeline.v1_more.get_untracked(), oldest_id) {
            let query = sealroom_protocol::HistoryQuery {
                before: Some(MessageId(oldest)),
                after: None,
                limit: Some(limit),
            };
            let Ok(page) = call::<History>(&(History::path(&[&id]) + &query.to_query()), None).await else {
                return;
            };
            for m in &page.messages {
                older.extend(self.decrypt(m).await);
            }
            v1_more = page.has_more;
            peer_markers.delivered = page.peer_delivered_up_to.0;
            peer_markers.read = page.peer_read_up_to.0;
        }
        let mut archive_more = false;
        if let (true, Some(oldest)) = (self.timeline.archive_more.get_untracked(), oldest_seq) {
            let (page, more) = self.archived_page(id, Some(oldest), limit).await;
            older.extend(page);
            archive_more = more;
        }
        if !self.is_open(&room) {
            return;
        }
        if room.group().is_none() {
            apply_markers(&mut older, peer_markers);
        }
        self.timeline.v1_more.set(v1_more);
        self.timeline.archive_more.set(archive_more);
        self.timeline.has_more.set(v1_more || archive_more);
        self.timeline.msgs.update(|msgs| {
            older.append(msgs);
            *msgs = older;
            msgs.sort_by(|a, b| a.ts.total_cmp(&b.ts));
        });
        if room.group().is_some() {
            self.apply_group_receipts();
        }
    }

    /// Marks the open chat read up to the newest message it shows: the version 1 marker over
    /// REST, the MLS log's over this tab's socket (only when it rose).
    pub(crate) async fn mark_read_open(&self) {
        let Some(room) = self.rooms.active.get_untracked() else { return };
        let Some(id) = self.open_conversation() else { return };
        let (newest_id, newest_seq) = self
            .timeline
            .msgs
            .with_untracked(|m| (m.iter().filter_map(|m| m.id).max(), m.iter().filter_map(|m| m.seq).max()));
        if let Some(up_to) = newest_id {
            let body = sealroom_protocol::MarkReadRequest { up_to: MessageId(up_to) };
            let _ = call::<MarkRead>(&MarkRead::path(&[&id]), Some(&body)).await;
        }
        let read = self
            .rooms
            .convs
            .with_untracked(|cs| cs.iter().find(|c| c.room == room).map(|c| c.log_read_up_to));
        if let Some(up_to) = newest_seq.filter(|s| read.is_none_or(|r| *s > r)) {
            let frame = ClientFrame::GroupRead { conversation: id, up_to };
            with_keys(|k| k.socket.as_ref().map(|s| s.send(&frame)));
        }
        if newest_id.is_none() && newest_seq.is_none() {
            return;
        }
        self.rooms.convs.update(|cs| {
            if let Some(c) = cs.iter_mut().find(|c| c.room == room) {
                c.unread = 0;
                c.log_read_up_to = c.log_read_up_to.max(newest_seq.unwrap_or(0));
            }
        });
    }

    /// Encrypts and sends a text to the open chat; queued while offline.
    pub async fn send(self, text: String) {
        let Some(room) = self.rooms.active.get_untracked() else { return };
        if text.trim().is_empty() || self.rooms.paused.get_untracked() {
            // The composer is disabled behind the banner; this is the same rule for Enter.
            return;
        }
        let peer = match room {
            Room::Group(id) => return self.send_mls(room, id, Payload::Text(text)).await,
            Room::Direct(peer) => peer,
        };
        // A conversation in MLS gets its messages there (forward-secret); one whose state is
        // unknown because the relay cannot be reached is queued as version 1 (see below).
        match self.mls_route(&peer).await {
            Ok(Some(conversation)) => {
                return self.send_mls(Room::Direct(peer), conversation, Payload::Text(text)).await
            }
            Ok(None) => {}
            Err(e) => return self.ui.notice.set(Some(format!("Cannot send to {peer}: {}", e.human()))),
        }
        self.send_v1(peer, Payload::Text(text)).await;
    }

    /// Seals `payload` to `peer` as a version 1 message, shows it (in the open chat with them,
    /// and in the list) and queues it until the relay acknowledges it.
    pub(crate) async fn send_v1(self, peer: String, payload: Payload) {
        let header = match MessageHeader::new(now() as u64) {
            Ok(h) => h,
            Err(e) => return self.ui.notice.set(Some(e.to_string())),
        };
        let Some((frame, envelope)) = self.seal(&peer, &header, &payload, vec![]).await else {
            return;
        };
        let (text, _) = super::mls::describe(&payload);
        if self.is_open_with(&peer) {
            self.timeline.msgs.update(|m| {
                m.push(Msg {
                    system: text == super::mls::MOVED,
                    sender: None,
                    folded: text.to_lowercase(),
                    key: ClientMsgId(header.client_msg_id).to_b64(),
                    id: None,
                    mine: true,
                    text: text.clone(),
                    ts: now(),
                    relay_ts: None,
                    state: Delivery::Sending,
                    envelope,
                    undecryptable: false,
                    file: None,
                    seq: None,
                })
            });
        }
        self.touch_conv(&Room::Direct(peer.clone()), format!("You: {text}"), now(), false, next_event());
        self.enqueue(peer, frame);
    }

    /// Seals `payload` to `peer` under `header`: the `send` frame and the envelope in base64.
    /// `None` (with a notice) when the peer's key is unknown or has changed: the vault refuses
    /// to seal to a changed key, whichever chat is open and whichever way the user sends.
    pub(crate) async fn seal(
        &self,
        peer: &str,
        header: &MessageHeader,
        payload: &Payload,
        blobs: Vec<sealroom_protocol::BlobId>,
    ) -> Option<(ClientFrame, String)> {
        let to = Username::parse(peer).ok()?;
        let (client_msg_id, envelope) = match flows::seal(&Fetch(*self), &WebVault, &to, header, payload)
            .await
        {
            Ok(sealed) => sealed,
            Err(Failure::Core(sealroom_session::Error::KeyChanged(change))) => {
                self.raise_key_alert(&change);
                self.ui.notice.set(Some(Failure::Core(sealroom_session::Error::KeyChanged(change)).human()));
                return None;
            }
            Err(e) => {
                self.ui.notice.set(Some(format!("Cannot send to {peer}: {}", e.human())));
                return None;
            }
        };
        // The first message of a new chat opens the conversation on the relay.
        let conversation = match flows::open_direct(&Fetch(*self), &WebVault, &to).await {
            Ok(id) => id,
            Err(e) => {
                self.ui.notice.set(Some(format!("Cannot send to {peer}: {}", e.human())));
                return None;
            }
        };
        let b64 = sealroom_protocol::encode_b64(envelope.as_bytes());
        Some((ClientFrame::Send { conversation, client_msg_id, envelope, blobs }, b64))
    }

    /// Queues a `send` until its ack (resent after a reconnect) and sends it now if online.
    pub(crate) fn enqueue(&self, peer: String, frame: ClientFrame) {
        let Ok(peer) = Username::parse(&peer) else { return };
        with_keys(|k| {
            k.outbox.push(peer, frame.clone());
            if let Some(s) = &k.socket {
                s.send(&frame);
            }
        });
    }

    /// Sends what the outbox says to send after a (re)connect or an accepted key: a sync from
    /// the cursor, then every unacknowledged message except to peers whose key changed.
    pub(crate) fn flush_outbox(&self) {
        with_keys(|k| {
            if let Some(s) = &k.socket {
                let vault = &k.vault;
                for f in k.outbox.on_hello(|p| vault.key_change(p).is_some()) {
                    s.send(&f);
                }
            }
        });
    }

    /// Tells the peer this user is typing (the relay throttles).
    pub fn typing(&self) {
        // Only within an existing conversation: the relay relays typing in those only.
        let Some(conversation) = self.open_conversation() else { return };
        with_keys(|k| k.socket.as_ref().map(|s| s.send(&ClientFrame::Typing { conversation })));
    }
}
