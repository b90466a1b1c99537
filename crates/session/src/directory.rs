//! Which conversation is which: the relay addresses conversations by id, people by name. The
//! directory maps one to the other for direct conversations, learning from the conversation
//! list, from opened conversations and from messages, so both clients resolve a name or an id
//! the same way.

use std::collections::{BTreeMap, BTreeSet};

use sealroom_protocol::{ConversationId, ConversationSummary, MessageOut, Username};

/// Direct conversations by peer and by id.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    by_peer: BTreeMap<Username, ConversationId>,
    by_id: BTreeMap<ConversationId, Username>,
    /// Peers this user has written to (seen in the list or in messages).
    wrote_to: BTreeSet<Username>,
}

impl Directory {
    /// Records a conversation from the list or from opening one.
    pub fn learn(&mut self, summary: &ConversationSummary) {
        self.insert(summary.id, summary.peer.clone());
        // This user has written there if the newest message is theirs, or the peer's clients
        // have received or read any of theirs.
        let mine_delivered = summary.peer_delivered_up_to.0 > 0 || summary.peer_read_up_to.0 > 0;
        if mine_delivered || summary.last_message.as_ref().is_some_and(|m| m.from != summary.peer) {
            self.wrote_to.insert(summary.peer.clone());
        }
    }

    /// Records the conversation a message to or from `me` belongs to. A message that is
    /// neither is not learnt from (the vault refuses it anyway).
    pub fn learn_message(&mut self, me: &Username, m: &MessageOut) {
        let peer = if m.from == *me {
            self.wrote_to.insert(m.to.clone());
            &m.to
        } else if m.to == *me {
            &m.from
        } else {
            return;
        };
        self.insert(m.conversation, peer.clone());
    }

    fn insert(&mut self, id: ConversationId, peer: Username) {
        if let Some(old) = self.by_id.insert(id, peer.clone()) {
            if old != peer {
                self.by_peer.remove(&old);
            }
        }
        self.by_peer.insert(peer, id);
    }

    /// The direct conversation with `peer`, if known.
    pub fn id(&self, peer: &Username) -> Option<ConversationId> {
        self.by_peer.get(peer).copied()
    }

    /// The other member of direct conversation `id`, if known.
    pub fn peer(&self, id: ConversationId) -> Option<&Username> {
        self.by_id.get(&id)
    }

    /// Whether this user has written to `peer` (a message from them to `peer` was seen).
    pub fn wrote_to(&self, peer: &Username) -> bool {
        self.wrote_to.contains(peer)
    }

    /// Forgets everything (sign-out).
    pub fn clear(&mut self) {
        self.by_peer.clear();
        self.by_id.clear();
        self.wrote_to.clear();
    }
}
