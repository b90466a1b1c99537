//! Sealroom's client core: every decision a client makes about keys and state, written once
//! and called by both the web client (`web/`) and the native client and CLI
//! (`sealroom-client`).
//!
//! It does no network I/O of its own, in the shape of matrix-sdk-crypto: the adapter pushes in
//! what the relay sent and gets back what to send. Round trips go through a [`Transport`] that
//! the adapter implements over the typed endpoints of [`sealroom_protocol::endpoint`]; keys
//! live in a [`Vault`] the adapter keeps in a [`VaultCell`].
//!
//! What it decides:
//! - accounts: the registration request, login keys, unlocking the sealed backup (refusing a
//!   backup whose identity is not the one the relay publishes), password changes, and the
//!   merge when another client stored the backup first ([`flows`]);
//! - peers' keys: pinned on first use, a changed key blocks sealing to that peer until the user
//!   accepts it ([`Vault::check_peer_key`], [`Vault::seal`]);
//! - what may be shown: only messages to or from this user that open under the pinned key
//!   ([`Vault::open`]);
//! - what to resend after a reconnect and what an ack or an error means ([`Outbox`]);
//! - which conversation a name or an id means ([`Directory`]; a direct conversation is found
//!   or created by the peer's name with [`flows::open_direct`]).
//!
//! What it must never do: talk to the network itself, print a secret, or let a message be
//! sealed to a key the user has not accepted.
//!
//! # Example
//!
//! ```
//! use sealroom_session::{Outbox, OutboxEvent};
//! use sealroom_protocol::{ClientMsgId, MessageId, ServerFrame};
//!
//! let mut outbox = Outbox::default();
//! // A reconnect: catch up from the cursor, resend what was not acknowledged.
//! let frames = outbox.on_hello(|_| false);
//! assert_eq!(frames.len(), 1);
//! let ack = ServerFrame::Ack { client_msg_id: ClientMsgId([7; 16]), id: MessageId(5), ts: 1 };
//! assert_eq!(outbox.on_frame(&ack), OutboxEvent::Acked { client_msg_id: ClientMsgId([7; 16]), id: MessageId(5), ts: 1 });
//! // The cursor moves once the sync is complete: everything up to it has arrived.
//! assert_eq!(outbox.cursor(), MessageId(0));
//! outbox.on_frame(&ServerFrame::Synced { up_to: MessageId(3), more: false });
//! assert_eq!(outbox.cursor(), MessageId(5));
//! ```
#![deny(missing_docs)]

mod directory;
pub mod export;
pub mod flows;
#[cfg(feature = "mls")]
pub mod groups;
#[cfg(feature = "mls")]
pub mod mls;
#[cfg(feature = "mls")]
mod mls_crypto;
mod outbox;
pub mod password;
mod vault;

pub use directory::Directory;
pub use outbox::{Outbox, OutboxEvent, Queued};
pub use password::{strength, Strength, MIN_PASSWORD_CHARS};
pub use sealroom_crypto::{FileRef, MessageHeader, Payload, PublicKey, SafetyNumber};
pub use vault::{KeyChange, Opened, PeerKey, Vault};

use sealroom_protocol::{ApiError, Endpoint};

