//! The app's state and everything that changes it, by concern:
//!
//! - [`model`]: plain types (conversation rows, messages, delivery states) and pure functions;
//! - `keys`: the vault, outbox and socket outside the reactive graph, and the adapter for the
//!   shared client core (`sealroom-session`), where every decision about keys is made;
//! - `account`: sign-up, sign-in, resume, password change, sign-out, peers' keys;
//! - `conversations`: the list, opening a chat, flags, clearing, the directory search;
//! - `timeline`: the open chat's messages, history pages, sending and the outbox;
//! - `inbound`: every frame from the relay;
//! - `mls`: this browser's MLS device, owned by one tab, asked by the others, and the
//!   forward-secret messages it reads.
//!
//! [`App`] holds the signals; each area's signals also reach the view as their own context
//! ([`Account`], [`Rooms`], [`Timeline`], [`Transfers`]).

use std::collections::{BTreeMap, HashMap};

use leptos::prelude::*;
use sealroom_protocol::ApiError;

mod account;
mod conversations;
mod inbound;
pub(crate) mod keys;
mod mls;
pub mod model;
mod timeline;

pub(crate) use crate::browser::futures_channel;
pub use crate::browser::now;
pub(crate) use conversations::next_event;
pub(crate) use keys::call;
pub(crate) use mls::GroupChange;
pub use mls::MOVED;
pub(crate) use model::capitalize;
pub use model::*;

/// The reactive state: one handle (Copy) over every area's signals. Actions are its methods;
/// each area is also provided as its own context, for views that only read it.
#[derive(Debug, Clone, Copy)]
pub struct App {
    /// Who is signed in, and the auth screens.
    pub account: Account,
    /// The conversation list, the open chat and peers' key alerts.
    pub rooms: Rooms,
    /// The open chat's messages.
    pub timeline: Timeline,
    /// Attachments on their way and decrypted.
    pub transfers: Transfers,
    /// Notices, theme and badges.
    pub ui: Ui,
}

/// Who is signed in, and the auth screens.
#[derive(Debug, Clone, Copy)]
pub struct Account {
    /// Current screen.
    pub screen: RwSignal<Screen>,
    /// Signed-in user.
    pub me: RwSignal<Option<String>>,
    /// "Deriving keys…" and similar.
    pub busy: RwSignal<Option<String>>,
    /// Inline error of the auth forms.
    pub auth_error: RwSignal<Option<String>>,
    /// Stay signed in on this browser (unticked on a shared computer).
    pub remember: RwSignal<bool>,
    /// The WebSocket is up.
    pub online: RwSignal<bool>,
    /// Who may create an account on this relay (`GET /api/server`; open until it answers).
    pub registration: RwSignal<sealroom_protocol::Registration>,
    /// Days after which the relay deletes messages (`None`: it keeps them).
    pub retention_days: RwSignal<Option<u32>>,
}

/// The conversation list, the open chat and peers' key alerts.
#[derive(Debug, Clone, Copy)]
pub struct Rooms {
    /// Conversation list.
    pub convs: RwSignal<Vec<Conv>>,
    /// The open chat.
    pub active: RwSignal<Option<Room>>,
    /// The open group's state at the relay: members, admins, receipts (`None` for a direct
    /// chat, or until fetched).
    pub group: RwSignal<Option<sealroom_protocol::GroupState>>,
    /// Directory search results.
    pub found: RwSignal<Vec<String>>,
    /// The users this user has blocked.
    pub blocked: RwSignal<std::collections::BTreeSet<String>>,
    /// The directory query last sent (an older answer arriving late is ignored).
    pub search_query: RwSignal<String>,
    /// Why the directory search has no answer (the server could not be reached…).
    pub search_error: RwSignal<Option<String>>,
    /// Peers whose key changed and was not accepted: nothing is sent to them, from anywhere.
    pub key_alerts: RwSignal<BTreeMap<String, KeyAlert>>,
    /// The key-change alert of the open chat, if its peer is in `key_alerts`.
    pub key_alert: Memo<Option<KeyAlert>>,
    /// Nothing may be sent in the open chat: its peer's key changed, or they are blocked. Every
    /// way to send (composer, Enter, attach, drop, paste) asks this.
    pub paused: Memo<bool>,
}

/// The open chat's messages.
#[derive(Debug, Clone, Copy)]
pub struct Timeline {
    /// Open chat's messages, oldest first.
    pub msgs: RwSignal<Vec<Msg>>,
    /// Older history exists (in version 1, or in the archive).
    pub has_more: RwSignal<bool>,
    /// Older version 1 history exists.
    pub v1_more: RwSignal<bool>,
    /// Older archived (MLS) history exists.
    pub archive_more: RwSignal<bool>,
    /// Peer typing in the open chat (until the time given).
    pub typing_until: RwSignal<f64>,
    /// Who is typing in the open group.
    pub typing_who: RwSignal<String>,
    /// The open chat is in MLS (forward-secret), or version 1; `None` until known.
    pub forward_secret: RwSignal<Option<bool>>,
}

