//! The outbox and the sync cursor: what to resend after a reconnect, and what each frame from
//! the relay means for what this client has sent and seen.

use sealroom_protocol::{ClientFrame, ClientMsgId, ErrorCode, MessageId, ServerFrame, Username};

/// A `send` waiting for its ack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    /// The recipient.
    pub peer: Username,
    /// The `send` frame, exactly as first sent (a resend with the same client_msg_id is stored
    /// once by the relay).
    pub frame: ClientFrame,
}

impl Queued {
    fn id(&self) -> Option<ClientMsgId> {
        match &self.frame {
            ClientFrame::Send { client_msg_id, .. } => Some(*client_msg_id),
            _ => None,
        }
    }
}

/// What a frame from the relay meant for the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboxEvent {
    /// Nothing the outbox tracks.
    Nothing,
    /// A queued message is stored: it leaves the queue.
    Acked {
        /// Which.
        client_msg_id: ClientMsgId,
        /// Its server id.
        id: MessageId,
        /// When it was stored.
        ts: i64,
    },
    /// The relay refused a queued message for good: it leaves the queue.
    Failed {
        /// Which.
        client_msg_id: ClientMsgId,
        /// Why, as a stable code.
        code: ErrorCode,
        /// Why, for people.
        message: String,
    },
    /// The relay asked this client to slow down: the message stays queued; send
    /// [`Outbox::frame`] again after a pause.
    RateLimited {
        /// Which.
        client_msg_id: ClientMsgId,
    },
    /// A sync batch ended and more is waiting: send this frame.
    SyncMore(ClientFrame),
}

/// Messages sent but not yet acknowledged, and the id up to which this client has everything.
///
/// The cursor only ever stands where everything up to it is known to have arrived. While a
/// sync is under way ([`Outbox::on_hello`] until the last `synced`), messages pushed live (and
/// acks) may be far ahead of what the sync has brought so far: they are kept apart and count
/// only once the sync is complete. Otherwise a connection lost mid-sync would leave the cursor
/// past messages that neither the sync nor the live pushes ever brought, and the next sync
/// would start after them.
#[derive(Debug, Clone)]
pub struct Outbox {
    queue: Vec<Queued>,
    cursor: MessageId,
    /// While a sync is under way: the highest id pushed live or acknowledged meanwhile.
    syncing: Option<MessageId>,
}

impl Default for Outbox {
    fn default() -> Self {
        Outbox { queue: Vec::new(), cursor: MessageId(0), syncing: None }
    }
}

impl Outbox {
    /// Queues a `send` until its ack. Send `queued.frame` now if connected; otherwise the next
    /// [`Outbox::on_hello`] returns it.
    pub fn push(&mut self, peer: Username, frame: ClientFrame) {
        self.queue.push(Queued { peer, frame });
    }

    /// The queued `send` frame with this id.
    pub fn frame(&self, client_msg_id: ClientMsgId) -> Option<&ClientFrame> {
        self.queue.iter().find(|q| q.id() == Some(client_msg_id)).map(|q| &q.frame)
    }

    /// What is queued, oldest first.
    pub fn queued(&self) -> &[Queued] {
        &self.queue
    }

    /// Withdraws a queued message (the user cancelled it).
    pub fn withdraw(&mut self, client_msg_id: ClientMsgId) -> bool {
        let before = self.queue.len();
        self.queue.retain(|q| q.id() != Some(client_msg_id));
        self.queue.len() != before
    }

    /// The id up to which this client has every message.
    pub fn cursor(&self) -> MessageId {
        self.cursor
    }

    /// Moves the cursor forward (never back) to `id`.
    pub fn advance(&mut self, id: MessageId) {
        if id > self.cursor {
            self.cursor = id;
        }
    }

    /// A message with this id arrived (pushed live or by a sync, or acknowledged): it moves
    /// the cursor, or, while a sync is under way, counts once that is complete.
    pub fn arrived(&mut self, id: MessageId) {
        match &mut self.syncing {
            Some(ahead) => *ahead = (*ahead).max(id),
            None => self.advance(id),
        }
    }

    /// A (re)connect: catch up from the cursor, then resend everything not yet acknowledged,
    /// except to peers `held` says to hold back (a peer whose key changed). Send the frames on
    /// the new connection, which must be the one the relay pushes to from now on.
    pub fn on_hello(&mut self, held: impl Fn(&Username) -> bool) -> Vec<ClientFrame> {
        // What earlier connections pushed beyond the last complete sync is not counted on.
        self.syncing = Some(self.cursor);
        let mut out = vec![ClientFrame::Sync { since: self.cursor }];
        out.extend(self.queue.iter().filter(|q| !held(&q.peer)).map(|q| q.frame.clone()));
        out
    }

    /// Applies a frame from the relay.
    pub fn on_frame(&mut self, frame: &ServerFrame) -> OutboxEvent {
        match frame {
            ServerFrame::Ack { client_msg_id, id, ts } => {
                self.withdraw(*client_msg_id);
                self.arrived(*id);
                OutboxEvent::Acked { client_msg_id: *client_msg_id, id: *id, ts: *ts }
            }
            ServerFrame::Error { code: ErrorCode::RateLimited, client_msg_id: Some(id), .. }
                if self.frame(*id).is_some() =>
            {
                OutboxEvent::RateLimited { client_msg_id: *id }
            }
            ServerFrame::Error { code, message, client_msg_id: Some(id) } => {
                self.withdraw(*id);
                OutboxEvent::Failed { client_msg_id: *id, code: *code, message: message.clone() }
            }
            ServerFrame::Message { message } => {
                self.arrived(message.id);
                OutboxEvent::Nothing
            }
            // The relay may have missed telling us of messages after `since`: the sync on the
            // reconnect that follows starts there (what comes again is the same, by id).
            ServerFrame::CatchUp { since } => {
                if *since < self.cursor {
                    self.cursor = *since;
                }
                // Nothing counts again until the sync after the reconnect is complete.
                self.syncing = Some(self.cursor);
                OutboxEvent::Nothing
            }
            // Each batch brings everything up to `up_to`. The last completes the sync: with
            // the live pushes to this connection meanwhile, the client has everything.
            ServerFrame::Synced { up_to, more } => {
                self.advance(*up_to);
                if *more {
                    OutboxEvent::SyncMore(ClientFrame::Sync { since: *up_to })
                } else {
                    if let Some(ahead) = self.syncing.take() {
                        self.advance(ahead);
                    }
                    OutboxEvent::Nothing
                }
            }
            _ => OutboxEvent::Nothing,
        }
    }
}