/// What the client core refuses, and why.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The key backup does not open with this password: a wrong password, or it was altered.
    #[error("the key backup does not open with this password (wrong password, or it was altered)")]
    BackupUnreadable,
    /// The backup opened, but the identity key in it is not the one the relay publishes for this
    /// user: the relay (or someone who changed its database) would have peers encrypt to a key
    /// this user does not hold. Sign-in stops.
    #[error(
        "the server publishes a different identity key for you than the one in your key backup; \
         signing in was stopped so that nobody encrypts to a key you do not hold"
    )]
    IdentityMismatch,
    /// The relay returned an older key backup than one this device has already opened: a
    /// rollback that could undo pins (an attack, or a restored server). Sign-in stops.
    #[error(
        "the server returned an older copy of your key backup (generation {got}) than this device \
         has already seen (generation {seen}); signing in was stopped so that no key you checked \
         is silently forgotten. If the server was restored from a backup, ask its operator."
    )]
    BackupRolledBack {
        /// The newest generation this device opened or wrote.
        seen: u64,
        /// The generation the relay returned.
        got: u64,
    },
    /// A peer's identity key differs from the one pinned for them; nothing is sent to them until
    /// the user compares the new safety number and accepts it.
    #[error(
        "{}'s identity key has changed. Pinned safety number: {}; new: {}. Compare the new number \
         with {} before accepting it",
        .0.peer, .0.old_safety_number.as_deref().unwrap_or("none (your key backup has lost it)"),
        .0.new_safety_number, .0.peer
    )]
    KeyChanged(Box<KeyChange>),
    /// A user's identity signing key is not the one pinned for them (or, for this user, not the
    /// one in the key backup): their devices are not trusted.
    #[error("{0}'s signing key is not the one pinned for them; their devices are not trusted")]
    SigningKeyChanged(sealroom_protocol::Username),
    /// The relay does not publish a signing key for this user yet: they have no device that
    /// can join a group.
    #[error("{0} has not set up a device for group conversations yet")]
    NoSigningKey(sealroom_protocol::Username),
    /// This device was removed from the user's devices: it may no longer act (a new device
    /// takes its place).
    #[error("this device was removed from your account")]
    DeviceRemoved,
    /// The user turned the history archive off: group history before this device is not kept.
    #[error(
        "the history archive is off (strict forward secrecy): history from before this device is not kept"
    )]
    ArchiveOff,
    /// This device's state could not be saved: nothing that depends on it was sent.
    #[error("{0}")]
    DeviceStorage(String),
    /// The MLS layer refused.
    #[cfg(feature = "mls")]
    #[error("{0}")]
    Mls(#[from] mls::MlsError),
    /// No key has been checked for this peer yet.
    #[error("no key is known for {0} yet")]
    UnknownPeer(sealroom_protocol::Username),
    /// The relay handed this user a message addressed to someone else: not shown.
    #[error("a message addressed to someone else")]
    NotForMe,
    /// The message does not open under the pinned key (or was altered).
    #[error("this message could not be decrypted")]
    Undecryptable,
    /// A password too weak to protect the key backup.
    #[error("{0}")]
    WeakPassword(&'static str),
    /// The key backup kept changing under concurrent writers.
    #[error("the key backup keeps changing; try again")]
    BackupContention,
    /// Not signed in (the vault is gone).
    #[error("not signed in")]
    SignedOut,
    /// A cryptographic operation failed.
    #[error("{0}")]
    Crypto(#[from] sealroom_crypto::Error),
    /// A value did not fit its wire type.
    #[error("{0}")]
    Bytes(#[from] sealroom_protocol::BytesError),
}

/// How an adapter reaches the relay: one typed call per endpoint.
///
/// The native client implements it over reqwest with a Bearer token, the web client over
/// `fetch` with the session cookie. The futures need not be `Send` (the browser's are not);
/// a concrete native implementation's are.
#[allow(async_fn_in_trait)]
pub trait Transport {
    /// The adapter's error, which must be able to carry the core's.
    type Error: From<Error>;

    /// Calls endpoint `E` at `path` (made with [`Endpoint::path`]) with `body`.
    async fn call<E: Endpoint>(&self, path: &str, body: Option<&E::Body>)
        -> Result<E::Response, Self::Error>;

    /// The relay's refusal inside an adapter error, if that is what it is.
    fn api_error(e: &Self::Error) -> Option<&ApiError>;

    /// Whether `e` means the request went without an answer (the relay could not be reached,
    /// or the connection failed before its answer was read): it may or may not have been
    /// done. Flows that can repeat a request safely keep it to repeat; by default no error is
    /// taken for one.
    fn no_answer(_e: &Self::Error) -> bool {
        false
    }

    /// Runs Argon2id. The default runs it inline; the native client moves it to a blocking
    /// thread, the browser first lets the page paint "Deriving keys…".
    async fn derive_keys(
        &self,
        password: &str,
        salt: &[u8],
        params: sealroom_crypto::KdfParams,
    ) -> Result<sealroom_crypto::PasswordKeys, Self::Error> {
        Ok(sealroom_crypto::PasswordKeys::derive(password, salt, params).map_err(Error::from)?)
    }

    /// The newest key-backup generation this device has opened or written for `username`
    /// (kept by the adapter across sessions); `None` when it remembers none.
    fn seen_generation(&self, _username: &str) -> Option<u64> {
        None
    }

    /// Remembers that this device opened or wrote `username`'s backup of `generation`. An
    /// adapter keeps the largest it is told.
    fn saw_generation(&self, _username: &str, _generation: u64) {}
}

/// Whether `e` leaves it open if the relay did what was asked: no answer
/// ([`Transport::no_answer`]), or a failure of the relay's own (a 5xx). A flow that can repeat
/// the request safely keeps it to repeat.
pub fn unanswered<T: Transport>(e: &T::Error) -> bool {
    match T::api_error(e) {
        Some(a) => a.error.http_status() >= 500,
        None => T::no_answer(e),
    }
}

/// Where an adapter keeps its [`Vault`], borrowed briefly and never across an await: the
/// browser keeps it in a thread-local, the native client behind a mutex.
pub trait VaultCell {
    /// Runs `f` on the vault; `None` when signed out.
    fn with<R>(&self, f: impl FnOnce(&mut Vault) -> R) -> Option<R>;
}

impl VaultCell for std::sync::Mutex<Vault> {
    fn with<R>(&self, f: impl FnOnce(&mut Vault) -> R) -> Option<R> {
        let mut guard = self.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        Some(f(&mut guard))
    }
}

/// A vault borrowed exclusively for one flow (a native session's `&mut self`).
impl VaultCell for std::sync::Mutex<&mut Vault> {
    fn with<R>(&self, f: impl FnOnce(&mut Vault) -> R) -> Option<R> {
        let mut guard = self.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        Some(f(&mut guard))
    }
}

impl VaultCell for std::cell::RefCell<Option<Vault>> {
    fn with<R>(&self, f: impl FnOnce(&mut Vault) -> R) -> Option<R> {
        self.borrow_mut().as_mut().map(f)
    }
}

/// How far the sender's authenticated clock (`sent_at`) and the relay's receipt time may
/// differ before a client flags the message: 10 minutes.
pub const CLOCK_SKEW_MS: i64 = 10 * 60 * 1000;

/// Whether a message's authenticated `sent_at` and the relay's `ts` disagree by more than
/// [`CLOCK_SKEW_MS`]. Clients show `sent_at` (the relay cannot change it) and flag such a
/// message with the relay's time, since one of the two clocks is wrong or a message was held
/// back or back-dated.
pub fn clock_disagrees(sent_at_ms: u64, relay_ts_ms: i64) -> bool {
    let sent = i64::try_from(sent_at_ms).unwrap_or(i64::MAX);
    sent.abs_diff(relay_ts_ms) > CLOCK_SKEW_MS.unsigned_abs()
}

/// How many messages a conversation list shows as unread: the relay's count, less the
/// introduction of a move to MLS when it is the newest version 1 message, the peer's, and
/// unread. It is a line of the timeline, not a message; the relay cannot tell (it cannot read
/// it).
pub fn unread_shown(
    summary: &sealroom_protocol::ConversationSummary,
    newest_is_peers_introduction: bool,
) -> u32 {
    let introduction_unread = newest_is_peers_introduction
        && summary.last_message.as_ref().is_some_and(|m| m.id > summary.read_up_to);
    summary.unread.saturating_sub(u32::from(introduction_unread))
}

/// The password rule both clients apply to a new password ([`password::strength`]). The key
/// backup is only as strong as the password: there is no reset.
pub fn check_new_password(password: &str, username: &str) -> Result<(), Error> {
    match password::strength(password, username).problem {
        Some(why) => Err(Error::WeakPassword(why)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests;