/// Attachments on their way and decrypted.
#[derive(Debug, Clone, Copy)]
pub struct Transfers {
    /// Attachment transfers in progress, by message key: (what, fraction done).
    pub progress: RwSignal<HashMap<String, (String, f64)>>,
    /// Decrypted attachments by message key: an object URL, or why there is none.
    pub files: RwSignal<HashMap<String, Result<String, String>>>,
}

/// Notices, theme and badges.
#[derive(Debug, Clone, Copy)]
pub struct Ui {
    /// A transient notice.
    pub notice: RwSignal<Option<String>>,
    /// What a screen reader is told politely (a message arrived in another chat).
    pub announcement: RwSignal<String>,
    /// What the relay said about the connection; gone with the next connection.
    pub connection_notice: RwSignal<Option<String>>,
    /// Dark theme forced on (None: follow the system).
    pub dark: RwSignal<Option<bool>>,
    /// Messages the relay handed this user that were addressed to someone else (not shown).
    pub misaddressed: RwSignal<u64>,
}

impl App {
    /// Fresh state.
    pub fn new() -> Self {
        let active = RwSignal::new(None::<Room>);
        let key_alerts = RwSignal::new(BTreeMap::<String, KeyAlert>::new());
        let key_alert = Memo::new(move |_| {
            active.with(|a| {
                a.as_ref().and_then(Room::peer).and_then(|p| key_alerts.with(|k| k.get(p).cloned()))
            })
        });
        let blocked = RwSignal::new(std::collections::BTreeSet::<String>::new());
        let paused = Memo::new(move |_| {
            key_alert.with(Option::is_some)
                || active.with(|a| {
                    a.as_ref().and_then(Room::peer).is_some_and(|p| blocked.with(|b| b.contains(p)))
                })
        });
        App {
            account: Account {
                screen: RwSignal::new(if crate::browser::returning() {
                    Screen::SignIn
                } else {
                    Screen::SignUp
                }),
                me: RwSignal::new(None),
                busy: RwSignal::new(None),
                auth_error: RwSignal::new(None),
                remember: RwSignal::new(true),
                online: RwSignal::new(false),
                registration: RwSignal::new(sealroom_protocol::Registration::Open),
                retention_days: RwSignal::new(None),
            },
            rooms: Rooms {
                convs: RwSignal::new(Vec::new()),
                active,
                group: RwSignal::new(None),
                found: RwSignal::new(Vec::new()),
                search_query: RwSignal::new(String::new()),
                blocked,
                search_error: RwSignal::new(None),
                key_alerts,
                key_alert,
                paused,
            },
            timeline: Timeline {
                msgs: RwSignal::new(Vec::new()),
                has_more: RwSignal::new(false),
                v1_more: RwSignal::new(false),
                archive_more: RwSignal::new(false),
                typing_until: RwSignal::new(0.0),
                typing_who: RwSignal::new(String::new()),
                forward_secret: RwSignal::new(None),
            },
            transfers: Transfers {
                progress: RwSignal::new(HashMap::new()),
                files: RwSignal::new(HashMap::new()),
            },
            ui: Ui {
                notice: RwSignal::new(None),
                connection_notice: RwSignal::new(None),
                announcement: RwSignal::new(String::new()),
                dark: RwSignal::new(None),
                misaddressed: RwSignal::new(0),
            },
        }
    }

    /// Provides the app and each of its areas as contexts.
    pub fn provide(self) {
        provide_context(self);
        provide_context(self.account);
        provide_context(self.rooms);
        provide_context(self.timeline);
        provide_context(self.transfers);
        provide_context(self.ui);
    }

    pub(crate) fn fail(&self, e: &ApiError) {
        self.ui.notice.set(Some(human(e)));
    }

    /// The open group's conversation (not tracked).
    pub(crate) fn open_group(&self) -> Option<sealroom_protocol::ConversationId> {
        self.rooms.active.with_untracked(|a| a.as_ref().and_then(Room::group))
    }

    /// Whether `room` is the open chat (not tracked).
    pub(crate) fn is_open(&self, room: &Room) -> bool {
        self.rooms.active.with_untracked(|a| a.as_ref() == Some(room))
    }

    /// Whether the direct chat with `peer` is open (not tracked).
    pub(crate) fn is_open_with(&self, peer: &str) -> bool {
        self.rooms.active.with_untracked(|a| a.as_ref().and_then(Room::peer) == Some(peer))
    }

    /// The open chat's conversation at the relay, if it has one.
    pub(crate) fn open_conversation(&self) -> Option<sealroom_protocol::ConversationId> {
        match self.rooms.active.get_untracked()? {
            Room::Direct(peer) => self.conversation_of(&peer),
            Room::Group(id) => Some(id),
        }
    }
}

impl Default for App {
    fn default() -> Self {
        Self::new()
    }
}
